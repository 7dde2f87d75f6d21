"""Task and distillation losses of the three papers, batched over the prediction horizon.

Why in one place: the trainer chooses a distillation method by name ('none', 'kl', 'logit-mse',
'kd-mid', 'kd-end', 'kd-both', 'rkd-mid', 'rkd-end', 'rkd-both'), and the benchmark compares them, so
each must be defined exactly once, with the papers' names:

* **focal loss** (Lin et al., used by CRKD eq. 7 and Ma et al. eqs. 8-9):
  ``-alpha (1 - p_y)^gamma log p_y``, averaged over samples and horizon steps.
* **power soft-target loss** (this package; the ListNet listwise ranking loss on the label's own
  per-beam powers): cross-entropy against ``softmax(P_dBm / T_dB)``. Why: the label is the argmax of
  a power vector whose best and second-best beams are often ~1 dB apart, so a hard label punishes the
  near-optimal second beam as hard as a beam 30 dB down; MPR and power loss reward the ranking, and
  this target *is* the ranking. Chosen with ``task_loss`` ('focal', 'power' or 'focal+power').
* **KL distillation** (Hinton; Ma et al. eqs. 10-11, Zakeri et al. eq. 9):
  ``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``; the ``T^2`` keeps gradient magnitudes independent
  of the temperature.
* **logit MSE** (Zakeri et al. eq. 10): mean squared difference of raw logits.
* **KD-mid / KD-end / KD-both** (CRKD eq. 8-9): the KL loss of eq. 8 applied to softmax-normalised
  features of a mid layer and/or the end layer; a learned linear projection maps the student's features
  to the teacher's width when they differ.
* **RKD-mid / RKD-end / RKD-both** (CRKD eqs. 10-15, after DistilVPR): pairwise relations inside the batch
  measured in three geometries (Euclidean distance, cosine distance ``1 - cos``, and the hyperbolic
  Poincare-ball distance with curvature ``c`` after the exponential map at 0); the loss ``d(., .)``
  between teacher and student relation matrices is a smooth-L1 (Huber), as in RKD (Park et al. 2019).
  Relations are width-independent, so no projection is needed -- which is why CRKD uses them across
  modalities.

All distillation parts are combined as CRKD eq. 9 / 15 (and Ma et al. eq. 7):
``L = (1 - alpha) * L_focal + alpha * L_distill``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .methods import LOSS_METHODS, RELATION_DISTANCES

__all__ = [
    "DISTILLATION_METHODS",
    "DistillationLoss",
    "cosine_distance_matrix",
    "euclidean_distance_matrix",
    "feature_kd_loss",
    "focal_loss",
    "kl_distillation_loss",
    "logit_mse_loss",
    "poincare_distance",
    "poincare_distance_matrix",
    "poincare_exp_map0",
    "power_target_loss",
    "relational_kd_loss",
]

#: the methods a training step's loss implements, and the relational geometries (the registry: methods.py)
DISTILLATION_METHODS: tuple[str, ...] = LOSS_METHODS
TASK_LOSSES: tuple[str, ...] = ("focal", "power", "focal+power")


def _as_steps(logits: Tensor) -> Tensor:
    """View logits as ``(N, C)`` rows, one per sample and horizon step."""
    if logits.dim() < 2:
        raise ValueError(f"logits: expected (B, C) or (B, S, C), got shape {tuple(logits.shape)}")
    return logits.reshape(-1, logits.shape[-1])


def focal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float | Tensor = 1.0,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> Tensor:
    """Focal loss ``-alpha (1 - p_y)^gamma log p_y`` over ``(B, S, C)`` logits and ``(B, S)`` targets.

    ``alpha`` is a scalar or a per-class weight vector ``(C,)`` (the class-imbalance weight of Ma et al.);
    with ``alpha = 1`` and ``gamma = 0`` it is exactly the cross-entropy. ``reduction='mean'`` averages over
    samples and horizon steps (Ma et al. eq. 9 averages the per-step losses).
    """
    if gamma < 0:
        raise ValueError(f"gamma: must be >= 0, got {gamma}")
    rows = _as_steps(logits)
    y = targets.reshape(-1).long()
    if y.shape[0] != rows.shape[0]:
        raise ValueError(f"targets: shape {tuple(targets.shape)} does not match logits {tuple(logits.shape)}")
    logp = F.log_softmax(rows.float(), dim=-1).gather(1, y[:, None])[:, 0]
    p = logp.exp()
    weight = (1.0 - p).clamp_min(0.0).pow(gamma) if gamma > 0 else torch.ones_like(p)
    if isinstance(alpha, Tensor) and alpha.dim() > 0:
        a = alpha.to(rows.device, rows.dtype if rows.is_floating_point() else torch.float32)[y]
    else:
        a = float(alpha)
    loss = -a * weight * logp
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss.reshape(targets.shape)
    raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")


def power_target_loss(logits: Tensor, powers_dbm: Tensor, temperature_db: float = 1.0) -> Tensor:
    """Listwise loss on the per-beam power vector: ``CE(softmax(P / T), softmax(logits))``.

    ``logits`` ``(B, S, C)`` (or ``(N, C)``) and ``powers_dbm`` of the same shape. The target puts
    ``exp(P_b / T)`` on beam ``b``: with ``T = 1 dB`` a beam 1 dB below the best gets ~37 % of its weight
    and one 10 dB below almost none, so the model learns the ranking near the top, where MPR and power
    loss are decided. Minimised (to the target's entropy) exactly when ``softmax(logits)`` equals the
    target, i.e. when the logits rank beams as the true powers do, spaced by ``P / T``.
    Non-finite powers (a beam never measured) get zero weight.
    """
    if temperature_db <= 0:
        raise ValueError(f"temperature_db: must be > 0, got {temperature_db}")
    rows = _as_steps(logits).float()
    p = powers_dbm.reshape(-1, powers_dbm.shape[-1]).to(rows.device, torch.float32)
    if p.shape != rows.shape:
        raise ValueError(f"powers_dbm: shape {tuple(powers_dbm.shape)} does not match logits {tuple(logits.shape)}")
    p = torch.where(torch.isfinite(p), p, torch.full_like(p, -torch.inf))
    target = torch.softmax(p / temperature_db, dim=-1)
    target = torch.nan_to_num(target, nan=0.0)  # a row with no finite power contributes nothing
    return -(target * F.log_softmax(rows, dim=-1)).sum(-1).mean()


def kl_distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 2.0, detach_teacher: bool = True
) -> Tensor:
    """``T^2 * KL(p_teacher || p_student)`` at temperature T, summed over classes, averaged over rows.

    Rows are samples (and horizon steps, Ma et al. eq. 11 averages over steps). By default the teacher
    side is detached: distillation never trains the teacher. ``detach_teacher=False`` keeps its gradient,
    for the adversarial data-free generator, whose inputs reach the student *and* the teacher
    (:func:`~.data_free.disagreement`).
    """
    if temperature <= 0:
        raise ValueError(f"temperature: must be > 0, got {temperature}")
    s = _as_steps(student_logits).float()
    t = _as_steps(teacher_logits)
    t = (t.detach() if detach_teacher else t).float()
    if s.shape != t.shape:
        raise ValueError(f"student/teacher logits shapes differ: {tuple(s.shape)} vs {tuple(t.shape)}")
    log_q = F.log_softmax(s / temperature, dim=-1)
    log_p = F.log_softmax(t / temperature, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
    return kl.mean() * temperature**2


def logit_mse_loss(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Zakeri et al. eq. 10: mean over rows and classes of ``(z_s - z_t)^2``."""
    if student_logits.shape != teacher_logits.shape:
        shapes = f"{tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}"
        raise ValueError(f"student/teacher logits shapes differ: {shapes}")
    return F.mse_loss(student_logits.float(), teacher_logits.detach().float())


def _flat(features: Tensor, name: str) -> Tensor:
    if features.dim() < 2:
        raise ValueError(f"{name}: expected (B, ...) features, got shape {tuple(features.shape)}")
    f = features.reshape(features.shape[0], -1)
    return f if f.is_floating_point() else f.float()


def feature_kd_loss(
    student_features: Tensor, teacher_features: Tensor, temperature: float = 2.0, mode: str = "kl"
) -> Tensor:
    """CRKD eq. 8 on features: ``T^2 KL(softmax(f_t / T) || softmax(f_s / T))`` over the feature axis.

    ``mode='mse'`` gives the FitNets-style alternative (plain MSE of the features). Widths must already
    match (see :class:`DistillationLoss` for the learned projection).
    """
    s = _flat(student_features, "student features")
    t = _flat(teacher_features, "teacher features").detach()
    if s.shape != t.shape:
        raise ValueError(f"feature widths differ ({s.shape[1]} vs {t.shape[1]}): project the student first")
    if mode == "kl":
        return kl_distillation_loss(s, t, temperature)
    if mode == "mse":
        return F.mse_loss(s, t)
    raise ValueError(f"mode: expected 'kl' or 'mse', got {mode!r}")


# --------------------------------------------------------------------------------------------------
# Pairwise relations (CRKD eqs. 10-13)
# --------------------------------------------------------------------------------------------------
_EPS = 1e-7


def euclidean_distance_matrix(x: Tensor) -> Tensor:
    """``(B, B)`` Euclidean distances between the rows of ``x`` (CRKD eq. 10), zero on the diagonal."""
    x = _flat(x, "features")
    sq = (x * x).sum(-1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)
    eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    # sqrt has an infinite gradient at 0: keep the diagonal (always 0) out of it.
    return torch.where(eye, torch.zeros_like(d2), d2.clamp_min(_EPS).sqrt())


def cosine_distance_matrix(x: Tensor) -> Tensor:
    """``(B, B)`` cosine distances ``1 - <x_i, x_j> / (|x_i| |x_j|)`` (CRKD eq. 11 as a distance)."""
    x = F.normalize(_flat(x, "features"), dim=-1, eps=_EPS)
    return 1.0 - x @ x.T


def poincare_exp_map0(x: Tensor, c: float = 1.0) -> Tensor:
    """Exponential map at the origin onto the Poincare ball of curvature ``-c`` (CRKD eq. 12).

    ``exp_0^c(t) = tanh(sqrt(c) |t|) t / (sqrt(c) |t|)``. The result is clipped just inside the ball
    radius ``1/sqrt(c)`` so that float32 rounding never puts a point on the boundary (infinite distance).
    """
    if c <= 0:
        raise ValueError(f"c (curvature): must be > 0, got {c}")
    sc = math.sqrt(c)
    norm = x.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    y = torch.tanh(sc * norm) * x / (sc * norm)
    max_norm = (1.0 - 1e-5) / sc
    ynorm = y.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    return torch.where(ynorm > max_norm, y / ynorm * max_norm, y)


def poincare_distance(x: Tensor, y: Tensor, c: float = 1.0) -> Tensor:
    """Poincare-ball distance ``2/sqrt(c) artanh(sqrt(c) |(-x) (+)_c y|)`` of points already in the ball."""
    sc = math.sqrt(c)
    xy = (x * y).sum(-1)
    x2 = (x * x).sum(-1)
    y2 = (y * y).sum(-1)
    return _poincare_from_inner(xy, x2, y2, c, sc)


def _poincare_from_inner(xy: Tensor, x2: Tensor, y2: Tensor, c: float, sc: float) -> Tensor:
    """Distance from inner products only, so the pairwise version needs one Gram matrix.

    Moebius addition ``(-x) (+)_c y = (a (-x) + b y) / den`` with ``a = 1 - 2c<x,y> + c|y|^2``,
    ``b = 1 - c|x|^2``, ``den = 1 - 2c<x,y> + c^2 |x|^2 |y|^2``.
    """
    a = 1.0 - 2.0 * c * xy + c * y2
    b = 1.0 - c * x2
    den = (1.0 - 2.0 * c * xy + c * c * x2 * y2).clamp_min(_EPS)
    num2 = (a * a * x2 - 2.0 * a * b * xy + b * b * y2).clamp_min(0.0)
    arg = (sc * num2.clamp_min(_EPS * _EPS).sqrt() / den).clamp(max=1.0 - 1e-6)
    return 2.0 / sc * torch.atanh(arg)


def poincare_distance_matrix(x: Tensor, c: float = 1.0) -> Tensor:
    """``(B, B)`` hyperbolic distances after mapping rows of ``x`` to the ball (CRKD eqs. 12-13)."""
    h = poincare_exp_map0(_flat(x, "features"), c)
    sq = (h * h).sum(-1)
    gram = h @ h.T
    d = _poincare_from_inner(gram, sq[:, None], sq[None, :], c, math.sqrt(c))
    eye = torch.eye(h.shape[0], dtype=torch.bool, device=h.device)
    return torch.where(eye, torch.zeros_like(d), d)


def _relation(x: Tensor, kind: str, c: float, normalize: bool) -> Tensor:
    if kind == "euclidean":
        d = euclidean_distance_matrix(x)
    elif kind == "cosine":
        return cosine_distance_matrix(x)
    elif kind == "poincare":
        d = poincare_distance_matrix(x, c)
    else:
        raise ValueError(f"distance: expected one of {RELATION_DISTANCES}, got {kind!r}")
    if normalize:
        # RKD normalises by the mean off-diagonal distance so teacher and student scales need not match.
        n = d.shape[0]
        mean = d.sum() / max(n * (n - 1), 1)
        d = d / mean.clamp_min(_EPS)
    return d


def relational_kd_loss(
    student_features: Tensor,
    teacher_features: Tensor,
    distances: Sequence[str] = RELATION_DISTANCES,
    curvature: float = 1.0,
    normalize: bool = True,
) -> Tensor:
    """CRKD eq. 14: ``sum_geometries d(r(t_i, t_j), r(s_i, s_j))`` over all pairs of the batch.

    ``d`` is the smooth-L1 loss averaged over the ``B x B`` pairs; feature widths may differ.
    """
    s = _flat(student_features, "student features")
    t = _flat(teacher_features, "teacher features").detach()
    if s.shape[0] != t.shape[0]:
        raise ValueError(f"student/teacher batch sizes differ: {s.shape[0]} vs {t.shape[0]}")
    if s.shape[0] < 2:
        raise ValueError("relational KD needs a batch of at least 2 samples")
    total = s.new_zeros(())
    for kind in distances:
        with torch.no_grad():
            rt = _relation(t, kind, curvature, normalize)
        rs = _relation(s, kind, curvature, normalize)
        total = total + F.smooth_l1_loss(rs, rt)
    return total


# --------------------------------------------------------------------------------------------------
# The combined loss a trainer uses
# --------------------------------------------------------------------------------------------------
class DistillationLoss(nn.Module):
    """``(1 - alpha) * focal + alpha * distill`` for a distillation method chosen by name.

    Parameters
    ----------
    method: one of :data:`DISTILLATION_METHODS`.
    alpha: weight of the distillation term (CRKD uses 0.5); ignored for 'none'.
    temperature: T of the KL losses (CRKD: 2, Zakeri et al.: 5).
    focal_alpha, focal_gamma: focal-loss parameters (CRKD gamma = 2).
    student_dims, teacher_dims: widths of ``mid`` and ``end`` features, e.g. ``{'mid': 64, 'end': 128}``;
        needed by 'kd-*' to build the learned projections (student -> teacher width). The projections are
        parameters of this module: give ``loss.parameters()`` to the optimizer along with the student's.
    feature_mode: 'kl' (CRKD eq. 8) or 'mse' for KD-mid/-end.
    end_source: 'features' (the end features before the heads) or 'logits' (CRKD's reading of "end layer"
        as the output logits) for KD-end / RKD-end.
    rkd_distances, curvature, rkd_normalize: relational KD settings.
    task_loss: the supervised term: 'focal' (the papers), 'power' (:func:`power_target_loss` on the
        label's per-beam powers) or 'focal+power' (their sum); 'power' needs ``powers`` in ``forward``.
    power_temperature: T (dB) of the power soft targets.
    """

    def __init__(
        self,
        method: str = "none",
        alpha: float = 0.5,
        temperature: float = 2.0,
        focal_alpha: float = 1.0,
        focal_gamma: float = 2.0,
        student_dims: Mapping[str, int] | None = None,
        teacher_dims: Mapping[str, int] | None = None,
        feature_mode: str = "kl",
        end_source: str = "features",
        rkd_distances: Sequence[str] = RELATION_DISTANCES,
        curvature: float = 1.0,
        rkd_normalize: bool = True,
        task_loss: str = "focal",
        power_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if task_loss not in TASK_LOSSES:
            raise ValueError(f"task_loss: expected one of {TASK_LOSSES}, got {task_loss!r}")
        if power_temperature <= 0:
            raise ValueError(f"power_temperature: must be > 0, got {power_temperature}")
        self.task_loss = task_loss
        self.power_temperature = float(power_temperature)
        if method not in DISTILLATION_METHODS:
            raise ValueError(
                f"method: unknown distillation method {method!r}; choose from {DISTILLATION_METHODS}"
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha: must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ValueError(f"temperature: must be > 0, got {temperature}")
        if end_source not in ("features", "logits"):
            raise ValueError(f"end_source: expected 'features' or 'logits', got {end_source!r}")
        if feature_mode not in ("kl", "mse"):
            raise ValueError(f"feature_mode: expected 'kl' or 'mse', got {feature_mode!r}")
        for d in rkd_distances:
            if d not in RELATION_DISTANCES:
                raise ValueError(f"rkd_distances: unknown distance {d!r}; choose from {RELATION_DISTANCES}")
        if curvature <= 0:
            raise ValueError(f"curvature: must be > 0, got {curvature}")
        self.method = method
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.focal_alpha = focal_alpha
        self.focal_gamma = float(focal_gamma)
        self.feature_mode = feature_mode
        self.end_source = end_source
        self.rkd_distances = tuple(rkd_distances)
        self.curvature = float(curvature)
        self.rkd_normalize = rkd_normalize
        self.levels: tuple[str, ...] = ()
        if method.endswith("-both"):
            self.levels = ("mid", "end")
        elif method.endswith("-mid"):
            self.levels = ("mid",)
        elif method.endswith("-end"):
            self.levels = ("end",)
        self.projections = nn.ModuleDict()
        if method.startswith("kd-"):
            for level in self.levels:
                if level == "end" and end_source == "logits":
                    continue
                if level not in (student_dims or {}) or level not in (teacher_dims or {}):
                    raise ValueError(
                        f"student_dims/teacher_dims: method {method!r} needs the '{level}' feature widths"
                    )
                ds, dt = int(student_dims[level]), int(teacher_dims[level])
                self.projections[level] = nn.Identity() if ds == dt else nn.Linear(ds, dt)

    def _level(self, out: Mapping[str, Tensor], level: str) -> Tensor:
        key = "logits" if (level == "end" and self.end_source == "logits") else level
        if key not in out:
            raise ValueError(f"model output lacks '{key}' needed by {self.method!r}")
        return out[key]

    def forward(
        self,
        student_out: Mapping[str, Tensor],
        targets: Tensor | None,
        teacher_out: Mapping[str, Tensor] | None = None,
        powers: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """Return ``(total_loss, parts)``; ``targets`` may be None for label-free (data-free) training.

        ``powers`` ``(B, H + 1, C)`` dBm: the label powers, needed by ``task_loss`` 'power' / 'focal+power'.
        """
        logits = student_out["logits"]
        parts: dict[str, float] = {}
        total = logits.new_zeros((), dtype=torch.float32)
        task_w = 1.0 if self.method == "none" else 1.0 - self.alpha
        if targets is not None and task_w > 0:
            if self.task_loss in ("focal", "focal+power"):
                fl = focal_loss(logits, targets, self.focal_alpha, self.focal_gamma)
                parts["focal"] = float(fl.detach())
                total = total + task_w * fl
            if self.task_loss in ("power", "focal+power"):
                if powers is None:
                    raise ValueError(f"task_loss {self.task_loss!r}: needs the label powers (powers=...)")
                pl = power_target_loss(logits, powers, self.power_temperature)
                parts["power"] = float(pl.detach())
                total = total + task_w * pl
        if self.method == "none":
            parts["total"] = float(total.detach())
            return total, parts
        if teacher_out is None:
            raise ValueError(f"teacher_out: method {self.method!r} needs the teacher's outputs")
        if self.method == "kl":
            dl = kl_distillation_loss(logits, teacher_out["logits"], self.temperature)
        elif self.method == "logit-mse":
            dl = logit_mse_loss(logits, teacher_out["logits"])
        elif self.method.startswith("kd-"):
            dl = logits.new_zeros((), dtype=torch.float32)
            for level in self.levels:
                s = _flat(self._level(student_out, level), level)
                t = _flat(self._level(teacher_out, level), level)
                if level in self.projections:
                    s = self.projections[level](s)
                dl = dl + feature_kd_loss(s, t, self.temperature, self.feature_mode)
        else:  # rkd-*
            dl = logits.new_zeros((), dtype=torch.float32)
            for level in self.levels:
                dl = dl + relational_kd_loss(
                    self._level(student_out, level), self._level(teacher_out, level),
                    self.rkd_distances, self.curvature, self.rkd_normalize,
                )
        parts[self.method] = float(dl.detach())
        # Without labels (data-free) the distillation term is the whole objective.
        w = self.alpha if targets is not None else 1.0
        total = total + w * dl
        parts["total"] = float(total.detach())
        return total, parts

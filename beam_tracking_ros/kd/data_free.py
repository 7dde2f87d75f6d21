"""Data-free knowledge distillation (DF-KD) of Zakeri et al. (2025), Algorithm 1.

Why: the base station may not keep (or be allowed to keep) the training data, yet a smaller student is
wanted. Only the pretrained teacher and its stored **metadata** (feature statistics saved with the model)
are used:

1. *Knowledge inversion*: a generator ``G`` maps Gaussian noise to synthetic inputs of the teacher's
   modality (e.g. the LiDAR feature sequence of Jiang et al., or a BEV grid). It is trained with
   ``L^G = L_meta + alpha * L_act + beta * L_ent`` (eq. 8; the paper uses alpha = 1e-4, beta = 1e-2):

   * **metadata loss** (eq. 5): ``MSE(mu, mu_hat) + MSE(sigma^2, sigma_hat^2)`` between the stored mean and
     variance of the teacher's features (Zakeri et al.: the hidden state of the teacher's last layer,
     here the model's ``end`` features; optionally also ``mid``) and those induced by the synthetic batch.
     ``source='batchnorm'`` instead matches, per BatchNorm layer, the batch statistics of the layer's input
     to the layer's running mean/var (the DeepInversion reading of "per-layer statistics"), for teachers
     that have BatchNorm layers.
   * **input metadata** (an extension, off unless ``input_weight``/``step_weight`` > 0): eq. 5 applied to the
     teacher's *inputs*, i.e. the first layer's features: per observed step and feature bin, the mean and
     variance over samples of the input sequences, and per bin those of the frame-to-frame differences,
     stored with the teacher like the rest of the metadata. Each statistic is standardised by its stored
     variance before the MSE (:func:`input_metadata_loss`). Why: the teacher's ``end`` statistics (and a
     BatchNorm's, pooled over samples *and* steps) are met by a collapsed generator that puts the
     variance into frame-to-frame jitter and makes nearly identical samples. Measured on the 2-lane
     kd_table LiDAR teacher: variance across samples 0.015 (real 0.040), within a sample over time
     0.063 (real 0.014); per-step statistics take away that escape (0.038 across samples with them).
     Unstandardised, a variance of 0.04 gives squared errors of ~1e-3: at weight 10 the across-sample
     variance stayed at 0.015.
   * **activation loss** (eq. 6): ``-(1/B) sum_i ||f_T(G(x_i))||_2``, rewarding strong teacher activations.
   * **entropy loss** (eq. 7): the Shannon entropy of the teacher's softmax prediction, averaged over the
     batch and horizon steps (low = confident predictions). ``entropy_mode='balance'`` gives the
     information-entropy variant of DAFL instead (negative entropy of the batch-mean prediction, which
     rewards balanced classes across the batch).

2. The student is trained on generated inputs only, with the KL loss (eq. 9, temperature T) or the
   logit MSE (eq. 10). No real input and no label is touched. Optionally (``generator_every > 0``, an
   extension) the generator keeps learning during this stage, adversarially: see
   :func:`train_student_data_free`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .losses import kl_distillation_loss, logit_mse_loss

__all__ = [
    "Generator",
    "InversionLoss",
    "TeacherMetadata",
    "activation_loss",
    "adversarial_generator_step",
    "collect_teacher_metadata",
    "disagreement",
    "entropy_loss",
    "generator_loss",
    "information_entropy_loss",
    "input_metadata_loss",
    "metadata_loss",
    "train_generator",
    "train_student_data_free",
]


class Generator(nn.Module):
    """Zakeri et al.'s generator: two fully connected layers, ReLU then tanh, noise -> one modality.

    ``out_shape`` is the per-sample input shape of the teacher's modality, e.g. ``(P, D)`` for the LiDAR
    feature sequence or ``(P, C, H, W)`` for BEV grids. ``output_range`` maps tanh's (-1, 1) affinely to
    the range real preprocessed data occupies (e.g. (0, 1) for occupancy grids). ``pad_future`` appends
    that many zero frames along the first (time) axis, as the paper does for teachers that read the
    observation window followed by V empty future slots.
    """

    def __init__(
        self,
        modality: str,
        out_shape: Sequence[int],
        noise_dim: int = 500,
        hidden: int = 64,
        output_range: tuple[float, float] = (-1.0, 1.0),
        pad_future: int = 0,
    ) -> None:
        super().__init__()
        if noise_dim < 1 or hidden < 1:
            raise ValueError(f"noise_dim/hidden: must be >= 1, got {noise_dim}/{hidden}")
        if not out_shape or any(int(s) < 1 for s in out_shape):
            raise ValueError(f"out_shape: must be a non-empty shape of positive sizes, got {out_shape}")
        lo, hi = output_range
        if not hi > lo:
            raise ValueError(f"output_range: need lo < hi, got {output_range}")
        self.modality = modality
        self.out_shape = tuple(int(s) for s in out_shape)
        self.noise_dim = int(noise_dim)
        self.pad_future = int(pad_future)
        self.register_buffer("_lo", torch.tensor(float(lo)))
        self.register_buffer("_hi", torch.tensor(float(hi)))
        self.net = nn.Sequential(
            nn.Linear(noise_dim, hidden), nn.ReLU(), nn.Linear(hidden, math.prod(self.out_shape)), nn.Tanh()
        )

    def sample_noise(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """Standard-normal latent ``(B, noise_dim)`` (Algorithm 1, line 3), on the generator's device.

        The draw happens on the random ``generator``'s own device and is moved after, so a seeded CPU
        ``torch.Generator`` gives the same latents whether the model sits on the CPU or a GPU.
        """
        device = self._lo.device
        draw_on = generator.device if generator is not None else device
        return torch.randn(batch_size, self.noise_dim, generator=generator, device=draw_on).to(device)

    def forward(self, noise: Tensor) -> dict[str, Tensor]:
        """Return ``{modality: (B, *out_shape)}``, ready for the teacher's forward."""
        x = self.net(noise).reshape(noise.shape[0], *self.out_shape)
        x = self._lo + (x + 1.0) * 0.5 * (self._hi - self._lo)
        if self.pad_future:
            pad = x.new_zeros((x.shape[0], self.pad_future, *self.out_shape[1:]))
            x = torch.cat([x, pad], dim=1)
        return {self.modality: x}


@dataclass
class TeacherMetadata:
    """The statistics stored with the teacher (Zakeri et al. "metadata"): per feature name, mean and var.

    Tensors only, so it saves with ``torch.save(meta.state_dict())`` and loads with
    ``torch.load(..., weights_only=True)``.
    """

    mean: dict[str, Tensor] = field(default_factory=dict)
    var: dict[str, Tensor] = field(default_factory=dict)
    #: per input modality ``(P, D)``: mean/var over samples of each observed step and bin
    input_mean: dict[str, Tensor] = field(default_factory=dict)
    input_var: dict[str, Tensor] = field(default_factory=dict)
    #: per input modality ``(D,)``: mean/var of the frame-to-frame differences ``x[t+1] - x[t]``
    step_mean: dict[str, Tensor] = field(default_factory=dict)
    step_var: dict[str, Tensor] = field(default_factory=dict)

    _KINDS = ("mean", "var", "input_mean", "input_var", "step_mean", "step_var")

    def state_dict(self) -> dict[str, Tensor]:
        return {f"{kind}.{k}": v for kind in self._KINDS for k, v in getattr(self, kind).items()}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Tensor]) -> TeacherMetadata:
        meta = cls()
        for key, value in state.items():
            kind, _, name = key.partition(".")
            if kind not in cls._KINDS or not name:
                raise ValueError(f"metadata state: unexpected key {key!r}")
            getattr(meta, kind)[name] = value
        for a, b in (("mean", "var"), ("input_mean", "input_var"), ("step_mean", "step_var")):
            missing = set(getattr(meta, a)) ^ set(getattr(meta, b))
            if missing:
                raise ValueError(f"metadata state: {a}/{b} missing for {sorted(missing)}")
        return meta

    def has_inputs(self, modality: str) -> bool:
        """Whether the input statistics of ``modality`` were stored (teachers trained before they were
        collected have only the feature statistics)."""
        return modality in self.input_mean and modality in self.step_mean


def _feature_rows(x: Tensor) -> Tensor:
    """Features as rows ``(N, D)``: time axes (if any) are treated as extra samples."""
    return x.reshape(-1, x.shape[-1]) if x.dim() > 2 else x


class _Moments:
    """Running first and second moments of rows (float64), for mean and population variance."""

    def __init__(self) -> None:
        self.s: Tensor | int = 0
        self.sq: Tensor | int = 0
        self.n = 0

    def add(self, rows: Tensor) -> None:
        rows = rows.double()
        self.s = self.s + rows.sum(0)
        self.sq = self.sq + (rows * rows).sum(0)
        self.n += rows.shape[0]

    def result(self) -> tuple[Tensor, Tensor]:
        mu = self.s / self.n
        return mu.float(), (self.sq / self.n - mu * mu).clamp_min(0).float()  # type: ignore[operator]


@torch.no_grad()
def collect_teacher_metadata(
    teacher: nn.Module, batches: Iterable[Mapping[str, Tensor]], features: Sequence[str] = ("end",),
    inputs: Sequence[str] = (),
) -> TeacherMetadata:
    """Mean and variance of the teacher's ``features`` over real data (done once, when training ends).

    ``inputs``: modalities whose input statistics are stored too (see :func:`input_metadata_loss`); only
    sequences of feature vectors ``(B, P, D)`` with ``P >= 2`` qualify, so images are never summarised
    pixel by pixel.
    """
    was_training = teacher.training
    teacher.eval()
    sums: dict[str, Tensor] = {}
    sq: dict[str, Tensor] = {}
    count: dict[str, int] = {}
    per_step: dict[str, _Moments] = {m: _Moments() for m in inputs}
    steps: dict[str, _Moments] = {m: _Moments() for m in inputs}
    shapes: dict[str, tuple[int, ...]] = {}
    for batch in batches:
        for m in inputs:
            x = batch[m]
            if x.dim() != 3 or x.shape[1] < 2:
                raise ValueError(f"inputs: {m!r} must be a (B, P >= 2, D) sequence, got {tuple(x.shape)}")
            shapes[m] = tuple(x.shape[1:])
            per_step[m].add(x.reshape(x.shape[0], -1))
            steps[m].add((x[:, 1:] - x[:, :-1]).reshape(-1, x.shape[-1]))
        out = teacher(batch)
        for name in features:
            if name not in out:
                raise ValueError(f"features: the teacher's output has no {name!r}")
            rows = _feature_rows(out[name]).double()
            sums[name] = sums.get(name, 0) + rows.sum(0)
            sq[name] = sq.get(name, 0) + (rows * rows).sum(0)
            count[name] = count.get(name, 0) + rows.shape[0]
    teacher.train(was_training)
    if not count:
        raise ValueError("batches: no data to collect metadata from")
    meta = TeacherMetadata()
    for name in features:
        mu = sums[name] / count[name]
        meta.mean[name] = mu.float()
        meta.var[name] = (sq[name] / count[name] - mu * mu).clamp_min(0).float()
    for m in inputs:
        mu, var = per_step[m].result()
        meta.input_mean[m], meta.input_var[m] = mu.reshape(shapes[m]), var.reshape(shapes[m])
        meta.step_mean[m], meta.step_var[m] = steps[m].result()
    return meta


def metadata_loss(mean: Tensor, var: Tensor, features: Tensor) -> Tensor:
    """Zakeri et al. eq. 5: ``MSE(mu, mu_hat) + MSE(sigma^2, sigma_hat^2)`` of a synthetic batch."""
    rows = _feature_rows(features)
    mu_hat = rows.mean(0)
    var_hat = rows.var(0, unbiased=False)
    return torch.mean((mean - mu_hat) ** 2) + torch.mean((var - var_hat) ** 2)


def _standardised_stats_loss(mean: Tensor, var: Tensor, mu_hat: Tensor, var_hat: Tensor, eps: float) -> Tensor:
    v = var + eps
    return torch.mean((mu_hat - mean) ** 2 / v) + torch.mean((var_hat / v - 1.0) ** 2)


def input_metadata_loss(meta: TeacherMetadata, modality: str, x: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Eq. 5 on the synthetic inputs ``x`` ``(B, P, D)``, each statistic standardised by its stored variance.

    Returns ``(per-step term, frame-difference term)``: ``mean(((mu_hat - mu)^2 / var)) +
    mean((var_hat / var - 1)^2)`` over the ``(P, D)`` per-step statistics (over samples) and over the
    ``(D,)`` statistics of ``x[:, t+1] - x[:, t]``. Why per step: the variance must come from differences
    between samples, not from jitter along time. Why standardised: input variances are ~1e-2, so plain
    squared errors would be negligible beside the feature term.
    """
    if not meta.has_inputs(modality):
        raise ValueError(f"metadata: no stored input statistics for {modality!r}")
    mu, var = meta.input_mean[modality].to(x.device), meta.input_var[modality].to(x.device)
    if tuple(x.shape[1:]) != tuple(mu.shape):
        raise ValueError(f"input {modality!r}: shape {tuple(x.shape[1:])}, metadata {tuple(mu.shape)}")
    per_step = _standardised_stats_loss(mu, var, x.mean(0), x.var(0, unbiased=False), eps)
    d = (x[:, 1:] - x[:, :-1]).reshape(-1, x.shape[-1])
    smu, svar = meta.step_mean[modality].to(x.device), meta.step_var[modality].to(x.device)
    step = _standardised_stats_loss(smu, svar, d.mean(0), d.var(0, unbiased=False), eps)
    return per_step, step


def activation_loss(features: Tensor) -> Tensor:
    """Zakeri et al. eq. 6: ``-(1/B) sum_i ||f_i||_2`` (minimising it strengthens activations)."""
    return -features.reshape(features.shape[0], -1).norm(dim=-1).mean()


def entropy_loss(logits: Tensor) -> Tensor:
    """Zakeri et al. eq. 7: mean Shannon entropy ``-sum_i p_i log p_i`` of each prediction (and step)."""
    logp = torch.log_softmax(logits.reshape(-1, logits.shape[-1]), dim=-1)
    return -(logp.exp() * logp).sum(-1).mean()


def information_entropy_loss(logits: Tensor) -> Tensor:
    """DAFL's information-entropy loss: ``-H(mean_batch p)``, lowest when classes are used evenly."""
    p = torch.softmax(logits.reshape(-1, logits.shape[-1]), dim=-1).mean(0)
    return (p * torch.log(p.clamp_min(1e-12))).sum()


class _BatchNormTaps:
    """Forward hooks recording the input batch statistics of every BatchNorm layer of the teacher."""

    def __init__(self, teacher: nn.Module) -> None:
        self.layers = [m for m in teacher.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.losses: list[Tensor] = []
        self.handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def _hook(self, module: nn.Module, inputs: tuple[Tensor, ...], _out: Tensor) -> None:
        x = inputs[0]
        dims = [0, *range(2, x.dim())]
        mu = x.mean(dims)
        var = x.var(dims, unbiased=False)
        loss = torch.mean((module.running_mean - mu) ** 2) + torch.mean((module.running_var - var) ** 2)
        self.losses.append(loss)

    def pop(self) -> Tensor | None:
        if not self.losses:
            return None
        total = torch.stack(self.losses).sum()
        self.losses = []
        return total

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def generator_loss(
    teacher_out: Mapping[str, Tensor],
    metadata: TeacherMetadata | None,
    alpha: float = 1e-4,
    beta: float = 1e-2,
    activation_feature: str = "end",
    entropy_mode: str = "sample",
    batchnorm_term: Tensor | None = None,
    inputs: Mapping[str, Tensor] | None = None,
    input_weight: float = 0.0,
    step_weight: float = 0.0,
    input_metadata: TeacherMetadata | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Eq. 8: ``L_meta + alpha L_act + beta L_ent`` on the teacher's outputs for a synthetic batch.

    With ``input_weight``/``step_weight`` > 0, ``inputs`` (the synthetic batch, observed steps only) add
    ``input_weight * L_in + step_weight * L_step`` of :func:`input_metadata_loss` to the metadata term,
    with the input statistics of ``input_metadata`` (default: ``metadata``; separate so that
    ``source='batchnorm'`` can use the inputs without the feature statistics).
    """
    parts: dict[str, float] = {}
    logits = teacher_out["logits"]
    meta = logits.new_zeros(())
    if metadata is not None:
        for name, mu in metadata.mean.items():
            if name not in teacher_out:
                raise ValueError(f"metadata: the teacher's output has no {name!r}")
            var = metadata.var[name].to(logits.device)
            meta = meta + metadata_loss(mu.to(logits.device), var, teacher_out[name])
    if batchnorm_term is not None:
        meta = meta + batchnorm_term
    if input_weight > 0 or step_weight > 0:
        in_meta = input_metadata if input_metadata is not None else metadata
        if in_meta is None or inputs is None:
            raise ValueError("input_weight/step_weight: need the metadata and the synthetic inputs")
        l_in = l_step = logits.new_zeros(())
        for m, x in inputs.items():
            a, b = input_metadata_loss(in_meta, m, x)
            l_in, l_step = l_in + a, l_step + b
        meta = meta + input_weight * l_in + step_weight * l_step
        parts.update(inputs=float(l_in.detach()), steps=float(l_step.detach()))
    act = activation_loss(teacher_out[activation_feature])
    if entropy_mode == "sample":
        ent = entropy_loss(logits)
    elif entropy_mode == "balance":
        ent = information_entropy_loss(logits)
    else:
        raise ValueError(f"entropy_mode: expected 'sample' or 'balance', got {entropy_mode!r}")
    total = meta + alpha * act + beta * ent
    parts.update(metadata=float(meta.detach()), activation=float(act.detach()), entropy=float(ent.detach()),
                 total=float(total.detach()))
    return total, parts


@dataclass(frozen=True)
class InversionLoss:
    """The knowledge-inversion objective of one run: eq. 8 plus the optional input metadata terms.

    One object serves both places the generator learns -- :func:`train_generator` (Algorithm 1 step 1)
    and the adversarial steps of :func:`train_student_data_free` -- so the two can never drift apart in
    their terms or weights. ``source``: 'features' (stored feature statistics), 'batchnorm' (BatchNorm
    running statistics, passed per call as ``batchnorm_term``) or 'both'.
    """

    metadata: TeacherMetadata | None
    modality: str
    observed_steps: int
    alpha: float = 1e-4
    beta: float = 1e-2
    source: str = "features"
    entropy_mode: str = "sample"
    input_weight: float = 0.0
    step_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.source not in ("features", "batchnorm", "both"):
            raise ValueError(f"source: expected 'features', 'batchnorm' or 'both', got {self.source!r}")
        if self.source in ("features", "both") and self.metadata is None:
            raise ValueError("metadata: source='features' needs the teacher's stored feature statistics")
        if self.input_weight < 0 or self.step_weight < 0:
            raise ValueError(f"input_weight/step_weight: must be >= 0, got {self.input_weight}/{self.step_weight}")
        if self.uses_inputs and (self.metadata is None or not self.metadata.has_inputs(self.modality)):
            raise ValueError(f"input_weight/step_weight: the metadata has no input statistics of "
                             f"{self.modality!r} (a teacher trained before they were stored?)")

    @property
    def uses_inputs(self) -> bool:
        return self.input_weight > 0 or self.step_weight > 0

    def parts(
        self, x: Mapping[str, Tensor], teacher_out: Mapping[str, Tensor], batchnorm_term: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """The loss on one synthetic batch ``x`` and the teacher's outputs on it, with its logged parts."""
        observed = {self.modality: x[self.modality][:, : self.observed_steps]} if self.uses_inputs else None
        return generator_loss(
            teacher_out, self.metadata if self.source != "batchnorm" else None, self.alpha, self.beta,
            entropy_mode=self.entropy_mode, batchnorm_term=batchnorm_term, inputs=observed,
            input_weight=self.input_weight, step_weight=self.step_weight, input_metadata=self.metadata,
        )

    def __call__(self, x: Mapping[str, Tensor], teacher_out: Mapping[str, Tensor]) -> Tensor:
        """The loss alone: the ``generator_objective`` of :func:`train_student_data_free`."""
        return self.parts(x, teacher_out)[0]


def _freeze(model: nn.Module) -> list[bool]:
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    return flags


def _unfreeze(model: nn.Module, flags: list[bool]) -> None:
    for p, f in zip(model.parameters(), flags, strict=True):
        p.requires_grad_(f)


def train_generator(
    generator: Generator,
    teacher: nn.Module,
    metadata: TeacherMetadata | None,
    steps: int = 500,
    batch_size: int = 32,
    lr: float = 1e-3,
    alpha: float = 1e-4,
    beta: float = 1e-2,
    source: str = "features",
    entropy_mode: str = "sample",
    seed: int | None = 0,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    input_weight: float = 0.0,
    step_weight: float = 0.0,
    objective: InversionLoss | None = None,
) -> list[dict[str, float]]:
    """Algorithm 1 step (1): knowledge inversion. Returns the per-step loss parts.

    ``source``: 'features' (stored feature statistics, Zakeri et al.), 'batchnorm' (BatchNorm running
    statistics) or 'both'. The teacher is frozen and kept in eval mode (BatchNorm uses its running stats,
    dropout is off), so only the generator learns. ``input_weight``/``step_weight``: weights of the input
    metadata terms (:func:`input_metadata_loss`; the metadata must hold the generator modality's input
    statistics). ``objective``: a ready :class:`InversionLoss`, used instead of one built from
    ``metadata``, ``alpha``, ``beta``, ``source``, ``entropy_mode``, ``input_weight`` and ``step_weight``
    (those are then not read), so that a caller can hand the very same objective to the adversarial
    steps of :func:`train_student_data_free`.
    """
    if steps < 1 or batch_size < 2:
        raise ValueError(f"steps/batch_size: need steps >= 1 and batch_size >= 2, got {steps}/{batch_size}")
    if objective is None:
        objective = InversionLoss(metadata, generator.modality, generator.out_shape[0], alpha=alpha, beta=beta,
                                  source=source, entropy_mode=entropy_mode, input_weight=input_weight,
                                  step_weight=step_weight)
    elif objective.modality != generator.modality:
        raise ValueError(f"objective: built for {objective.modality!r}, the generator makes {generator.modality!r}")
    source = objective.source
    rng = torch.Generator(device="cpu")
    if seed is not None:
        rng.manual_seed(seed)
    was_training = teacher.training
    teacher.eval()
    flags = _freeze(teacher)
    taps = _BatchNormTaps(teacher) if source in ("batchnorm", "both") else None
    if taps is not None and not taps.layers:
        taps.remove()
        _unfreeze(teacher, flags)
        raise ValueError("source='batchnorm': the teacher has no BatchNorm layers")
    opt = torch.optim.Adam(generator.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    generator.train()
    try:
        for step in range(steps):
            z = generator.sample_noise(batch_size, rng)
            x = generator(z)
            out = teacher(x)
            loss, parts = objective.parts(x, out, taps.pop() if taps is not None else None)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"generator loss is not finite at step {step}: {parts}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(parts)
            if callback is not None:
                callback(step, parts)
    finally:
        if taps is not None:
            taps.remove()
        _unfreeze(teacher, flags)
        teacher.train(was_training)
    return history


def train_student_data_free(
    student: nn.Module,
    teacher: nn.Module,
    generator: Generator,
    steps: int = 500,
    batch_size: int = 32,
    lr: float = 1e-3,
    loss: str = "mse",
    temperature: float = 5.0,
    seed: int | None = 0,
    callback: Callable[[int, float], None] | None = None,
    generator_every: int = 0,
    adversarial_weight: float = 0.0,
    generator_objective: Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], Tensor] | None = None,
) -> list[float]:
    """Algorithm 1 step (2): train the student on generated inputs only, with 'kl' (eq. 9) or 'mse' (eq. 10).

    The teacher is frozen. Returns the per-step loss values. With ``generator_every = 0`` (the paper) the
    generator is frozen too. With ``generator_every = n > 0`` the generator takes one step every ``n``
    student steps on ``generator_objective(x, teacher_out) - adversarial_weight * KL_T(teacher || student)``
    (:func:`adversarial_generator_step`): it keeps matching the teacher's metadata while it seeks the
    inputs where the student disagrees with the teacher (the adversarial DF-KD of Micaelli & Storkey 2019
    and Fang et al. 2019, an extension of Zakeri et al.). Why: a generator frozen after inversion keeps
    showing the student the regions it has already learned; the disagreement term moves the samples to
    where the student is still wrong, without leaving the teacher's statistics.
    """
    if loss not in ("kl", "mse"):
        raise ValueError(f"loss: expected 'kl' or 'mse', got {loss!r}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps/batch_size: must be >= 1, got {steps}/{batch_size}")
    if generator_every < 0 or adversarial_weight < 0:
        raise ValueError(f"generator_every/adversarial_weight: must be >= 0, got {generator_every}/"
                         f"{adversarial_weight}")
    if generator_every and generator_objective is None:
        raise ValueError("generator_every > 0: needs the generator_objective (the inversion loss)")
    rng = torch.Generator(device="cpu")
    if seed is not None:
        rng.manual_seed(seed)
    t_mode, g_mode = teacher.training, generator.training
    teacher.eval()
    generator.eval()
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    g_opt = torch.optim.Adam(generator.parameters(), lr=lr) if generator_every else None
    t_flags = _freeze(teacher) if generator_every else None
    student.train()
    history: list[float] = []
    try:
        for step in range(steps):
            if g_opt is not None and step % generator_every == 0:
                assert generator_objective is not None
                adversarial_generator_step(generator, teacher, student, g_opt, generator_objective,
                                           adversarial_weight, temperature, batch_size, rng)
            with torch.no_grad():
                z = generator.sample_noise(batch_size, rng)
                x = generator(z)
                zt = teacher(x)["logits"]
            zs = student(x)["logits"]
            value = kl_distillation_loss(zs, zt, temperature) if loss == "kl" else logit_mse_loss(zs, zt)
            if not torch.isfinite(value):
                raise FloatingPointError(f"student loss is not finite at step {step}")
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            history.append(float(value.detach()))
            if callback is not None:
                callback(step, history[-1])
    finally:
        if t_flags is not None:
            _unfreeze(teacher, t_flags)
        teacher.train(t_mode)
        generator.train(g_mode)
    return history


def disagreement(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T^2 KL(p_teacher || p_student)`` at temperature T, differentiable on *both* sides.

    The adversarial generator step needs the gradient of the disagreement through the teacher's logits
    too, so this is :func:`~.losses.kl_distillation_loss` with the teacher side kept in the graph.
    """
    return kl_distillation_loss(student_logits, teacher_logits, temperature, detach_teacher=False)


def adversarial_generator_step(
    generator: Generator,
    teacher: nn.Module,
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    objective: Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], Tensor],
    adversarial_weight: float,
    temperature: float,
    batch_size: int,
    rng: torch.Generator,
) -> float:
    """One generator step on ``objective(x, teacher(x)) - adversarial_weight * disagreement``; the value.

    The student is frozen and in eval mode for the step (only the generator learns) and restored after;
    the teacher must already be frozen by the caller.
    """
    s_mode = student.training
    s_flags = _freeze(student)
    student.eval()
    generator.train()
    try:
        z = generator.sample_noise(batch_size, rng)
        x = generator(z)
        out = teacher(x)
        value = objective(x, out)
        if adversarial_weight > 0:
            value = value - adversarial_weight * disagreement(student(x)["logits"], out["logits"], temperature)
        if not torch.isfinite(value):
            raise FloatingPointError("adversarial generator loss is not finite")
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
    finally:
        generator.eval()
        _unfreeze(student, s_flags)
        student.train(s_mode)
    return float(value.detach())

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
   * **activation loss** (eq. 6): ``-(1/B) sum_i ||f_T(G(x_i))||_2``, rewarding strong teacher activations.
   * **entropy loss** (eq. 7): the Shannon entropy of the teacher's softmax prediction, averaged over the
     batch and horizon steps (low = confident predictions). ``entropy_mode='balance'`` gives the
     information-entropy variant of DAFL instead (negative entropy of the batch-mean prediction, which
     rewards balanced classes across the batch).

2. The student is trained on generated inputs only, with the KL loss (eq. 9, temperature T) or the
   logit MSE (eq. 10). No real input and no label is touched.
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
    "TeacherMetadata",
    "activation_loss",
    "collect_teacher_metadata",
    "entropy_loss",
    "generator_loss",
    "information_entropy_loss",
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
        """Standard-normal latent ``(B, noise_dim)`` (Algorithm 1, line 3)."""
        device = self._lo.device
        return torch.randn(batch_size, self.noise_dim, generator=generator, device=device)

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

    def state_dict(self) -> dict[str, Tensor]:
        out = {f"mean.{k}": v for k, v in self.mean.items()}
        out.update({f"var.{k}": v for k, v in self.var.items()})
        return out

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Tensor]) -> TeacherMetadata:
        meta = cls()
        for key, value in state.items():
            kind, _, name = key.partition(".")
            if kind not in ("mean", "var") or not name:
                raise ValueError(f"metadata state: unexpected key {key!r}")
            getattr(meta, kind)[name] = value
        missing = set(meta.mean) ^ set(meta.var)
        if missing:
            raise ValueError(f"metadata state: mean/var missing for {sorted(missing)}")
        return meta


def _feature_rows(x: Tensor) -> Tensor:
    """Features as rows ``(N, D)``: time axes (if any) are treated as extra samples."""
    return x.reshape(-1, x.shape[-1]) if x.dim() > 2 else x


@torch.no_grad()
def collect_teacher_metadata(
    teacher: nn.Module, batches: Iterable[Mapping[str, Tensor]], features: Sequence[str] = ("end",)
) -> TeacherMetadata:
    """Mean and variance of the teacher's ``features`` over real data (done once, when training ends)."""
    was_training = teacher.training
    teacher.eval()
    sums: dict[str, Tensor] = {}
    sq: dict[str, Tensor] = {}
    count: dict[str, int] = {}
    for batch in batches:
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
    return meta


def metadata_loss(mean: Tensor, var: Tensor, features: Tensor) -> Tensor:
    """Zakeri et al. eq. 5: ``MSE(mu, mu_hat) + MSE(sigma^2, sigma_hat^2)`` of a synthetic batch."""
    rows = _feature_rows(features)
    mu_hat = rows.mean(0)
    var_hat = rows.var(0, unbiased=False)
    return torch.mean((mean - mu_hat) ** 2) + torch.mean((var - var_hat) ** 2)


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
) -> tuple[Tensor, dict[str, float]]:
    """Eq. 8: ``L_meta + alpha L_act + beta L_ent`` on the teacher's outputs for a synthetic batch."""
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
) -> list[dict[str, float]]:
    """Algorithm 1 step (1): knowledge inversion. Returns the per-step loss parts.

    ``source``: 'features' (stored feature statistics, Zakeri et al.), 'batchnorm' (BatchNorm running
    statistics) or 'both'. The teacher is frozen and kept in eval mode (BatchNorm uses its running stats,
    dropout is off), so only the generator learns.
    """
    if steps < 1 or batch_size < 2:
        raise ValueError(f"steps/batch_size: need steps >= 1 and batch_size >= 2, got {steps}/{batch_size}")
    if source not in ("features", "batchnorm", "both"):
        raise ValueError(f"source: expected 'features', 'batchnorm' or 'both', got {source!r}")
    if source in ("features", "both") and metadata is None:
        raise ValueError("metadata: source='features' needs the teacher's stored feature statistics")
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
            z = torch.randn(batch_size, generator.noise_dim, generator=rng).to(generator._lo.device)
            out = teacher(generator(z))
            bn = taps.pop() if taps is not None else None
            loss, parts = generator_loss(
                out, metadata if source != "batchnorm" else None, alpha, beta,
                entropy_mode=entropy_mode, batchnorm_term=bn,
            )
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
) -> list[float]:
    """Algorithm 1 step (2): train the student on generated inputs only, with 'kl' (eq. 9) or 'mse' (eq. 10).

    The generator and teacher are frozen. Returns the per-step loss values.
    """
    if loss not in ("kl", "mse"):
        raise ValueError(f"loss: expected 'kl' or 'mse', got {loss!r}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps/batch_size: must be >= 1, got {steps}/{batch_size}")
    rng = torch.Generator(device="cpu")
    if seed is not None:
        rng.manual_seed(seed)
    t_mode, g_mode = teacher.training, generator.training
    teacher.eval()
    generator.eval()
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    student.train()
    history: list[float] = []
    try:
        for step in range(steps):
            with torch.no_grad():
                z = torch.randn(batch_size, generator.noise_dim, generator=rng).to(generator._lo.device)
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
        teacher.train(t_mode)
        generator.train(g_mode)
    return history

"""Training and distillation loop: focal loss over the horizon, any distillation method, DDP, resume.

Why one loop for teachers and students: training a teacher is distillation with method ``none`` (focal
loss only, CRKD eq. 7 / Ma et al. eq. 9), so the same loop, with the same determinism, checkpointing,
NaN stop and DDP handling, serves ``beam-tracking train`` and ``beam-tracking distill``.

Run directory written by :func:`fit_supervised` (only rank 0 writes)::

    out/
      config.yaml        the resolved config
      checkpoint.pt      last finished epoch: model, optimizer, best weights, RNG states (tensors only)
      checkpoint.json    its sidecar: epoch, config, history, RNG states, best epoch (written last)
      model.pt           the chosen weights (lowest validation loss, Ma et al. Algorithm 1 steps 11-13)
      model.json         run card: model name + resolved kwargs, modalities, input shapes, P, H, beams,
                         dataset hash + meta, metrics (val, test), command, versions
      metadata.pt        teachers only: feature statistics for data-free KD (Zakeri et al. "metadata")
      log.jsonl          one line per epoch

Determinism: one seed drives torch, numpy, Python and the data order (the order of epoch ``e`` is a pure
function of ``(seed, e)``), and ``torch.use_deterministic_algorithms`` is on; together with the RNG
states stored in the checkpoint, a resumed run reproduces the uninterrupted one bit for bit on the
same machine.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..models.checkpoint import (
    CheckpointError,
    load_state_dict_checked,
    read_json,
    safe_load,
    save_tensors,
    write_json,
)
from .config import ConfigError, RunConfig, check_modalities, config_from_dict, config_to_dict

__all__ = [
    "DataInfo",
    "DistEnv",
    "TrainingError",
    "build_model",
    "dataset_info",
    "dist_env",
    "evaluate_model",
    "evaluate_run",
    "fit_supervised",
    "init_head_bias",
    "load_run",
    "lr_at",
    "open_dataset",
    "seed_everything",
    "teacher_cache",
]

RUN_FORMAT = "beam_tracking_ros.run"
RUN_VERSION = 1


class TrainingError(RuntimeError):
    """Training could not go on (non-finite loss, empty data ...); the message says where and why."""


# --------------------------------------------------------------------------------------------------
# Processes, devices, seeds
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DistEnv:
    """This process's place in a ``torchrun`` job (world size 1 without torchrun)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_env() -> DistEnv:
    """Read torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK)."""
    try:
        return DistEnv(int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")),
                       int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError as exc:
        raise ConfigError(f"WORLD_SIZE/RANK/LOCAL_RANK: not integers ({exc})") from None


def resolve_device(name: str, env: DistEnv) -> torch.device:
    """'auto' = CUDA when available (one GPU per local rank), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device: {name!r} requested but CUDA is not available on this machine")
        if name == "cuda":
            name = f"cuda:{env.local_rank % torch.cuda.device_count()}"
        torch.cuda.set_device(torch.device(name))
    return torch.device(name)


def init_distributed(env: DistEnv, device: torch.device) -> bool:
    """Join the process group (gloo on CPU, nccl on CUDA); returns True if this call created it."""
    if not env.distributed or dist.is_initialized():
        return False
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed torch, numpy and Python; make torch pick deterministic kernels where it has them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _rng_state() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """RNG states split into tensors (for the .pt) and plain data (for the JSON sidecar)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state()
    version, state, gauss = random.getstate()
    plain = {"numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": {"version": version, "state": list(state), "gauss": gauss}}
    return tensors, plain


def _set_rng_state(tensors: Mapping[str, Tensor], plain: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    n = plain["numpy"]
    np.random.set_state((n["kind"], tensors["numpy_keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    p = plain["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------
@dataclass
class DataInfo:
    """What the model and the card need to know about the data."""

    input_shapes: dict[str, list[int]]
    window: int
    horizon: int
    num_beams: int
    source: str
    dataset_hash: str
    meta: dict[str, Any] = field(default_factory=dict)
    available: list[str] | None = None  # modalities the dataset holds (None: synthetic, any)


LOG = logging.getLogger(__name__)
_GENERATE_KEYS = ("lanes", "episodes", "frames_per_episode", "seed", "P", "H", "modalities", "fractions",
                  "chunk_size", "weather", "max_vehicles", "label_mode")


def _ensure_dataset(data_cfg: Any, progress: bool = False) -> None:
    """Build the dataset at ``data.path`` from ``data.generate`` with the built-in simulator.

    ``data/generate.py`` caches by a hash of the whole generation config, so a dataset that already
    matches is reused and a changed spec rebuilds it.
    """
    if data_cfg.path is None or data_cfg.generate is None:
        return
    spec = dict(data_cfg.generate)
    unknown = [k for k in spec if k not in _GENERATE_KEYS]
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join('data.generate.' + k for k in unknown)}; allowed keys in "
                          f"data.generate: {', '.join(_GENERATE_KEYS)}")
    from ..data.generate import generate_dataset, scenario

    lanes = spec.pop("lanes", 2)
    overrides = {k: spec.pop(k) for k in ("weather", "max_vehicles", "label_mode") if k in spec}
    try:
        scenarios = [scenario(int(n), **overrides) for n in (lanes if isinstance(lanes, list) else [lanes])]
        if "fractions" in spec:
            spec["fractions"] = tuple(spec["fractions"])
        generate_dataset(data_cfg.path, scenarios, progress=progress, **spec)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"data.generate: {exc}") from None


def available_modalities(data_cfg: Any) -> list[str] | None:
    """Modalities the configured dataset holds (None for synthetic data, which makes any)."""
    if data_cfg.synthetic is not None:
        return None
    from ..data.store import DatasetReader, input_keys

    reader = DatasetReader(data_cfg.path, verify=False)
    return input_keys(list(reader.keys))


def open_dataset(data_cfg: Any, split: str, modalities: Sequence[str]) -> Dataset:
    """The store's ``BeamDataset`` for ``data.path``, or the in-memory synthetic dataset."""
    if data_cfg.synthetic is not None:
        from .synthetic import SyntheticBeamDataset

        return SyntheticBeamDataset(data_cfg.synthetic, split, modalities)
    from ..data.store import BeamDataset

    return BeamDataset(data_cfg.path, split, list(modalities))


def dataset_hash(data_cfg: Any) -> str:
    """sha256 of the dataset's manifest + meta (which list every chunk), or of the synthetic spec."""
    h = hashlib.sha256()
    if data_cfg.synthetic is not None:
        h.update(json.dumps(data_cfg.synthetic, sort_keys=True).encode())
        return "synthetic:" + h.hexdigest()[:16]
    root = Path(data_cfg.path)
    for name in ("manifest.json", "meta.json"):
        p = root / name
        if p.is_file():
            h.update(p.read_bytes())
    return "sha256:" + h.hexdigest()


def dataset_info(ds: Dataset, data_cfg: Any, modalities: Sequence[str]) -> DataInfo:
    """Shapes, P, H and the codebook size, read from the first sample and the dataset's meta."""
    if len(ds) == 0:  # type: ignore[arg-type]
        raise TrainingError(f"data: the {getattr(ds, 'split', 'train')} split is empty")
    sample = ds[0]
    missing = [m for m in modalities if m not in sample]
    if missing:
        raise ConfigError(f"data.modalities: the dataset has no {missing}")
    shapes = {m: [int(s) for s in sample[m].shape] for m in modalities}
    windows = {m: s[0] for m, s in shapes.items()}
    if len(set(windows.values())) != 1:
        raise TrainingError(f"data: modalities disagree on the window length P: {windows}")
    steps, beams = (int(s) for s in sample["powers_dbm"].shape)
    meta = dict(getattr(ds, "meta", {}) or {})
    return DataInfo(
        input_shapes=shapes, window=next(iter(windows.values())), horizon=steps - 1, num_beams=beams,
        source=str(data_cfg.path) if data_cfg.synthetic is None else "synthetic",
        dataset_hash=dataset_hash(data_cfg), meta=meta, available=available_modalities(data_cfg),
    )


def make_loader(
    ds: Dataset, batch_size: int, shuffle: bool, seed: int, epoch: int, env: DistEnv, num_workers: int = 0,
) -> DataLoader:
    """A loader whose order depends only on ``(seed, epoch)`` (and the rank under DDP)."""
    sampler: Any
    if env.distributed and shuffle:
        sampler = torch.utils.data.DistributedSampler(
            ds, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=seed, drop_last=False)
        sampler.set_epoch(epoch)
    elif shuffle and hasattr(ds, "chunk_sampler"):
        sampler = ds.chunk_sampler(shuffle=True, seed=seed)  # streams chunk by chunk from disk
        sampler.set_epoch(epoch)
    elif shuffle:
        g = torch.Generator()
        g.manual_seed(seed * 1_000_003 + epoch)
        sampler = torch.utils.data.RandomSampler(ds, generator=g)
    else:
        sampler = torch.utils.data.SequentialSampler(ds)

    def _worker_init(worker_id: int) -> None:
        s = (seed * 1_000_003 + epoch) * 131 + worker_id
        np.random.seed(s % 2**32)
        random.seed(s)

    g_loader = torch.Generator()
    g_loader.manual_seed(seed * 7919 + epoch)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      worker_init_fn=_worker_init if num_workers else None, generator=g_loader,
                      persistent_workers=False)


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------
def _model_spec(name: str) -> tuple[Callable[..., nn.Module], set[str]]:
    """The constructor behind ``name`` (models registry, or the toy test model) and its arguments."""
    from ..models.registry import model_factory

    try:
        return model_factory(name)
    except ValueError as exc:
        raise ConfigError(f"model.name: {exc}") from None


def resolve_model_kwargs(
    name: str, kwargs: Mapping[str, Any], info: DataInfo, modalities: Sequence[str]
) -> dict[str, Any]:
    """Fill the constructor arguments the data determines (beams, horizon, window, input sizes).

    Given values must agree with the data: a model configured for 64 beams cannot train on 152.
    """
    _factory, accepted = _model_spec(name)
    derived: dict[str, Any] = {"num_beams": info.num_beams, "horizon": info.horizon, "window": info.window,
                               "modalities": list(modalities),
                               "input_shapes": {m: info.input_shapes[m] for m in modalities}}
    shapes = info.input_shapes
    if "radar_points" in shapes and len(shapes["radar_points"]) == 3:
        derived["num_points"] = shapes["radar_points"][1]
        derived["point_features"] = shapes["radar_points"][2]
    if "lidar_feat" in shapes:
        derived["feature_dim"] = derived["lidar_feature_dim"] = shapes["lidar_feat"][-1]
    out = dict(kwargs)
    for key, value in derived.items():
        if key not in accepted:
            continue
        if key in out:
            given = list(out[key]) if isinstance(out[key], (list, tuple)) else out[key]
            if key in ("num_beams", "horizon", "window") and given != value:
                raise ConfigError(f"model.kwargs.{key}: {given} does not match the dataset ({value})")
            continue
        out[key] = value
    unknown = [k for k in out if k not in accepted]
    if unknown:
        raise ConfigError(
            f"model.kwargs: unknown argument(s) {', '.join(unknown)} for {name!r}; allowed: "
            f"{', '.join(sorted(accepted))}")
    return out


def build_model(name: str, kwargs: Mapping[str, Any]) -> nn.Module:
    """Instantiate a registered model with already resolved kwargs (errors -> ConfigError)."""
    factory, _accepted = _model_spec(name)
    try:
        model = factory(**dict(kwargs))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model: cannot build {name!r} with {dict(kwargs)}: {exc}") from None
    return model


def check_model_modalities(model: nn.Module, name: str, modalities: Sequence[str]) -> None:
    """A model with fixed inputs (e.g. the radar-only MLP) must read exactly the configured modalities."""
    own = getattr(model, "modalities", None)
    if own is not None and sorted(own) != sorted(modalities):
        raise ConfigError(f"data.modalities: model {name!r} reads {list(own)} but data.modalities is "
                          f"{list(modalities)}")


def model_outputs(out: Any) -> dict[str, Tensor]:
    """Models return ``{'logits', 'mid', 'end'}``; a bare tensor is taken as the logits."""
    if isinstance(out, Tensor):
        return {"logits": out}
    if not isinstance(out, Mapping) or "logits" not in out:
        raise TrainingError("model: forward() must return a tensor or a dict with 'logits'")
    return dict(out)


def _inputs(batch: Mapping[str, Tensor], modalities: Sequence[str], device: torch.device) -> dict[str, Tensor]:
    return {m: batch[m].to(device, non_blocking=True).float() for m in modalities}


# the most memory the cached teacher outputs may take; beyond it the teacher runs live every step
TEACHER_CACHE_LIMIT_BYTES = 2 << 30


class _Indexed(Dataset):
    """A dataset whose samples also carry their own index, so a batch can look up cached teacher outputs.

    It keeps the wrapped dataset's ``chunk_sampler`` (the store's disk-friendly shuffling), so the order of
    the samples is the one the uncached run sees.
    """

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.ds[index], "index": torch.tensor(int(index))}

    def __getattr__(self, name: str) -> Any:
        if name == "ds":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.ds, name)


# the last teacher outputs computed in this process, for the next student of the same teacher and data
# (a KD table distils up to nine students from one teacher): {key: outputs}, at most one entry
_LAST_TEACHER_CACHE: dict[tuple[Any, ...], dict[str, Tensor]] = {}


def _teacher_cache_key(teacher_dir: str | Path | None, data_cfg: Any, modalities: Sequence[str],
                       device: torch.device, batch_size: int) -> tuple[Any, ...]:
    """What the cached outputs depend on: the teacher's files (name, size, mtime: retrained = new key), the
    dataset and split, the teacher's inputs, and the batch size (it changes the floats' summation order)."""
    d = Path(str(teacher_dir))
    files = tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in d.iterdir() if f.is_file())) \
        if d.is_dir() else ()
    data = (str(Path(data_cfg.path).resolve()) if data_cfg.path else None, repr(data_cfg.synthetic),
            data_cfg.train_split)
    return (str(d.resolve()), files, data, tuple(modalities), str(device), int(batch_size))


def teacher_cache(teacher: nn.Module, ds: Dataset, modalities: Sequence[str], device: torch.device,
                  batch_size: int, limit_bytes: int = TEACHER_CACHE_LIMIT_BYTES,
                  log: Callable[[str], None] | None = None) -> dict[str, Tensor] | None:
    """The frozen teacher's outputs (``logits``, ``mid``, ``end``) for every sample of ``ds``, in index order.

    Why: a KD student step otherwise spends most of its time in the teacher's forward (the radar MLP's
    step is ~7x cheaper than the transformer teacher's) on outputs that cannot change: the teacher is in
    eval mode and the samples are not augmented. One pass here costs about one epoch of forwards.
    Returns None (the caller runs the teacher live) when the outputs would exceed ``limit_bytes``.
    """
    n = len(ds)  # type: ignore[arg-type]
    if n == 0:
        return None
    teacher.eval()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    parts: dict[str, list[Tensor]] = {}
    with torch.no_grad():
        for i, batch in enumerate(loader):
            out = model_outputs(teacher(_inputs(batch, modalities, device)))
            if i == 0:
                per_sample = sum(v[0].numel() * v.element_size() for v in out.values())
                if per_sample * n > limit_bytes:
                    if log:
                        log(f"teacher outputs of {n} samples need {per_sample * n / 2**20:.0f} MiB (limit "
                            f"{limit_bytes / 2**20:.0f} MiB): the teacher runs on every step instead")
                    return None
            for k, v in out.items():
                parts.setdefault(k, []).append(v.detach().cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


# --------------------------------------------------------------------------------------------------
# Optimisation
# --------------------------------------------------------------------------------------------------
def lr_at(tcfg: Any, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``.

    * ``cosine``: one cosine from lr to min_lr over all epochs;
    * ``cosine-restarts``: Ma et al.'s cyclic cosine annealing, period ``restart_every`` epochs;
    * ``linear-decay``: CRKD, constant until ``decay_start``, then minus ``decay_per_epoch`` per epoch,
      restarting every ``restart_every`` epochs.
    """
    lr, lo = tcfg.lr, tcfg.min_lr
    if tcfg.scheduler == "cosine":
        return lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * epoch / max(1, tcfg.epochs)))
    if tcfg.scheduler == "cosine-restarts":
        t = epoch % tcfg.restart_every
        return lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * t / tcfg.restart_every))
    if tcfg.scheduler == "linear-decay":
        if epoch < tcfg.decay_start:
            return lr
        k = (epoch - tcfg.decay_start) % tcfg.restart_every
        return max(lo, lr - tcfg.decay_per_epoch * (k + 1))
    return lr


def make_optimizer(params: Sequence[nn.Parameter], tcfg: Any) -> torch.optim.Optimizer:
    if tcfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    if tcfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=tcfg.lr, momentum=0.9, weight_decay=tcfg.weight_decay)
    return torch.optim.Adam(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)


class _TrainStep(nn.Module):
    """Student + loss (with its learned projections) as one module, so DDP averages all their gradients."""

    def __init__(self, student: nn.Module, loss_fn: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.loss_fn = loss_fn

    def forward(self, inputs: dict[str, Tensor], targets: Tensor, teacher_out: dict[str, Tensor] | None,
                powers: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out = model_outputs(self.student(inputs))
        loss, _parts = self.loss_fn(out, targets, teacher_out, powers)
        return loss, out["logits"]


def make_loss(cfg: RunConfig, student_dims: Mapping[str, int] | None = None,
              teacher_dims: Mapping[str, int] | None = None) -> nn.Module:
    """The kd package's DistillationLoss for the configured method (focal only for 'none')."""
    from ..kd.losses import DistillationLoss
    from ..kd.methods import DATA_FREE

    k = cfg.distill
    method = "none" if k.method == DATA_FREE else k.method
    return DistillationLoss(
        method=method, alpha=k.alpha, temperature=k.temperature, focal_alpha=cfg.train.focal_alpha,
        focal_gamma=cfg.train.focal_gamma, student_dims=student_dims, teacher_dims=teacher_dims,
        feature_mode=k.feature_mode, end_source=k.end_source, rkd_distances=tuple(k.distances), curvature=k.curvature,
        task_loss=cfg.train.task_loss, power_temperature=cfg.train.power_temperature,
    )


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def predict_dataset(model: nn.Module, loader: DataLoader, modalities: Sequence[str], device: torch.device
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits ``(N, H+1, C)``, labels ``(N, H+1)`` and powers ``(N, H+1, C)`` over a loader."""
    was = model.training
    model.eval()
    logits, labels, powers = [], [], []
    try:
        for batch in loader:
            out = model_outputs(model(_inputs(batch, modalities, device)))
            logits.append(out["logits"].float().cpu().numpy())
            labels.append(batch["beams"].numpy())
            powers.append(batch["powers_dbm"].numpy())
    finally:
        model.train(was)
    if not logits:
        raise TrainingError("evaluation: the split is empty")
    return np.concatenate(logits), np.concatenate(labels), np.concatenate(powers)


def evaluate_model(
    model: nn.Module, loader: DataLoader, modalities: Sequence[str], device: torch.device,
    focal_alpha: float = 1.0, focal_gamma: float = 2.0,
) -> dict[str, Any]:
    """All metrics of metrics.py (Top-1/3/5 per step + ATop-k, DBA/ADBA, MPR, RSS, power loss) + loss."""
    from ..kd.losses import focal_loss
    from ..metrics import evaluate_predictions

    logits, labels, powers = predict_dataset(model, loader, modalities, device)
    ks = tuple(k for k in (1, 3, 5) if k <= logits.shape[-1])
    out = evaluate_predictions(logits, labels, powers, ks=ks)
    out["loss"] = float(focal_loss(torch.from_numpy(logits), torch.from_numpy(labels), focal_alpha, focal_gamma))
    out["num_samples"] = len(labels)
    return out


def format_metrics(m: Mapping[str, Any]) -> str:
    """One line: ATop-1/3/5, ADBA, MPR, mean RSS, power loss."""
    parts = [f"loss {m['loss']:.4f}"] if "loss" in m else []
    for k in (1, 3, 5):
        if f"atop{k}" in m:
            parts.append(f"ATop-{k} {m[f'atop{k}']:.3f}")
    if "adba" in m:
        parts.append(f"ADBA {m['adba']:.3f}")
    if "ampr" in m:
        parts.append(f"MPR {m['ampr']:.3f}")
    if "mean_rss_dbm" in m:  # "dB" for datasets whose powers are not calibrated (DeepSense 6G)
        parts.append(f"RSS {m['mean_rss_dbm']:.1f} {m.get('rss_unit', 'dBm')}")
    if "mean_power_loss_db" in m:
        parts.append(f"power loss {m['mean_power_loss_db']:.2f} dB")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------------
# Runs on disk
# --------------------------------------------------------------------------------------------------
def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("beam_tracking_ros")
    except Exception:
        return str(getattr(sys.modules.get("beam_tracking_ros"), "__version__", "0.1.0"))


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a run directory (``model.json`` + ``model.pt``), safely; returns (model, card).

    An exported model directory (``model_card.json``, e.g. ``models/student``) is accepted too, so
    ``beam-tracking evaluate models/student`` scores a shipped model on its dataset's split.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise CheckpointError(f"run {str(d)!r}: no such directory")
    if not (d / "model.json").is_file() and (d / "model_card.json").is_file():
        return _load_exported(d, device)
    card = read_json(d / "model.json", "run card")
    if card.get("format") != RUN_FORMAT:
        raise CheckpointError(f"run card {str(d / 'model.json')!r}: not a {RUN_FORMAT} file")
    try:
        name, kwargs = card["model"]["name"], card["model"]["kwargs"]
    except (KeyError, TypeError):
        raise CheckpointError(f"run card {str(d / 'model.json')!r}: no model name/kwargs") from None
    model = build_model(name, kwargs)
    state = safe_load(d / "model.pt", "model weights")
    load_state_dict_checked(model, state, f"model weights {str(d / 'model.pt')!r}")
    model.to(device).eval()
    return model, card


def _load_exported(d: Path, device: str | torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """An exported model as a run: the architecture and weights its card names, checked against the card."""
    from ..inference import TorchPredictor, build_from_card, check_against_card
    from ..models.card import validate_card

    where = str(d / "model_card.json")
    card = validate_card(read_json(d / "model_card.json", "model card"), where)
    model = build_from_card(card, d / (card["files"].get("weights") or "model.pt"), where)
    check_against_card(TorchPredictor(model, card), card, where)
    if not card.get("config"):
        raise CheckpointError(f"{where}: no training config in the card: its dataset is unknown")
    arch = card["architecture"]
    run_card = {"format": RUN_FORMAT, "exported": str(d), "name": card["name"], "role": card["role"],
                "config": card["config"],
                "model": {"name": arch["name"], "kwargs": arch["kwargs"], "modalities": list(card["modalities"]),
                          "input_shapes": card["input_shapes"], "window": card["P"], "horizon": card["H"],
                          "num_beams": card["num_beams"], "feature_dims": card.get("feature_dims") or {}},
                "dataset": card.get("dataset") or {}}
    return model.to(device).eval(), run_card


def _check_teacher_fit(card: Mapping[str, Any], info: DataInfo) -> None:
    m = card["model"]
    theirs = (m["window"], m["horizon"], m["num_beams"])
    ours = (info.window, info.horizon, info.num_beams)
    if theirs != ours:
        raise ConfigError(
            f"distill.teacher: the teacher was trained with (P, H, beams) = {theirs} but the student's data "
            f"has {ours}; distil on data of the same window, horizon and codebook")
    for mod in m["modalities"]:
        if mod in info.input_shapes and list(info.input_shapes[mod]) != list(m["input_shapes"][mod]):
            raise ConfigError(
                f"data.modalities: {mod!r} has shape {info.input_shapes[mod]} here but "
                f"{m['input_shapes'][mod]} in the teacher's data (different preprocessing)")


def _feature_dims(out: Mapping[str, Tensor]) -> dict[str, int]:
    return {k: int(v.reshape(v.shape[0], -1).shape[1]) for k, v in out.items() if k in ("mid", "end")}


def _allreduce(values: list[float], env: DistEnv, device: torch.device) -> list[float]:
    if not env.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _config_diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    diffs = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            diffs += _config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            diffs.append(f"{prefix}{k}")
    return diffs


@dataclass
class FitResult:
    """What a finished run returns (rank 0 has written the same to ``out``)."""

    out_dir: str
    epochs: int
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    state_dict: dict[str, Tensor]
    card: dict[str, Any]


def fit_supervised(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    teacher_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
    stop_after_epochs: int | None = None,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Train ``cfg.model`` (a teacher, or a student distilled from ``teacher_dir`` with a feature/logit KD
    method) into ``out_dir``. Data-free runs are :func:`beam_tracking_ros.train.distill.fit_data_free`;
    :func:`beam_tracking_ros.train.api.fit` picks between the two.

    ``stop_after_epochs`` ends the run early after that many epochs of *this* invocation, as if it had
    been interrupted (used to test resuming). Raises :class:`TrainingError` on a non-finite loss,
    :class:`ConfigError` for configurations that do not fit the data or the teacher.
    """
    if cfg.distill.method == "data-free":
        raise ConfigError("distill.method 'data-free' never reads the training data: run it with "
                          "beam_tracking_ros.train.api.fit (or train.distill.fit_data_free)")
    env = dist_env()
    device = resolve_device(cfg.train.device, env)
    created_pg = init_distributed(env, device)
    try:
        return _fit(cfg, Path(out_dir), env, device, teacher_dir, resume, progress, command,
                    stop_after_epochs, log)
    finally:
        if created_pg and dist.is_initialized():
            dist.destroy_process_group()


def _default_log(env: DistEnv) -> Callable[[str], None]:
    from tqdm import tqdm

    def _log(msg: str) -> None:
        if env.is_main:
            tqdm.write(msg, file=sys.stderr)

    return _log


def _fit(cfg: RunConfig, out: Path, env: DistEnv, device: torch.device, teacher_dir: str | Path | None,
         resume: bool, progress: bool, command: str | None, stop_after_epochs: int | None,
         log: Callable[[str], None] | None) -> FitResult:
    from tqdm import tqdm

    log = log or _default_log(env)
    t0 = time.time()
    tcfg = cfg.train
    method = cfg.distill.method
    ckpt_pt, ckpt_json = out / "checkpoint.pt", out / "checkpoint.json"
    if not resume and (ckpt_json.exists() or (out / "model.json").exists()):
        raise ConfigError(f"--out {str(out)!r} already holds a training run; pass --resume to continue it "
                          f"or choose another directory")
    if resume and not ckpt_json.exists():
        raise ConfigError(f"--resume: {str(out)!r} has no checkpoint.json to resume from")

    # ---- teacher ----
    teacher: nn.Module | None = None
    teacher_card: dict[str, Any] | None = None
    if method != "none":
        teacher_dir = teacher_dir or cfg.distill.teacher
        if not teacher_dir:
            raise ConfigError(f"distill.teacher: method {method!r} needs a teacher run (--teacher DIR)")
        teacher, teacher_card = load_run(teacher_dir, device)
        for p in teacher.parameters():
            p.requires_grad_(False)
    teacher_mods = list(teacher_card["model"]["modalities"]) if teacher_card else []

    # ---- data ----
    if env.is_main:
        _ensure_dataset(cfg.data, progress)
    if env.distributed:
        dist.barrier()
    student_mods = list(cfg.data.modalities)
    if teacher_card is not None:
        check_modalities(student_mods, teacher_mods, available_modalities(cfg.data), method)
    load_mods = list(dict.fromkeys([*student_mods, *teacher_mods]))
    seed_everything(tcfg.seed, tcfg.deterministic)
    train_ds = open_dataset(cfg.data, cfg.data.train_split, load_mods)
    info = dataset_info(train_ds, cfg.data, load_mods)
    if teacher_card is not None:
        _check_teacher_fit(teacher_card, info)
    val_ds = open_dataset(cfg.data, cfg.data.val_split, load_mods)
    has_val = len(val_ds) > 0  # type: ignore[arg-type]

    # ---- model, loss, optimizer ----
    kwargs = resolve_model_kwargs(cfg.model.name, cfg.model.kwargs, info, student_mods)
    torch.manual_seed(tcfg.seed)  # identical initial weights on every rank and every run
    student = build_model(cfg.model.name, kwargs).to(device)
    check_model_modalities(student, cfg.model.name, student_mods)
    if tcfg.head_bias == "prior":
        init_head_bias(student, info.meta)
    probe = torch.utils.data.default_collate([train_ds[i] for i in range(min(2, len(train_ds)))])
    with torch.no_grad():
        student.eval()
        s_dims = _feature_dims(model_outputs(student(_inputs(probe, student_mods, device))))
        student.train()
        t_dims = _feature_dims(model_outputs(teacher(_inputs(probe, teacher_mods, device)))) if teacher else None
    loss_fn = make_loss(cfg, s_dims, t_dims).to(device)
    step_module = _TrainStep(student, loss_fn)
    optimizer = make_optimizer([p for p in step_module.parameters() if p.requires_grad], tcfg)

    start_epoch, global_step = 0, 0
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": None, "val_loss": None}
    best_state: dict[str, Tensor] = {}
    cfg_dict = config_to_dict(cfg)
    if resume:
        meta = read_json(ckpt_json, "checkpoint sidecar")
        diffs = [d for d in _config_diff(meta.get("config", {}), cfg_dict) if d != "train.epochs"]
        if diffs:
            raise ConfigError(f"--resume: the config differs from the checkpoint's at {', '.join(diffs)}")
        state = safe_load(ckpt_pt, "checkpoint")
        if int(state.get("epoch", torch.tensor(-1))) != int(meta["epoch"]):
            raise CheckpointError(f"checkpoint {str(ckpt_pt)!r} and its sidecar disagree on the epoch "
                                  f"(interrupted while saving?)")
        load_state_dict_checked(student, state["model"], f"checkpoint {str(ckpt_pt)!r}")
        load_state_dict_checked(loss_fn, state["loss"], f"checkpoint {str(ckpt_pt)!r} (loss projections)")
        optimizer.load_state_dict(state["optimizer"])
        best_state = dict(state.get("best_model", {}))
        _set_rng_state(state["rng"], meta["rng"])
        start_epoch, global_step = int(meta["epoch"]), int(meta["global_step"])
        history, best = list(meta["history"]), dict(meta["best"])
        log(f"resuming {out} after epoch {start_epoch} (global step {global_step})")
    if start_epoch >= tcfg.epochs:
        log(f"{out}: already trained for {start_epoch} epochs (train.epochs = {tcfg.epochs})")

    ddp: nn.Module = step_module
    if env.distributed:
        ddp = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False), encoding="utf-8")

    val_loader = make_loader(val_ds, tcfg.batch_size, False, tcfg.seed, 0, env) if has_val else None
    t_cache: dict[str, Tensor] | None = None
    loop_ds, loop_mods = train_ds, load_mods
    if teacher is not None and cfg.distill.cache_teacher and start_epoch < tcfg.epochs:
        t_c = time.time()
        key = _teacher_cache_key(teacher_dir, cfg.data, teacher_mods, device, tcfg.batch_size)
        t_cache = _LAST_TEACHER_CACHE.get(key)
        reused = t_cache is not None
        if t_cache is None:
            t_cache = teacher_cache(teacher, train_ds, teacher_mods, device, tcfg.batch_size, log=log)
            _LAST_TEACHER_CACHE.clear()  # one teacher's outputs at a time: bounded memory
            if t_cache is not None:
                _LAST_TEACHER_CACHE[key] = t_cache
        if t_cache is not None:
            # the loop then reads only the student's inputs (the teacher's images are not loaded again)
            loop_ds = _Indexed(open_dataset(cfg.data, cfg.data.train_split, student_mods))
            loop_mods = student_mods
            n_train = len(train_ds)  # type: ignore[arg-type]
            log(f"teacher outputs of the previous student reused for {n_train} training samples" if reused else
                f"teacher outputs cached for {n_train} training samples in {time.time() - t_c:.1f} s")
    epochs_run = 0
    t_loop, step0 = time.time(), global_step
    for epoch in range(start_epoch, tcfg.epochs):
        if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
            break
        lr = lr_at(tcfg, epoch)
        for g in optimizer.param_groups:
            g["lr"] = lr
        loader = make_loader(loop_ds, tcfg.batch_size, True, tcfg.seed, epoch, env, cfg.data.num_workers)
        n_steps = len(loader) if tcfg.max_steps_per_epoch is None else min(len(loader), tcfg.max_steps_per_epoch)
        bar = tqdm(total=n_steps, desc=f"epoch {epoch + 1}/{tcfg.epochs}", disable=not (progress and env.is_main),
                   leave=False, dynamic_ncols=True, file=sys.stderr)
        step_module.train()
        sums = [0.0, 0.0, 0.0]  # loss * n, correct top-1 (current step), n
        for step, batch in enumerate(_limit(loader, n_steps), start=1):
            inputs = _inputs(batch, loop_mods, device)
            targets = batch["beams"].to(device)
            t_out = None
            if t_cache is not None:
                idx = batch["index"]
                t_out = {k: v[idx].to(device) for k, v in t_cache.items()}
            elif teacher is not None:
                with torch.no_grad():
                    t_out = model_outputs(teacher({m: inputs[m] for m in teacher_mods}))
            s_in = {m: inputs[m] for m in student_mods}
            powers = batch["powers_dbm"].to(device) if cfg.train.task_loss != "focal" else None
            loss, logits = ddp(s_in, targets, t_out, powers)
            bad = 0.0 if bool(torch.isfinite(loss)) else 1.0
            n = float(targets.shape[0])
            correct = float((logits.detach().argmax(-1)[:, 0] == targets[:, 0]).sum())
            red = _allreduce([float(loss.detach()) * n if not bad else 0.0, correct, n, bad], env, device)
            if red[3] > 0:
                bar.close()
                where = f"epoch {epoch + 1}, step {step} (global step {global_step + 1})"
                last = f"; last good checkpoint: {ckpt_pt} (epoch {start_epoch + epochs_run})" \
                    if ckpt_json.exists() else ""
                raise TrainingError(f"non-finite loss ({float(loss.detach())}) at {where}: training stopped{last}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(step_module.parameters(), tcfg.grad_clip)
            optimizer.step()
            global_step += 1
            sums = [sums[0] + red[0], sums[1] + red[1], sums[2] + red[2]]
            bar.update(1)
            bar.set_postfix(loss=f"{sums[0] / sums[2]:.4f}", top1=f"{sums[1] / sums[2]:.3f}", lr=f"{lr:.2e}")
        bar.close()
        epochs_run += 1
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": sums[0] / max(sums[2], 1.0),
                                  "train_top1": sums[1] / max(sums[2], 1.0), "global_step": global_step}
        if val_loader is not None:
            val = evaluate_model(student, val_loader, student_mods, device, tcfg.focal_alpha, tcfg.focal_gamma)
            record["val"] = val
            if not math.isfinite(val["loss"]):
                raise TrainingError(f"non-finite validation loss after epoch {epoch + 1}: training stopped")
            if _better(val, best, tcfg.select_by):
                best = {"epoch": epoch + 1, "val_loss": val["loss"], "val_mpr": val.get("ampr"),
                        "select_by": tcfg.select_by}
                best_state = {k: v.detach().cpu().clone() for k, v in student.state_dict().items()}
        history.append(record)
        elapsed = time.time() - t_loop
        rate = (global_step - step0) / max(elapsed, 1e-9)
        eta = (tcfg.epochs - epoch - 1) * n_steps / max(rate, 1e-9)
        record["steps_per_s"] = rate
        msg = f"epoch {epoch + 1}/{tcfg.epochs}: train loss {record['train_loss']:.4f}, top-1 " \
              f"{record['train_top1']:.3f}, {rate:.1f} steps/s, ETA {eta / 60:.1f} min"
        if "val" in record:
            msg += f" | val {format_metrics(record['val'])}"
        log(msg)
        if env.is_main:
            rng_t, rng_p = _rng_state()
            save_tensors({"model": student.state_dict(), "loss": loss_fn.state_dict(),
                          "optimizer": optimizer.state_dict(), "best_model": best_state, "rng": rng_t,
                          "epoch": torch.tensor(epoch + 1)}, ckpt_pt)
            write_json({"format": "beam_tracking_ros.checkpoint", "version": 1, "epoch": epoch + 1,
                        "global_step": global_step, "config": cfg_dict, "history": history, "best": best,
                        "rng": rng_p}, ckpt_json)
            with open(out / "log.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, default=float) + "\n")
        if env.distributed:
            dist.barrier()

    done = (history[-1]["epoch"] if history else start_epoch) >= tcfg.epochs
    final_state = {k: v.detach().cpu().clone() for k, v in student.state_dict().items()}
    if not done:
        return FitResult(str(out), epochs_run, history, {}, final_state, {})
    chosen = best_state or final_state
    student.load_state_dict(chosen)
    metrics: dict[str, Any] = {}
    if history and "val" in history[-1]:
        metrics["val"] = next(h["val"] for h in history if h["epoch"] == best["epoch"]) \
            if best["epoch"] else history[-1]["val"]
    test_ds = open_dataset(cfg.data, cfg.data.test_split, student_mods)
    if len(test_ds) > 0:  # type: ignore[arg-type]
        test_loader = make_loader(test_ds, tcfg.batch_size, False, tcfg.seed, 0, env)
        metrics["test"] = evaluate_model(student, test_loader, student_mods, device, tcfg.focal_alpha,
                                         tcfg.focal_gamma)
        metrics["test"]["rss_unit"] = rss_unit(info.meta)
        log(f"test: {format_metrics(metrics['test'])}")
        refs = _references(cfg.data)
        if refs:
            metrics["references"] = refs
            for name, m in refs.items():
                log(f"test, {name.replace('_', ' ')} on the same frames: {format_metrics(m)}")
    card = make_run_card(cfg, kwargs, info, student_mods, student, metrics, history, best, command,
                         teacher_dir=str(teacher_dir) if teacher_dir else None,
                         teacher_card=teacher_card, train_time_s=time.time() - t0, world_size=env.world_size)
    if env.is_main:
        save_tensors(chosen, out / "model.pt")
        if cfg.role == "teacher":
            _save_teacher_metadata(student, train_ds, student_mods, device, tcfg.batch_size, out, card)
        write_json(card, out / "model.json")
        log(f"model written to {out / 'model.pt'} (card {out / 'model.json'})")
    if env.distributed:
        dist.barrier()
    return FitResult(str(out), epochs_run, history, metrics, {k: v.clone() for k, v in chosen.items()}, card)


def init_head_bias(model: nn.Module, meta: Mapping[str, Any]) -> None:
    """Set the biases of ``model.head`` (one linear classifier per horizon step) to the log label prior of
    the training split (the store's ``label_histogram``, add-one smoothed), weights untouched.

    Why: a freshly initialised head predicts nearly uniform beams, and a small model (Ma et al.'s student:
    16-wide LayerNorm output into 152 classes) spends its first hundred-odd steps learning the label
    prior before any sensor signal helps; on a sparse scene (one vehicle, most windows with nothing in
    view) that was the whole of a 400-step budget. Starting at the prior is Lin et al.'s init for the
    focal loss (RetinaNet), so the gradient goes to what the sensors add. Raises ``ConfigError`` for a model
    without such heads or data without a training histogram.
    """
    hist = (meta.get("label_histogram") or {}).get("train")
    heads = getattr(getattr(model, "head", None), "heads", None)
    if not hist or heads is None:
        raise ConfigError("train.head_bias 'prior' needs a model with per-step linear heads (model.head.heads) "
                          "and a dataset with a training label histogram")
    with torch.no_grad():
        for h in heads:
            # the store's histogram ends at the highest beam seen; the beams above it were never a label
            counts = torch.zeros(h.out_features, dtype=torch.float64)
            if h.bias is None or len(hist) > h.out_features:
                raise ConfigError(f"train.head_bias 'prior': a head has {h.out_features} outputs, the label "
                                  f"histogram {len(hist)} beams")
            counts[:len(hist)] = torch.as_tensor(np.asarray(hist, dtype=np.float64))
            h.bias.copy_(torch.log((counts + 1.0) / (counts.sum() + counts.shape[0])).to(h.bias))


def _prior_beam(meta: Mapping[str, Any]) -> int | None:
    """The training split's most frequent beam (the label prior the live evaluation scores beside a model)."""
    hist = (meta.get("label_histogram") or {}).get("train")
    return int(np.argmax(hist)) if hist else None


def _references(data_cfg: Any) -> dict[str, Any]:
    """The label prior and (for simulated data) the geometry ceiling on the test split, so every card
    and log shows a model beside what a fixed guess and a perfect-geometry predictor score there."""
    if data_cfg.synthetic is not None or data_cfg.path is None:
        return {}
    from ..references import reference_metrics

    try:
        return reference_metrics(data_cfg.path, data_cfg.test_split, geometry=False)
    except (ValueError, KeyError, OSError) as exc:  # e.g. no test split: the references are a courtesy
        LOG.warning("references not computed: %s", exc)
        return {}


def _better(val: Mapping[str, Any], best: Mapping[str, Any], select_by: str) -> bool:
    """Whether this epoch's validation beats the best so far under ``train.select_by``.

    Why MPR by default: the focal loss of a hard argmax label keeps falling while the ranking the
    users are scored on (MPR, power loss) has stopped improving, or the reverse; choose what is reported.
    """
    if best.get("epoch") is None:
        return True
    if select_by == "mpr" and val.get("ampr") is not None and best.get("val_mpr") is not None:
        return float(val["ampr"]) > float(best["val_mpr"])
    return float(val["loss"]) < float(best["val_loss"])


def _limit(loader: DataLoader, n: int) -> Iterator[Any]:
    for i, batch in enumerate(loader):
        if i >= n:
            break
        yield batch


def _save_teacher_metadata(model: nn.Module, ds: Dataset, mods: Sequence[str], device: torch.device,
                           batch_size: int, out: Path, card: dict[str, Any]) -> None:
    """Zakeri et al.'s stored metadata (mean/var of the end features) + input ranges, for DF-KD.

    Also the input statistics of every feature-vector sequence ``(P, D)`` (per step and bin, and of the
    frame-to-frame differences; ``kd.data_free.input_metadata_loss``): a few kB, and the data-free
    generator needs them to make sequences whose variance is across samples, like the real ones.
    """
    from ..kd.data_free import collect_teacher_metadata

    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}

    def batches() -> Iterator[dict[str, Tensor]]:
        for b in loader:
            x = _inputs(b, mods, device)
            for m, v in x.items():
                lo[m] = min(lo.get(m, math.inf), float(v.min()))
                hi[m] = max(hi.get(m, -math.inf), float(v.max()))
            yield x

    features = tuple(k for k in ("end", "mid") if k in card["model"].get("feature_dims", {}))[:1] or ("end",)
    shapes = card["model"].get("input_shapes", {})
    seqs = tuple(m for m in mods if len(shapes.get(m, ())) == 2 and shapes[m][0] >= 2)
    meta = collect_teacher_metadata(model, batches(), features=features, inputs=seqs)
    save_tensors(meta.state_dict(), out / "metadata.pt")
    card["data_free_metadata"] = {"file": "metadata.pt", "features": list(features),
                                  "input_range": {m: [lo[m], hi[m]] for m in lo}}


def make_run_card(cfg: RunConfig, kwargs: Mapping[str, Any], info: DataInfo, mods: Sequence[str],
                  model: nn.Module, metrics: Mapping[str, Any], history: list[dict[str, Any]],
                  best: Mapping[str, Any], command: str | None, teacher_dir: str | None,
                  teacher_card: Mapping[str, Any] | None, train_time_s: float, world_size: int) -> dict[str, Any]:
    """The run's ``model.json``: everything needed to rebuild, evaluate and export the model."""
    from ..models import count_parameters

    model.eval()
    with torch.no_grad():
        dummy = {m: torch.zeros(1, *info.input_shapes[m]) for m in mods}
        dev = next(iter(model.parameters())).device
        dims = _feature_dims(model_outputs(model({m: v.to(dev) for m, v in dummy.items()})))
    meta = info.meta
    return {
        "format": RUN_FORMAT, "version": RUN_VERSION,
        "name": cfg.name, "role": cfg.role,
        "config": config_to_dict(cfg),
        "model": {"name": cfg.model.name, "kwargs": dict(kwargs), "class": type(model).__name__,
                  "modalities": list(mods), "input_shapes": {m: info.input_shapes[m] for m in mods},
                  "window": info.window, "horizon": info.horizon, "num_beams": info.num_beams,
                  "feature_dims": dims, "parameters": count_parameters(model)},
        "dataset": {"source": info.source, "hash": info.dataset_hash,
                    "codebook_id": meta.get("codebook_id"), "codebook_size": meta.get("codebook_size",
                                                                                     info.num_beams),
                    "preprocess": meta.get("preprocess"), "label_mode": meta.get("label_mode"),
                    "scenario": meta.get("scenario"), "label_prior_beam": _prior_beam(meta),
                    "window_policy": meta.get("window_policy")},
        "distill": {"method": cfg.distill.method, "teacher": teacher_dir,
                    "teacher_name": teacher_card.get("name") if teacher_card else None},
        "metrics": dict(metrics), "history": history, "best": dict(best),
        "command": command, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": package_version(), "torch_version": torch.__version__,
        "train_time_s": round(train_time_s, 2), "world_size": world_size,
    }


def evaluate_run(run_dir: str | Path, split: str = "test", data_path: str | None = None,
                 batch_size: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """Evaluate a run's model on a split of its dataset (or another dataset with ``data_path``)."""
    model, card = load_run(run_dir, device)
    cfg = config_from_dict(card["config"], f"{run_dir}/model.json")
    if data_path is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=data_path, synthetic=None,
                                                                generate=None))
    mods = card["model"]["modalities"]
    ds = open_dataset(cfg.data, split, mods)
    if len(ds) == 0:  # type: ignore[arg-type]
        raise TrainingError(f"evaluate: split {split!r} of {cfg.data.path or 'synthetic data'} is empty")
    info = dataset_info(ds, cfg.data, mods)
    _check_teacher_fit(card, info)
    loader = make_loader(ds, batch_size or cfg.train.batch_size, False, 0, 0, DistEnv())
    res = evaluate_model(model, loader, mods, torch.device(device), cfg.train.focal_alpha, cfg.train.focal_gamma)
    res["split"] = split
    res["dataset_hash"] = info.dataset_hash
    res["rss_unit"] = rss_unit(info.meta)
    return res


def rss_unit(meta: Mapping[str, Any]) -> str:
    """'dBm' for calibrated powers (the simulator, CARLA); 'dB' where the dataset says they are relative."""
    return "dB" if "uncalibrated" in str(meta.get("powers_unit", "")) else "dBm"

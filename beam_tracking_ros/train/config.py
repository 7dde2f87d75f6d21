"""Training configuration: YAML files parsed into typed, validated dataclasses.

Why strict: a typo in a YAML key (``learning_rate`` for ``lr``) silently falls back to a default and
wastes an hour of training, so every unknown key is an error that names the key and the allowed ones,
and every value is type- and range-checked before any data is touched. All errors are
:class:`ConfigError` (a ``ValueError``), which the CLI turns into exit code 2.

Schema (every section optional except ``model``; defaults below)::

    name: teacher             # run / model name
    role: teacher             # teacher | student
    data:
      path: data/default      # dataset root (BeamDataset store), relative to the config file's cwd
      generate: {...}         # optional: generate the dataset at `path` when missing (data CLI spec)
      synthetic: {...}        # optional: in-memory synthetic data (tests, smoke runs), see train/synthetic.py
      modalities: [camera, radar_points, lidar_bev, gps]   # model input keys of the store
      train_split: train
      val_split: val
      test_split: test
      num_workers: 0
    model:
      name: <registry name>   # beam_tracking_ros.models registry
      kwargs: {}
    train:
      epochs: 10, batch_size: 32, lr: 1e-3, weight_decay: 0.0, optimizer: adam|adamw|sgd,
      scheduler: none|cosine|cosine-restarts|linear-decay, restart_every: 10, decay_start: 15,
      decay_per_epoch: 5e-6, min_lr: 0.0, seed: 0, device: auto|cpu|cuda, focal_alpha: 1.0,
      focal_gamma: 2.0, grad_clip: 0.0, deterministic: true, max_steps_per_epoch: null,
      task_loss: focal|power|focal+power, power_temperature: 1.0 (dB), select_by: mpr|loss,
      head_bias: none|prior
    distill:
      method: none | kd-end | kd-mid | kd-both | rkd-end | rkd-mid | rkd-both | kl | logit-mse | data-free
      teacher: runs/teacher   # teacher run directory (or null: given on the command line)
      alpha: 0.5              # (1 - alpha) * focal + alpha * distill   (CRKD eq. 9/15)
      temperature: 2.0
      distances: [euclidean, cosine, poincare]
      curvature: 1.0
      feature_mode: kl | mse
      end_source: features | logits
      cache_teacher: true     # run the frozen teacher once over the training split, not every step
      data_free: {generator_steps, student_steps, batch_size, lr, noise_dim, hidden, act_weight,
                  ent_weight, loss: kl|mse, metadata_source: features|batchnorm|both, entropy_mode,
                  input_weight, step_weight, generator_every, adversarial_weight}
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from ..kd.methods import DISTILLATION_METHODS, RELATION_DISTANCES
from ..modalities import INPUT_SENSOR, RAW_INPUTS

__all__ = [
    "DISTANCES",
    "DISTILL_METHODS",
    "MODALITIES",
    "ConfigError",
    "DataConfig",
    "DataFreeConfig",
    "DistillConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "check_modalities",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]

#: model input keys of data/preprocess.py as the dataset store holds them
MODALITIES: tuple[str, ...] = (*INPUT_SENSOR, *RAW_INPUTS)
DISTILL_METHODS: tuple[str, ...] = tuple(DISTILLATION_METHODS)  # the registry: kd/methods.py
DISTANCES: tuple[str, ...] = RELATION_DISTANCES
ROLES: tuple[str, ...] = ("teacher", "student")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the offending key or value."""


@dataclass
class DataConfig:
    """Where the samples come from and which modalities the model reads."""

    path: str | None = None
    generate: dict[str, Any] | None = None
    synthetic: dict[str, Any] | None = None
    modalities: list[str] = field(default_factory=lambda: ["radar_points"])
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    num_workers: int = 0


@dataclass
class ModelConfig:
    """A model of the registry: its name and constructor keyword arguments."""

    name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """Optimisation settings (CRKD: 50 epochs, batch 64, lr 5e-4; Zakeri et al.: batch 32, Adam 1e-3)."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    scheduler: str = "none"
    restart_every: int = 10
    decay_start: int = 15
    decay_per_epoch: float = 5e-6
    min_lr: float = 0.0
    seed: int = 0
    device: str = "auto"
    focal_alpha: float = 1.0
    focal_gamma: float = 2.0
    grad_clip: float = 0.0
    deterministic: bool = True
    max_steps_per_epoch: int | None = None
    task_loss: str = "focal"  # 'focal' (the papers), 'power' (soft targets from the label powers), 'focal+power'
    power_temperature: float = 1.0  # dB, T of the power soft targets
    select_by: str = "mpr"  # best epoch by validation 'mpr' or focal 'loss'
    # 'prior': start the output heads' biases at the log label prior of the training split (Lin et al.'s focal
    # loss init); 'none': the layers' default init
    head_bias: str = "none"


@dataclass
class DataFreeConfig:
    """Zakeri et al. DF-KD: generator 500 -> 64 -> input, Adam 1e-3, batch 32, alpha 1e-4, beta 1e-2."""

    generator_steps: int = 500
    student_steps: int = 500
    batch_size: int = 32
    lr: float = 1e-3
    noise_dim: int = 500
    hidden: int = 64
    act_weight: float = 1e-4
    ent_weight: float = 1e-2
    loss: str = "mse"
    metadata_source: str = "features"
    entropy_mode: str = "sample"
    # eq. 5 on the teacher's stored input statistics (per step and bin; frame differences), 0 = off (the
    # paper); see kd.data_free.input_metadata_loss
    input_weight: float = 0.0
    step_weight: float = 0.0
    # adversarial generator (an extension; 0 = the paper's frozen generator): during student training, one
    # generator step every `generator_every` student steps on the inversion loss minus `adversarial_weight`
    # times the teacher-student KL; see kd.data_free.train_student_data_free
    generator_every: int = 0
    adversarial_weight: float = 0.0


@dataclass
class DistillConfig:
    """How a student learns from a teacher (CRKD alpha 0.5, T 2; Zakeri et al. T 5)."""

    method: str = "none"
    teacher: str | None = None
    alpha: float = 0.5
    temperature: float = 2.0
    distances: list[str] = field(default_factory=lambda: list(DISTANCES))
    curvature: float = 1.0
    feature_mode: str = "kl"
    end_source: str = "features"
    # The teacher is frozen, in eval mode, and the training samples are not augmented, so its outputs per
    # sample never change: computing them once over the training split (one pass, like one epoch of
    # forwards) replaces a teacher forward per student step and the loading of the teacher-only inputs.
    # Off: the teacher runs live on every batch (what a user with augmented data would need).
    cache_teacher: bool = True
    data_free: DataFreeConfig = field(default_factory=DataFreeConfig)


@dataclass
class RunConfig:
    """The whole run: one YAML file."""

    name: str = "model"
    role: str = "teacher"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)


# --------------------------------------------------------------------------------------------------
# Generic strict dataclass parsing
# --------------------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (scalars, Optional, list[str], dict, dataclasses)."""
    origin = getattr(tp, "__origin__", None)
    args = getattr(tp, "__args__", ())
    if dataclasses.is_dataclass(tp):
        if value is None:
            return tp()
        return _parse(tp, value, where)
    if origin is not None and type(None) in args:  # Optional[X] / X | None
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is None and type(None) in args:  # X | None (types.UnionType)
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin in (list, Sequence):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} ({value!r})")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} ({value!r})")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _parse(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping of keys, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = [str(k) for k in raw if k not in allowed]
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(prefix + k for k in unknown)}; "
            f"allowed keys{' in ' + where if where else ''}: {', '.join(allowed)}"
        )
    kwargs = {}
    for name in allowed:
        if name in raw:
            kwargs[name] = _coerce(raw[name], hints[name], f"{where}.{name}" if where else name)
    return cls(**kwargs)


# --------------------------------------------------------------------------------------------------
# Semantic validation
# --------------------------------------------------------------------------------------------------
def _choice(value: str, allowed: Sequence[str], where: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")


def _positive(value: float | int, where: str, strict: bool = True) -> None:
    if (value <= 0) if strict else (value < 0):
        raise ConfigError(f"{where}: must be {'>' if strict else '>='} 0, got {value}")


def validate(cfg: RunConfig) -> RunConfig:
    """Range and choice checks across sections; returns ``cfg`` (normalised in place)."""
    _choice(cfg.role, ROLES, "role")
    if not cfg.name or "/" in cfg.name:
        raise ConfigError(f"name: must be a non-empty name without '/', got {cfg.name!r}")
    d = cfg.data
    if not d.modalities:
        raise ConfigError("data.modalities: at least one modality is needed")
    for i, m in enumerate(d.modalities):
        _choice(m, MODALITIES, f"data.modalities[{i}]")
    if len(set(d.modalities)) != len(d.modalities):
        raise ConfigError(f"data.modalities: duplicates in {d.modalities}")
    if d.path is None and d.synthetic is None:
        raise ConfigError("data: give data.path (a dataset) or data.synthetic (generated in memory)")
    if d.generate is not None and d.path is None:
        raise ConfigError("data.generate: needs data.path (where the generated dataset is written)")
    _positive(d.num_workers, "data.num_workers", strict=False)
    if not cfg.model.name:
        raise ConfigError("model.name: required (a name of the models registry)")
    t = cfg.train
    _positive(t.epochs, "train.epochs")
    _positive(t.batch_size, "train.batch_size")
    _positive(t.lr, "train.lr")
    _positive(t.weight_decay, "train.weight_decay", strict=False)
    _choice(t.optimizer, ("adam", "adamw", "sgd"), "train.optimizer")
    _choice(t.scheduler, ("none", "cosine", "cosine-restarts", "linear-decay"), "train.scheduler")
    _positive(t.restart_every, "train.restart_every")
    _positive(t.decay_start, "train.decay_start", strict=False)
    _positive(t.decay_per_epoch, "train.decay_per_epoch", strict=False)
    _positive(t.min_lr, "train.min_lr", strict=False)
    if t.device not in ("auto", "cpu", "cuda") and not t.device.startswith("cuda:"):
        raise ConfigError(f"train.device: {t.device!r} is not one of auto, cpu, cuda, cuda:<n>")
    _positive(t.focal_alpha, "train.focal_alpha")
    _positive(t.focal_gamma, "train.focal_gamma", strict=False)
    _positive(t.grad_clip, "train.grad_clip", strict=False)
    if t.max_steps_per_epoch is not None:
        _positive(t.max_steps_per_epoch, "train.max_steps_per_epoch")
    _choice(t.task_loss, ("focal", "power", "focal+power"), "train.task_loss")
    _positive(t.power_temperature, "train.power_temperature")
    _choice(t.select_by, ("mpr", "loss"), "train.select_by")
    _choice(t.head_bias, ("none", "prior"), "train.head_bias")
    k = cfg.distill
    _choice(k.method, DISTILL_METHODS, "distill.method")
    if not 0.0 <= k.alpha <= 1.0:
        raise ConfigError(f"distill.alpha: must be in [0, 1], got {k.alpha}")
    _positive(k.temperature, "distill.temperature")
    _positive(k.curvature, "distill.curvature")
    if not k.distances:
        raise ConfigError(f"distill.distances: at least one of {', '.join(DISTANCES)}")
    for i, dist in enumerate(k.distances):
        _choice(dist, DISTANCES, f"distill.distances[{i}]")
    _choice(k.feature_mode, ("kl", "mse"), "distill.feature_mode")
    _choice(k.end_source, ("features", "logits"), "distill.end_source")
    f = k.data_free
    for name in ("generator_steps", "student_steps", "noise_dim", "hidden"):
        _positive(getattr(f, name), f"distill.data_free.{name}")
    if f.batch_size < 2:
        raise ConfigError(f"distill.data_free.batch_size: must be >= 2, got {f.batch_size}")
    _positive(f.lr, "distill.data_free.lr")
    _positive(f.act_weight, "distill.data_free.act_weight", strict=False)
    _positive(f.ent_weight, "distill.data_free.ent_weight", strict=False)
    _positive(f.input_weight, "distill.data_free.input_weight", strict=False)
    _positive(f.step_weight, "distill.data_free.step_weight", strict=False)
    _positive(f.generator_every, "distill.data_free.generator_every", strict=False)
    _positive(f.adversarial_weight, "distill.data_free.adversarial_weight", strict=False)
    if f.adversarial_weight > 0 and f.generator_every == 0:
        raise ConfigError("distill.data_free.adversarial_weight: needs generator_every > 0 (the generator "
                          "is frozen during student training otherwise)")
    if f.generator_every > 0 and f.metadata_source != "features":
        raise ConfigError("distill.data_free.generator_every: the adversarial generator steps use the stored "
                          f"feature statistics; needs metadata_source 'features', got {f.metadata_source!r}")
    _choice(f.loss, ("kl", "mse"), "distill.data_free.loss")
    _choice(f.metadata_source, ("features", "batchnorm", "both"), "distill.data_free.metadata_source")
    _choice(f.entropy_mode, ("sample", "balance"), "distill.data_free.entropy_mode")
    if k.method.startswith("rkd-") and t.batch_size < 2:
        raise ConfigError("train.batch_size: relational KD needs batches of at least 2 samples")
    return cfg


def check_modalities(
    student: Sequence[str], teacher: Sequence[str], dataset: Sequence[str] | None, method: str
) -> None:
    """Cross-modal rules between a teacher, a student and the data they share during distillation.

    * the distillation data must carry every modality the teacher *and* the student read (both see the
      same batch); a student that needs a modality the teacher's dataset lacks cannot be distilled;
    * data-free KD feeds the student the teacher's generated inputs, so the student may only read the
      modality the generator synthesises: the teacher must be single-modality and the student the same.
    """
    if method == "data-free":
        if len(teacher) != 1:
            raise ConfigError(
                f"distill.method 'data-free': the generator synthesises one modality, but the teacher reads "
                f"{list(teacher)}; use a single-modality teacher"
            )
        if list(student) != list(teacher):
            raise ConfigError(
                f"data.modalities: a data-free student must read exactly the teacher's modality "
                f"{list(teacher)}, got {list(student)}"
            )
        return
    if dataset is not None:
        need = [m for m in dict.fromkeys([*teacher, *student]) if m not in dataset]
        if need:
            lacking = [m for m in need if m in student and m not in teacher]
            who = "the student" if lacking else "the teacher"
            raise ConfigError(
                f"data.modalities: {who} needs {need}, which the distillation dataset (modalities "
                f"{list(dataset)}) lacks"
            )


def config_from_dict(raw: Any, source: str = "config") -> RunConfig:
    """Parse and validate a config mapping (e.g. from YAML or a checkpoint sidecar)."""
    if raw is None:
        raise ConfigError(f"{source}: empty configuration")
    try:
        cfg = _parse(RunConfig, raw, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        return validate(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Plain-JSON/YAML form (round-trips through :func:`config_from_dict`)."""
    return dataclasses.asdict(cfg)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML config; ``overrides`` are ``section.key=value`` strings (value parsed as YAML)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config: no such file {str(p)!r}")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(raw).__name__}")
    for item in overrides:
        apply_override(raw, item)
    return config_from_dict(raw, str(p))


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in a raw config mapping (unknown keys are caught later by the parser)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set: expected key.path=value, got {item!r}")
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
        node = nxt
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError:
        node[parts[-1]] = value

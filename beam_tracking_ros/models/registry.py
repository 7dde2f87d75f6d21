"""Model registry: build any teacher or student by name from a (YAML) config, and count its cost.

Why a registry: the trainer, the export model card and the live node refer to models by name plus a config
dict; unknown config keys must fail loudly (a typo silently ignored would train a different model), and
every model's parameters and FLOPs per prediction must be counted, not guessed.

Named configs (``MODEL_CONFIGS``): small defaults that train in minutes on a 2-core CPU, and paper-scale
variants (``*-paper`` and CRKD's student sizes ``student-radar-mlp-6m/-13m/-34m``; the sizes hold at the
default inputs: window 8, 64 HPS points x 6 features, 64 beams).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..data.preprocess import PreprocessConfig, output_shapes
from .beam_models import LidarGRU, MaStudent, MultimodalTeacher, RadarMLPStudent
from .toy import TOY_NAMES, ToyBeamModel

__all__ = [
    "MODEL_CONFIGS",
    "build_model",
    "check_distillation_pair",
    "count_flops",
    "count_parameters",
    "example_batch",
    "list_models",
    "model_factory",
    "model_summary",
]

MODEL_CONFIGS: dict[str, tuple[type[nn.Module], dict[str, Any], str]] = {
    # name: (class, default config, role)
    "teacher": (MultimodalTeacher, {}, "teacher"),
    "teacher-crkd": (MultimodalTeacher, {"fusion": "transformer"}, "teacher"),
    "teacher-crkd-paper": (
        MultimodalTeacher,
        {"fusion": "transformer", "d_model": 256, "cnn_width": 64, "heads": 8, "layers": 4},
        "teacher",
    ),
    "teacher-ma": (
        MultimodalTeacher,
        {"modalities": ("camera_motion", "radar_maps"), "fusion": "gru-mha"},
        "teacher",
    ),
    "teacher-ma-paper": (
        MultimodalTeacher,
        {
            "modalities": ("camera_motion", "radar_maps"),
            "fusion": "gru-mha",
            "d_model": 256,
            "cnn_width": 64,
            "heads": 8,
        },
        "teacher",
    ),
    "student-radar-mlp": (RadarMLPStudent, {"hidden": 32}, "student"),
    "student-radar-mlp-6m": (RadarMLPStudent, {"hidden": 812}, "student"),
    "student-radar-mlp-13m": (RadarMLPStudent, {"hidden": 1313}, "student"),
    "student-radar-mlp-34m": (RadarMLPStudent, {"hidden": 2296}, "student"),
    "student-ma": (MaStudent, {}, "student"),
    "student-ma-paper": (MaStudent, {"d_model": 64, "cnn_width": 16, "heads": 4}, "student"),
    "teacher-lidar-gru": (LidarGRU, {"hidden": 128}, "teacher"),
    "student-lidar-gru": (LidarGRU, {"hidden": 32}, "student"),
}


def list_models() -> tuple[str, ...]:
    return tuple(MODEL_CONFIGS)


def _accepted(cls: type[nn.Module]) -> set[str]:
    return {p for p in inspect.signature(cls.__init__).parameters if p != "self"}


def build_model(name: str, **cfg: Any) -> nn.Module:
    """Build model ``name`` with its named defaults overridden by ``cfg``.

    Raises ValueError naming an unknown model or unknown config keys. The returned module has
    ``modalities`` (tuple of input keys), ``window``, ``horizon``, ``num_beams``, ``mid_dim``, ``end_dim``,
    and ``registry_name`` / ``role`` / ``config`` for the model card.
    """
    if name not in MODEL_CONFIGS:
        raise ValueError(f"model: unknown model {name!r}; choose from {list_models()}")
    cls, defaults, role = MODEL_CONFIGS[name]
    unknown = sorted(set(cfg) - _accepted(cls))
    if unknown:
        raise ValueError(f"model {name!r}: unknown config keys {unknown}; accepted: {sorted(_accepted(cls))}")
    full = {**defaults, **cfg}
    if "modalities" in full:
        full["modalities"] = tuple(full["modalities"])
    model = cls(**full)
    model.registry_name = name
    model.role = role
    model.config = full
    return model


def model_factory(name: str) -> tuple[Callable[..., nn.Module], set[str]]:
    """The constructor behind an architecture name in a run config or model card, and its arguments.

    Every registry name (built by :func:`build_model`, so the card attributes are set) and the trainer's
    test model ``toy-gru``. One lookup for the trainer and the inference loader, so a model that trains
    also loads. ValueError names an unknown architecture.
    """
    if name in TOY_NAMES:
        return ToyBeamModel, _accepted(ToyBeamModel)
    if name not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join([*list_models(), TOY_NAMES[0]])}")

    def factory(**kwargs: Any) -> nn.Module:
        return build_model(name, **kwargs)

    return factory, _accepted(MODEL_CONFIGS[name][0])


def example_batch(
    model: nn.Module, batch_size: int = 1, cfg: PreprocessConfig | None = None
) -> dict[str, torch.Tensor]:
    """Zero inputs shaped for ``model`` (per ``PreprocessConfig``), for counting and export."""
    shapes = output_shapes(cfg or PreprocessConfig())
    return {m: torch.zeros(batch_size, model.window, *shapes[m]) for m in model.modalities}


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _gru_flops(module: nn.GRU, inp: torch.Tensor) -> int:
    """FLOPs of an nn.GRU call (FlopCounterMode does not see the fused CPU kernel).

    Per step and layer: 3 gates x (input and hidden matmuls: 2*in*h + 2*h*h) + ~ 8*h elementwise ops
    (sigmoids, tanh, gating), times 2 directions if bidirectional.
    """
    batch, steps = (inp.shape[0], inp.shape[1]) if module.batch_first else (inp.shape[1], inp.shape[0])
    h = module.hidden_size
    dirs = 2 if module.bidirectional else 1
    total = 0
    in_size = module.input_size
    for _ in range(module.num_layers):
        total += dirs * steps * batch * (3 * (2 * in_size * h + 2 * h * h) + 8 * h)
        in_size = h * dirs
    return total


@torch.no_grad()
def count_flops(model: nn.Module, batch: Mapping[str, torch.Tensor] | None = None) -> int:
    """FLOPs of one forward pass per sample (one prediction of all H + 1 steps), counted by execution.

    Uses ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention; FLOPs = 2 x MACs)
    plus forward hooks for ``nn.GRU`` whose fused kernel the counter cannot see. Runs in eval mode.
    """
    batch = dict(batch) if batch is not None else example_batch(model, 1)
    n = next(iter(batch.values())).shape[0]
    gru_total = 0

    def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], _out: Any) -> None:
        nonlocal gru_total
        gru_total += _gru_flops(mod, args[0])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.GRU)]
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            model(batch)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return round((counter.get_total_flops() + gru_total) / n)


def model_summary(model: nn.Module) -> dict[str, Any]:
    """Name, role, modalities, parameter count and FLOPs per prediction (for model cards and tables)."""
    return {
        "name": getattr(model, "registry_name", type(model).__name__),
        "role": getattr(model, "role", None),
        "modalities": list(model.modalities),
        "parameters": count_parameters(model),
        "flops_per_prediction": count_flops(model),
    }


def check_distillation_pair(teacher: nn.Module, student: nn.Module) -> None:
    """Reject teacher/student pairs that cannot be distilled together, saying why.

    Cross-modal KD (CRKD) allows a student with *different* modalities (e.g. radar-only from a multimodal
    teacher) because both are fed from the same dataset sample; what must agree is the output space.
    """
    for attr in ("num_beams", "horizon", "window"):
        if getattr(teacher, attr) != getattr(student, attr):
            raise ValueError(
                f"teacher/student mismatch: {attr} {getattr(teacher, attr)} vs {getattr(student, attr)}"
            )

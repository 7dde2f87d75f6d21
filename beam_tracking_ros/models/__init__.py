"""Teachers, students, per-modality encoders, the model registry and parameter/FLOP counting."""

from .beam_models import LidarGRU, MaStudent, MultimodalTeacher, RadarMLPStudent
from .registry import (
    MODEL_CONFIGS,
    build_model,
    check_distillation_pair,
    count_flops,
    count_parameters,
    example_batch,
    list_models,
    model_factory,
    model_summary,
)

__all__ = [
    "MODEL_CONFIGS",
    "LidarGRU",
    "MaStudent",
    "MultimodalTeacher",
    "RadarMLPStudent",
    "build_model",
    "check_distillation_pair",
    "count_flops",
    "count_parameters",
    "example_batch",
    "list_models",
    "model_factory",
    "model_summary",
]

"""The one error type for bad sensor input, shared by preprocessing and the geometry baseline.

Why its own module: the geometry baseline (``geometry_baseline.py``) raises it and preprocessing uses the
baseline for the beam-space features; with the class here neither has to import the other to share it.
The live tracker counts it as a degraded frame instead of crashing.
"""

from __future__ import annotations

__all__ = ["PreprocessError"]


class PreprocessError(ValueError):
    """Bad sensor input; the message starts with the modality name so logs say which sensor failed."""

    def __init__(self, modality: str, message: str) -> None:
        super().__init__(f"{modality}: {message}")
        self.modality = modality

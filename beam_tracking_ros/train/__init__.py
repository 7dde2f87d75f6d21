"""Training, distillation, evaluation and export (``beam-tracking train|distill|evaluate|export``).

Import the submodules directly (config, trainer, distill, checkpoint, export, card, cli); ``load_model``
is re-exported lazily here for the live tracker so that importing the package stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from .export import load_model

        return load_model
    raise AttributeError(name)

"""The training package's entry points: fit (teacher, KD student or data-free student), evaluate, export.

Why one module: the CLI (``beam-tracking train|distill|evaluate|export``), the trainer node and the
benchmarks all call these functions, never each other's argv. It also keeps the two training loops
apart: :mod:`.trainer` runs supervised and feature/logit-KD training, :mod:`.distill` the data-free
runs (Zakeri et al.), which builds on the trainer's data and evaluation helpers; only this module
knows both, so neither imports the other back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .config import RunConfig
from .distill import fit_data_free
from .export import export_run
from .trainer import FitResult, evaluate_run, fit_supervised

__all__ = ["evaluate_run", "export_run", "fit"]


def fit(
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
    """Train ``cfg`` into ``out_dir``: data-free distillation when ``cfg.distill.method`` says so, else the
    supervised / feature-KD loop (see :func:`~.trainer.fit_supervised` for ``resume`` and
    ``stop_after_epochs``; a data-free run is short and restarts from its teacher instead)."""
    if cfg.distill.method == "data-free":
        return fit_data_free(cfg, out_dir, teacher_dir=teacher_dir, progress=progress, command=command, log=log)
    return fit_supervised(cfg, out_dir, teacher_dir=teacher_dir, resume=resume, progress=progress,
                          command=command, stop_after_epochs=stop_after_epochs, log=log)

"""Beam labels: optimal beam for one target vehicle (beam-tracking papers) or for the sum of RSS over
all vehicles (CRKD), for the current frame and the next H frames.

sum-RSS: CRKD picks "the beam pattern that maximizes the average received signal strength across
multiple vehicles"; the average and the sum of linear powers (mW) have the same argmax, so the
label power is the linear sum converted back to dBm.
"""
from __future__ import annotations

import numpy as np

LABEL_MODES = ("single", "sum_rss")


def sum_rss_dbm(powers_dbm: np.ndarray, axis: int = -2) -> np.ndarray:
    """Sum of linear received powers over vehicles (axis) in dBm. (V, B) -> (B,)."""
    p = np.asarray(powers_dbm, dtype=np.float64)
    if p.shape[axis] == 0:
        raise ValueError("powers_dbm: no vehicles to sum over")
    m = np.max(p, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    s = np.sum(10.0 ** ((p - m) / 10.0), axis=axis, keepdims=True)
    return np.squeeze(10.0 * np.log10(s) + m, axis=axis).astype(np.float32)


def label_powers(powers_dbm: np.ndarray, mode: str, target: int | None = None) -> np.ndarray:
    """Per-beam label powers (B,) from per-vehicle powers (V, B).

    mode 'single' needs ``target`` (row index of the target vehicle); 'sum_rss' sums all rows.
    """
    p = np.asarray(powers_dbm)
    if p.ndim != 2:
        raise ValueError(f"powers_dbm must be (V, B), got shape {p.shape}")
    if mode == "single":
        if target is None or not 0 <= target < p.shape[0]:
            raise ValueError(f"target: row {target!r} out of range for {p.shape[0]} vehicles")
        return p[target].astype(np.float32)
    if mode == "sum_rss":
        return sum_rss_dbm(p, axis=0)
    raise ValueError(f"mode: unknown label mode {mode!r}, expected one of {LABEL_MODES}")


def optimal_beam(powers_dbm: np.ndarray) -> np.ndarray:
    """Index of the strongest beam along the last axis."""
    return np.argmax(np.asarray(powers_dbm), axis=-1)


def horizon_labels(frame_powers_dbm: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels for the current frame and the next H frames.

    frame_powers_dbm: (T, B) label powers per frame (already reduced to single/sum-RSS).
    Returns (beams (T - H, H + 1) int64, powers (T - H, H + 1, B) float32), where row t holds the
    optimal beams / powers of frames t, t+1, ..., t+H. Frames without H future frames are dropped.
    """
    p = np.asarray(frame_powers_dbm)
    if p.ndim != 2:
        raise ValueError(f"frame_powers_dbm must be (T, B), got shape {p.shape}")
    if not isinstance(horizon, (int, np.integer)) or horizon < 0:
        raise ValueError(f"horizon must be a non-negative integer, got {horizon!r}")
    t = p.shape[0] - horizon
    if t <= 0:
        raise ValueError(f"horizon={horizon}: need more than {horizon} frames, got {p.shape[0]}")
    idx = np.arange(t)[:, None] + np.arange(horizon + 1)[None, :]
    windows = p[idx].astype(np.float32)
    return optimal_beam(windows), windows

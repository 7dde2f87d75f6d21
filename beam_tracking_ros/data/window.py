"""Sliding observation window of the last P preprocessed frames (CRKD's window P, Ma et al.'s past images),
and the one rule for when a window must start over (:class:`ContinuityPolicy`).

Why a preallocated ring buffer: the live node pushes a frame per synchronized set (10-20 Hz) and stacks the
window for every prediction; copying P frames of images each time must not allocate, and the stacked
order must always be oldest -> newest, which is what the models were trained on.

Why one continuity policy: a model only knows windows like the ones it was trained on. The dataset builder
and the live tracker both cut the window where the policy says (a stamp that does not advance, a gap over
``max_gap_s``, a dropped frame), and the policy -- with the frame period the data had -- travels from the
dataset's meta into the model card, so a live window never spans a hole the builder would have cut and
frames arriving faster than the model's period are thinned to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .preprocess import motion_masks

__all__ = ["ContinuityPolicy", "ObservationWindow"]

#: a frame closer than this many periods to the window's newest one is an extra frame of a faster source
EARLY_FRACTION = 0.75
#: the measured frame spacing may differ from the period by this fraction before it is reported
RATE_TOLERANCE = 0.25


@dataclass(frozen=True)
class ContinuityPolicy:
    """When an observation window starts over, the same offline (dataset builder) and live (tracker).

    A window never spans a stamp that does not advance (a looping bag, a restarted simulator), a gap longer
    than ``max_gap_s`` (None: no limit), or a frame that was dropped (a missing or malformed modality; and,
    offline, a frame without a label). ``period_s`` is the frame period of the data (the spacing of a
    window's frames and of the predicted horizon steps); None where unknown (an old model card).
    """

    period_s: float | None = None
    max_gap_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("period_s", "max_gap_s"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be positive seconds or None, got {v!r}")

    def breaks(self, last_stamp: float | None, stamp: float) -> str | None:
        """Why a window holding ``last_stamp`` cannot take ``stamp``: 'duplicate', 'backwards', 'gap', or None."""
        if last_stamp is None:
            return None
        if stamp == last_stamp:
            return "duplicate"  # the same instant twice would double-weight it
        if stamp < last_stamp:
            return "backwards"
        if self.max_gap_s is not None and stamp - last_stamp > self.max_gap_s:
            return "gap"
        return None

    def too_early(self, last_stamp: float | None, stamp: float) -> bool:
        """True for a frame of a source faster than the period (e.g. 20 Hz for a 10 Hz model): skip it."""
        return (self.period_s is not None and last_stamp is not None
                and 0 < stamp - last_stamp < EARLY_FRACTION * self.period_s)

    def rate_mismatch(self, spacing_s: float | None) -> bool:
        """True when windows are filled at a spacing the model never saw (a source slower than its period,
        or one whose rate is not a multiple of it)."""
        return (self.period_s is not None and spacing_s is not None
                and abs(spacing_s - self.period_s) > RATE_TOLERANCE * self.period_s)

    def to_dict(self) -> dict[str, float | None]:
        return {"period_s": self.period_s, "max_gap_s": self.max_gap_s}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> ContinuityPolicy:
        """From a dataset's meta or a model card (``window_policy``); an empty policy for older ones."""
        if not d:
            return cls()
        if not isinstance(d, Mapping):
            raise ValueError(f"window_policy: expected a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - {"period_s", "max_gap_s"})
        if unknown:
            raise ValueError(f"window_policy: unknown keys {unknown}")
        return cls(**{k: (None if v is None else float(v)) for k, v in d.items()})


class ObservationWindow:
    """Bounded window of the last ``P`` frames (dicts of fixed-shape arrays) with their stamps.

    ``horizon`` (H, default 3) is carried for the models' output size (H + 1 predicted beams); the window
    itself holds only past observations. The first push fixes the keys, shapes and dtypes; later frames
    must match them (a mismatch is a ValueError naming the key).
    """

    def __init__(self, size: int = 8, horizon: int = 3) -> None:
        if int(size) < 1:
            raise ValueError(f"size: the window needs P >= 1, got {size}")
        if int(horizon) < 0:
            raise ValueError(f"horizon: must be >= 0, got {horizon}")
        self.size = int(size)
        self.horizon = int(horizon)
        self._buf: dict[str, np.ndarray] = {}
        self._stamps = np.zeros(self.size, dtype=np.float64)
        self._next = 0  # slot the next frame goes to
        self._count = 0
        self.resets = 0

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        return self._count

    @property
    def is_full(self) -> bool:
        return self._count == self.size

    @property
    def fill_ratio(self) -> float:
        """How full the window is, in [0, 1] (published with every prediction)."""
        return self._count / self.size

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._buf)

    @property
    def last_stamp(self) -> float | None:
        return None if self._count == 0 else float(self._stamps[(self._next - 1) % self.size])

    def reset(self) -> None:
        """Forget every frame (kept buffers are reused; e.g. after a clock jump backwards)."""
        self._next = 0
        self._count = 0
        self.resets += 1

    # ------------------------------------------------------------------ writing
    def push(self, frame: Mapping[str, np.ndarray], stamp: float, on_backwards: str = "reset") -> bool:
        """Append a frame. Returns True when the window was reset because ``stamp`` went backwards.

        ``on_backwards``: 'reset' (a bag looped or the clock jumped: start over with this frame) or
        'raise'. Equal stamps count as backwards (a duplicate frame would double-weight an instant).
        """
        if on_backwards not in ("reset", "raise"):
            raise ValueError(f"on_backwards: expected 'reset' or 'raise', got {on_backwards!r}")
        if not np.isfinite(stamp):
            raise ValueError(f"stamp: must be finite, got {stamp}")
        if not frame:
            raise ValueError("frame: empty")
        was_reset = False
        last = self.last_stamp
        if last is not None and stamp <= last:
            if on_backwards == "raise":
                raise ValueError(f"stamp: {stamp} is not after the newest stamp {last}")
            self.reset()
            was_reset = True
        if not self._buf:
            self._allocate(frame)
        elif set(frame) != set(self._buf):
            raise ValueError(f"frame: keys {sorted(frame)} differ from the window's {sorted(self._buf)}")
        slot = self._next
        for key, value in frame.items():
            arr = np.asarray(value)
            buf = self._buf[key]
            if arr.shape != buf.shape[1:]:
                raise ValueError(f"frame[{key!r}]: shape {arr.shape} differs from {buf.shape[1:]}")
            buf[slot] = arr
        self._stamps[slot] = stamp
        self._next = (slot + 1) % self.size
        self._count = min(self._count + 1, self.size)
        return was_reset

    def _allocate(self, frame: Mapping[str, np.ndarray]) -> None:
        for key, value in frame.items():
            arr = np.asarray(value)
            dtype = np.float32 if np.issubdtype(arr.dtype, np.floating) else arr.dtype
            self._buf[key] = np.zeros((self.size, *arr.shape), dtype=dtype)

    # ------------------------------------------------------------------ reading
    def _order(self) -> np.ndarray:
        """Buffer slots oldest -> newest."""
        start = (self._next - self._count) % self.size
        return (start + np.arange(self._count)) % self.size

    def stamps(self) -> np.ndarray:
        return self._stamps[self._order()].copy()

    def stack(self, pad: str = "none", motion_threshold: float | None = None) -> dict[str, np.ndarray]:
        """Stack into ``(P, ...)`` arrays, oldest first (fancy indexing: one gather per key).

        ``pad``: 'none' requires a full window (ValueError otherwise); 'repeat' fills the missing oldest
        slots with the oldest available frame; 'zeros' with zeros. With ``motion_threshold`` and a
        ``camera_gray`` key, also returns ``camera_motion`` (Ma et al.'s masks, computed on the window).
        """
        if self._count == 0:
            raise ValueError("window is empty")
        missing = self.size - self._count
        if missing and pad == "none":
            raise ValueError(f"window not full ({self._count}/{self.size}); pass pad='repeat' or 'zeros'")
        if pad not in ("none", "repeat", "zeros"):
            raise ValueError(f"pad: expected 'none', 'repeat' or 'zeros', got {pad!r}")
        order = self._order()
        if missing and pad == "repeat":
            order = np.concatenate([np.full(missing, order[0]), order])
        out: dict[str, np.ndarray] = {}
        for key, buf in self._buf.items():
            got = buf[order]
            if missing and pad == "zeros":
                got = np.concatenate([np.zeros((missing, *buf.shape[1:]), dtype=buf.dtype), got])
            out[key] = got
        if motion_threshold is not None and "camera_gray" in out:
            out["camera_motion"] = motion_masks(out["camera_gray"], motion_threshold)
        return out

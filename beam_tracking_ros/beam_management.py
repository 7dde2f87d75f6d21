"""Beam management with predictions: sweep only the predicted candidates, serve the best measured one.

Why: a prediction is worth what it saves an RSU. In 5G NR FR2 an RSU sweeps up to 64 SSB beams in every
burst; exhaustive training of 64-256 beams costs 20-40 % of the resources. With a ``BeamPrediction`` the
RSU measures only the top-k candidates, serves the best *measured* one (so a wrong ranking inside the
top-k costs nothing), and falls back to a full sweep when the prediction fails it. This module is that
loop without ROS (the node, ``ros/beam_manager_node.py``, and the benchmark, ``bench/beam_management.py``,
both run it):

* :func:`adaptive_k`: the smallest k whose cumulative predicted probability reaches a target (few beams
  when the model is sure, more when it is not), clamped to ``[k_min, k_max]``;
* :class:`BeamManager`: per frame, :meth:`~BeamManager.request` plans the sweep from the latest prediction
  (top-k, or the whole codebook when there is no usable prediction), :meth:`~BeamManager.on_measurement`
  serves the best measured beam and detects **beam failure** -- the best measured power more than
  ``failure_drop_db`` below the last good frame's -- after which :meth:`~BeamManager.recovery_request`
  asks for a full sweep in the same frame (NR bursts come every 20 ms, a frame is 100 ms: a second
  sweep fits). Every frame has a serving beam: without a measurement the last one stays.

Bad input never raises out of the manager: a prediction for another codebook, NaN powers, a measurement
of beams that were not requested, a late or missing measurement -- each is counted in
:attr:`BeamManager.counts` and handled by the fallback.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .data.beam_history import SweepRecord

__all__ = [
    "BeamManager",
    "Serving",
    "SweepPolicy",
    "SweepRequest",
    "adaptive_k",
    "candidate_beams",
    "run_episode",
    "scores_to_probabilities",
]


@dataclass(frozen=True)
class SweepPolicy:
    """How many predicted beams to measure, and when to give up on the prediction.

    k: a fixed number of candidates (> 0), or 0 for the adaptive rule: the smallest k whose cumulative
    probability reaches ``target_probability``, within ``[k_min, k_max]``. failure_drop_db: beam failure
    when the best measured power falls this far below the last good frame's (then a full sweep).
    prediction_deadline_s: a prediction older than this is not used (full sweep). include_serving: also
    measure the beam served last frame (the beam history every RSU keeps: one beam more, and a wrong
    prediction then costs at most the change since the last frame).

    The defaults (adaptive, p >= 0.8, failure at 10 dB, the serving beam included) were chosen on the
    *validation* split of the default scene with the shipped teacher (bench/beam_management.py: the
    most overhead saved at <= 1 dB mean loss and <= 5 % outage); 6 dB fell back to full sweeps on
    ordinary fading and vehicles leaving, 3x the overhead for 0.05 dB less loss.
    """

    k: int = 0
    target_probability: float = 0.8
    k_min: int = 1
    k_max: int = 16
    failure_drop_db: float = 10.0
    prediction_deadline_s: float = 0.25
    include_serving: bool = True

    def __post_init__(self) -> None:
        if self.k < 0 or self.k_min < 1 or self.k_max < self.k_min:
            raise ValueError(f"need k >= 0 (0 = adaptive) and 1 <= k_min <= k_max, got k={self.k}, "
                             f"k_min={self.k_min}, k_max={self.k_max}")
        if not 0.0 < self.target_probability <= 1.0:
            raise ValueError(f"target_probability must be in (0, 1], got {self.target_probability}")
        if not (self.failure_drop_db > 0 and self.prediction_deadline_s > 0):
            raise ValueError("failure_drop_db and prediction_deadline_s must be positive")

    @property
    def label(self) -> str:
        return f"top-{self.k}" if self.k else f"adaptive p>={self.target_probability:g}"


def scores_to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (a model's logits -> the probabilities the rule sums), NaN-safe."""
    s = np.asarray(scores, dtype=np.float64)
    s = np.where(np.isfinite(s), s, -np.inf)
    top = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(top), top, 0.0))
    total = e.sum(axis=-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def adaptive_k(probs: np.ndarray, target: float, k_min: int = 1, k_max: int = 16) -> int:
    """Smallest k whose k most probable beams hold ``target`` of the probability, in ``[k_min, k_max]``."""
    p = np.sort(np.asarray(probs, dtype=np.float64))[::-1]
    k = int(np.searchsorted(np.cumsum(p), target - 1e-12) + 1)
    return int(min(max(k, k_min), k_max, p.size))


def candidate_beams(probs: np.ndarray, policy: SweepPolicy) -> np.ndarray:
    """The beams to measure for one prediction: the top-k by probability (k fixed or adaptive), among the
    beams with a probability at all (a BeamPrediction carries only its top-k: the rest is unknown)."""
    p = np.asarray(probs, dtype=np.float64)
    k = min(policy.k, p.size) if policy.k else adaptive_k(p, policy.target_probability, policy.k_min, policy.k_max)
    k = max(1, min(k, int(np.count_nonzero(p > 0))))
    order = np.argsort(-p, kind="stable")
    return np.sort(order[:k]).astype(np.int64)


@dataclass(frozen=True)
class SweepRequest:
    """Beams to measure in one frame. reason: 'prediction', 'no_prediction', 'bad_prediction',
    'stale_prediction' or 'beam_failure' (the last four are full sweeps)."""

    seq: int
    beams: np.ndarray
    full: bool
    reason: str


@dataclass(frozen=True)
class Serving:
    """The beam served after a sweep, its measured power, and whether the beam failed (recover now)."""

    beam: int
    power_dbm: float
    failed: bool
    measured: int


@dataclass
class BeamManager:
    """The per-frame loop of prediction-aided beam management (see the module docstring)."""

    codebook_size: int
    policy: SweepPolicy = field(default_factory=SweepPolicy)
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1, got {self.codebook_size}")
        self._probs: np.ndarray | None = None
        self._pred_stamp = -math.inf
        self._seq = 0
        self._open: SweepRequest | None = None
        self.serving_beam: int | None = None
        self.serving_power_dbm = float("nan")
        self._last_good_dbm: float | None = None

    # ---- inputs -----------------------------------------------------------------------------------
    def on_prediction(self, stamp_s: float, probs: Sequence[float] | np.ndarray) -> bool:
        """Keep the newest usable prediction; False (counted) when it cannot be used.

        ``probs`` (codebook_size,) may hold less than 1 in all (only the top-k a BeamPrediction carries:
        the rest of the mass is on beams it does not name); more than 1 is normalised."""
        p = np.asarray(probs, dtype=np.float64).reshape(-1)
        if p.size != self.codebook_size:
            self.counts["bad_prediction"] += 1
            return False
        if not np.all(np.isfinite(p)) or np.any(p < 0) or not p.sum() > 0 or not math.isfinite(stamp_s):
            self.counts["bad_prediction"] += 1
            return False
        total = p.sum()
        self._probs, self._pred_stamp = (p / total if total > 1.0 + 1e-3 else p), float(stamp_s)
        self.counts["predictions"] += 1
        return True

    def request(self, now_s: float) -> SweepRequest:
        """The sweep of this frame: the predicted candidates, or the whole codebook (counted why)."""
        if self._open is not None:  # the previous frame's measurement never came
            self.counts["missing_measurement"] += 1
        if self._probs is None:
            reason = "no_prediction"
        elif now_s - self._pred_stamp > self.policy.prediction_deadline_s:
            reason = "stale_prediction"
        else:
            reason = "prediction"
        if reason == "prediction":
            beams, full = candidate_beams(self._probs, self.policy), False
            if self.policy.include_serving and self.serving_beam is not None:
                beams = np.union1d(beams, [self.serving_beam]).astype(np.int64)
        else:
            beams, full = np.arange(self.codebook_size, dtype=np.int64), True
            self.counts["fallback_" + reason] += 1
        return self._issue(beams, full, reason)

    def abandon(self) -> bool:
        """Give up on the open request (its measurement did not come in time): counted as missing, and
        an answer arriving later is counted as late. False when nothing was open."""
        if self._open is None:
            return False
        self._open = None
        self.counts["missing_measurement"] += 1
        return True

    def recovery_request(self) -> SweepRequest:
        """A full sweep after a beam failure, in the same frame."""
        self.counts["fallback_beam_failure"] += 1
        return self._issue(np.arange(self.codebook_size, dtype=np.int64), True, "beam_failure")

    def _issue(self, beams: np.ndarray, full: bool, reason: str) -> SweepRequest:
        self._seq += 1
        req = SweepRequest(self._seq, beams, full, reason)
        self._open = req
        self.counts["sweeps"] += 1
        self.counts["full_sweeps"] += int(full)
        self.counts["beams_measured"] += int(beams.size)
        return req

    def on_measurement(self, seq: int, beams: Sequence[int] | np.ndarray,
                       powers_dbm: Sequence[float] | np.ndarray) -> Serving | None:
        """Serve the best measured requested beam. None (counted) for a measurement of no open request;
        beams that were not requested and NaN powers are dropped (counted). ``failed``: beam failure --
        call :meth:`recovery_request` and measure again."""
        req = self._open
        if req is None or seq != req.seq:
            self.counts["late_or_unknown_measurement"] += 1
            return None
        self._open = None
        b = np.asarray(beams, dtype=np.int64).reshape(-1)
        pw = np.asarray(powers_dbm, dtype=np.float64).reshape(-1)
        if b.size != pw.size:
            self.counts["bad_measurement"] += 1
            return self._keep()
        asked = np.isin(b, req.beams)
        if not asked.all():
            self.counts["unrequested_beams"] += int((~asked).sum())
        finite = np.isfinite(pw)
        if not finite.all():
            self.counts["nan_powers"] += int((~finite).sum())
        ok = asked & finite
        if not ok.any():
            self.counts["empty_measurement"] += 1
            return self._keep(failed=not req.full)
        i = int(np.flatnonzero(ok)[np.argmax(pw[ok])])
        beam, power = int(b[i]), float(pw[i])
        failed = (not req.full and self._last_good_dbm is not None
                  and power < self._last_good_dbm - self.policy.failure_drop_db)
        if failed:
            self.counts["beam_failures"] += 1
        else:
            self._last_good_dbm = power
        self.serving_beam, self.serving_power_dbm = beam, power
        return Serving(beam, power, bool(failed), int(ok.sum()))

    def _keep(self, failed: bool = False) -> Serving | None:
        """No usable measurement: the last serving beam stays (or none yet: the caller must sweep)."""
        if self.serving_beam is None:
            return None
        return Serving(self.serving_beam, float("nan"), failed, 0)


def run_episode(probs: np.ndarray | Callable[[int, list[SweepRecord]], np.ndarray], powers_dbm: np.ndarray,
                policy: SweepPolicy, stamps: np.ndarray | None = None,
                period_s: float = 0.1) -> dict[str, np.ndarray | Counter]:
    """The manager over one episode's frames, measurements taken from ``powers_dbm`` (T, B).

    probs: (T, B) the prediction for each frame (NaN rows: no prediction that frame), or -- for a model
    that reads the beam history -- ``probs(t, sweeps)``, called each frame with the sweeps this manager
    made in frames 0 .. t-1 (a closed loop: the model sees what its own candidates measured). Returns per frame
    the beams measured, the served beam, its realized power loss against the best beam of the frame, the
    time of the decision (prediction in -> sweep request out, ms), and the manager's counts. Used by the
    benchmark; the node runs the same manager over ROS.
    """
    t_n, b = powers_dbm.shape
    mgr = BeamManager(b, policy)
    stamps = np.arange(t_n) * period_s if stamps is None else np.asarray(stamps, dtype=np.float64)
    measured = np.zeros(t_n, dtype=np.int64)
    served = np.full(t_n, -1, dtype=np.int64)
    decision_ms = np.zeros(t_n)
    sweeps: list[SweepRecord] = []
    for t in range(t_n):
        p_t = probs(t, sweeps) if callable(probs) else probs[t]
        t0 = time.perf_counter()
        if np.all(np.isfinite(p_t)):
            mgr.on_prediction(stamps[t], p_t)
        req = mgr.request(stamps[t])
        decision_ms[t] = (time.perf_counter() - t0) * 1e3
        got = mgr.on_measurement(req.seq, req.beams, powers_dbm[t, req.beams])
        n = req.beams.size
        swept = [req.beams]
        if got is not None and got.failed:
            rec = mgr.recovery_request()
            got = mgr.on_measurement(rec.seq, rec.beams, powers_dbm[t, rec.beams])
            n += rec.beams.size
            swept.append(rec.beams)
        beams = np.unique(np.concatenate(swept)).astype(np.int64)
        sweeps.append(SweepRecord(beams, powers_dbm[t, beams].astype(np.float32), float(stamps[t])))
        measured[t] = n
        served[t] = -1 if got is None else got.beam
    best = powers_dbm.max(axis=1)
    loss = np.where(served >= 0, best - powers_dbm[np.arange(t_n), np.maximum(served, 0)], np.inf)
    return {"measured": measured, "served": served, "loss_db": loss, "decision_ms": decision_ms,
            "counts": mgr.counts}

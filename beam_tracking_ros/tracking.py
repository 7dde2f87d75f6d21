"""The beam tracker's ROS-free core: synchronized raw frames -> window -> model -> beam horizon.

The live node (``ros/beam_tracker_node.py``) converts messages to the raw CARLA-format arrays and
hands each synchronized set to :meth:`BeamTracker.push`; offline evaluation and the tests call the
same method with frames from the simulator or a dataset. Preprocessing and windowing are the
dataset builder's own functions (:func:`~beam_tracking_ros.data.preprocess.preprocess_frame`,
:class:`~beam_tracking_ros.data.window.ObservationWindow`), so a frame is prepared identically at
training and at run time.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .channel import ChannelModel, codebook_id
from .data.geometry_baseline import MODEL_NAME, GeometryBaseline, GeometryInputError, GeometrySite, power_shares
from .data.preprocess import BeamFeatureTracks, PreprocessConfig, PreprocessError, preprocess_frame
from .data.window import ContinuityPolicy, ObservationWindow
from .modalities import sensors_for_inputs

DEFAULT_MOTION_THRESHOLD = 0.05


class Predictor(Protocol):
    """A loaded model: torch or ONNX Runtime behind one call."""

    def predict(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """``inputs[key]`` is (1, P, ...) float32; returns logits (1, H + 1, C)."""


@dataclass
class HorizonPrediction:
    """The tracker's output for one synchronized frame."""

    stamp: float
    beams: np.ndarray  # (H + 1,) int, argmax per step
    top_k_beams: np.ndarray  # (H + 1, k) int, most likely first
    top_k_probs: np.ndarray  # (H + 1, k) float32
    latency_ms: float
    window_fill: float
    probs: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # (H + 1, C)
    degraded: bool = False  # made without what the model needs (the geometry baseline: no vehicle detected)


@dataclass
class TrackerStats:
    """Counters the node publishes on /diagnostics."""

    frames: int = 0
    predictions: int = 0
    window_resets: int = 0
    points_dropped: int = 0
    frames_skipped: int = 0  # extra frames of a source faster than the model's period (thinned out)
    breaks: collections.Counter = field(default_factory=collections.Counter)  # why windows restarted
    spacing_s: float | None = None  # smoothed spacing of the frames that entered the window


class BeamTracker:
    """Keeps the observation window of one model and predicts the beam horizon.

    ``inputs``: the model's input keys (its card's ``inputs``); ``window``/``horizon``: P and H the
    model was trained with; ``preprocess``: the model card's preprocessing config; ``policy``: its
    ``window_policy`` -- windows restart where the dataset builder restarted them (a stamp that does not
    advance, a gap over ``max_gap_s``, a dropped frame), and frames of a source faster than ``period_s``
    are skipped so the window holds frames spaced as in training.
    """

    def __init__(
        self,
        predictor: Predictor,
        inputs: Sequence[str],
        window: int,
        horizon: int,
        preprocess: PreprocessConfig | Mapping[str, Any] | None = None,
        top_k: int = 3,
        motion_threshold: float = DEFAULT_MOTION_THRESHOLD,
        policy: ContinuityPolicy | None = None,
    ) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.policy = policy or ContinuityPolicy()
        self.predictor = predictor
        self.inputs = tuple(inputs)
        self.sensors = sensors_for_inputs(self.inputs)
        self.modalities = tuple(self.sensors)
        self.horizon = int(horizon)
        self.top_k = int(top_k)
        self.motion_threshold = motion_threshold if "camera_motion" in self.inputs else None
        self.preprocess = (preprocess if isinstance(preprocess, PreprocessConfig)
                           else PreprocessConfig.from_dict(preprocess or {}))
        self.window = ObservationWindow(size=int(window), horizon=self.horizon)
        self.beam_tracks = BeamFeatureTracks()  # restarts with the window, as in the dataset builder
        self.stats = TrackerStats()

    def reset(self) -> None:
        """Forget the window and the beam-space features' vehicle tracks (a clock jump, a new episode)."""
        self.window.reset()
        self.beam_tracks.reset()

    def _restart(self, reason: str) -> None:
        if len(self.window):
            self.stats.window_resets += 1
            self.stats.breaks[reason] += 1
        self.reset()

    @property
    def rate_mismatch(self) -> bool:
        """Windows are being filled at a spacing the model was not trained on (see ContinuityPolicy)."""
        return self.policy.rate_mismatch(self.stats.spacing_s)

    def push(self, stamp: float, raw: Mapping[str, np.ndarray]) -> HorizonPrediction | None:
        """Add one synchronized frame (raw arrays keyed by sensor) and predict once the window is full.

        Raises :class:`~beam_tracking_ros.data.preprocess.PreprocessError` for a malformed modality; the
        bad frame never enters the window, and the window restarts (the dataset builder cuts its windows
        at a dropped frame too). A stamp that does not advance or a gap over the policy's ``max_gap_s``
        restarts the window with this frame; a frame too early for the model's period is skipped (None).
        """
        t0 = time.perf_counter()
        self.stats.frames += 1
        last = self.window.last_stamp
        reason = self.policy.breaks(last, stamp)
        if reason is None and self.policy.too_early(last, stamp):
            self.stats.frames_skipped += 1
            return None
        if reason is not None:
            self._restart(reason)
        try:
            frame, stats = preprocess_frame(raw, self.preprocess, modalities=self.sensors, return_stats=True,
                                            beam_tracks=self.beam_tracks, stamp=stamp, outputs=self.inputs)
        except PreprocessError:
            self._restart("dropped")
            raise
        self.stats.points_dropped += sum(stats.values())
        last = self.window.last_stamp
        if last is not None:
            gap = stamp - last
            sp = self.stats.spacing_s
            self.stats.spacing_s = gap if sp is None else 0.9 * sp + 0.1 * gap
        self.window.push(frame, stamp)
        if not self.window.is_full:
            return None
        stacked = self.window.stack(motion_threshold=self.motion_threshold)
        batch = {k: np.ascontiguousarray(stacked[k][None], dtype=np.float32) for k in self.inputs}
        logits = np.asarray(self.predictor.predict(batch), dtype=np.float32)[0]  # (H + 1, C)
        if logits.ndim != 2 or logits.shape[0] != self.horizon + 1:
            raise ValueError(f"model returned logits of shape {logits.shape}, expected (H + 1 = {self.horizon + 1}, C)")
        probs = softmax(logits)
        k = min(self.top_k, probs.shape[1])
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        self.stats.predictions += 1
        return HorizonPrediction(
            stamp=stamp,
            beams=top[:, 0].copy(),
            top_k_beams=top,
            top_k_probs=np.take_along_axis(probs, top, axis=1),
            latency_ms=(time.perf_counter() - t0) * 1e3,
            window_fill=self.window.fill_ratio,
            probs=probs,
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis, stable for large logits."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class _StepScore:
    n: int = 0
    top1: int = 0
    topk: int = 0
    loss_db: float = 0.0
    percentile: float = 0.0

    def add(self, beam: int, obs: np.ndarray, top_k: tuple[int, ...] = ()) -> None:
        best = int(np.argmax(obs))
        self.n += 1
        self.top1 += int(beam == best)
        self.topk += int(best in top_k)
        self.loss_db += float(obs[best] - obs[beam])
        # CRKD's percentile rank (metrics.percentile_rank): (B - rank + 1) / B, rank = 1 + #stronger beams
        self.percentile += float(obs.size - np.count_nonzero(obs > obs[beam])) / obs.size


class OnlineBeamScore:
    """Live accuracy of predictions against ground truth that arrives separately (the demo, bench).

    A prediction stamped ``t`` says, for step i, which beam is best at ``t + i * step``. Ground truth
    for those instants arrives later (or earlier) as observations; both are matched by stamp in
    bounded buffers, so the score covers every step of the horizon without unbounded memory.
    Stamps are matched to the nearest ``step / 2``.

    References on the very same scored steps, so a live figure is never read without them: the label
    prior (``prior_beam``: always the training set's most frequent beam) and, when observations carry
    them, the geometry ceiling (the argmax of the noise-, fading- and shadowing-free powers).
    """

    def __init__(self, horizon: int, step_s: float, max_pending: int = 4096, prior_beam: int | None = None) -> None:
        self.horizon = int(horizon)
        self.step_ns = round(step_s * 1e9)
        self.tol_ns = self.step_ns // 2
        self.max_pending = max_pending
        self.prior_beam = None if prior_beam is None else int(prior_beam)
        self.observations: collections.OrderedDict[int, tuple[np.ndarray, np.ndarray | None]] = \
            collections.OrderedDict()
        self.pending: collections.deque[tuple[int, int, int, tuple[int, ...]]] = collections.deque()
        self.steps = [_StepScore() for _ in range(self.horizon + 1)]
        self.refs: dict[str, list[_StepScore]] = {
            "prior": [_StepScore() for _ in range(self.horizon + 1)],
            "ceiling": [_StepScore() for _ in range(self.horizon + 1)],
        }

    def _key(self, stamp_ns: int) -> int:
        return round(stamp_ns / self.tol_ns)

    def add_observation(self, stamp_ns: int, powers_dbm: np.ndarray, ceiling_dbm: np.ndarray | None = None) -> None:
        """Ground truth (per-beam powers) at ``stamp_ns``, with the geometry ceiling's powers if known."""
        p = np.asarray(powers_dbm, dtype=np.float32)
        c = None if ceiling_dbm is None or len(ceiling_dbm) != p.size else np.asarray(ceiling_dbm, np.float32)
        self.observations[self._key(stamp_ns)] = (p, c)
        while len(self.observations) > self.max_pending:
            self.observations.popitem(last=False)
        self._resolve()

    def add_prediction(self, stamp_ns: int, beams: Sequence[int], top_k: Sequence[Sequence[int]]) -> None:
        """A horizon of predicted beams (and top-k candidates) made at ``stamp_ns``."""
        for i, (b, tk) in enumerate(zip(beams, top_k)):
            self.pending.append((stamp_ns + i * self.step_ns, i, int(b), tuple(int(x) for x in tk)))
        while len(self.pending) > self.max_pending:
            self.pending.popleft()
        self._resolve()

    def _resolve(self) -> None:
        keep: collections.deque = collections.deque()
        newest = max(self.observations, default=None)
        for item in self.pending:
            t, i, beam, tk = item
            key = self._key(t)
            found = self.observations.get(key)
            if found is None:
                near = key + 1 if key + 1 in self.observations else key - 1
                found = self.observations.get(near)
            if found is not None and beam < found[0].size:
                obs, ceiling = found
                self.steps[i].add(beam, obs, tk)
                if self.prior_beam is not None and self.prior_beam < obs.size:
                    self.refs["prior"][i].add(self.prior_beam, obs)
                if ceiling is not None:
                    self.refs["ceiling"][i].add(int(np.argmax(ceiling)), obs)
            elif newest is None or key > newest - 4:  # still waiting for its ground truth
                keep.append(item)
        self.pending = keep

    def summary(self) -> dict[str, Any]:
        """Per-step Top-1, Top-k, mean power loss (dB) and MPR so far, the number of scored steps, and
        ``references``: name -> the same for the prior and the ceiling (empty lists where not scored)."""
        def per_step(steps: list[_StepScore]) -> dict[str, list[float]]:
            def mean(v: float, n: int) -> float:
                return v / n if n else float("nan")

            return {
                "n": [s.n for s in steps],
                "top1": [mean(s.top1, s.n) for s in steps],
                "topk": [mean(s.topk, s.n) for s in steps],
                "power_loss_db": [mean(s.loss_db, s.n) for s in steps],
                "mpr": [mean(s.percentile, s.n) for s in steps],
            }

        out: dict[str, Any] = per_step(self.steps)
        out["references"] = {k: per_step(v) for k, v in self.refs.items() if any(s.n for s in v)}
        return out


# ================================================================================================
# The non-learned geometry baseline behind the same interface (``model:=geometry``)
# ================================================================================================
@dataclass
class _NoWindow:
    """What the tracker node reads of a window: the baseline looks at the newest frame only."""

    size: int = 1
    fill_ratio: float = 1.0


class GeometryTracker:
    """The baseline behind the live tracker's interface (``BeamTracker``: ``push``/``reset``/``stats``).

    ``push(stamp, raw)`` takes the synchronized raw arrays keyed by sensor (it reads ``raw['lidar']``)
    and returns a :class:`~beam_tracking_ros.tracking.HorizonPrediction` for every frame (its window is
    the newest frame; its "probabilities" are power shares), with ``degraded`` set when no vehicle to
    serve was detected.
    """

    inputs = ("lidar",)
    sensors = ("lidar",)
    modalities = ("lidar",)

    def __init__(self, site: GeometrySite | None = None, horizon: int = 3, top_k: int = 3, **kwargs: Any) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.baseline = GeometryBaseline(site or GeometrySite.from_sim_config(), horizon, **kwargs)
        self.horizon = self.baseline.horizon
        self.top_k = int(top_k)
        self.window = _NoWindow()
        self.stats = TrackerStats()
        self.degraded = 0
        self._last_stamp: float | None = None

    def reset(self) -> None:
        self.baseline.reset()
        self._last_stamp = None

    def push(self, stamp: float, raw: Mapping[str, np.ndarray]) -> Any:
        t0 = time.perf_counter()
        if "lidar" not in raw or raw["lidar"] is None:
            raise GeometryInputError("no LiDAR cloud in this frame")
        if self._last_stamp is not None and stamp < self._last_stamp:
            self.stats.window_resets += 1
            self.baseline.reset()
        self._last_stamp = stamp
        est = self.baseline.predict(raw["lidar"], stamp)
        self.stats.frames += 1
        self.stats.points_dropped += est.dropped_nonfinite
        probs = power_shares(est.scores)
        k = min(self.top_k, probs.shape[1])
        top = np.argsort(-est.scores, axis=1, kind="stable")[:, :k]
        self.stats.predictions += 1
        self.degraded += int(est.degraded)
        return HorizonPrediction(stamp=stamp, beams=top[:, 0].copy(), top_k_beams=top,
                                 top_k_probs=np.take_along_axis(probs, top, axis=1),
                                 latency_ms=(time.perf_counter() - t0) * 1e3, window_fill=1.0, probs=probs,
                                 degraded=est.degraded)


def geometry_card(site: GeometrySite, horizon: int = 3) -> dict[str, Any]:
    """A model card for the baseline, with the keys the tracker node reads from a trained model's card."""
    n = ChannelModel(site.channel).n_beams
    return {"name": MODEL_NAME, "role": "baseline", "modalities": ["lidar"], "P": 1, "H": int(horizon),
            "num_beams": n, "codebook": {"id": codebook_id(site.channel, n)}, "preprocess": {},
            "label_mode": site.label_mode}

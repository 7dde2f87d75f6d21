"""The beam tracker's ROS-free core: synchronized raw frames -> window -> model -> beam horizon.

The live node (``ros/beam_tracker_node.py``) converts messages to the raw CARLA-format arrays and
hands each synchronized set to :meth:`BeamTracker.push`; offline evaluation and the tests call the
same method with frames from the simulator or a dataset. Preprocessing and windowing are the
dataset builder's own functions (:func:`~beam_tracking_ros.data.preprocess.preprocess_frame`,
:class:`~beam_tracking_ros.data.window.ObservationWindow`), so a frame is prepared identically at
training and at run time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .data.preprocess import PreprocessConfig, preprocess_frame
from .data.window import ObservationWindow

# Which sensor feeds each model input key (the models name their inputs by preprocessed feature).
INPUT_SENSOR: dict[str, str] = {
    "camera": "camera",
    "camera_motion": "camera",
    "radar_points": "radar",
    "radar_maps": "radar",
    "lidar_bev": "lidar",
    "lidar_feat": "lidar",
    "gps": "gnss",
}
# Sensor name in the core -> modality name on topics and in BeamPrediction.modalities.
SENSOR_MODALITY: dict[str, str] = {"camera": "camera", "radar": "radar", "lidar": "lidar", "gnss": "gps"}
DEFAULT_MOTION_THRESHOLD = 0.05


def sensors_for_inputs(inputs: Sequence[str]) -> tuple[str, ...]:
    """The sensors (camera, radar, lidar, gnss) a model with these input keys needs, in a fixed order."""
    unknown = [k for k in inputs if k not in INPUT_SENSOR]
    if unknown:
        raise ValueError(f"model inputs: unknown input(s) {unknown}; known: {sorted(INPUT_SENSOR)}")
    needed = {INPUT_SENSOR[k] for k in inputs}
    return tuple(s for s in ("camera", "radar", "lidar", "gnss") if s in needed)


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


@dataclass
class TrackerStats:
    """Counters the node publishes on /diagnostics."""

    frames: int = 0
    predictions: int = 0
    window_resets: int = 0
    points_dropped: int = 0


class BeamTracker:
    """Keeps the observation window of one model and predicts the beam horizon.

    ``inputs``: the model's input keys (its card's ``inputs``); ``window``/``horizon``: P and H the
    model was trained with; ``preprocess``: the model card's preprocessing config.
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
    ) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.predictor = predictor
        self.inputs = tuple(inputs)
        self.sensors = sensors_for_inputs(self.inputs)
        self.modalities = tuple(SENSOR_MODALITY[s] for s in self.sensors)
        self.horizon = int(horizon)
        self.top_k = int(top_k)
        self.motion_threshold = motion_threshold if "camera_motion" in self.inputs else None
        self.preprocess = (preprocess if isinstance(preprocess, PreprocessConfig)
                           else PreprocessConfig.from_dict(preprocess or {}))
        self.window = ObservationWindow(size=int(window), horizon=self.horizon)
        self.stats = TrackerStats()

    def reset(self) -> None:
        """Forget the window (a clock jump, a new episode)."""
        self.window.reset()

    def push(self, stamp: float, raw: Mapping[str, np.ndarray]) -> HorizonPrediction | None:
        """Add one synchronized frame (raw arrays keyed by sensor) and predict once the window is full.

        Raises :class:`~beam_tracking_ros.data.preprocess.PreprocessError` for a malformed modality,
        before touching the window, so a bad frame never enters it. A stamp older than the window's
        newest resets the window (a bag looping, a simulator restart).
        """
        t0 = time.perf_counter()
        frame, stats = preprocess_frame(raw, self.preprocess, modalities=self.sensors, return_stats=True)
        self.stats.points_dropped += sum(stats.values())
        self.stats.frames += 1
        if self.window.push(frame, stamp):
            self.stats.window_resets += 1
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

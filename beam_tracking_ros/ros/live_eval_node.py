"""ROS 2 node ``live_eval``: scores BeamPrediction against BeamObservation as they arrive.

It logs (INFO), every ``report_period_s``, the live Top-1 and Top-k accuracy of the current step and of
the whole horizon, the power loss versus the optimal beam in dB, the tracker's inference latency
and the end-to-end latency (newest sensor stamp -> prediction received here); with a beam manager
running, also the served beams' realized power loss against each frame's optimum, the outage (frames
more than 3 dB below it) and the sweep overhead saved against an exhaustive sweep. The main job
(``make demo``) runs it next to the simulator and the tracker; it also serves anyone who wants
to watch a tracker on a recording with ground truth.
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Any

import numpy as np
from rclpy.node import Node

from beam_tracking_ros.msg import BeamObservation, BeamPrediction, ServingBeam

from ..io import convert
from ..io.topics import Topics
from ..tracking import OnlineBeamScore
from . import qos
from .params import declare
from .spin import run_node

OUTAGE_DB = 3.0  # a served frame more than this below the optimum is an outage (bench/beam_management.py)


def _step_of(msg: BeamPrediction) -> float:
    """The spacing of a prediction's horizon steps, from its own time offsets (0.1 s for a one-step horizon)."""
    if len(msg.horizon) < 2:
        return 0.1
    off = msg.horizon[1].time_offset
    step = off.sec + off.nanosec * 1e-9
    return step if step > 0 else 0.1


class LiveEvalNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("live_eval", **kwargs)
        topics = Topics()
        pred_topic = declare(self, "prediction_topic", topics.beam_prediction, "BeamPrediction topic to score.")
        obs_topic = declare(self, "observation_topic", topics.beam_observation, "Ground-truth BeamObservation topic.")
        self.period = float(declare(self, "report_period_s", 1.0, "Seconds between printed reports."))
        self.duration = float(declare(self, "duration_s", 0.0, "Stop after this many seconds; 0 = never."))
        self.step_s = float(declare(self, "horizon_step_s", 0.0, "Time between horizon steps; 0 = the "
                                    "predictions' own step offsets (the model card's frame period)."))
        prior = int(declare(self, "prior_beam", -1, "The label prior (the training set's most frequent beam, "
                            "in the model card) to score beside the model on the same frames; -1 = none."))
        self.top_k = int(declare(self, "top_k", 3, "Top-k accuracy over the first k of each step's top_k_beams."))
        serving_topic = declare(self, "serving_topic", topics.serving_beam,
                                "ServingBeam of a beam manager to score (realized power loss, outage, overhead).")
        self.prior_beam = prior if prior >= 0 else None
        if not self.period > 0 or self.duration < 0 or not self.step_s >= 0 or self.top_k < 1:
            raise ValueError("report_period_s must be > 0, duration_s and horizon_step_s >= 0, top_k >= 1")
        self.score: OnlineBeamScore | None = None
        self.latency = collections.deque(maxlen=5000)
        self.e2e = collections.deque(maxlen=5000)
        self.k = 0
        self.model = ""
        self.started = time.monotonic()
        reliable = qos.reliable_qos(50)
        self.create_subscription(BeamPrediction, pred_topic, self.on_prediction, reliable)
        self.create_subscription(BeamObservation, obs_topic, self.on_observation, reliable)
        self.pending_obs: collections.deque = collections.deque(maxlen=256)
        # beam management: each served frame against the optimum of the same frame's observation
        self.obs_by_stamp: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self.pending_serving: collections.deque = collections.deque(maxlen=256)
        self.serving_loss: collections.deque = collections.deque(maxlen=100_000)
        self.serving_overhead: collections.deque = collections.deque(maxlen=100_000)
        self.serving_full = 0
        self.create_subscription(ServingBeam, serving_topic, self.on_serving, reliable)
        self.create_timer(self.period, self.report)

    def on_prediction(self, msg: BeamPrediction) -> None:
        arrival = time.time()
        stamp_ns = convert.stamp_to_ns(msg.header.stamp)
        if self.score is None:
            self.score = OnlineBeamScore(len(msg.horizon) - 1, self.step_s or _step_of(msg), prior_beam=self.prior_beam)
            self.k = min(self.top_k, len(msg.horizon[0].top_k_beams)) if msg.horizon else 0
            # the geometry baseline has no role of its own in BeamPrediction (it is sent as a student)
            role = ("teacher" if msg.role == msg.ROLE_TEACHER else
                    "non-learned" if msg.model_name == "geometry" else "student")
            self.model = f"{msg.model_name} ({role}, {'+'.join(msg.modalities)})"
            for t, p, c in self.pending_obs:
                self.score.add_observation(t, p, c)
        self.score.add_prediction(stamp_ns, [s.beam for s in msg.horizon],
                                  [list(s.top_k_beams)[:self.k] for s in msg.horizon])
        self.latency.append(msg.inference_latency_ms)
        self.e2e.append((arrival - stamp_ns / 1e9) * 1e3)

    def on_observation(self, msg: BeamObservation) -> None:
        t = convert.stamp_to_ns(msg.header.stamp)
        p = np.asarray(msg.power_dbm, dtype=np.float32)
        c = np.asarray(msg.ceiling_power_dbm, dtype=np.float32) if len(msg.ceiling_power_dbm) else None
        if self.score is None:
            self.pending_obs.append((t, p, c))
        else:
            self.score.add_observation(t, p, c)
        self.obs_by_stamp[t] = p
        while len(self.obs_by_stamp) > 512:
            self.obs_by_stamp.popitem(last=False)
        for _ in range(len(self.pending_serving)):  # servings that came before their frame's observation
            self._score_serving(*self.pending_serving.popleft())

    def on_serving(self, msg: ServingBeam) -> None:
        self._score_serving(convert.stamp_to_ns(msg.header.stamp), int(msg.beam),
                            int(msg.beams_measured), int(msg.codebook_size), bool(msg.full_sweep))

    def _score_serving(self, t: int, beam: int, measured: int, size: int, full: bool) -> None:
        p = self.obs_by_stamp.get(t)
        if p is None:
            self.pending_serving.append((t, beam, measured, size, full))
            return
        if not 0 <= beam < p.size or size != p.size:
            return  # served from another codebook: not comparable
        self.serving_loss.append(float(np.nanmax(p) - p[beam]))
        self.serving_overhead.append(measured / size)
        self.serving_full += int(full)

    def report(self) -> None:
        elapsed = time.monotonic() - self.started
        if self.score is None:
            self.get_logger().info(f"[{elapsed:5.1f} s] waiting for predictions...")
        else:
            s = self.score.summary()
            lat = np.asarray(self.latency)
            e2e = np.asarray(self.e2e)
            self.get_logger().info(
                f"[{elapsed:5.1f} s] {self.model}: scored {s['n'][0]} frames | "
                f"now Top-1 {s['top1'][0]:.3f} Top-{self.k} {s['topk'][0]:.3f} | "
                f"horizon Top-1 {np.nanmean(s['top1']):.3f} Top-{self.k} {np.nanmean(s['topk']):.3f} | "
                f"MPR {np.nanmean(s['mpr']):.3f} power loss {np.nanmean(s['power_loss_db']):.2f} dB"
                f"{self._references(s)} | "
                f"latency p50 {np.percentile(lat, 50):.2f} ms p99 {np.percentile(lat, 99):.2f} ms | "
                f"end-to-end p50 {np.percentile(e2e, 50):.1f} ms{self._serving()}")
        if self.duration and elapsed >= self.duration:
            raise SystemExit(0 if self.score is not None and self.score.summary()["n"][0] > 0 else 1)


    def _serving(self) -> str:
        """' | beam management: ...' -- the served beams' realized loss, outage and overhead saved."""
        if not self.serving_loss:
            return ""
        loss, over = np.asarray(self.serving_loss), np.asarray(self.serving_overhead)
        return (f" | beam management ({loss.size} frames): realized loss {loss.mean():.2f} dB, outage "
                f"{100 * (loss > OUTAGE_DB).mean():.1f} %, overhead saved {100 * (1 - over.mean()):.1f} % "
                f"({over.mean() * self._codebook():.1f} beams/frame), full sweeps {self.serving_full}")

    def _codebook(self) -> int:
        return next((p.size for p in reversed(self.obs_by_stamp.values())), 0)

    @staticmethod
    def _references(s: dict[str, Any]) -> str:
        """' (prior MPR x / y dB, ceiling MPR x / y dB)' over the horizon, on the frames scored above."""
        parts = [f"{name} MPR {np.nanmean(r['mpr']):.3f} / {np.nanmean(r['power_loss_db']):.2f} dB"
                 for name, r in s["references"].items()]
        return f" ({', '.join(parts)})" if parts else ""


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run beam_tracking_ros live_eval``."""
    return run_node("live_eval", LiveEvalNode, args)


if __name__ == "__main__":
    sys.exit(main())

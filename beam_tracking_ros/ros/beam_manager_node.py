"""ROS 2 node ``beam_manager``: prediction-aided beam management over the RSU's radio.

Each ``BeamPrediction`` (the tracker's, for the frame its sensors saw) becomes a ``BeamSweepRequest``
of the top-k candidates (k fixed, or adaptive from the probabilities); the radio answers with a
``BeamMeasurement``; the node serves the best measured beam and publishes it as ``ServingBeam``. On
beam failure (the best measured power more than ``failure_drop_db`` below the last good frame) it
sweeps the whole codebook in the same frame; without a usable prediction for ``prediction_deadline_s``
it sweeps the whole codebook every ``frame_period_s``. The decisions are
:class:`beam_tracking_ros.beam_management.BeamManager`'s; this node only moves messages.

Every frame gets a ``ServingBeam``: when a measurement does not come within ``measurement_timeout_s``
the last beam stays (its power NaN). Bad input -- a prediction for another codebook, NaN powers, beams
that were not requested, late or missing measurements -- is counted on ``/diagnostics``, never raised.

    ros2 run beam_tracking_ros beam_manager --ros-args -p k:=0 -p target_probability:=0.8
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from beam_tracking_ros.msg import BeamMeasurement, BeamPrediction, BeamSweepRequest, ServingBeam

from ..beam_management import BeamManager, SweepPolicy, SweepRequest
from ..io import convert
from ..io.topics import Topics
from . import qos
from .params import declare
from .spin import ConfigurationError, run_node


class BeamManagerNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("beam_manager", **kwargs)
        topics = Topics()
        pred_topic = declare(self, "prediction_topic", topics.beam_prediction, "BeamPrediction input.")
        req_topic = declare(self, "request_topic", topics.beam_sweep_request, "BeamSweepRequest output.")
        meas_topic = declare(self, "measurement_topic", topics.beam_measurement, "BeamMeasurement input.")
        serving_topic = declare(self, "serving_topic", topics.serving_beam, "ServingBeam output.")
        default = SweepPolicy()
        try:
            self.policy = SweepPolicy(
                k=int(declare(self, "k", default.k, "Beams to measure per frame; 0 = adaptive (target_probability).")),
                target_probability=float(declare(self, "target_probability", default.target_probability,
                                                 "Adaptive: smallest k whose predicted probability reaches this.")),
                k_min=int(declare(self, "k_min", default.k_min, "Adaptive: at least this many beams.")),
                k_max=int(declare(self, "k_max", default.k_max, "Adaptive: at most this many beams (the tracker "
                                  "must publish at least this many, its top_k).")),
                failure_drop_db=float(declare(self, "failure_drop_db", default.failure_drop_db,
                                              "Beam failure: best measured power this far (dB) below the last "
                                              "good frame's -> full sweep in the same frame.")),
                prediction_deadline_s=float(declare(self, "prediction_deadline_s", default.prediction_deadline_s,
                                                    "A prediction older than this (s) is not used.")),
                include_serving=bool(declare(self, "include_serving", default.include_serving,
                                             "Also measure the beam served in the last frame.")),
            )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.codebook_size = int(declare(self, "codebook_size", 0, "Beams in the codebook; 0 = from the first "
                                         "prediction. A prediction for another codebook is refused (counted)."))
        self.codebook_id = str(declare(self, "codebook_id", "", "Codebook id; empty = from the first prediction."))
        self.period = float(declare(self, "frame_period_s", 0.1, "Frame period: full sweeps at this rate while "
                                    "there is no usable prediction."))
        self.meas_timeout = float(declare(self, "measurement_timeout_s", 0.05,
                                          "A measurement later than this (s, wall clock) is missing: the last "
                                          "beam stays for the frame."))
        diag_period = float(declare(self, "diagnostics_period_s", 1.0, "Seconds between /diagnostics."))
        if self.codebook_size < 0 or not (self.period > 0 and self.meas_timeout > 0 and diag_period > 0):
            raise ConfigurationError("codebook_size must be >= 0; frame_period_s, measurement_timeout_s and "
                                     "diagnostics_period_s must be > 0")
        self.manager: BeamManager | None = None
        if self.codebook_size:
            self.manager = BeamManager(self.codebook_size, self.policy)
        self.pub_req = self.create_publisher(BeamSweepRequest, req_topic, qos.reliable_qos(20))
        self.pub_serving = self.create_publisher(ServingBeam, serving_topic, qos.reliable_qos(20))
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(BeamPrediction, pred_topic, self.on_prediction, qos.reliable_qos(20))
        self.create_subscription(BeamMeasurement, meas_topic, self.on_measurement, qos.reliable_qos(20))
        # the frame in flight: its first request, the beams measured so far, when it was asked (wall clock)
        self.frame: dict[str, Any] | None = None
        self.last_prediction_wall = -math.inf
        self.last_sweep_wall = -math.inf
        self.latest_stamp_ns = 0
        self.latency_ms: list[float] = []
        self.frames_served = 0
        self.create_timer(min(self.period, self.meas_timeout) / 2, self.on_timer)
        self.create_timer(diag_period, self.publish_diagnostics)
        self.get_logger().info(f"beam manager: {self.policy.label}, failure at {self.policy.failure_drop_db:g} dB, "
                               f"requests on {req_topic}, serving on {serving_topic}")

    # ---- predictions -> requests ------------------------------------------------------------------
    def on_prediction(self, msg: BeamPrediction) -> None:
        t0 = time.perf_counter()
        try:
            size = int(msg.codebook_size)
            if self.manager is None:
                if size < 1:
                    return
                self.codebook_size, self.codebook_id = size, self.codebook_id or str(msg.codebook_id)
                self.manager = BeamManager(size, self.policy)
            mgr = self.manager
            stamp_ns = convert.stamp_to_ns(msg.header.stamp)
            if (size != self.codebook_size or (self.codebook_id and msg.codebook_id != self.codebook_id)
                    or not msg.horizon):
                mgr.counts["bad_prediction"] += 1
                return
            step = msg.horizon[0]
            probs = np.zeros(self.codebook_size)
            beams = np.asarray(step.top_k_beams, dtype=np.int64)
            p = np.asarray(step.top_k_probs, dtype=np.float64)
            if beams.size == 0 or beams.size != p.size or beams.min() < 0 or beams.max() >= self.codebook_size:
                mgr.counts["bad_prediction"] += 1
                return
            probs[beams] = p
            if not mgr.on_prediction(stamp_ns / 1e9, probs):
                return
            self.last_prediction_wall = time.monotonic()
            self.latest_stamp_ns = max(self.latest_stamp_ns, stamp_ns)
            self._close_frame()  # a new frame: the previous one is served with what it has
            self._sweep(mgr.request(stamp_ns / 1e9), stamp_ns)
            self.latency_ms.append((time.perf_counter() - t0) * 1e3)
            del self.latency_ms[:-2000]
        except Exception as exc:  # a malformed message must not stop the manager
            if self.manager is not None:
                self.manager.counts["callback_errors"] += 1
            self.get_logger().error(f"prediction dropped: {exc}", throttle_duration_sec=5.0)

    def _sweep(self, req: SweepRequest, stamp_ns: int) -> None:
        msg = BeamSweepRequest(header=convert.make_header(convert.stamp_from_ns(stamp_ns), "rsu/mmwave_array"),
                               seq=req.seq, codebook_id=self.codebook_id, codebook_size=self.codebook_size,
                               full_sweep=req.full, reason=req.reason)
        msg.beams = req.beams.astype(np.uint16).tolist()
        if self.frame is None:
            self.frame = {"stamp_ns": stamp_ns, "first": req, "measured": 0, "failed": False}
        self.frame.update(seq=req.seq, asked_wall=time.monotonic(), full=self.frame.get("full", False) or req.full)
        self.last_sweep_wall = time.monotonic()
        self.pub_req.publish(msg)

    # ---- measurements -> serving --------------------------------------------------------------------
    def on_measurement(self, msg: BeamMeasurement) -> None:
        mgr = self.manager
        if mgr is None:
            return
        try:
            if self.codebook_id and msg.codebook_id and msg.codebook_id != self.codebook_id:
                mgr.counts["bad_measurement"] += 1
                return
            got = mgr.on_measurement(int(msg.seq), np.asarray(msg.beams, dtype=np.int64),
                                     np.asarray(msg.power_dbm, dtype=np.float64))
            if got is None or self.frame is None:
                return
            self.frame["measured"] += len(msg.beams)
            if got.failed:
                self.frame["failed"] = True
                self._sweep(mgr.recovery_request(), self.frame["stamp_ns"])
                return
            self._serve(got.beam, got.power_dbm)
        except Exception as exc:
            mgr.counts["callback_errors"] += 1
            self.get_logger().error(f"measurement dropped: {exc}", throttle_duration_sec=5.0)

    def _serve(self, beam: int, power_dbm: float) -> None:
        f = self.frame
        if f is None:
            return
        self.frame = None
        msg = ServingBeam(header=convert.make_header(convert.stamp_from_ns(f["stamp_ns"]), "rsu/mmwave_array"),
                          beam=int(beam), power_dbm=float(power_dbm), beams_measured=int(f["measured"]),
                          codebook_size=self.codebook_size, full_sweep=bool(f["full"]), beam_failure=bool(f["failed"]),
                          reason=f["first"].reason)
        self.pub_serving.publish(msg)
        self.frames_served += 1

    def _close_frame(self) -> None:
        """Serve the frame in flight with what it has: its measurement never came (or not in time)."""
        if self.frame is None or self.manager is None:
            return
        self.manager.abandon()  # a late answer is counted as late
        if self.manager.serving_beam is None:
            self.frame = None  # nothing was ever measured: there is no beam to keep yet
            return
        self._serve(self.manager.serving_beam, float("nan"))

    def on_timer(self) -> None:
        """Measurement deadline, and full sweeps while no usable prediction comes."""
        now = time.monotonic()
        if self.frame is not None and now - self.frame["asked_wall"] > self.meas_timeout:
            self._close_frame()
        mgr = self.manager
        if mgr is None or self.frame is not None:
            return
        if (now - self.last_prediction_wall > self.policy.prediction_deadline_s
                and now - self.last_sweep_wall >= self.period):
            stamp_ns = self.get_clock().now().nanoseconds
            self._sweep(mgr.request(math.inf if self.last_prediction_wall > -math.inf else 0.0), stamp_ns)

    # ---- diagnostics --------------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        st = DiagnosticStatus(name="beam_tracking_ros: beam_manager", hardware_id="rsu")
        counts = dict(self.manager.counts) if self.manager is not None else {}
        sweeps = max(1, counts.get("sweeps", 0))
        lat = np.asarray(self.latency_ms) if self.latency_ms else np.zeros(1)
        values = {"policy": self.policy.label, "codebook_size": self.codebook_size, "frames_served": self.frames_served,
                  **{k: counts.get(k, 0) for k in (
                      "predictions", "sweeps", "full_sweeps", "beams_measured", "beam_failures",
                      "fallback_no_prediction", "fallback_stale_prediction", "fallback_beam_failure",
                      "bad_prediction", "missing_measurement", "late_or_unknown_measurement", "unrequested_beams",
                      "nan_powers", "empty_measurement", "bad_measurement", "callback_errors")},
                  "beams_per_sweep": f"{counts.get('beams_measured', 0) / sweeps:.2f}",
                  "decision_latency_ms_p99": f"{np.percentile(lat, 99):.3f}"}
        bad = sum(counts.get(k, 0) for k in ("bad_prediction", "missing_measurement", "unrequested_beams",
                                            "nan_powers", "callback_errors"))
        if self.manager is None:
            st.level, st.message = DiagnosticStatus.WARN, "waiting for the first prediction"
        elif bad:
            st.level, st.message = DiagnosticStatus.WARN, f"{bad} bad or missing input(s) handled by the fallback"
        else:
            st.level, st.message = DiagnosticStatus.OK, "managing"
        st.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [st]
        self.pub_diag.publish(arr)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run beam_tracking_ros beam_manager``."""
    return run_node("beam_manager", BeamManagerNode, args)


if __name__ == "__main__":
    sys.exit(main())

"""ROS 2 node ``beam_tracker``: synchronized sensors -> observation window -> teacher/student -> BeamPrediction.

A thin shell over :class:`beam_tracking_ros.tracking.BeamTracker`:

1. the model card decides which modalities are needed; the node refuses a model whose modalities
   have no configured topic (an empty topic parameter disables a modality);
2. those topics are synchronized with ``message_filters.ApproximateTimeSynchronizer`` where the
   real package is installed, otherwise with the package's compatible fallback (``io/sync.py``);
   topics the model does not need are not subscribed, so a student trained on fewer modalities
   keeps running when the others die;
3. each synchronized set is converted (``io/convert.py``, zero-copy where the layout allows),
   preprocessed and windowed exactly as the dataset builder does, and once the window holds P
   frames the model runs (ONNX Runtime or torch) and ``BeamPrediction`` + a ``MarkerArray`` are
   published;
4. bad input never crashes the node: malformed messages are counted and their frame dropped, a
   backwards clock jump (a looping bag) empties the synchronizer and the window, a silent modality
   is reported; counters and latency go to ``/diagnostics`` every ``diagnostics_period_s``;
5. ``model:=geometry`` runs the non-learned LiDAR baseline (``data/geometry_baseline.py``) instead of a
   trained model: the honest reference a learned model must beat, deployable without training;
6. a model that reads GPS is checked against the RSU it runs on: the RSU's own fix (``rsu_gnss_topic``)
   further than ``SITE_TOLERANCE_M`` from the model's GPS reference means every position the model
   sees is shifted by that offset, which is logged and kept as a WARN on ``/diagnostics``;
7. ``use_sim_time:=true`` (a simulator or carla-ros-bridge publishing ``/clock``, ``ros2 bag play
   --clock``): a modality is "silent" after ``stale_timeout_s`` of *simulated* time, so a paused or
   slowed simulation is not reported as dead sensors; ``/diagnostics`` still comes every
   ``diagnostics_period_s`` of wall time (a steady-clock timer: it must not stop when /clock does);
   the inference latency and ``max_rate_hz`` stay wall-clock measures of this machine's compute.
"""

from __future__ import annotations

import collections
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Image, NavSatFix, PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

from beam_tracking_ros.msg import BeamHorizonStep, BeamMeasurement, BeamPrediction

from ..data.beam_history import MeasurementCache, SweepRecord
from ..data.preprocess import SITE_TOLERANCE_M, PreprocessConfig, PreprocessError, site_offset_m
from ..data.window import ContinuityPolicy
from ..io import convert
from ..io.topics import Topics
from ..resources import find_model_dir
from ..tracking import BeamTracker, HorizonPrediction
from .compat import make_synchronizer
from .params import declare
from .qos import prediction_qos, qos_by_name, reliable_qos
from .spin import ConfigurationError, run_node

SENSOR_MSG = {"camera": Image, "radar": PointCloud2, "lidar": PointCloud2, "gnss": NavSatFix}
# message -> numpy; clouds also return how many non-finite points they dropped (counted on /diagnostics)
FROM_MSG = {
    "camera": lambda m, t: (convert.image_from_msg(m, topic=t, as_bgra=True), 0),
    "radar": lambda m, t: convert.radar_from_msg(m, topic=t, return_dropped=True),
    "lidar": lambda m, t: convert.lidar_from_msg(m, topic=t, return_dropped=True),
    "gnss": lambda m, t: (convert.gnss_from_msg(m, topic=t), 0),
}
CLOUD_FIELDS = {"radar": ("velocity", "azimuth", "altitude", "depth"), "lidar": ("x", "y", "z", "intensity")}
GEOMETRY_MODEL = "geometry"  # model:=geometry: the non-learned LiDAR baseline instead of a trained model
DEFAULT_STEP_S = 0.1  # the built-in scene's frame period: model geometry's horizon step, and older cards'
# One colour per horizon step for the RViz markers: now, +1, +2, ... (RGBA).
STEP_COLOURS = [(0.1, 0.9, 0.1), (0.95, 0.8, 0.1), (0.95, 0.45, 0.1), (0.9, 0.1, 0.1), (0.6, 0.1, 0.8)]


def resolve_model_dir(model: str) -> Path:
    """``model`` is a directory, or the name of one under the package's models/ (e.g. 'student')."""
    try:
        return find_model_dir(model)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"model: {exc}") from None


class BeamTrackerNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("beam_tracker", **kwargs)
        from ..inference import load_model

        topics = Topics()
        model = declare(self, "model", "student",
                        "Model directory, or the name of one in share/beam_tracking_ros/models (student|teacher|...), "
                        "or 'geometry': the non-learned LiDAR baseline (geometry_* parameters).")
        role = declare(self, "role", "", "Expected role (teacher|student); empty = whatever the model card says.")
        backend = declare(self, "backend", "auto", "auto (ONNX Runtime if model.onnx exists) | onnx | torch.")
        device = declare(self, "device", "cpu", "torch device for the torch backend (cpu, cuda, cuda:1).")
        self.top_k = int(declare(self, "top_k", 3, "Number of candidate beams per horizon step in BeamPrediction."))
        queue_size = int(declare(self, "sync_queue_size", 10, "Per-topic queue of the approximate-time synchronizer."))
        slop = float(declare(self, "sync_slop_s", 0.05, "Max stamp spread (s) of one synchronized set."))
        sensor_qos_name = declare(self, "sensor_qos", "sensor_data",
                                  "QoS of the sensor subscriptions: sensor_data (best effort, live sensors) or "
                                  "reliable (every message, e.g. replaying a bag with reliable publishers).")
        topic_of = {
            "camera": declare(self, "camera_topic", topics.camera, "sensor_msgs/Image topic ('' = none)."),
            "radar": declare(self, "radar_topic", topics.radar, "Radar sensor_msgs/PointCloud2 topic ('' = none)."),
            "lidar": declare(self, "lidar_topic", topics.lidar, "LiDAR sensor_msgs/PointCloud2 topic ('' = none)."),
            "gnss": declare(self, "gnss_topic", topics.gnss, "Target GNSS sensor_msgs/NavSatFix topic ('' = none)."),
            "radio": declare(self, "measurement_topic", topics.beam_measurement,
                             "BeamMeasurement answers to the beam manager's sweeps: the beam_history input of "
                             "models that read it (the previous frame's sweep; '' = none)."),
        }
        rsu_gnss_topic = declare(self, "rsu_gnss_topic", topics.rsu_gnss,
                                "The RSU's own NavSatFix, checked against the model's GPS reference ('' = no check).")
        # the names before the one modality vocabulary: still honoured for a release, with a warning
        for old, new in (("gps_topic", "gnss_topic"), ("rsu_gps_topic", "rsu_gnss_topic")):
            value = declare(self, old, "", f"Deprecated: the old name of {new}; a non-empty value is used for it.")
            if value:
                self.get_logger().warning(f"parameter {old} is deprecated: use {new} (taking {value!r} for it)")
                if new == "gnss_topic":
                    topic_of["gnss"] = value
                else:
                    rsu_gnss_topic = value
        out_topic = declare(self, "prediction_topic", topics.beam_prediction, "BeamPrediction output topic.")
        self.frame_id = declare(self, "frame_id", topics.frame("mmwave_array"), "Frame of the antenna array.")
        step_param = float(declare(self, "horizon_step_s", 0.0,
                                   "Time between horizon steps; 0 = the model card's frame period (window_policy), "
                                   "or 0.1 s (the built-in scene) for model geometry and older cards."))
        self.max_abs_value = float(declare(self, "max_abs_value", convert.MAX_ABS_VALUE,
                                           "A radar/LiDAR point with a |value| above this (m, m/s, rad) makes its "
                                           "frame malformed: a byte-swapped or corrupted cloud is never predicted on."))
        self.max_rate_hz = float(declare(self, "max_rate_hz", 0.0,
                                         "Upper bound on predictions per second; 0 = every frame."))
        self.stale_s = float(declare(self, "stale_timeout_s", 1.0, "A modality silent this long is reported missing."))
        diag_period = float(declare(self, "diagnostics_period_s", 1.0, "Period of /diagnostics."))
        self.publish_markers = bool(declare(self, "publish_markers", True, "Publish the beams as a MarkerArray."))
        for name, value in (("top_k", self.top_k), ("sync_queue_size", queue_size)):
            if value < 1:
                raise ConfigurationError(f"{name} must be >= 1, got {value}")
        for name, value in (("sync_slop_s", slop), ("stale_timeout_s", self.stale_s),
                            ("max_abs_value", self.max_abs_value), ("diagnostics_period_s", diag_period)):
            if not value > 0:
                raise ConfigurationError(f"{name} must be > 0, got {value}")
        if not (step_param >= 0 and math.isfinite(step_param)):
            raise ConfigurationError(f"horizon_step_s must be >= 0 (0 = from the model card), got {step_param}")
        self.step_s = step_param or DEFAULT_STEP_S
        if sensor_qos_name not in ("sensor_data", "reliable"):
            raise ConfigurationError(f"sensor_qos must be sensor_data or reliable, got {sensor_qos_name!r}")
        if backend not in ("auto", "onnx", "torch"):
            raise ConfigurationError(f"backend must be auto, onnx or torch, got {backend!r}")

        geo_lanes = int(declare(self, "geometry_lanes", 2,
                                "model geometry: lanes per direction of the built-in scene the RSU sees."))
        geo_mode = declare(self, "geometry_label_mode", "sum_rss",
                           "model geometry: sum_rss (every vehicle in range) or single (one tracked target).")
        geo_horizon = int(declare(self, "geometry_horizon", 3, "model geometry: future steps H."))
        geo_site = str(declare(self, "geometry_site", "",
                               "model geometry: site file of a real RSU (beam-tracking site export|check); "
                               "empty = the built-in scene with geometry_lanes / geometry_label_mode."))
        if model == GEOMETRY_MODEL:
            # The non-learned LiDAR baseline (data/geometry_baseline.py): no weights, no card on disk. Its site
            # (RSU pose, LiDAR mount, road band, codebook) comes from a site file or the built-in scenario.
            from dataclasses import replace

            from ..data.geometry_baseline import GeometrySite
            from ..sim import SimConfig
            from ..tracking import GeometryTracker, geometry_card

            try:
                if geo_site:
                    site = GeometrySite.from_yaml(geo_site)
                    if step_param:
                        site = replace(site, dt=self.step_s)
                    else:  # the site's own frame period
                        self.step_s = site.dt
                else:
                    site = GeometrySite.from_sim_config(SimConfig(lanes=geo_lanes, label_mode=geo_mode),
                                                        dt=self.step_s)
                self.tracker = GeometryTracker(site, geo_horizon, top_k=self.top_k)
            except ValueError as exc:
                raise ConfigurationError(f"model geometry: {exc}") from exc
            card = geometry_card(site, geo_horizon)
            predictor, model_dir = None, GEOMETRY_MODEL
            if role and card.get("role") != role:
                raise ConfigurationError(f"role: expected a {role} but the geometry baseline is a "
                                         f"{card.get('role')!r}")
        else:
            model_dir = resolve_model_dir(model)
            try:
                predictor, card = load_model(model_dir, backend=backend, device=device)
            except (OSError, ValueError, RuntimeError) as exc:
                raise ConfigurationError(f"model {str(model_dir)!r} could not be loaded: {exc}") from exc
            if role and card.get("role") != role:
                raise ConfigurationError(f"role: expected a {role} but {model_dir} is a {card.get('role')!r}")
            try:
                policy = ContinuityPolicy.from_dict(card.get("window_policy"))
            except ValueError as exc:
                raise ConfigurationError(f"model {str(model_dir)!r}: {exc}") from exc
            if policy.period_s is not None:
                # The horizon steps are the training data's frames: t+1 is one training period ahead.
                if step_param and abs(step_param - policy.period_s) > 1e-3 * policy.period_s:
                    raise ConfigurationError(
                        f"horizon_step_s {step_param} s disagrees with the frame period {policy.period_s} s the model "
                        "was trained at (its card's window_policy); leave it 0 to take the card's")
                self.step_s = policy.period_s
            else:
                self.get_logger().info(f"model card without window_policy: horizon steps {self.step_s} s apart, "
                                       "windows restart only on stamps that do not advance")
            self.tracker = BeamTracker(predictor, card["modalities"], card["P"], card["H"],
                                       card.get("preprocess"), top_k=self.top_k, policy=policy)
        self.card = card
        missing = [s for s in self.tracker.sensors if not topic_of[s]]
        if missing:
            raise ConfigurationError(
                f"model {card.get('name')!r} needs {list(self.tracker.modalities)} but no topic is configured for "
                f"{missing} (set {', '.join(m + '_topic' for m in missing)})")
        # the radio (beam_history) is not synchronized: its answers come after their frame's prediction
        self.sensors = tuple(s for s in self.tracker.sensors if s != "radio")
        self.topic_of = {s: topic_of[s] for s in self.sensors}
        self.codebook_id = str((card.get("codebook") or {}).get("id") or "")
        self.n_beams = int(card.get("num_beams", 0))
        self.role = BeamPrediction.ROLE_TEACHER if card.get("role") == "teacher" else BeamPrediction.ROLE_STUDENT
        self.directions = self._beam_directions(card)

        handle = make_synchronizer(
            self, [(SENSOR_MSG[s], self.topic_of[s]) for s in self.sensors], queue_size, slop, self.on_synchronized,
            qos_profile=qos_by_name(sensor_qos_name, depth=max(5, queue_size)),
            names=list(self.sensors))
        self.subs, self.monitor, self.sync_backend = handle.subscribers, handle.monitor, handle.implementation
        self.monitor.on_clock_jump.append(self._on_clock_jump)
        self.last_seen = {s: None for s in self.sensors}
        for s, sub in zip(self.sensors, self.subs):
            sub.registerCallback(self._seen, s)

        self.history: MeasurementCache | None = None
        if "radio" in self.tracker.sensors:
            n_hist = PreprocessConfig.from_dict(card.get("preprocess") or {}).num_history_beams or self.n_beams
            # the previous frame's sweep, and no older: 1.5 periods covers a late frame, not a skipped one
            self.history = MeasurementCache(n_hist, 1.5 * self.step_s, self.codebook_id)
            self.create_subscription(BeamMeasurement, topic_of["radio"], self.on_measurement, reliable_qos(20))

        self.gps_reference = tuple((card.get("preprocess") or {}).get("gps_reference") or (0.0, 0.0, 0.0))
        self.rsu_offset_m: float | None = None
        if "gnss" in self.sensors and rsu_gnss_topic:
            self.create_subscription(NavSatFix, rsu_gnss_topic, self.on_rsu_fix,
                                     qos_by_name(sensor_qos_name, depth=5))

        self.malformed = collections.Counter()  # per sensor
        self.malformed_reasons = collections.Counter()  # per "sensor.kind" (conversion, absurd, preprocess)
        self.last_malformed = ""
        self.nonfinite_dropped = 0
        self.callback_errors = 0
        self.rate_limited = 0
        self.errors = 0
        self.latencies = collections.deque(maxlen=2000)  # bounded: p50/p99 over the last 2000 predictions
        self.last_publish = 0.0
        self.pub = self.create_publisher(BeamPrediction, out_topic, prediction_qos())
        self.pub_markers = (self.create_publisher(MarkerArray, out_topic + "/markers", 10)
                            if self.publish_markers else None)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # use_sim_time (declared by rclpy itself): stamps and silence are simulated time; the diagnostics
        # timer stays on the steady clock, or it would stop with /clock (a paused simulator, a finished bag)
        self.sim_time = bool(self.get_parameter("use_sim_time").value)
        self.create_timer(diag_period, self.publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"model {card.get('name')!r} ({card.get('role')}, "
            f"{getattr(predictor, 'backend', backend) if predictor is not None else 'numpy'}) on "
            f"{list(self.tracker.modalities)}: P={card['P']}, H={card['H']}, {self.n_beams} beams; "
            f"sync: {self.sync_backend}, queue {queue_size}, slop {slop} s; publishing {out_topic}")

    # ---- callbacks -------------------------------------------------------------------------------
    def _seen(self, _msg: Any, sensor: str) -> None:
        self.last_seen[sensor] = self._silence_clock_s()

    def _silence_clock_s(self) -> float:
        """The clock silence is measured on: the node's (simulated) clock under use_sim_time, so a paused
        simulation is not a dead sensor; the monotonic wall clock otherwise (immune to clock steps)."""
        if self.sim_time:
            return self.get_clock().now().nanoseconds / 1e9
        return time.monotonic()

    def on_measurement(self, msg: Any) -> None:
        """A BeamMeasurement: kept for the next frame's beam_history. Never raises (counted instead)."""
        try:
            sweep = SweepRecord(np.asarray(msg.beams, dtype=np.int64), np.asarray(msg.power_dbm, dtype=np.float32),
                                convert.stamp_to_sec(msg.header.stamp))
            self.history.add(sweep, str(msg.codebook_id))
        except (ValueError, TypeError, AttributeError) as exc:
            self.history.counts["malformed"] += 1
            self.get_logger().warning(f"beam measurement ignored: {exc}", throttle_duration_sec=5.0)

    def _on_clock_jump(self, stamp_ns: int) -> None:
        if self.history is not None:
            self.history.clear()
        self.tracker.reset()
        self.get_logger().warning(f"clock jumped backwards (to {stamp_ns / 1e9:.3f} s): window reset")

    def on_synchronized(self, *msgs: Any) -> None:
        """One synchronized set: convert, preprocess, window, predict, publish. Never raises: upstream
        message_filters deadlocks for good when its output callback raises, so whatever escapes the steps
        below (publishing included) is counted (callback_errors on /diagnostics) and logged."""
        try:
            self._on_synchronized(*msgs)
        except Exception as exc:
            self.callback_errors += 1
            self.get_logger().error(f"frame dropped: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)

    def _on_synchronized(self, *msgs: Any) -> None:
        t_arrival = time.perf_counter()
        if self.max_rate_hz > 0 and time.monotonic() - self.last_publish < 1.0 / self.max_rate_hz:
            self.rate_limited += 1
            return
        raw: dict[str, np.ndarray] = {}
        for sensor, msg in zip(self.sensors, msgs):
            try:
                arr, dropped = FROM_MSG[sensor](msg, self.topic_of[sensor])
                self.nonfinite_dropped += dropped
                if sensor in CLOUD_FIELDS:
                    convert.check_magnitude(arr, self.max_abs_value, self.topic_of[sensor], CLOUD_FIELDS[sensor])
                raw[sensor] = arr
            except ValueError as exc:  # ConversionError: malformed message
                self._malformed(sensor, exc)
                return
        stamp = max(convert.stamp_to_sec(m.header.stamp) for m in msgs)
        if self.history is not None:
            raw["radio"] = self.history.sweep_before(stamp)
        try:
            pred = self.tracker.push(stamp, raw)
        except PreprocessError as exc:
            self._malformed(exc.modality, exc)
            return
        except Exception as exc:  # a model failure must not kill the node: count, log, keep going
            self.errors += 1
            self.get_logger().error(f"prediction failed: {exc}", throttle_duration_sec=5.0)
            return
        if pred is None:
            return
        newest = max(msgs, key=lambda m: convert.stamp_to_sec(m.header.stamp)).header.stamp
        self.pub.publish(self._message(pred, newest, t_arrival))
        if self.pub_markers is not None:
            self.pub_markers.publish(self._markers(pred, newest))
        self.last_publish = time.monotonic()

    def on_rsu_fix(self, msg: NavSatFix) -> None:
        """The RSU's own fix: how far is it from the site the model's GPS feature was measured from?"""
        try:
            fix = convert.gnss_from_msg(msg, topic="rsu_gnss_topic")
        except ValueError:  # no fix yet: nothing to compare
            return
        offset = site_offset_m(fix, self.gps_reference)
        first = self.rsu_offset_m is None
        self.rsu_offset_m = offset
        if offset > SITE_TOLERANCE_M:
            self.get_logger().warning(
                f"this RSU ({fix[0]:.6f}, {fix[1]:.6f}, {fix[2]:.1f} m) is {offset:.0f} m from the GPS reference "
                f"of model {self.card.get('name')!r} {self.gps_reference}: every target position it sees is off "
                "by that much; train or build the dataset for this site", throttle_duration_sec=30.0)
        elif first:
            self.get_logger().info(f"RSU fix within {offset:.1f} m of the model's GPS reference")

    def _malformed(self, modality: str, exc: Exception) -> None:
        kind = getattr(exc, "kind", "preprocess" if isinstance(exc, PreprocessError) else "conversion")
        self.malformed[modality] += 1
        self.malformed_reasons[f"{modality}.{kind}"] += 1
        self.last_malformed = f"{modality} ({kind}): {exc}"[:300]
        self.get_logger().warning(f"dropped a frame: malformed {modality}: {exc}", throttle_duration_sec=5.0)

    # ---- messages ---------------------------------------------------------------------------------
    def _message(self, pred: HorizonPrediction, stamp: Any, t_arrival: float) -> BeamPrediction:
        msg = BeamPrediction()
        msg.header.stamp = stamp
        msg.header.frame_id = self.frame_id
        msg.model_name = str(self.card.get("name", ""))
        msg.role = self.role
        msg.modalities = list(self.tracker.modalities)
        msg.codebook_id = self.codebook_id
        msg.codebook_size = int(pred.probs.shape[1])
        for i in range(len(pred.beams)):
            step = BeamHorizonStep()
            ns = round(i * self.step_s * 1e9)
            step.time_offset = Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
            step.beam = int(pred.beams[i])
            step.top_k_beams = [int(b) for b in pred.top_k_beams[i]]
            step.top_k_probs = [float(p) for p in pred.top_k_probs[i]]
            msg.horizon.append(step)
        msg.degraded = bool(pred.degraded)
        msg.window_size = self.tracker.window.size
        msg.window_fill = float(pred.window_fill)
        latency = (time.perf_counter() - t_arrival) * 1e3
        msg.inference_latency_ms = float(latency)
        self.latencies.append(latency)
        return msg

    def _beam_directions(self, card: dict[str, Any]) -> list[list[float]] | None:
        """Member azimuths (rad) of each beam pattern, for the markers; None when unknown."""
        az = card.get("beam_azimuths_deg")
        if az is None:
            try:
                from ..channel import build_codebook
                from ..sim import SimConfig

                cb = build_codebook(SimConfig().channel.array, SimConfig().channel.codebook)
                az = cb.pattern_azimuths_deg() if cb.size == int(card.get("num_beams", -1)) else None
            except Exception:
                az = None
        return None if az is None else [[math.radians(a) for a in row] for row in az]

    def _markers(self, pred: HorizonPrediction, stamp: Any) -> MarkerArray:
        """One arrow per member beam of each step's pattern, coloured by step, longer for nearer steps."""
        out = MarkerArray()
        clear = Marker()
        clear.action = Marker.DELETEALL
        out.markers.append(clear)
        if self.directions is None:
            return out
        for i, beam in enumerate(pred.beams):
            for j, az in enumerate(self.directions[int(beam)] if int(beam) < len(self.directions) else []):
                m = Marker()
                m.header.stamp = stamp
                m.header.frame_id = self.frame_id
                m.ns = f"horizon_{i}"
                m.id = i * 3 + j
                m.type = Marker.ARROW
                m.action = Marker.ADD
                length = 20.0 - 3.0 * i
                m.points = [Point(x=0.0, y=0.0, z=0.0),
                            Point(x=length * math.cos(az), y=-length * math.sin(az), z=0.0)]
                m.scale.x, m.scale.y, m.scale.z = 0.4, 0.8, 1.0
                r, g, b = STEP_COLOURS[min(i, len(STEP_COLOURS) - 1)]
                m.color.r, m.color.g, m.color.b, m.color.a = r, g, b, 0.9
                m.lifetime = Duration(sec=0, nanosec=500_000_000)
                out.markers.append(m)
        return out

    def publish_diagnostics(self) -> None:
        """Counters, latency percentiles and silent modalities on /diagnostics."""
        now = self._silence_clock_s()
        silent = [s for s, t in self.last_seen.items() if t is None or now - t > self.stale_s]
        st = DiagnosticStatus()
        st.name = f"{self.get_name()}: beam tracking"
        st.hardware_id = self.frame_id
        bad = sum(self.malformed.values())
        wrong_site = self.rsu_offset_m is not None and self.rsu_offset_m > SITE_TOLERANCE_M
        stats = self.tracker.stats
        policy = getattr(self.tracker, "policy", None)
        mismatch = bool(getattr(self.tracker, "rate_mismatch", False))
        if silent:
            st.level, st.message = DiagnosticStatus.WARN, f"no data from {silent}"
        elif mismatch:
            st.level = DiagnosticStatus.WARN
            st.message = (f"frames enter the window {stats.spacing_s:.3f} s apart but the model was trained on "
                          f"{policy.period_s:g} s: its inputs and horizon steps are off")
        elif wrong_site:
            st.level = DiagnosticStatus.WARN
            st.message = f"model's GPS reference is {self.rsu_offset_m:.0f} m from this RSU"
        elif bad or self.errors or self.callback_errors:
            st.level = DiagnosticStatus.WARN
            st.message = (f"{bad} malformed frame(s), {self.errors} model error(s), "
                          f"{self.callback_errors} callback error(s)")
        else:
            st.level, st.message = DiagnosticStatus.OK, "tracking"
        lat = np.asarray(self.latencies, dtype=np.float64)
        values: dict[str, Any] = {
            "predictions": self.tracker.stats.predictions,
            "frames": self.tracker.stats.frames,
            "window_resets": self.tracker.stats.window_resets,
            "window_breaks": ",".join(f"{k}:{v}" for k, v in sorted(getattr(stats, "breaks", {}).items())),
            "frames_skipped": getattr(stats, "frames_skipped", 0),
            "frame_period_s": self.step_s,
            "frame_spacing_s": "" if getattr(stats, "spacing_s", None) is None else round(stats.spacing_s, 4),
            "window_fill": round(self.tracker.window.fill_ratio, 3),
            "points_dropped_nonfinite": self.tracker.stats.points_dropped + self.nonfinite_dropped,
            "malformed_reasons": ",".join(f"{k}:{v}" for k, v in sorted(self.malformed_reasons.items())),
            "malformed_last": self.last_malformed,
            "model_errors": self.errors,
            "callback_errors": self.callback_errors,
            "rate_limited": self.rate_limited,
            "silent_modalities": ",".join(silent),
            "latency_p50_ms": round(float(np.percentile(lat, 50)), 3) if lat.size else "",
            "latency_p99_ms": round(float(np.percentile(lat, 99)), 3) if lat.size else "",
            "sync_backend": self.sync_backend,
            "time_source": "sim" if self.sim_time else "wall",
            "rsu_offset_m": "" if self.rsu_offset_m is None else round(self.rsu_offset_m, 1),
        }
        if self.history is not None:  # the beam history: how many frames had their previous sweep
            values["beam_history"] = ",".join(f"{k}:{v}" for k, v in sorted(self.history.counts.items()))
        for m in self.tracker.modalities:
            values[f"malformed.{m}"] = self.malformed.get(m, 0)
        values.update({f"sync.{k}": v for k, v in self.monitor.stats().as_dict().items()})
        st.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [st]
        self.pub_diag.publish(arr)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run beam_tracking_ros beam_tracker``."""
    return run_node("beam_tracker", BeamTrackerNode, args)


if __name__ == "__main__":
    sys.exit(main())

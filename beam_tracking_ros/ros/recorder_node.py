"""ROS 2 node ``recorder``: the configured topics, ground-truth beams included, into a rosbag2 (MCAP).

    ros2 run beam_tracking_ros recorder --ros-args -p output:=bags/run1
    ros2 launch beam_tracking_ros record.launch.py bag:=bags/run1 episodes:=4 lanes:=3

Why our own recorder rather than ``ros2 bag record``: rosbag2 is not on PyPI, so it is absent where
the package runs from wheels; this node writes the same format (a rosbag2 directory with MCAP storage
and ``metadata.yaml``, readable by ``ros2 bag info|play`` and by :func:`beam_tracking_ros.data.bag.read_bag`)
through the ``rosbags`` library.

Speed: subscriptions are ``raw=True``, so rclpy hands over the serialized CDR bytes, which are
exactly what a rosbag2 stores; nothing is deserialized or re-serialized (a 256x192 camera image and a
LiDAR cloud at 10 Hz cost a memcpy each). The bag timestamp is the message's ``header.stamp``, read from
the fixed offset it has in CDR when the type starts with a ``std_msgs/Header`` (all our topics), so bag
order is scene-time order even when the transport reorders; other types get the receive time
(``stamp_source:=receive`` uses the receive time everywhere, as ``ros2 bag record`` does).

Durability: rosbags' MCAP writer buffers a chunk in memory and writes the summary and
``metadata.yaml`` only on close. :class:`RawBagWriter` reuses :class:`~beam_tracking_ros.data.bag.BagWriter`'s
flushing MCAP writer, and a wall-clock timer flushes every ``flush_interval_s`` even when no message
arrives, so a recorder killed with SIGKILL loses at most about that much; ``read_bag`` recovers the
rest without ``metadata.yaml``. SIGINT/SIGTERM (Ctrl-C, ``ros2 launch`` shutting down) first take
what already arrived (:func:`spin_until_signal`), then close the bag cleanly and print a per-topic summary.

Types and QoS: the default topics (our simulator's / the CARLA bridge's sensors, camera_info and the
BeamObservation ground truth) have known types and are subscribed at start with the package's profiles
(:mod:`.qos`: best effort for sensors, which matches reliable and best-effort publishers; reliable for
the ground truth, which must not lose a frame). Any other topic is subscribed when it appears in the
graph, with its advertised type, reliable only if every publisher offers reliable (as rosbag2 adapts).

Simulation time (``use_sim_time:=true``, as ``ros2 bag record --use-sim-time``): header stamps are
recorded as they are (a simulator's or carla-ros-bridge's simulated seconds), and the receive time
of headerless messages (``/clock`` itself, when listed in ``topics``) is the node's simulated clock,
so a bag is in one time base. The flush, discovery and ``max_duration_s`` timers stay on the wall
(steady) clock: a timer on the simulated clock would stop with ``/clock`` -- nothing flushed before
the simulator starts, nor after it pauses or ends -- and durability must not depend on the simulator.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import struct
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from ..data.bag import BagWriter, make_typestore
from ..io.topics import Topics
from . import qos as qos_profiles
from .params import declare
from .spin import ConfigurationError

STORAGES = ("mcap", "sqlite3")
STAMP_SOURCES = ("header", "receive")
DISCOVERY_PERIOD_S = 0.2
DRAIN_QUIET_S = 0.3  # on SIGINT/SIGTERM: stop once nothing arrived for this long ...
DRAIN_MAX_S = 2.0  # ... or after this long (ros2 launch escalates to SIGTERM after 5 s)
CLOCK_TYPE = "rosgraph_msgs/msg/Clock"  # its one field, builtin_interfaces/Time, sits where a header's stamp does
_CDR_HEADER = 4  # encapsulation kind (2 bytes) + options (2 bytes) in front of every CDR payload
_STAMP = struct.Struct("<iI")  # builtin_interfaces/Time {int32 sec, uint32 nanosec}, little-endian CDR
_STAMP_BE = struct.Struct(">iI")


def default_topic_types(topics: Topics | None = None) -> dict[str, str]:
    """Topic -> message type of what our simulator and CARLA bridge publish (the recorder's defaults)."""
    t = topics or Topics()
    return {
        t.camera: "sensor_msgs/msg/Image",
        t.camera_info: "sensor_msgs/msg/CameraInfo",
        t.radar: "sensor_msgs/msg/PointCloud2",
        t.lidar: "sensor_msgs/msg/PointCloud2",
        t.gnss: "sensor_msgs/msg/NavSatFix",
        t.rsu_gnss: "sensor_msgs/msg/NavSatFix",
        t.beam_observation: "beam_tracking_ros/msg/BeamObservation",
    }


def header_stamp_ns(data: bytes | memoryview) -> int | None:
    """``header.stamp`` in ns of a CDR-serialized message whose first field is a ``std_msgs/Header``.

    The stamp is the first member, right after the 4-byte encapsulation header (offset 4, already
    4-aligned), in the byte order the encapsulation kind names (0x0001/0x0003 little endian). None when
    the payload is too short or not plain CDR.
    """
    if len(data) < _CDR_HEADER + _STAMP.size or data[0] != 0:
        return None
    kind = data[1]
    if kind in (1, 3):
        sec, nsec = _STAMP.unpack_from(data, _CDR_HEADER)
    elif kind in (0, 2):
        sec, nsec = _STAMP_BE.unpack_from(data, _CDR_HEADER)
    else:
        return None
    if nsec >= 1_000_000_000:
        return None
    return sec * 1_000_000_000 + nsec


def message_class(msgtype: str) -> Any:
    """The rclpy message class of ``'pkg/msg/Type'`` (ValueError naming it when not importable)."""
    pkg, sep, name = msgtype.rpartition("/")
    module = pkg.replace("/", ".")
    if not sep or not module.endswith(".msg"):
        raise ValueError(f"message type {msgtype!r}: expected 'package/msg/Type'")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"message type {msgtype!r} is not importable here ({exc})") from exc


class RawBagWriter(BagWriter):
    """:class:`BagWriter` that also appends already-serialized CDR messages (no deserialization).

    Why a subclass: it keeps BagWriter's flushing MCAP storage and connection bookkeeping; the raw
    path only skips ``serialize_cdr`` because rclpy already gives the CDR bytes a bag stores.
    """

    def write_raw(self, topic: str, msgtype: str, stamp_ns: int, data: bytes | memoryview) -> None:
        """Append CDR ``data`` of type ``msgtype`` on ``topic`` at ``stamp_ns``; flush when due."""
        conn = self._connections.get(topic)
        if conn is None:
            self.add_topic(topic, msgtype)
            conn = self._connections[topic]
        self._writer.write(conn, int(stamp_ns), data)
        self.count += 1
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()


def default_output() -> str:
    """``rosbag2_YYYY_MM_DD-HH_MM_SS`` in the working directory, the name ``ros2 bag record`` picks."""
    return datetime.now().strftime("rosbag2_%Y_%m_%d-%H_%M_%S")


def prepare_output(path: Path, overwrite: bool) -> None:
    """Refuse an existing bag unless ``overwrite``; then remove only something that is a bag.

    Why so careful: ``output`` is a user path and ``overwrite`` a boolean away from ``rm -rf``; only a
    directory holding nothing but rosbag2 files (metadata.yaml, .mcap, .db3) is ever deleted.
    """
    if not path.exists():
        return
    if not overwrite:
        raise ConfigurationError(f"output: {path} exists already; choose another path or set overwrite:=true")
    if not path.is_dir():
        raise ConfigurationError(f"output: {path} exists and is not a bag directory; not overwriting it")
    foreign = [p.name for p in path.iterdir() if p.name != "metadata.yaml" and p.suffix not in (".mcap", ".db3")
               and not p.name.endswith((".db3-shm", ".db3-wal"))]
    if foreign:
        raise ConfigurationError(f"output: {path} holds files that are not a bag's ({sorted(foreign)[:5]}); "
                                 "not overwriting it")
    shutil.rmtree(path)


class RecorderNode(Node):
    """Writes the configured topics to a rosbag2; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder", **kwargs)
        self.writer: RawBagWriter | None = None
        role = declare(self, "role_name", "rsu", "CARLA-bridge role name of the RSU (prefix of the default topics).")
        target = declare(self, "target_role_name", "target", "Role name of the tracked vehicle (default GNSS topic).")
        self.known_types = default_topic_types(Topics(role=role, target_role=target))
        output = str(declare(self, "output", "", "Bag directory to write; empty = rosbag2_<date-time> in the "
                                                 "working directory (as ros2 bag record)."))
        topics = list(declare(self, "topics", list(self.known_types),
                              "Topics to record; default: the RSU camera, camera_info, radar, LiDAR, the "
                              "target's GNSS and the BeamObservation ground truth."))
        storage = str(declare(self, "storage", "mcap", "rosbag2 storage: mcap (ros2 bag record's default) or "
                                                       "sqlite3."))
        flush = float(declare(self, "flush_interval_s", 1.0, "Wall seconds between flushes to disk: at most "
                                                             "this much is lost if the recorder is killed."))
        self.max_duration_s = float(declare(self, "max_duration_s", 0.0,
                                            "Stop and close the bag after this many wall seconds; 0 = until "
                                            "shut down."))
        overwrite = bool(declare(self, "overwrite", False, "Replace an existing bag at output (only a directory "
                                                           "of bag files is ever removed)."))
        self.stamp_source = str(declare(self, "stamp_source", "header",
                                        "Bag timestamp: header (the message's header.stamp, receive time for "
                                        "types without a header) or receive."))
        if storage not in STORAGES:
            raise ConfigurationError(f"storage must be one of {STORAGES}, got {storage!r}")
        if self.stamp_source not in STAMP_SOURCES:
            raise ConfigurationError(f"stamp_source must be one of {STAMP_SOURCES}, got {self.stamp_source!r}")
        if not flush > 0:
            raise ConfigurationError(f"flush_interval_s must be > 0, got {flush}")
        if self.max_duration_s < 0:
            raise ConfigurationError(f"max_duration_s must be >= 0, got {self.max_duration_s}")
        topics = [str(t) for t in topics if str(t)]
        if not topics:
            raise ConfigurationError("topics: give at least one topic to record")
        bad = [t for t in topics if not t.startswith("/")]
        if bad:
            raise ConfigurationError(f"topics: names must be absolute (start with '/'), got {bad}")
        self.topics = list(dict.fromkeys(topics))
        self.path = Path(os.path.expanduser(output or default_output()))
        prepare_output(self.path, overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)

        self.typestore = make_typestore()
        self.writer = RawBagWriter(self.path, self.typestore, storage=storage, flush_interval=flush)
        self.counts: dict[str, int] = {t: 0 for t in self.topics}
        self.bytes = 0
        self.lost: dict[str, int] = {}
        self.types: dict[str, str] = {}
        self.with_header: dict[str, bool] = {}
        self.subscriptions_by_topic: dict[str, Any] = {}
        self.start = time.monotonic()
        self.sim_time = bool(self.get_parameter("use_sim_time").value)  # declared by rclpy itself
        for topic in self.topics:
            if topic in self.known_types:
                self._subscribe(topic, self.known_types[topic], None)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # not /clock: see the module docstring
        self.flush_timer = self.create_timer(flush, self._flush, clock=steady)
        self.discovery_timer = (self.create_timer(DISCOVERY_PERIOD_S, self._discover, clock=steady)
                                if len(self.subscriptions_by_topic) < len(self.topics) else None)
        waiting = [t for t in self.topics if t not in self.subscriptions_by_topic]
        self.get_logger().info(
            f"recording {len(self.topics)} topic(s) to {self.path} ({storage}, flush every {flush:g} s"
            + (f", for {self.max_duration_s:g} s" if self.max_duration_s else "") + ")"
            + (f"; waiting for publishers of {waiting} to learn their types" if waiting else ""))

    # ------------------------------------------------------------------------------------------
    def _subscribe(self, topic: str, msgtype: str, qos: Any) -> None:
        """Subscribe ``topic`` raw and declare it in the bag (its msgdef from the typestore)."""
        if msgtype not in self.typestore.types:
            self.get_logger().warning(f"{topic}: type {msgtype} has no definition in the recorder's typestore; "
                                      "not recording it")
            self.subscriptions_by_topic[topic] = None
            return
        cls = message_class(msgtype)
        if qos is None:
            qos = (qos_profiles.reliable_qos(100) if msgtype.startswith("beam_tracking_ros/")
                   else qos_profiles.sensor_qos(50))
        fields = self.typestore.fielddefs[msgtype][1]
        self.with_header[topic] = bool(fields) and fields[0][1][1] == "std_msgs/msg/Header"
        self.types[topic] = msgtype
        self.writer.add_topic(topic, msgtype)
        from rclpy.event_handler import SubscriptionEventCallbacks

        events = SubscriptionEventCallbacks(
            matched=lambda info, t=topic: self._on_matched(t, info),
            message_lost=lambda info, t=topic: self._on_lost(t, info))
        self.subscriptions_by_topic[topic] = self.create_subscription(
            cls, topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True, event_callbacks=events)

    def _discover(self) -> None:
        """Subscribe topics without a known type as soon as the graph advertises them."""
        if self._time_up():
            return
        advertised = dict(self.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self.subscriptions_by_topic or topic not in advertised:
                continue
            types = advertised[topic]
            if len(types) != 1:
                self.get_logger().warning(f"{topic}: advertised with several types {types}; not recording it")
                self.subscriptions_by_topic[topic] = None
                continue
            infos = self.get_publishers_info_by_topic(topic)
            if not infos:
                continue
            from rclpy.qos import ReliabilityPolicy

            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
            qos = qos_profiles.reliable_qos(100) if reliable else qos_profiles.sensor_qos(50)
            self._subscribe(topic, types[0], qos)
            self.get_logger().info(f"{topic}: recording {types[0]} ({'reliable' if reliable else 'best effort'})")
        if all(t in self.subscriptions_by_topic for t in self.topics) and self.discovery_timer is not None:
            self.discovery_timer.cancel()

    def _on_matched(self, topic: str, info: Any) -> None:
        """Say when publishers come and go: frames published before the match are not in the bag."""
        if info.current_count_change:
            self.get_logger().info(f"{topic}: {info.current_count} publisher(s) matched "
                                   f"({sum(self.counts.values())} messages recorded so far)")

    def _on_lost(self, topic: str, info: Any) -> None:
        """Count samples the middleware reports lost (best-effort topics on a busy machine)."""
        self.lost[topic] = self.lost.get(topic, 0) + int(info.total_count_change)

    def _on_message(self, topic: str, data: bytes) -> None:
        if self.writer is None:
            return
        stamp = header_stamp_ns(data) if self.stamp_source == "header" and self.with_header[topic] else None
        if stamp is None and self.sim_time and self.types[topic] == CLOCK_TYPE:
            stamp = header_stamp_ns(data)  # a /clock message's simulated receive time is the time it carries
        if stamp is None:
            stamp = self._receive_ns()
        self.writer.write_raw(topic, self.types[topic], stamp, data)
        self.counts[topic] += 1
        self.bytes += len(data)

    def _receive_ns(self) -> int:
        """Receive time: the simulated clock under use_sim_time (once /clock has said something), else wall."""
        if self.sim_time:
            now = self.get_clock().now().nanoseconds
            if now > 0:
                return now
        return time.time_ns()

    def _time_up(self) -> bool:
        return bool(self.max_duration_s) and time.monotonic() - self.start >= self.max_duration_s

    def _flush(self) -> None:
        if self.writer is None:
            return
        self.writer.flush()
        if self._time_up():
            self.get_logger().info(f"max_duration_s = {self.max_duration_s:g} s reached")
            raise SystemExit(0)

    # ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Finish the bag (MCAP summary + metadata.yaml) and print what was recorded; idempotent."""
        writer, self.writer = self.writer, None
        if writer is None:
            return
        writer.close()
        secs = time.monotonic() - self.start
        lines = [f"recorded {sum(self.counts.values())} messages ({self.bytes / 1e6:.1f} MB) in {secs:.1f} s "
                 f"to {self.path}"]
        width = max(len(t) for t in self.counts)
        for topic, n in self.counts.items():
            kind = self.types.get(topic, "never published")
            lost = f"  ({self.lost[topic]} lost in transport)" if self.lost.get(topic) else ""
            lines.append(f"  {topic:<{width}}  {n:>7}  {kind}{lost}")
        # stderr, not the rcl logger: on SIGINT the context (and its logging) may already be shut down
        print("recorder: " + "\n".join(lines), file=sys.stderr, flush=True)

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def spin_until_signal(node: RecorderNode, stop: threading.Event) -> None:
    """Spin until ``stop``; then keep taking what already reached the subscriptions, and return.

    Why not rclpy's own signal handling (:func:`.spin.run_node`): it shuts the context down at once, and
    samples that arrived but were not yet taken are dropped. Under ``ros2 launch`` the simulator's exit
    (after its last frame) makes launch send the recorder SIGINT within milliseconds, so on a busy
    machine the last frame(s) were lost. Here SIGINT/SIGTERM only set ``stop``; the node drains until
    no message arrived for ``DRAIN_QUIET_S`` (at most ``DRAIN_MAX_S``), then the caller closes the bag.
    """
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
        end = time.monotonic() + DRAIN_MAX_S
        last_count, quiet_since = -1, time.monotonic()
        while time.monotonic() < end and time.monotonic() - quiet_since < DRAIN_QUIET_S:
            executor.spin_once(timeout_sec=0.02)
            count = sum(node.counts.values())
            if count != last_count:
                last_count, quiet_since = count, time.monotonic()
    finally:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=0.0)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run beam_tracking_ros recorder``: 0 on a clean stop, 2 on bad parameters."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = None
    code = 0
    try:
        node = RecorderNode()
        spin_until_signal(node, stop)
    except SystemExit as exc:  # max_duration_s reached
        code = int(exc.code or 0)
    except ValueError as exc:  # ConfigurationError and the core's validation errors
        print(f"recorder: invalid configuration: {exc}", file=sys.stderr)
        code = 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())

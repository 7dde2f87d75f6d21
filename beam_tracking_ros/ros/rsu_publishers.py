"""The topics an RSU publishes, once for the built-in simulator node and the CARLA bridge node.

Why one helper: the tracker, the recorder and the dataset builder must not be able to tell the two
sources apart, so both publish the same topics with the same messages, frame ids, QoS and ordering:
``/clock`` first (a node with ``use_sim_time`` then already has the frame's time when its data
arrives, as carla-ros-bridge orders it), ``/tf`` when enabled, the sensors (best effort by default, as
live sensors are; reliable depth 10 in carla-ros-bridge compatibility mode), the target's GNSS (a
no-fix message when nobody is served, as a real receiver reports it), the RSU's own fix every frame
(the GPS feature's reference, recorded with every bag) and the ground-truth ``BeamObservation``
(reliable: a lost label is a lost sample). :class:`~beam_tracking_ros.io.frames.PublishOptions` says
which QoS, and whether /tf is published; the caller chooses the stamps.

The same helper is the RSU's *radio* for beam management: it answers each ``BeamSweepRequest`` with a
``BeamMeasurement`` of the requested beams in the requested frame -- the frame's per-beam powers as the
channel model measured them for the label (pilot-averaged noise included) -- from a short history of
recent frames (:data:`MEASURABLE_FRAMES`); requests for unknown frames, other codebooks or beams out of
range are answered with what can be measured, or not at all, and counted (:attr:`RsuPublishers.sweeps`).

``/tf`` needs ``tf2_msgs``, which every ROS install has but the PyPI wheels this package is developed
with lack: without it the transforms are not published, the node says so once, and
:attr:`RsuPublishers.tf_unpublished` counts the frames that went without (no stand-in type: a
TFMessage of another origin would not match real subscribers).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import TransformStamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, NavSatFix, PointCloud2

from beam_tracking_ros.msg import BeamMeasurement, BeamObservation, BeamSweepRequest

from ..io import convert
from ..io.frames import FrameTransform, PublishOptions
from ..io.topics import Topics
from ..sim.types import BeamLabel
from . import qos

__all__ = ["RsuPublishers", "transform_msgs"]

TF_TOPIC = "/tf"
TF_DEPTH = 100  # tf2_ros' TransformBroadcaster: reliable, keep last 100
MEASURABLE_FRAMES = 20  # frames a sweep request may still refer to (2 s at 10 Hz): a radio measures now


def transform_msgs(transforms: Sequence[FrameTransform], stamp: Any) -> list[Any]:
    """geometry_msgs/TransformStamped of each transform, all stamped ``stamp`` (a TFMessage's ``transforms``)."""
    out = []
    for t in transforms:
        msg = TransformStamped()
        msg.header = convert.make_header(stamp, t.parent)
        msg.child_frame_id = t.child
        tr, q = msg.transform.translation, msg.transform.rotation
        tr.x, tr.y, tr.z = (float(c) for c in t.translation)
        q.x, q.y, q.z, q.w = (float(c) for c in t.rotation)
        out.append(msg)
    return out


class RsuPublishers:
    """Publishers of one RSU on ``node``; :meth:`publish` sends one frame's messages, all with ``stamp``."""

    def __init__(self, node: Any, topics: Topics, *, camera: bool = True, radar: bool = True, lidar: bool = True,
                 codebook_id: str = "", noise_dbm: float = 0.0, options: PublishOptions | None = None,
                 transforms: Sequence[FrameTransform] = ()) -> None:
        self.topics = topics
        self.codebook_id, self.noise_dbm = codebook_id, float(noise_dbm)
        self.options = opts = options or PublishOptions()
        sensor_qos = qos.reliable_qos(opts.depth) if opts.reliable else qos.sensor_qos(opts.depth)
        self.image = node.create_publisher(Image, topics.camera, sensor_qos) if camera else None
        self.info = node.create_publisher(CameraInfo, topics.camera_info, sensor_qos) if camera else None
        self.radar = node.create_publisher(PointCloud2, topics.radar, sensor_qos) if radar else None
        self.lidar = node.create_publisher(PointCloud2, topics.lidar, sensor_qos) if lidar else None
        self.gnss = node.create_publisher(NavSatFix, topics.gnss, sensor_qos)
        self.rsu_gnss = node.create_publisher(NavSatFix, topics.rsu_gnss, sensor_qos)
        self.beam = node.create_publisher(BeamObservation, topics.beam_observation, qos.reliable_qos(20))
        # reliable depth 10, as carla-ros-bridge: rclpy's time source subscribes best effort (matches it),
        # ros2 bag record subscribes reliable (so a best-effort /clock would not be recorded)
        self.clock = node.create_publisher(Clock, "/clock", qos.reliable_qos(10))
        # the radio of beam management: recent frames' powers, keyed by stamp (ns), bounded
        self._frames: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self.sweeps: collections.Counter = collections.Counter()
        self.measurement = node.create_publisher(BeamMeasurement, topics.beam_measurement, qos.reliable_qos(20))
        node.create_subscription(BeamSweepRequest, topics.beam_sweep_request, self.on_sweep_request,
                                 qos.reliable_qos(20))
        self.transforms = list(transforms)
        self.tf = None
        self.tf_message: Any = None
        self.tf_unpublished = 0  # frames whose /tf could not be published (no tf2_msgs)
        if opts.publish_tf:
            try:
                from tf2_msgs.msg import TFMessage
            except ImportError:
                node.get_logger().warning(
                    "publish_tf: tf2_msgs is not importable here (not on PyPI), so /tf is not published; "
                    "install ROS's tf2_msgs (every ROS distribution has it) to get map -> "
                    f"{topics.role}/<sensor>")
            else:
                self.tf_message = TFMessage
                self.tf = node.create_publisher(TFMessage, TF_TOPIC, qos.reliable_qos(TF_DEPTH))

    def publish(self, stamp: Any, *, rsu_fix: Sequence[float], camera: np.ndarray | None = None,
                camera_model: tuple[int, int, float] | None = None, radar: np.ndarray | None = None,
                lidar: np.ndarray | None = None, target_fix: Sequence[float] | None = None,
                label: BeamLabel | None = None, episode: int = 0) -> None:
        """Sensor arrays in CARLA's raw formats (None: not this frame); ``camera_model`` is (width, height,
        horizontal fov in degrees) for the CameraInfo; ``target_fix`` None publishes a no-fix GNSS."""
        t = self.topics
        self.clock.publish(Clock(clock=stamp))
        if self.options.publish_tf:
            if self.tf is not None:
                self.tf.publish(self.tf_message(transforms=transform_msgs(self.transforms, stamp)))
            else:
                self.tf_unpublished += 1
        if self.image is not None and camera is not None:
            self.image.publish(convert.image_to_msg(camera, stamp, t.frame("camera")))
            if camera_model is not None:
                w, h, fov = camera_model
                self.info.publish(convert.camera_info_msg(int(w), int(h), float(fov), stamp, t.frame("camera")))
        if self.radar is not None and radar is not None:
            self.radar.publish(convert.radar_to_msg(radar, stamp, t.frame("radar")))
        if self.lidar is not None and lidar is not None:
            self.lidar.publish(convert.lidar_to_msg(lidar, stamp, t.frame("lidar")))
        target_frame = f"{t.target_role}/gnss"
        if target_fix is not None:
            self.gnss.publish(convert.gnss_to_msg(*map(float, target_fix), stamp, target_frame))
        else:  # nobody served: a receiver without fix
            self.gnss.publish(convert.gnss_no_fix_msg(stamp, target_frame))
        self.rsu_gnss.publish(convert.gnss_to_msg(*map(float, rsu_fix), stamp, t.frame("gnss")))
        if label is not None:
            self.beam.publish(convert.beam_label_to_msg(label, stamp, t.frame("mmwave_array"), episode=episode,
                                                        codebook_id=self.codebook_id, noise_dbm=self.noise_dbm))
            self._frames[convert.stamp_to_ns(stamp)] = np.asarray(label.powers_dbm, dtype=np.float32)
            while len(self._frames) > MEASURABLE_FRAMES:
                self._frames.popitem(last=False)

    def on_sweep_request(self, req: Any) -> None:
        """Measure the requested beams in the requested frame (or the newest one before it) and answer.

        Never raises: a request for another codebook or a frame no longer (or not yet) known is not
        answered; beams out of range are left out of the answer; each case is counted."""
        try:
            self.sweeps["requests"] += 1
            if req.codebook_id and self.codebook_id and req.codebook_id != self.codebook_id:
                self.sweeps["other_codebook"] += 1
                return
            want = convert.stamp_to_ns(req.header.stamp)
            known = [ns for ns in self._frames if ns <= want]
            if not known:
                self.sweeps["unknown_frame"] += 1
                return
            ns = known[-1]
            powers = self._frames[ns]
            beams = np.asarray(req.beams, dtype=np.int64)
            ok = (beams >= 0) & (beams < powers.size)
            if not ok.all():
                self.sweeps["beams_out_of_range"] += int((~ok).sum())
            beams = beams[ok]
            header = convert.make_header(convert.stamp_from_ns(ns), self.topics.frame("mmwave_array"))
            msg = BeamMeasurement(header=header, seq=int(req.seq), codebook_id=self.codebook_id)
            msg.beams = beams.astype(np.uint16).tolist()
            msg.power_dbm = powers[beams].astype(np.float32).tolist()
            self.measurement.publish(msg)
            self.sweeps["answered"] += 1
            self.sweeps["beams_measured"] += int(beams.size)
        except (ValueError, TypeError, AttributeError, OverflowError):  # malformed: never stop the frames
            self.sweeps["bad_request"] += 1

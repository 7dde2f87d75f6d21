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

``/tf`` needs ``tf2_msgs``, which every ROS install has but the PyPI wheels this package is developed
with lack: without it the transforms are not published, the node says so once, and
:attr:`RsuPublishers.tf_unpublished` counts the frames that went without (no stand-in type: a
TFMessage of another origin would not match real subscribers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import TransformStamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, NavSatFix, PointCloud2

from beam_tracking_ros.msg import BeamObservation

from ..io import convert
from ..io.frames import FrameTransform, PublishOptions
from ..io.topics import Topics
from ..sim.types import BeamLabel
from . import qos

__all__ = ["RsuPublishers", "transform_msgs"]

TF_TOPIC = "/tf"
TF_DEPTH = 100  # tf2_ros' TransformBroadcaster: reliable, keep last 100


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

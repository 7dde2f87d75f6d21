"""How an RSU source publishes: QoS, stamps, /tf -- and the carla-ros-bridge compatibility mode.

Why this exists: the built-in simulator node and our CARLA bridge node publish the topics of
carla-ros-bridge (carla-simulator/ros-bridge) but, by default, not the same way: sensors best effort
(carla-ros-bridge: reliable, depth 10, so a reliable subscriber hears nothing from us), stamps anchored
at the wall clock (carla-ros-bridge: simulation time, published on ``/clock``) and no ``/tf``
(carla-ros-bridge: ``map -> <role>/<sensor>`` for every sensor). ``carla_ros_bridge_compat:=true``
switches all three to carla-ros-bridge's behaviour; each can also be set on its own
(:data:`PUBLISH_PARAMS`).

This module is ROS-free (numpy and the standard library): the parameter resolution and the sensor
transforms are tested without rclpy and without ``tf2_msgs``; ``ros/rsu_publishers.py`` turns them
into messages.

Frames. ``map`` is the world frame, right-handed (REP 103: x forward, y left, z up). For the CARLA
bridge it is CARLA's world mirrored in y (x, -y, z; yaw and pitch negated), exactly as
carla-ros-bridge converts CARLA transforms; for the built-in simulator it is the scene's world frame
(already right-handed, ground at z = 0). Each RSU sensor gets ``map -> <role>/<sensor>`` in the body
convention (x along the sensor's boresight, z up); the camera also gets a child
``<role>/camera_optical`` in the optical convention (x right, y down, z forward, REP 103 "_optical"),
the frame its pixels are in. carla-ros-bridge instead rotates the camera's own frame into the optical
convention; we keep ``<role>/camera`` a body frame like the other sensors (the image header keeps
``<role>/camera``, as today) and add the optical child, so tools that expect either find it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OPTICAL_ROTATION", "PUBLISH_PARAMS", "FrameTransform", "PublishOptions", "SensorMount", "carla_mount",
    "publish_options_from_params", "quaternion_from_rpy", "quaternion_multiply", "rotate", "rsu_transforms",
    "sim_mounts", "sim_stamp_ns",
]

SENSOR_QOS_CHOICES = ("auto", "best_effort", "reliable")
STAMP_CHOICES = ("auto", "wall", "sim")
TF_CHOICES = ("auto", "on", "off")
#: carla-ros-bridge's publishers: reliable, keep last 10 (its ``queue_size=10``)
CARLA_ROS_BRIDGE_DEPTH = 10
#: ours by default: best effort, keep last 5 (rclpy's qos_profile_sensor_data)
BEST_EFFORT_DEPTH = 5

PUBLISH_PARAMS: dict[str, tuple[Any, str]] = {
    "carla_ros_bridge_compat": (False, "Publish as carla-ros-bridge does: reliable sensors (depth 10), "
                                       "simulation-time stamps with /clock, /tf of the RSU sensors. The three "
                                       "parameters below override it one by one."),
    "sensor_qos": ("auto", "auto | best_effort | reliable: QoS of the sensor publishers (auto: reliable depth 10 "
                           "with carla_ros_bridge_compat, else best effort depth 5)."),
    "stamps": ("auto", "auto | wall | sim: header stamps and /clock. sim = simulation time from 0, as "
                       "carla-ros-bridge; wall = anchored at the wall clock (auto: sim with "
                       "carla_ros_bridge_compat, else wall)."),
    "publish_tf": ("auto", "auto | on | off: /tf map -> <role>/<sensor> every frame (needs tf2_msgs; auto: on "
                           "with carla_ros_bridge_compat)."),
    "map_frame": ("map", "Parent frame of the /tf transforms (carla-ros-bridge: map)."),
}


@dataclass(frozen=True)
class PublishOptions:
    """Resolved publishing behaviour of an RSU source (see :data:`PUBLISH_PARAMS`)."""

    reliable: bool = False
    depth: int = BEST_EFFORT_DEPTH
    sim_stamps: bool = False
    publish_tf: bool = False
    map_frame: str = "map"
    compat: bool = False


def publish_options_from_params(params: Mapping[str, Any]) -> PublishOptions:
    """Validate the :data:`PUBLISH_PARAMS` values (ValueError naming the parameter) and resolve 'auto'."""
    v = {k: params.get(k, d) for k, (d, _) in PUBLISH_PARAMS.items()}
    compat = v["carla_ros_bridge_compat"]
    if not isinstance(compat, bool):
        raise ValueError(f"parameter carla_ros_bridge_compat: must be true or false, got {compat!r}")
    for name, choices in (("sensor_qos", SENSOR_QOS_CHOICES), ("stamps", STAMP_CHOICES),
                          ("publish_tf", TF_CHOICES)):
        if v[name] not in choices:
            raise ValueError(f"parameter {name}: must be one of {choices}, got {v[name]!r}")
    frame = v["map_frame"]
    if not isinstance(frame, str) or not frame or frame.startswith("/") or " " in frame:
        raise ValueError(f"parameter map_frame: must be a frame id without a leading '/', got {frame!r}")
    reliable = v["sensor_qos"] == "reliable" or (v["sensor_qos"] == "auto" and compat)
    return PublishOptions(
        reliable=reliable, depth=CARLA_ROS_BRIDGE_DEPTH if reliable else BEST_EFFORT_DEPTH,
        sim_stamps=v["stamps"] == "sim" or (v["stamps"] == "auto" and compat),
        publish_tf=v["publish_tf"] == "on" or (v["publish_tf"] == "auto" and compat),
        map_frame=frame, compat=compat)


def sim_stamp_ns(sim_time_s: float) -> int:
    """Simulation time (s) -> stamp in ns, as carla-ros-bridge stamps ``timestamp.elapsed_seconds``.

    Never 0: a ROS time of 0 means "no time yet" to a node with ``use_sim_time``, so the first frame
    would look unstamped; 1 ns is the earliest stamp.
    """
    if not math.isfinite(sim_time_s) or sim_time_s < 0:
        raise ValueError(f"simulation time must be finite and >= 0, got {sim_time_s!r}")
    return max(1, round(sim_time_s * 1e9))


# ------------------------------------------------------------------------------------------------
# rotations (quaternions x, y, z, w as geometry_msgs and tf2 order them)
# ------------------------------------------------------------------------------------------------
Quaternion = tuple[float, float, float, float]
Vector = tuple[float, float, float]


def quaternion_from_rpy(roll: float, pitch: float, yaw: float) -> Quaternion:
    """Fixed-axis roll, pitch, yaw (rad; R = Rz(yaw) Ry(pitch) Rx(roll), tf2's setRPY) -> (x, y, z, w)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy)


def quaternion_multiply(a: Quaternion, b: Quaternion) -> Quaternion:
    """Hamilton product a * b (apply b, then a)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz)


def rotate(q: Quaternion, v: Sequence[float]) -> Vector:
    """``v`` rotated by the unit quaternion ``q``."""
    x, y, z, _ = quaternion_multiply(quaternion_multiply(q, (float(v[0]), float(v[1]), float(v[2]), 0.0)),
                                     (-q[0], -q[1], -q[2], q[3]))
    return (x, y, z)


#: body (x forward, y left, z up) -> optical (x right, y down, z forward): the optical frame's axes
#: expressed in the body frame are x = -y_body, y = -z_body, z = x_body (REP 103)
OPTICAL_ROTATION: Quaternion = (-0.5, 0.5, -0.5, 0.5)


# ------------------------------------------------------------------------------------------------
# sensor mounts -> transforms
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SensorMount:
    """Where a sensor sits in the (right-handed) map frame: position (m), yaw and pitch (rad, REP 103:
    yaw counter-clockwise from x, pitch positive = nose down)."""

    name: str
    position: Vector
    yaw: float = 0.0
    pitch: float = 0.0


@dataclass(frozen=True)
class FrameTransform:
    """One ``parent -> child`` transform: translation (m) and rotation (x, y, z, w) of the child in the parent."""

    parent: str
    child: str
    translation: Vector
    rotation: Quaternion


def carla_mount(name: str, x: float, y: float, z: float, yaw_deg: float, pitch_deg: float) -> SensorMount:
    """A sensor spawned at CARLA (x, y, z) with CARLA yaw/pitch (deg; left-handed, pitch positive = up) in the
    map frame carla-ros-bridge uses: y mirrored, yaw and pitch negated (carla_common.transforms' rule)."""
    return SensorMount(name, (float(x), -float(y), float(z)), -math.radians(yaw_deg), -math.radians(pitch_deg))


def sim_mounts(config: Any, rsu: Any) -> list[SensorMount]:
    """The built-in scene's RSU sensors (``config``: SimConfig; ``rsu``: its RsuPose) as
    :class:`SensorMount`s: each sensor at the pole's (x, y) and its ``mount_height``, looking along the
    RSU's heading, pitched by its ``pitch_deg`` (negative = down, as the renderers in sim/sensors.py use
    it); the mmWave array and the RSU's GNSS antenna at the array's position."""
    x, y, h = (float(c) for c in rsu.position)
    yaw = float(rsu.yaw)
    mounts = [SensorMount("mmwave_array", (x, y, h), yaw, 0.0), SensorMount("gnss", (x, y, h), yaw, 0.0)]
    for name in ("camera", "radar", "lidar"):
        cfg = getattr(config, name)
        if cfg.enabled:
            pitch = -math.radians(float(getattr(cfg, "pitch_deg", 0.0)))
            mounts.append(SensorMount(name, (x, y, float(cfg.mount_height)), yaw, pitch))
    return mounts


def rsu_transforms(role: str, mounts: Iterable[SensorMount], map_frame: str = "map") -> list[FrameTransform]:
    """``map -> <role>/<sensor>`` for every mount, plus ``<role>/camera -> <role>/camera_optical``."""
    out = []
    for m in mounts:
        child = f"{role}/{m.name}"
        out.append(FrameTransform(map_frame, child, tuple(float(c) for c in m.position),
                                  quaternion_from_rpy(0.0, m.pitch, m.yaw)))
        if m.name == "camera":
            out.append(FrameTransform(child, f"{child}_optical", (0.0, 0.0, 0.0), OPTICAL_ROTATION))
    return out

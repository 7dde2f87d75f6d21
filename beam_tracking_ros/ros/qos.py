"""QoS profiles of the package's topics, and why each is what it is.

* Sensor data (camera, radar, LiDAR, GNSS): best effort, keep last ``depth`` (default 5, as rclpy's
  ``qos_profile_sensor_data``), volatile. A late camera frame is worth less than the next one, so the
  tracker must never stall on retransmissions; and a best-effort subscription matches both best-effort
  and reliable publishers (the CARLA ROS bridge publishes its sensors reliable with depth 10), so the
  tracker hears our simulator, the bridge and ``ros2 bag play`` alike. The reverse does not hold: a
  reliable subscriber hears nothing from a best-effort publisher, so our simulator and bridge publish
  reliable, keep last 10 in carla-ros-bridge compatibility mode (``io/frames.py``). Large images and clouds are only
  delivered with the shared-memory transport profile (config/fastdds_shm.xml, docs/transport.md):
  with Fast DDS defaults best effort loses nearly all of them (ros2-from-pypi.md, measured).
* Predictions and ground truth (BeamPrediction, BeamObservation): reliable, keep last ``depth``
  (default 10), volatile. They are small, consumers (evaluation, the recorder, the demo's live score)
  must see every one of them to score every frame, and reliable publishers still reach best-effort
  subscribers such as RViz/Foxglove.
* Clock (/clock): subscribed best effort, keep last 1 (:func:`clock_qos`, as rclpy's time source): only
  the newest time matters. Our sources publish it reliable, keep last 10, as carla-ros-bridge does, so
  both best-effort and reliable subscribers (``ros2 bag record``) get it.

rclpy is imported inside the functions so this module imports without ROS (the parameter validation
that names a profile runs in the ROS-free core too).
"""
from __future__ import annotations

from typing import Any

SENSOR_DEPTH = 5
RELIABLE_DEPTH = 10
PROFILE_NAMES = ("sensor_data", "reliable", "clock")


def _check_depth(depth: int) -> int:
    if isinstance(depth, bool) or int(depth) != depth or int(depth) < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    return int(depth)


def sensor_qos(depth: int = SENSOR_DEPTH) -> Any:
    """Best effort, keep last ``depth``, volatile: for camera/radar/LiDAR/GNSS subscriptions and publishers."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=_check_depth(depth),
                      reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)


def reliable_qos(depth: int = RELIABLE_DEPTH) -> Any:
    """Reliable, keep last ``depth``, volatile: for BeamPrediction and BeamObservation."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=_check_depth(depth),
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


prediction_qos = reliable_qos


def clock_qos() -> Any:
    """Best effort, keep last 1: /clock."""
    return sensor_qos(1)


def qos_by_name(name: str, depth: int | None = None) -> Any:
    """Profile from a parameter value: 'sensor_data', 'reliable' or 'clock' (ValueError otherwise)."""
    if name == "sensor_data":
        return sensor_qos(SENSOR_DEPTH if depth is None else depth)
    if name == "reliable":
        return reliable_qos(RELIABLE_DEPTH if depth is None else depth)
    if name == "clock":
        return clock_qos()
    raise ValueError(f"qos profile must be one of {PROFILE_NAMES}, got {name!r}")

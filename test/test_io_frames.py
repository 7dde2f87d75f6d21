"""The ROS-free half of the carla-ros-bridge compatibility mode (beam_tracking_ros.io.frames).

Parameter resolution (compat switches reliable QoS depth 10, simulation-time stamps and /tf on; each
can be overridden), simulation stamps, and the RSU sensor transforms: checked against the axes the
simulator's renderers really use and against carla-ros-bridge's CARLA -> ROS rule, without rclpy or
tf2_msgs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from beam_tracking_ros.io import frames
from beam_tracking_ros.sim import SimConfig, Simulator
from beam_tracking_ros.sim.sensors import _sensor_axes


def test_default_publishing_is_unchanged_and_compat_is_carla_ros_bridges() -> None:
    assert frames.publish_options_from_params({}) == frames.PublishOptions(
        reliable=False, depth=5, sim_stamps=False, publish_tf=False, map_frame="map", compat=False)
    assert frames.publish_options_from_params({"carla_ros_bridge_compat": True}) == frames.PublishOptions(
        reliable=True, depth=10, sim_stamps=True, publish_tf=True, map_frame="map", compat=True)
    one_by_one = frames.publish_options_from_params(
        {"carla_ros_bridge_compat": True, "sensor_qos": "best_effort", "stamps": "wall", "publish_tf": "off"})
    assert (one_by_one.reliable, one_by_one.depth, one_by_one.sim_stamps, one_by_one.publish_tf) == (False, 5, False,
                                                                                                      False)
    assert frames.publish_options_from_params({"sensor_qos": "reliable"}).depth == 10


@pytest.mark.parametrize(("name", "value"), [("sensor_qos", "sensor_data"), ("stamps", "ros"), ("publish_tf", True),
                                             ("carla_ros_bridge_compat", "yes"), ("map_frame", "/map")])
def test_bad_publish_parameters_name_the_parameter(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"parameter {name}"):
        frames.publish_options_from_params({name: value})


def test_sim_stamps_are_simulation_seconds_never_zero() -> None:
    assert frames.sim_stamp_ns(12.5) == 12_500_000_000
    assert frames.sim_stamp_ns(0.0) == 1  # time 0 is "no time yet" under use_sim_time
    with pytest.raises(ValueError):
        frames.sim_stamp_ns(float("nan"))


def _axes(q: tuple[float, float, float, float]) -> np.ndarray:
    """Rows: the x, y, z axes of a frame with rotation ``q``, in its parent."""
    return np.array([frames.rotate(q, e) for e in np.eye(3)])


def test_quaternions_match_rotation_matrices() -> None:
    q = frames.quaternion_from_rpy(0.3, -0.2, 1.1)
    assert math.isclose(sum(c * c for c in q), 1.0)
    cr, sr, cp, sp, cy, sy = math.cos(0.3), math.sin(0.3), math.cos(-0.2), math.sin(-0.2), math.cos(1.1), math.sin(1.1)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    np.testing.assert_allclose(_axes(q).T, rz @ ry @ rx, atol=1e-12)
    # the optical frame: x right, y down, z forward, seen from a body frame x forward, y left, z up
    np.testing.assert_allclose(_axes(frames.OPTICAL_ROTATION), [[0, -1, 0], [0, 0, -1], [1, 0, 0]], atol=1e-12)


def test_sim_rsu_transforms_follow_the_renderers_axes() -> None:
    """map -> rsu/<sensor> of the built-in scene: each sensor's x axis is the boresight its renderer
    (sim/sensors.py) looks along, y its left; the optical child looks the same way with x right, y down."""
    cfg = SimConfig()
    rsu = Simulator(cfg).scene.rsu
    tfs = frames.rsu_transforms("rsu", frames.sim_mounts(cfg, rsu))
    by_child = {t.child: t for t in tfs}
    assert sorted(by_child) == ["rsu/camera", "rsu/camera_optical", "rsu/gnss", "rsu/lidar", "rsu/mmwave_array",
                                "rsu/radar"]
    assert by_child["rsu/camera_optical"].parent == "rsu/camera"
    assert all(t.parent == "map" for c, t in by_child.items() if c != "rsu/camera_optical")
    for name in ("camera", "radar", "lidar"):
        sensor = getattr(cfg, name)
        t = by_child[f"rsu/{name}"]
        np.testing.assert_allclose(t.translation, [rsu.position[0], rsu.position[1], sensor.mount_height])
        f, left, up = _sensor_axes(rsu.yaw, math.radians(getattr(sensor, "pitch_deg", 0.0)))
        np.testing.assert_allclose(_axes(t.rotation), [f, left, up], atol=1e-12)
    np.testing.assert_allclose(by_child["rsu/mmwave_array"].translation, rsu.position)
    # optical in map = camera rotation * optical rotation
    cam = by_child["rsu/camera"].rotation
    opt = frames.quaternion_multiply(cam, by_child["rsu/camera_optical"].rotation)
    f, left, up = _sensor_axes(rsu.yaw, math.radians(cfg.camera.pitch_deg))
    np.testing.assert_allclose(_axes(opt), [-left, -up, f], atol=1e-12)


def test_carla_mount_mirrors_as_carla_ros_bridge() -> None:
    """A CARLA sensor at (10, 5, 7), yaw 90 deg (CARLA +y) and pitch -12 deg (down) sits at (10, -5, 7) in
    carla-ros-bridge's map frame and looks along -y, tilted down."""
    m = frames.carla_mount("camera", 10.0, 5.0, 7.0, 90.0, -12.0)
    (t, optical) = frames.rsu_transforms("rsu", [m], map_frame="map")
    assert (t.parent, t.child, optical.child) == ("map", "rsu/camera", "rsu/camera_optical")
    assert t.translation == (10.0, -5.0, 7.0)
    c, s = math.cos(math.radians(12.0)), math.sin(math.radians(12.0))
    np.testing.assert_allclose(frames.rotate(t.rotation, (1, 0, 0)), [0.0, -c, -s], atol=1e-12)

"""Sensor frame conventions (CARLA's): where a known vehicle shows up in each sensor's output."""
from __future__ import annotations

import numpy as np
import pytest

from beam_tracking_ros.sim import SimConfig, Simulator, radar_to_xyz

TRUCK = np.array([[9.0, 2.5, 3.6]])


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SimConfig(seed=0, arrival_rate=0.0))


def _truck_at(sim: Simulator, dx: float, y: float) -> np.ndarray:
    """A truck at world x = rsu_x + dx on lane-centre y (RSU looks along world +y)."""
    x0 = sim.scene.rsu.position[0]
    return np.array([[x0 + dx, y, TRUCK[0, 2] / 2]])


def test_lidar_points_in_carla_sensor_frame(sim: Simulator) -> None:
    rsu = np.array(sim.scene.rsu.position)
    empty = sim.lidar.scan(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.random.default_rng(0))
    center = _truck_at(sim, 10.0, 5.25)
    pts = sim.lidar.scan(center, TRUCK, np.zeros(1), np.random.default_rng(0))
    assert pts.dtype == np.float32 and pts.shape[1] == 4
    # CARLA sensor frame: x forward (world +y here), y right (world +x here), z up from the sensor
    expect = np.array([center[0, 1] - rsu[1], center[0, 0] - rsu[0]])
    above = -sim.config.lidar.mount_height + 0.3  # above the road surface
    # the truck drives along world x = the sensor's y axis: 9 m long there, 2.5 m deep in x
    def in_box(p: np.ndarray) -> np.ndarray:
        d = np.abs(p[:, :2] - expect)
        return (d[:, 0] < 1.6) & (d[:, 1] < 4.9) & (p[:, 2] > above)

    near, near_empty = in_box(pts), in_box(empty)
    assert near.sum() > 50 and near_empty.sum() < 5
    box_pts = pts[near]
    assert box_pts[:, 2].max() == pytest.approx(TRUCK[0, 2] - sim.config.lidar.mount_height, abs=0.3)
    assert np.all((pts[:, 3] >= 0) & (pts[:, 3] <= 1))
    # ground points lie at z = -mount height
    ground = empty[np.abs(empty[:, 2] + sim.config.lidar.mount_height) < 0.1]
    assert len(ground) > 0.3 * len(empty)


def test_radar_sign_conventions(sim: Simulator) -> None:
    center = _truck_at(sim, 12.0, 5.25)
    towards_rsu = np.array([[-10.0, 0.0, 0.0]])  # driving towards smaller x: approaching the RSU side
    det = sim.radar.measure(center, TRUCK, np.array([np.pi]), towards_rsu, np.array([2]), np.zeros(1, bool),
                            np.random.default_rng(1))
    assert det.dtype == np.float32 and det.shape[1] == 4
    moving = det[np.abs(det[:, 0]) > 1.0]
    assert len(moving) >= 5
    assert np.all(moving[:, 0] < 0)  # approaching -> negative velocity (CARLA)
    assert np.all(moving[:, 1] > 0)  # vehicle to the right of the boresight -> positive azimuth (CARLA)
    xyz = radar_to_xyz(moving)
    assert np.all(xyz[:, 1] < 0)  # ROS frame: right is -y


def test_camera_projects_right_side_to_right_of_image(sim: Simulator) -> None:
    cam = sim.camera
    (u_right, v_right), _ = cam.project(_truck_at(sim, 6.0, 5.25)[0])
    (u_left, _), _ = cam.project(_truck_at(sim, -6.0, 5.25)[0])
    (_, v_far), _ = cam.project(_truck_at(sim, 6.0, -5.25 + 14.0)[0])
    assert u_right > cam.cx > u_left
    assert v_far < v_right  # farther across the road -> higher up in the image (camera pitched down)


def test_gnss_of_target_vehicle() -> None:
    s = Simulator(SimConfig(seed=2, label_mode="single"))
    f = s.step()
    g = s.config.gnss
    row = int(np.nonzero(s.traffic.id == f.beam.vehicle_ids[0])[0][0])
    # CARLA 0.9.16 projects +y of its frame north, and world +y = CARLA -y: world +y is south. 1 m is about
    # 1/111 km of latitude; check to a few metres (GNSS noise)
    dlat_m = (f.gnss[0] - g.lat0) * np.pi / 180 * 6378137.0
    assert dlat_m == pytest.approx(-s.traffic.y[row], abs=3.0)
    assert f.gnss[2] == pytest.approx(g.alt0 + s.traffic.size[row, 2], abs=2.0)

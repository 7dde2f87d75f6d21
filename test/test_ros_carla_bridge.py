"""The CARLA bridge without a CARLA server.

What is tested here: the conversions from CARLA's objects (fakes with the attributes and byte
layouts of carla.Image / RadarMeasurement / LidarMeasurement / GnssMeasurement / Actor /
EnvironmentObject) to the simulator's arrays, the ground truth from actor poses against the
channel model and the simulator's own labels, the frame matching of sensor callbacks, parameter
validation, the TCP probe, and the node's error paths as a real OS process (no server -> one clear
line and exit 1 within seconds; bad parameters -> exit 2).

What is NOT tested here: the connection to a real CARLA server, spawning, ticking and the live
data (no CARLA server can run on these machines). ``test_against_a_real_carla_server`` runs only
when ``BEAM_TRACKING_CARLA=host:port`` names a running server.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from ros_testing import requires_ros

from beam_tracking_ros.ros.carla_probe import carla_server_answers, describe_no_server

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "carla_bridge"


@pytest.fixture(scope="module")
def bridge():
    """The node module (needs rclpy); the conversions are plain functions inside it."""
    from beam_tracking_ros.ros import carla_bridge_node

    return carla_bridge_node


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- fakes with the attributes of the carla classes -----------------------------------------------
@dataclass
class Vec:
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@dataclass
class Rot:
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0


@dataclass
class Transform:
    location: Vec
    rotation: Rot


@dataclass
class BBox:
    location: Vec
    extent: Vec
    rotation: Rot = field(default_factory=Rot)


@dataclass
class FakeActor:
    """carla.Actor / carla.Vehicle: id, get_transform(), bounding_box (offset + half extents), get_velocity()."""

    id: int
    transform: Transform
    bounding_box: BBox
    velocity: Vec = field(default_factory=Vec)

    def get_transform(self) -> Transform:
        return self.transform

    def get_velocity(self) -> Vec:
        return self.velocity


@dataclass
class FakeMeasurement:
    """carla.Image / RadarMeasurement / LidarMeasurement: raw_data bytes, frame, timestamp (+ image size)."""

    raw_data: bytes
    frame: int = 0
    timestamp: float = 0.0
    width: int = 0
    height: int = 0
    fov: float = 90.0


def sim_frames(n: int = 12, **cfg):
    from beam_tracking_ros.sim import SimConfig, Simulator

    sim = Simulator(SimConfig(seed=3, arrival_rate=2.0, **cfg))
    return sim, [sim.step() for _ in range(n)]


def actors_from_sim(sim) -> list[FakeActor]:
    """The simulator's vehicles as CARLA would report them: left-handed, yaw clockwise in degrees,
    bounding box offset from the actor origin (here 0.3 m forward, so the rotation is exercised)."""
    t = sim.traffic
    out = []
    for i in range(len(t)):
        cx, cy, cz = t.center[i]
        yaw_c = -np.degrees(t.yaw[i])
        r = np.radians(yaw_c)
        off = (0.3, 0.0, 0.0)
        # actor origin = box centre - R(yaw) @ offset (CARLA frame)
        ox = cx - (np.cos(r) * off[0] - np.sin(r) * off[1])
        oy = -cy - (np.sin(r) * off[0] + np.cos(r) * off[1])
        out.append(FakeActor(
            id=int(t.id[i]), transform=Transform(Vec(ox, oy, cz - off[2]), Rot(yaw=yaw_c)),
            bounding_box=BBox(Vec(*off), Vec(*(t.size[i] / 2))),
            velocity=Vec(t.velocity[i][0], -t.velocity[i][1], t.velocity[i][2])))
    return out[::-1]  # any order: the bridge sorts by id


# ---- sensor conversions -----------------------------------------------------------------------------
@requires_ros
def test_sensor_buffers_laid_out_as_carla_give_the_simulators_arrays(bridge) -> None:
    _, frames = sim_frames(3)
    f = frames[-1]
    h, w = f.camera.shape[:2]
    # carla.Image.raw_data: row-major pixels, each B, G, R, A bytes
    raw = b"".join(bytes(px) for px in f.camera.reshape(-1, 4).tolist())
    img = bridge.image_from_carla(FakeMeasurement(raw, width=w, height=h))
    np.testing.assert_array_equal(img, f.camera)
    # RadarMeasurement: per detection 4 little-endian float32 velocity, azimuth, altitude, depth
    raw = b"".join(struct.pack("<4f", *d) for d in f.radar.tolist())
    np.testing.assert_array_equal(bridge.radar_from_carla(FakeMeasurement(raw)), f.radar)
    # LidarMeasurement: per point float32 x, y, z, intensity
    raw = b"".join(struct.pack("<4f", *p) for p in f.lidar[:500].tolist())
    np.testing.assert_array_equal(bridge.lidar_from_carla(FakeMeasurement(raw)), f.lidar[:500])
    with pytest.raises(ValueError, match="raw_data"):
        bridge.image_from_carla(FakeMeasurement(raw[:-1], width=w, height=h))
    with pytest.raises(ValueError, match="multiple of 16"):
        bridge.lidar_from_carla(FakeMeasurement(raw[:-4]))


@requires_ros
def test_converted_measurements_make_the_simulator_nodes_messages(bridge) -> None:
    from beam_tracking_ros.ros import convert

    dets = [(-3.5, 0.2, -0.05, 20.0), (1.0, -0.4, 0.01, 42.0)]
    radar = bridge.radar_from_carla(FakeMeasurement(b"".join(struct.pack("<4f", *d) for d in dets)))
    msg = convert.radar_to_msg(radar, 1.5, "rsu/radar")
    assert [fl.name for fl in msg.fields] == ["x", "y", "z", "Range", "Velocity", "AzimuthAngle", "ElevationAngle"]
    np.testing.assert_allclose(convert.radar_from_msg(msg), np.array(dets, np.float32))
    pts = [(5.0, 2.0, -1.0, 0.7)]
    lidar = bridge.lidar_from_carla(FakeMeasurement(struct.pack("<4f", *pts[0])))
    lmsg = convert.lidar_to_msg(lidar, 1.5, "rsu/lidar")
    assert struct.unpack_from("<4f", bytes(lmsg.data))[1] == -2.0  # y mirrored to ROS, as the bridge does
    np.testing.assert_allclose(convert.lidar_from_msg(lmsg), np.array(pts, np.float32))


@requires_ros
def test_gnss_measurement_and_geo_projection(bridge) -> None:
    from beam_tracking_ros.sim import location_to_gnss

    g = bridge.gnss_from_carla(SimpleNamespace(latitude=49.01, longitude=8.41, altitude=112.5))
    assert g.dtype == np.float64 and g.tolist() == [49.01, 8.41, 112.5]
    with pytest.raises(ValueError, match="not finite"):
        bridge.gnss_from_carla(SimpleNamespace(latitude=float("nan"), longitude=8.4, altitude=0.0))
    actor = FakeActor(7, Transform(Vec(10.0, 5.0, 0.0), Rot(yaw=0.0)), BBox(Vec(0, 0, 0.75), Vec(2.0, 1.0, 0.75)))
    poses = bridge.poses_from_actors([actor])
    fix = bridge.gnss_of_vehicles(poses, np.array([0]), (49.0, 8.4, 110.0))
    np.testing.assert_allclose(fix[0], location_to_gnss(np.array([10.0, 5.0, 1.5]), 49.0, 8.4, 110.0))
    assert fix[0, 1] > 8.4 and fix[0, 0] < 49.0  # CARLA +x is east, +y (right) is south
    # the RSU's own fix (the GPS feature's origin): its array, rsu_height above the ground at the pole
    np.testing.assert_allclose(bridge.rsu_gnss(10.0, 5.0, 0.3, 6.0, (49.0, 8.4, 110.0)),
                               location_to_gnss(np.array([10.0, 5.0, 6.3]), 49.0, 8.4, 110.0))


# ---- poses -> channel inputs -----------------------------------------------------------------------
@requires_ros
def test_poses_mirror_carla_left_handed_frame(bridge) -> None:
    a = FakeActor(12, Transform(Vec(10.0, 5.0, 0.0), Rot(yaw=90.0)), BBox(Vec(0.5, 0.0, 0.8), Vec(2.2, 0.9, 0.8)),
                  Vec(3.0, 4.0, 0.0))
    b = FakeActor(3, Transform(Vec(0.0, 0.0, 1.0), Rot(yaw=0.0)), BBox(Vec(0, 0, 0.7), Vec(2.0, 1.0, 0.7)))
    p = bridge.poses_from_actors([a, b], ground_z=1.0)
    assert p.ids.tolist() == [3, 12]
    # a: CARLA yaw 90 turns the 0.5 m forward offset to +y (right): centre (10, 5.5, 0.8) -> world y = -5.5
    np.testing.assert_allclose(p.boxes.center[1], [10.0, -5.5, -0.2])
    np.testing.assert_allclose(p.boxes.size[1], [4.4, 1.8, 1.6])
    np.testing.assert_allclose(p.boxes.yaw, [0.0, -np.pi / 2])
    np.testing.assert_allclose(p.velocity[1], [3.0, -4.0, 0.0])
    np.testing.assert_allclose(p.speed[1], 5.0)
    np.testing.assert_allclose(p.boxes.center[0], [0.0, 0.0, 0.7])  # ground_z subtracted
    assert len(bridge.poses_from_actors([])) == 0


@requires_ros
def test_rsu_beside_spawn_point_looks_across_the_road(bridge) -> None:
    x, y, z, yaw = bridge.rsu_from_spawn_point(0.0, 0.0, 0.3, 0.0, 6.0)
    np.testing.assert_allclose([x, y, z, yaw], [0.0, 6.0, 0.3, -90.0], atol=1e-12)  # right of +x is +y
    rsu = bridge.rsu_pose_world(x, y, yaw, 6.0)
    np.testing.assert_allclose(rsu.position, [0.0, -6.0, 6.0], atol=1e-12)
    np.testing.assert_allclose(rsu.yaw, np.pi / 2)  # boresight +y (world): towards the lane at y = 0


@requires_ros
def test_ground_truth_from_poses_equals_channel_model_and_simulator_labels(bridge) -> None:
    from beam_tracking_ros.channel import VehicleBoxes

    for mode in ("sum_rss", "single"):
        sim, _ = sim_frames(1, label_mode=mode)
        target = None
        for _ in range(25):
            frame = sim.step()
            poses = bridge.poses_from_actors(actors_from_sim(sim))
            t = sim.traffic
            np.testing.assert_array_equal(poses.ids, t.id)
            np.testing.assert_allclose(poses.boxes.center, t.center, atol=1e-9)
            model = sim.channel
            shadow = np.random.default_rng(1).normal(0.0, 4.0, (len(t), 2 + len(sim.scene.walls)))
            res = bridge.ground_truth(model, sim.scene.rsu, poses, sim.scene.walls, shadow_db=shadow)
            ref = model.compute(sim.scene.rsu, VehicleBoxes(t.center, t.size, t.yaw), sim.scene.walls,
                                shadow_db=shadow)
            np.testing.assert_allclose(res.powers_dbm, ref.powers_dbm, atol=1e-3)
            # the target choice, on the simulator's own channel result, reproduces the simulator's label
            label, _, target = bridge.choose_label(sim.channel_result, poses.ids, poses.boxes.center,
                                                   sim.scene.rsu.position, mode, sim.config.label_range_m, target)
            if frame.beam is None:
                assert label is None
                continue
            assert label.optimal_beam == frame.beam.optimal_beam and label.mode == mode
            assert label.vehicle_ids == frame.beam.vehicle_ids
            assert label.los_blocked == frame.beam.los_blocked
            np.testing.assert_array_equal(label.powers_dbm, frame.beam.powers_dbm)
    with pytest.raises(ValueError, match="label_mode"):
        bridge.choose_label(ref, t.id, t.center, (0, 0), "best", 80.0, None)


@requires_ros
def test_building_boxes_give_only_the_facades_facing_the_rsu(bridge) -> None:
    from beam_tracking_ros.channel import ChannelModel, RsuPose, VehicleBoxes

    # CARLA box centred at y = -20 (left of the RSU in CARLA = +y in the world), 20 x 10 x 20 m
    near = SimpleNamespace(bounding_box=BBox(Vec(0.0, -20.0, 10.0), Vec(10.0, 5.0, 10.0)))
    far = SimpleNamespace(bounding_box=BBox(Vec(500.0, 0.0, 10.0), Vec(10.0, 5.0, 10.0)))
    walls = bridge.walls_from_building_boxes([near, far], (0.0, 0.0, 6.0), radius_m=150.0, loss_db=7.0)
    assert len(walls) == 1
    ends = sorted(map(tuple, np.round(np.r_[walls.p0, walls.p1], 9)))
    assert ends == [(-10.0, 15.0), (10.0, 15.0)]
    assert walls.height.tolist() == [20.0] and walls.loss_db.tolist() == [7.0]
    # a vehicle in front of that facade gets a valid wall reflection from the model
    res = ChannelModel().compute(RsuPose((0.0, 0.0, 6.0), np.pi / 2),
                                 VehicleBoxes([[5.0, 8.0, 0.75]], [[4.5, 1.8, 1.5]], [0.0]), walls)
    assert res.path_valid[0, 1]
    assert len(bridge.walls_from_building_boxes([], (0, 0, 6), 150.0)) == 0


@requires_ros
def test_shadowing_is_correlated_per_actor_id(bridge) -> None:
    proc = bridge.ShadowingProcess(4.0, 3, np.random.default_rng(0))
    first = proc.update(np.array([2, 5]), np.array([0.0, 0.0]), 0.1)
    again = proc.update(np.array([2, 5, 9]), np.array([0.0, 0.0, 0.0]), 0.1)
    np.testing.assert_array_equal(again[:2], first)  # standing still: same shadowing (rho = 1)
    later = proc.update(np.array([5, 9]), np.array([1000.0, 0.0]), 1.0)  # 2 gone, 5 moved far
    np.testing.assert_array_equal(later[1], again[2])
    assert not np.allclose(later[0], first[1])


# ---- matching callbacks to frames ------------------------------------------------------------------
@requires_ros
def test_frame_collector_matches_frames_and_stays_bounded(bridge) -> None:
    fc = bridge.FrameCollector(["camera", "radar"], maxsize=3)
    cam, rad = fc.callback("camera"), fc.callback("radar")
    cam(SimpleNamespace(frame=4))
    cam(SimpleNamespace(frame=5))
    rad(SimpleNamespace(frame=6))  # radar missed frame 5

    def late() -> None:
        time.sleep(0.1)
        cam(SimpleNamespace(frame=6))

    got = fc.collect(5, timeout_s=0.3)
    assert set(got) == {"camera"} and got["camera"].frame == 5
    th = threading.Thread(target=late)
    th.start()
    got = fc.collect(6, timeout_s=2.0)  # the radar item kept from before, the camera arriving late
    th.join()
    assert {k: v.frame for k, v in got.items()} == {"camera": 6, "radar": 6}
    t0 = time.monotonic()
    assert fc.collect(7, timeout_s=0.2) == {}
    assert time.monotonic() - t0 < 1.0
    for f in range(10):
        cam(SimpleNamespace(frame=100 + f))
    assert fc.queues["camera"].qsize() == 3 and fc.dropped >= 7


# ---- parameters ------------------------------------------------------------------------------------
@requires_ros
@pytest.mark.parametrize(("name", "value"), [
    ("port", 0), ("port", 70000), ("timeout_s", 0.0), ("rate_hz", -10.0), ("n_vehicles", -1),
    ("label_mode", "best"), ("weather", "snow"), ("camera_width", 0), ("lidar_channels", 0),
    ("radar_range_m", -1.0), ("rsu_spawn_point", -2), ("host", ""), ("role_name", "a/b"),
])
def test_bad_parameters_are_named(bridge, name, value) -> None:
    with pytest.raises(ValueError, match=f"parameter {name}"):
        bridge.bridge_config_from_params({name: value})


@requires_ros
def test_defaults_match_the_simulator_nodes_sensors(bridge) -> None:
    from beam_tracking_ros.ros.params import sim_config_from_params
    from beam_tracking_ros.ros.simulator_node import SIM_PARAMS

    cfg = bridge.bridge_config_from_params({})
    sim = sim_config_from_params({k: v for k, (v, _) in SIM_PARAMS.items()})
    assert (cfg.camera.width, cfg.camera.height, cfg.camera.fov_deg) == (sim.camera.width, sim.camera.height,
                                                                         sim.camera.fov_deg)
    assert cfg.lidar == sim.lidar and cfg.radar == sim.radar
    assert cfg.rate_hz == sim.rate_hz and cfg.label_mode == sim.label_mode
    assert cfg.lidar_points_per_second == 16 * 720 * 10  # one full turn of 0.5 deg steps per tick
    assert cfg.dt == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown carla_bridge parameter"):
        bridge.bridge_config_from_params({"prot": 2000})
    assert bridge.weather_preset("night")[0] == "ClearNight"


# ---- probe -----------------------------------------------------------------------------------------
def test_probe_closed_port_false_listening_socket_true() -> None:
    port = free_port()
    t0 = time.monotonic()
    assert carla_server_answers("127.0.0.1", port, 1.0) is False
    assert time.monotonic() - t0 < 1.5
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        assert carla_server_answers("127.0.0.1", srv.getsockname()[1], 1.0) is True
    with pytest.raises(ValueError, match="port"):
        carla_server_answers("127.0.0.1", 0, 1.0)
    with pytest.raises(ValueError, match="timeout_s"):
        carla_server_answers("127.0.0.1", 2000, 0)
    msg = describe_no_server("carla.example", 2000, 2.0)
    assert msg.startswith("no CARLA server answered at carla.example:2000 within 2 s")


@requires_ros
def test_connect_deadline_holds_even_if_the_client_never_returns(bridge) -> None:
    """A server that accepts TCP but whose client call never returns: connect gives up on time."""

    class HangingClient:
        def __init__(self, host, port):
            pass

        def set_timeout(self, s):
            pass

        def get_server_version(self):
            time.sleep(60)

    fake_carla = SimpleNamespace(Client=HangingClient)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        cfg = bridge.bridge_config_from_params({"port": srv.getsockname()[1], "timeout_s": 0.3})
        t0 = time.monotonic()
        with pytest.raises(bridge.CarlaConnectionError, match="no CARLA server answered"):
            bridge.connect(cfg, fake_carla)
        assert time.monotonic() - t0 < cfg.connect_deadline_s + 1.0


# ---- the node as a real process --------------------------------------------------------------------
def run_bridge(*params: str, timeout: float = 30.0) -> tuple[subprocess.CompletedProcess, float]:
    args = [sys.executable, str(SCRIPT), "--ros-args"]
    for p in params:
        args += ["-p", p]
    t0 = time.monotonic()
    res = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    return res, time.monotonic() - t0


@requires_ros
def test_node_without_server_says_so_once_and_exits_1() -> None:
    port = free_port()
    res, took = run_bridge(f"port:={port}", "timeout_s:=1.0")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert took < 10.0
    assert out.count("no CARLA server answered") == 1
    assert f"no CARLA server answered at 127.0.0.1:{port} within 1 s" in out
    assert "Traceback" not in out


@requires_ros
def test_node_against_a_silent_listener_does_not_hang() -> None:
    """Something accepts TCP on the port but never speaks CARLA's RPC: still exit 1, on time."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        res, took = run_bridge(f"port:={srv.getsockname()[1]}", "timeout_s:=0.5")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert took < 10.0
    assert out.count("no CARLA server answered") == 1 and "Traceback" not in out


@requires_ros
@pytest.mark.parametrize(("param", "name"), [("rate_hz:=0.0", "rate_hz"), ("label_mode:=best", "label_mode"),
                                             ("port:=99999", "port")])
def test_node_rejects_bad_parameters_with_exit_2(param: str, name: str) -> None:
    params = [param] if name == "port" else [f"port:={free_port()}", param]  # closed port: must not get there
    res, _ = run_bridge(*params)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert f"parameter {name}" in out and "no CARLA server" not in out  # rejected before connecting


@requires_ros
@pytest.mark.skipif(not os.environ.get("BEAM_TRACKING_CARLA"),
                    reason="the real CARLA connection is untested here: no CARLA server can run on these "
                           "machines; set BEAM_TRACKING_CARLA=host:port to run this against a server")
def test_against_a_real_carla_server() -> None:
    host, port = os.environ["BEAM_TRACKING_CARLA"].rsplit(":", 1)
    res, _ = run_bridge(f"host:={host}", f"port:={port}", "timeout_s:=10.0", "max_frames:=20",
                        "realtime_factor:=0.0", "n_vehicles:=10", timeout=180.0)
    assert res.returncode == 0, res.stdout + res.stderr


@requires_ros
def test_publish_frame_from_fake_measurements_gives_the_simulator_nodes_messages(bridge) -> None:
    """The node's per-tick publishing on fake measurements and actors (no server: set-up is skipped)."""
    import rclpy
    from rclpy.node import Node

    from beam_tracking_ros.channel import ChannelConfig, ChannelModel
    from beam_tracking_ros.ros import convert

    sim, frames = sim_frames(10)
    f = frames[-1]

    class ActorList(list):
        def filter(self, pattern):
            return self

    rclpy.init()
    node = bridge.CarlaBridgeNode.__new__(bridge.CarlaBridgeNode)
    try:
        Node.__init__(node, "carla_bridge_test")
        node.cfg = bridge.bridge_config_from_params({})
        node.topics = bridge.Topics()
        node.channel = ChannelModel(ChannelConfig())
        node.codebook_id, node.noise_dbm = "cb", -80.0
        node.world = SimpleNamespace(get_actors=lambda: ActorList(actors_from_sim(sim)))
        node.rsu_carla, node.rsu, node.walls = (0.0, 0.0, 0.0, -90.0), sim.scene.rsu, sim.scene.walls
        node.rng_shadow, node.rng_gnss = np.random.default_rng(0), np.random.default_rng(1)
        node.shadowing = bridge.ShadowingProcess(4.0, 2 + len(node.walls), node.rng_shadow)
        node.geo_ref, node.target_id = (49.0, 8.4, 110.0), None
        node.rsu_fix = bridge.rsu_gnss(*node.rsu_carla[:3], node.cfg.rsu_height, node.geo_ref)
        node._make_publishers()
        sent: dict[str, object] = {}
        for name in ("pub_image", "pub_info", "pub_radar", "pub_lidar", "pub_gnss", "pub_rsu_gnss", "pub_beam",
                     "pub_clock"):
            setattr(node, name, SimpleNamespace(publish=lambda msg, n=name: sent.setdefault(n, msg)))
        h, w = f.camera.shape[:2]
        data = {"camera": FakeMeasurement(f.camera.tobytes(), frame=9, width=w, height=h, fov=90.0),
                "radar": FakeMeasurement(f.radar.tobytes(), frame=9), "lidar": FakeMeasurement(f.lidar.tobytes(), 9)}
        node.publish_frame(convert.stamp_from_ns(10**18), data)
        assert {n: getattr(getattr(m, "header", None), "frame_id", None) for n, m in sent.items()} == {
            "pub_image": "rsu/camera", "pub_info": "rsu/camera", "pub_radar": "rsu/radar", "pub_lidar": "rsu/lidar",
            "pub_gnss": "target/gnss", "pub_rsu_gnss": "rsu/gnss", "pub_beam": "rsu/mmwave_array", "pub_clock": None}
        np.testing.assert_allclose(convert.gnss_from_msg(sent["pub_rsu_gnss"]), node.rsu_fix)
        np.testing.assert_array_equal(convert.image_from_msg(sent["pub_image"]), f.camera)
        np.testing.assert_allclose(convert.radar_from_msg(sent["pub_radar"]), f.radar)
        np.testing.assert_allclose(convert.lidar_from_msg(sent["pub_lidar"]), f.lidar)
        obs = convert.beam_observation_from_msg(sent["pub_beam"])
        assert obs.label.mode == "sum_rss" and sorted(obs.label.vehicle_ids) == sorted(f.beam.vehicle_ids)
        assert len(obs.label.powers_dbm) == sim.n_beams
    finally:
        node.world = None  # nothing to clean up in CARLA
        node.destroy_node()
        rclpy.try_shutdown()

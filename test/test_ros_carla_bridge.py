"""The CARLA bridge node without a CARLA server: messages it publishes, and its error paths as a real OS process.

No server -> one clear line and exit 1 within seconds; bad parameters -> exit 2. The ROS-free half
(conversions, ground truth, frame matching, parameters) is tested in ``test_sim_carla_bridge.py``.

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
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from carla_fakes import (
    SPAWN_POINT_LIFT_M,
    FakeClient,
    FakeMeasurement,
    FakeSettings,
    FakeWorld,
    actors_from_sim,
    fake_carla_module,
    free_port,
    sim_frames,
    tiny_road_map,
)
from ros_testing import requires_ros

from beam_tracking_ros.io.frames import PublishOptions, publish_options_from_params, rotate
from beam_tracking_ros.sim import ground_truth

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "carla_bridge"


@pytest.fixture(scope="module")
def bridge():
    """The node module (needs rclpy); the conversions are plain functions inside it."""
    from beam_tracking_ros.ros import carla_bridge_node

    return carla_bridge_node


@requires_ros
def test_converted_measurements_make_the_simulator_nodes_messages(bridge) -> None:
    from beam_tracking_ros.io import convert

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
def test_defaults_match_the_simulator_nodes_sensors() -> None:
    """The bridge's default sensors are the simulator node's (whose parameter table lives in ros/)."""
    from beam_tracking_ros.ros.params import sim_config_from_params
    from beam_tracking_ros.ros.simulator_node import SIM_PARAMS
    from beam_tracking_ros.sim import carla_bridge as bridge

    cfg = bridge.bridge_config_from_params({})
    sim = sim_config_from_params({k: v for k, (v, _) in SIM_PARAMS.items()})
    assert (cfg.camera.width, cfg.camera.height, cfg.camera.fov_deg) == (sim.camera.width, sim.camera.height,
                                                                         sim.camera.fov_deg)
    assert cfg.lidar == sim.lidar and cfg.radar == sim.radar
    assert cfg.rate_hz == sim.rate_hz and cfg.label_mode == sim.label_mode


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
                                             ("port:=99999", "port"),
                                             # issue 17.4 / 17.5: refused before the world is touched
                                             ("rate_hz:=5.0", "rate_hz"), ("seed:=-5", "seed"),
                                             ("seed:=1.5", "seed"), ("seed:=1180591620717411303424", "seed")])
def test_node_rejects_bad_parameters_with_exit_2(param: str, name: str) -> None:
    params = [param] if name == "port" else [f"port:={free_port()}", param]  # closed port: must not get there
    res, _ = run_bridge(*params)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert f"parameter {name}" in out and "no CARLA server" not in out  # rejected before connecting
    assert "Traceback" not in out and out.count("invalid configuration") == 1


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
    from beam_tracking_ros.io import convert
    from beam_tracking_ros.io.topics import Topics

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
        node.topics = Topics()
        node.channel = ChannelModel(ChannelConfig())
        node.codebook_id, node.noise_dbm = "cb", -80.0
        node.world = SimpleNamespace(get_actors=lambda: ActorList(actors_from_sim(sim)))
        node.rsu_carla, node.rsu, node.walls = (0.0, 0.0, 0.0, -90.0), sim.scene.rsu, sim.scene.walls
        node.rng_shadow, node.rng_gnss = np.random.default_rng(0), np.random.default_rng(1)
        node.shadowing = ground_truth.ShadowingProcess(4.0, 2 + len(node.walls), node.rng_shadow)
        node.geo_ref, node.target_id = (49.0, 8.4, 110.0), None
        node.rsu_fix = bridge.rsu_gnss(*node.rsu_carla[:3], node.cfg.rsu_height, node.geo_ref)
        node.options, node.sensor_transforms = PublishOptions(), []
        node._make_publishers()
        sent: dict[str, object] = {}
        for name in ("image", "info", "radar", "lidar", "gnss", "rsu_gnss", "beam", "clock"):
            setattr(node.pubs, name, SimpleNamespace(publish=lambda msg, n="pub_" + name: sent.setdefault(n, msg)))
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



# ================================================================================================
# Set-up and shutdown against a fake server (test/carla_fakes.py): ground height, physics, exit paths
# ================================================================================================

ORIGINAL = FakeSettings(synchronous_mode=False, fixed_delta_seconds=None)


@pytest.fixture
def fake_server(bridge, monkeypatch):
    """make(world, **params) -> the node set up against ``world`` (connect() and ``import carla`` faked)."""
    import rclpy
    from rclpy.parameter import Parameter

    rclpy.init()
    nodes = []

    def make(world: FakeWorld, **params):
        client = FakeClient(world)
        monkeypatch.setitem(sys.modules, "carla", fake_carla_module(client))
        monkeypatch.setattr(bridge, "connect", lambda cfg, carla: (client, world, "0.9.16"))
        node = bridge.CarlaBridgeNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        nodes.append(node)
        return node, client

    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.try_shutdown()


@requires_ros
def test_setup_takes_the_ground_from_the_road_not_the_spawn_point(fake_server, capfd) -> None:
    """Issue 17.2: sensor mounts, the RSU's fix and the world frame's z = 0 sit on the road surface, not on
    the spawn point CARLA lifts 0.6 m above it. Also 17.5: the log names the client's version."""
    world = FakeWorld(tiny_road_map(elevation_m=2.0))
    sp = world.map.spawn_points[3]
    node, _ = fake_server(world, rsu_spawn_point=3, n_vehicles=2)
    assert sp.location.z == pytest.approx(2.0 + SPAWN_POINT_LIFT_M)
    assert node.rsu_carla[2] == pytest.approx(2.0)
    cfg = node.cfg
    mounts = {s.blueprint.attrs["role_name"]: s.transform.location.z for s in world.spawned[:3]}
    assert mounts == pytest.approx({"rsu_camera": 2.0 + cfg.camera.mount_height,
                                    "rsu_radar": 2.0 + cfg.radar.mount_height,
                                    "rsu_lidar": 2.0 + cfg.lidar.mount_height})
    from beam_tracking_ros.sim.carla_bridge import rsu_gnss

    x, y = node.rsu_carla[:2]
    np.testing.assert_allclose(node.rsu_fix, rsu_gnss(x, y, 2.0, cfg.rsu_height, node.geo_ref))
    assert "(client 0.9.16-fake)" in capfd.readouterr().err


@requires_ros
def test_setup_substeps_cover_every_step_and_shutdown_restores_the_world(fake_server) -> None:
    """Issue 17.4: at 8 Hz a step of 0.125 s needs 13 physics substeps of 0.01 s (CARLA's default 10 would
    leave 25 ms of every step unsimulated). 17.5: a normal shutdown gives the world back its settings."""
    world = FakeWorld(tiny_road_map(), settings=FakeSettings(**vars(ORIGINAL)))
    node, client = fake_server(world, rate_hz=8.0, n_vehicles=3)
    sync = world.applied[0]
    assert sync.synchronous_mode and sync.substepping and sync.fixed_delta_seconds == pytest.approx(0.125)
    assert sync.max_substeps == 13 and sync.max_substep_delta_time == 0.01
    assert sync.fixed_delta_seconds <= sync.max_substep_delta_time * sync.max_substeps
    ours = [a.id for a in world.spawned]
    assert len(ours) == 3 + 3  # sensors + vehicles
    node.destroy_node()
    assert world.settings == ORIGINAL and world.weather == "original weather"
    assert sorted(client.destroyed) == sorted(ours) and list(world.actors) == [7]  # another client's car stays
    assert client.tm.synchronous is False


@requires_ros
@pytest.mark.parametrize("spawn_call", [1, 3, 5])  # the first sensor, the last sensor, a vehicle
def test_ctrl_c_during_setup_restores_the_world_and_destroys_only_ours(fake_server, spawn_call: int) -> None:
    """Issue 17.5: a KeyboardInterrupt while spawning leaves no synchronous world and no stray actors."""
    world = FakeWorld(tiny_road_map(), settings=FakeSettings(**vars(ORIGINAL)), interrupt_on_spawn=spawn_call)
    with pytest.raises(KeyboardInterrupt):
        fake_server(world, n_vehicles=3)
    assert world.applied[0].synchronous_mode and world.settings == ORIGINAL
    assert world.weather == "original weather"
    client = sys.modules["carla"].Client("", 0)
    assert sorted(client.destroyed) == sorted(a.id for a in world.spawned) and list(world.actors) == [7]
    assert len(world.spawned) == spawn_call - 1


@requires_ros
def test_a_map_that_cannot_serve_the_parameters_leaves_the_world_untouched(fake_server) -> None:
    """Issue 17.5: what the map must offer (the RSU's spawn point) is checked before the settings change."""
    world = FakeWorld(tiny_road_map(), settings=FakeSettings(**vars(ORIGINAL)))
    with pytest.raises(ValueError, match="parameter rsu_spawn_point: 99 >= the map's 19 spawn points"):
        fake_server(world, rsu_spawn_point=99)
    assert world.applied == [] and world.spawned == [] and world.weather == "original weather"


@requires_ros
def test_compat_mode_publishes_reliable_sensors_sim_stamps_and_counts_missing_tf(bridge) -> None:
    """carla_ros_bridge_compat: the sensors are reliable depth 10 (a reliable subscriber -- ros2 bag record,
    carla-ros-bridge's own consumers -- hears them), the stamps are CARLA's elapsed_seconds as on /clock,
    and without tf2_msgs /tf is skipped, said once and counted; the default mode keeps wall-anchored stamps."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import ReliabilityPolicy

    from beam_tracking_ros.io.topics import Topics

    rclpy.init()
    node = bridge.CarlaBridgeNode.__new__(bridge.CarlaBridgeNode)
    try:
        Node.__init__(node, "carla_bridge_compat_test")
        node.cfg = bridge.bridge_config_from_params({})
        node.topics, node.codebook_id, node.noise_dbm = Topics(), "cb", -80.0
        node.options = publish_options_from_params({"carla_ros_bridge_compat": True})
        node.sensor_transforms = bridge.bridge_transforms(node.cfg, 10.0, 5.0, 0.5, 90.0)
        node._make_publishers()
        for pub in (node.pubs.image, node.pubs.info, node.pubs.radar, node.pubs.lidar, node.pubs.gnss,
                    node.pubs.rsu_gnss, node.pubs.clock):
            assert pub.qos_profile.reliability == ReliabilityPolicy.RELIABLE and pub.qos_profile.depth == 10
        assert node.stamp_ns(1234.05) == 1_234_050_000_000
        node.elapsed0, node.t0_ns = None, 7 * 10**18
        node.options = PublishOptions()
        assert [node.stamp_ns(e) for e in (1234.05, 1234.15)] == [7 * 10**18, 7 * 10**18 + 100_000_000]
        try:
            import tf2_msgs  # noqa: F401
        except ImportError:
            node.pubs.publish(bridge.convert.stamp_from_sec(1.0), rsu_fix=(49.0, 8.4, 110.0))
            node.pubs.publish(bridge.convert.stamp_from_sec(1.1), rsu_fix=(49.0, 8.4, 110.0))
            assert node.pubs.tf is None and node.pubs.tf_unpublished == 2
        else:
            assert node.pubs.tf is not None
    finally:
        node.world = None
        node.destroy_node()
        rclpy.try_shutdown()


@requires_ros
def test_bridge_transforms_put_each_sensor_where_it_is_spawned(bridge) -> None:
    cfg = bridge.bridge_config_from_params({})
    tfs = {t.child: t for t in bridge.bridge_transforms(cfg, 10.0, 5.0, 0.5, 90.0)}
    assert set(tfs) == {"rsu/mmwave_array", "rsu/gnss", "rsu/camera", "rsu/camera_optical", "rsu/radar", "rsu/lidar"}
    assert tfs["rsu/camera"].translation == (10.0, -5.0, 0.5 + cfg.camera.mount_height)
    assert tfs["rsu/mmwave_array"].translation == (10.0, -5.0, 0.5 + cfg.rsu_height)
    c, s = np.cos(np.radians(cfg.camera.pitch_deg)), np.sin(np.radians(cfg.camera.pitch_deg))
    np.testing.assert_allclose(rotate(tfs["rsu/camera"].rotation, (1, 0, 0)), [0.0, -c, s], atol=1e-12)
    np.testing.assert_allclose(rotate(tfs["rsu/lidar"].rotation, (1, 0, 0)), [0.0, -1.0, 0.0], atol=1e-12)

"""The CARLA bridge's ROS-free half (``sim/carla_bridge.py``) without a CARLA server, and without rclpy.

What is tested here: the conversions from CARLA's objects (fakes with the attributes and byte layouts of
carla.Image / RadarMeasurement / LidarMeasurement / GnssMeasurement / Actor / EnvironmentObject) to the
simulator's arrays, the ground truth from actor poses against the channel model and the simulator's own
labels, the frame matching of sensor callbacks, parameter validation, the connection deadline and the
TCP probe. The node itself is tested in ``test_ros_carla_bridge.py``.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from carla_fakes import (
    SPAWN_POINT_LIFT_M,
    BBox,
    FakeActor,
    FakeClient,
    FakeMap,
    FakeMeasurement,
    Rot,
    Transform,
    Vec,
    actors_from_sim,
    fake_carla_module,
    free_port,
    sim_frames,
    tiny_road_map,
)

from beam_tracking_ros.sim import carla_bridge as bridge
from beam_tracking_ros.sim import ground_truth
from beam_tracking_ros.sim.carla_probe import carla_server_answers, describe_no_server


def test_sensor_buffers_laid_out_as_carla_give_the_simulators_arrays() -> None:
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


def test_gnss_measurement_and_geo_projection() -> None:
    from beam_tracking_ros.sim import location_to_gnss

    g = bridge.gnss_from_carla(SimpleNamespace(latitude=49.01, longitude=8.41, altitude=112.5))
    assert g.dtype == np.float64 and g.tolist() == [49.01, 8.41, 112.5]
    with pytest.raises(ValueError, match="not finite"):
        bridge.gnss_from_carla(SimpleNamespace(latitude=float("nan"), longitude=8.4, altitude=0.0))
    actor = FakeActor(7, Transform(Vec(10.0, 5.0, 0.0), Rot(yaw=0.0)), BBox(Vec(0, 0, 0.75), Vec(2.0, 1.0, 0.75)))
    poses = bridge.poses_from_actors([actor])
    fix = bridge.gnss_of_vehicles(poses, np.array([0]), (49.0, 8.4, 110.0))
    np.testing.assert_allclose(fix[0], location_to_gnss(np.array([10.0, 5.0, 1.5]), 49.0, 8.4, 110.0))
    assert fix[0, 1] > 8.4 and fix[0, 0] > 49.0  # CARLA 0.9.16: +x is east, +y is north
    # the RSU's own fix (the GPS feature's origin): its array, rsu_height above the ground at the pole
    np.testing.assert_allclose(bridge.rsu_gnss(10.0, 5.0, 0.3, 6.0, (49.0, 8.4, 110.0)),
                               location_to_gnss(np.array([10.0, 5.0, 6.3]), 49.0, 8.4, 110.0))


def test_poses_mirror_carla_left_handed_frame() -> None:
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


def test_rsu_beside_spawn_point_looks_across_the_road() -> None:
    x, y, z, yaw = bridge.rsu_from_spawn_point(0.0, 0.0, 0.3, 0.0, 6.0)
    np.testing.assert_allclose([x, y, z, yaw], [0.0, 6.0, 0.3, -90.0], atol=1e-12)  # right of +x is +y
    rsu = bridge.rsu_pose_world(x, y, yaw, 6.0)
    np.testing.assert_allclose(rsu.position, [0.0, -6.0, 6.0], atol=1e-12)
    np.testing.assert_allclose(rsu.yaw, np.pi / 2)  # boresight +y (world): towards the lane at y = 0


def test_road_height_comes_from_waypoints_not_spawn_points() -> None:
    """Issue 17.2: CARLA's spawn points float ~0.6 m above the road; the ground is the waypoint's z."""
    cmap = FakeMap(tiny_road_map(elevation_m=2.0))
    for sp in cmap.get_spawn_points():
        assert sp.location.z == pytest.approx(2.0 + SPAWN_POINT_LIFT_M)
        assert bridge.road_height(cmap, sp.location) == pytest.approx(2.0)
    import carla

    # off the road (the RSU's kerb, 6 m aside): projected onto the nearest driving lane
    assert bridge.road_height(cmap, carla.Location(x=5.0, y=9.0, z=0.0)) == pytest.approx(2.0)


def test_ground_truth_from_poses_equals_channel_model_and_simulator_labels() -> None:
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
            label, _, target = ground_truth.choose_label(sim.channel_result, poses.ids, poses.boxes.center,
                                                   sim.scene.rsu.position, mode, sim.config.label_range_m, target)
            if frame.beam is None:
                assert label is None
                continue
            assert label.optimal_beam == frame.beam.optimal_beam and label.mode == mode
            assert label.vehicle_ids == frame.beam.vehicle_ids
            assert label.los_blocked == frame.beam.los_blocked
            np.testing.assert_array_equal(label.powers_dbm, frame.beam.powers_dbm)
    with pytest.raises(ValueError, match="label_mode"):
        ground_truth.choose_label(ref, t.id, t.center, (0, 0), "best", 80.0, None)


def test_building_boxes_give_only_the_facades_facing_the_rsu() -> None:
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


def test_shadowing_is_correlated_per_actor_id() -> None:
    proc = ground_truth.ShadowingProcess(4.0, 3, np.random.default_rng(0))
    first = proc.update(np.array([2, 5]), np.array([0.0, 0.0]), 0.1)
    again = proc.update(np.array([2, 5, 9]), np.array([0.0, 0.0, 0.0]), 0.1)
    np.testing.assert_array_equal(again[:2], first)  # standing still: same shadowing (rho = 1)
    later = proc.update(np.array([5, 9]), np.array([1000.0, 0.0]), 1.0)  # 2 gone, 5 moved far
    np.testing.assert_array_equal(later[1], again[2])
    assert not np.allclose(later[0], first[1])


def test_frame_collector_matches_frames_and_stays_bounded() -> None:
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


@pytest.mark.parametrize(("name", "value"), [
    ("port", 0), ("port", 70000), ("timeout_s", 0.0), ("rate_hz", -10.0), ("n_vehicles", -1),
    ("label_mode", "best"), ("weather", "snow"), ("camera_width", 0), ("lidar_channels", 0),
    ("radar_range_m", -1.0), ("rsu_spawn_point", -2), ("host", ""), ("role_name", "a/b"),
    # issue 17.5: seeds CARLA's Traffic Manager cannot take (a Boost ArgumentError once the world is synchronous)
    ("seed", -5), ("seed", 1.5), ("seed", 2**70), ("seed", True), ("seed", "3"),
    # issue 17.4: rates whose step 16 physics substeps of 0.01 s cannot cover; issue 17.3: the load timeout
    ("rate_hz", 5.0), ("rate_hz", 6.2), ("load_timeout_s", 0.0), ("load_timeout_s", float("inf")),
])
def test_bad_parameters_are_named(name, value) -> None:
    with pytest.raises(ValueError, match=f"parameter {name}"):
        bridge.bridge_config_from_params({name: value})


def test_extreme_valid_seeds_and_rates_pass() -> None:
    for seed in (0, 2**64 - 1):
        assert bridge.bridge_config_from_params({"seed": seed}).seed == seed
    assert bridge.bridge_config_from_params({"rate_hz": bridge.MIN_RATE_HZ}).rate_hz == 6.25


@pytest.mark.parametrize(("rate_hz", "substeps"), [(6.25, 16), (8.0, 13), (10.0, 10), (20.0, 5), (30.0, 4),
                                                   (100.0, 1), (1000.0, 1)])
def test_physics_substeps_cover_the_whole_step(rate_hz: float, substeps: int) -> None:
    """Issue 17.4: CARLA simulates physics only for max_substep_delta_time * max_substeps of each step."""
    import carla

    dt = bridge.bridge_config_from_params({"rate_hz": rate_hz}).dt
    s = bridge.synchronous_settings(carla.WorldSettings(), dt)
    assert s.synchronous_mode and s.substepping
    assert s.fixed_delta_seconds == pytest.approx(dt)
    assert s.max_substeps == substeps <= bridge.MAX_SUBSTEPS
    assert s.max_substep_delta_time <= 0.01 + 1e-12
    assert dt <= s.max_substep_delta_time * s.max_substeps + 1e-12  # CARLA's rule
    with pytest.raises(ValueError, match="at most 16"):
        bridge.physics_substeps(1.0 / 6.0)


def test_unknown_parameter_and_weather_preset() -> None:
    cfg = bridge.bridge_config_from_params({})
    assert cfg.lidar_points_per_second == 16 * 720 * 10  # one full turn of 0.5 deg steps per tick
    assert cfg.dt == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown carla_bridge parameter"):
        bridge.bridge_config_from_params({"prot": 2000})
    assert bridge.weather_preset("night")[0] == "ClearNight"


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


def test_connect_deadline_holds_even_if_the_client_never_returns() -> None:
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


def test_bridge_fixes_come_from_the_maps_own_projection() -> None:
    """The bridge asks the map (Map.transform_to_geolocation), so its fixes are what CARLA's GNSS sensor
    reports on that map; on 0.9.16 that equals the built-in simulator's formula."""
    carla = pytest.importorskip("carla")
    from test_sim_carla_format import _carla_map

    from beam_tracking_ros.sim import location_to_gnss

    _, cmap = _carla_map("+lat_0=49 +lon_0=8.4")
    project = bridge.map_projection(cmap, carla)
    locs = np.array([[0.0, 100.0, 0.0], [250.0, -40.0, 3.0]])
    np.testing.assert_allclose(project(locs), location_to_gnss(locs, 49.0, 8.4), atol=1e-11)
    actor = FakeActor(7, Transform(Vec(10.0, 5.0, 0.0), Rot(yaw=0.0)), BBox(Vec(0, 0, 0.75), Vec(2.0, 1.0, 0.75)))
    poses = bridge.poses_from_actors([actor])
    np.testing.assert_allclose(bridge.gnss_of_vehicles(poses, np.array([0]), project),
                               bridge.gnss_of_vehicles(poses, np.array([0]), (49.0, 8.4, 0.0)), atol=1e-9)
    assert bridge.rsu_gnss(10.0, 5.0, 0.3, 6.0, project)[0] > 49.0  # +y north



def _listening_socket() -> socket.socket:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    return srv


def test_connect_loads_the_town_under_its_own_longer_timeout() -> None:
    """Issue 17.3: load_world takes far longer than the client timeout; it gets load_timeout_s, then the
    client timeout is restored for every later call. Defaults only (load_timeout_s = 60 s): a load longer
    than timeout_s must not need a parameter to succeed."""
    client = FakeClient(world="the loaded world", load_s=0.6)
    with _listening_socket() as srv:
        cfg = bridge.bridge_config_from_params({"port": srv.getsockname()[1], "timeout_s": 0.2, "town": "Town05"})
        got = bridge.connect(cfg, fake_carla_module(client))
    assert got == (client, "the loaded world", "0.9.16")
    assert client.loaded == ["Town05"]
    assert client.timeouts == [0.2, 60.0, 0.2]
    assert cfg.connect_deadline_s >= cfg.load_timeout_s


def test_connect_says_loading_the_town_timed_out_not_that_no_server_answered() -> None:
    client = FakeClient(world="w", load_s=5.0)
    with _listening_socket() as srv:
        cfg = bridge.bridge_config_from_params({"port": srv.getsockname()[1], "timeout_s": 0.2, "town": "Town05",
                                                "load_timeout_s": 0.3})
        t0 = time.monotonic()
        with pytest.raises(bridge.CarlaConnectionError) as err:
            bridge.connect(cfg, fake_carla_module(client))
    assert time.monotonic() - t0 < cfg.connect_deadline_s
    msg = str(err.value)
    assert "loading town Town05 did not finish within 0.3 s" in msg and "load_timeout_s" in msg
    assert "no CARLA server answered" not in msg
    assert client.timeouts == [0.2, 0.3, 0.2]  # restored even though the load failed


def test_fog_is_set_on_a_copy_not_on_carlas_shared_preset() -> None:
    carla = pytest.importorskip("carla")
    before = carla.WeatherParameters.CloudyNoon.fog_density
    fog = bridge.carla_weather(carla, "fog")
    assert fog.fog_density == 60.0 and fog.cloudiness == carla.WeatherParameters.CloudyNoon.cloudiness
    assert carla.WeatherParameters.CloudyNoon.fog_density == before
    assert bridge.carla_weather(carla, "day") == carla.WeatherParameters.ClearNoon


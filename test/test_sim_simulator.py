"""Built-in simulator: determinism, rendering, weather effects, validation, lanes, labels, traffic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from beam_tracking_ros.channel import ArrayConfig, ChannelConfig
from beam_tracking_ros.sim import (
    CameraConfig,
    LidarConfig,
    RadarConfig,
    SensorFrame,
    SimConfig,
    Simulator,
    generate_episode,
)


def _frames(cfg: SimConfig, n: int) -> list[SensorFrame]:
    return list(generate_episode(cfg, n))


def test_same_seed_same_frames_and_formats() -> None:
    a = _frames(SimConfig(seed=5), 6)
    b = _frames(SimConfig(seed=5), 6)
    c = _frames(SimConfig(seed=6), 6)
    for fa, fb in zip(a, b):
        assert fa.stamp == fb.stamp
        np.testing.assert_array_equal(fa.camera, fb.camera)
        np.testing.assert_array_equal(fa.lidar, fb.lidar)
        np.testing.assert_array_equal(fa.radar, fb.radar)
        np.testing.assert_array_equal(fa.gnss, fb.gnss)
        np.testing.assert_array_equal(fa.beam.powers_dbm, fb.beam.powers_dbm)
    assert not np.array_equal(a[-1].lidar, c[-1].lidar)
    f = a[-1]
    assert [x.stamp for x in a] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert f.camera.shape == (192, 256, 4) and f.camera.dtype == np.uint8 and (f.camera[..., 3] == 255).all()
    assert f.lidar.ndim == 2 and f.lidar.shape[1] == 4 and f.lidar.dtype == np.float32
    assert f.radar.ndim == 2 and f.radar.shape[1] == 4 and f.radar.dtype == np.float32
    assert f.gnss.shape == (3,) and f.gnss.dtype == np.float64
    assert f.beam.powers_dbm.shape == (152,) and f.beam.optimal_beam == int(np.argmax(f.beam.powers_dbm))


def test_camera_image_shows_vehicles() -> None:
    sim = Simulator(SimConfig(seed=1, weather="day"))
    cam = sim.camera
    # a car in the far lane right in front of the camera
    center = np.array([[sim.scene.rsu.position[0], 5.25, 0.75]])
    size = np.array([[4.5, 1.8, 1.5]])
    colour = np.array([[30.0, 30.0, 200.0]], np.float32)
    empty = cam.render(
        np.zeros((0, 3)),
        np.zeros((0, 3)),
        np.zeros(0),
        np.zeros((0, 3)),
        np.zeros(0, int),
        np.random.default_rng(0),
    )
    van = np.ones(1, int)  # one box (a car would show its dark glass cabin at the centre)
    with_car = cam.render(center, size, np.zeros(1), colour, van, np.random.default_rng(0))
    (u, v), _ = cam.project(center[0])
    u, v = int(u), int(v)
    diff = np.abs(with_car[..., :3].astype(int) - empty[..., :3].astype(int)).sum(-1)
    assert diff[v, u] > 60  # the projected vehicle changes the pixel strongly
    assert with_car[v, u, 2] > with_car[v, u, 0]  # and it is the car's red, not the grey road
    changed = diff > 30
    ys, xs = np.nonzero(changed)
    assert abs(xs.mean() - u) < 25 and abs(ys.mean() - v) < 25  # changes sit where the car projects
    assert 50 < changed.sum() < 0.5 * changed.size


def _weather_stats(weather: str, n: int = 8) -> dict[str, float]:
    frames = _frames(SimConfig(seed=3, weather=weather), n)
    gray = np.stack([f.camera[..., :3].mean(-1) for f in frames])
    return {
        "lidar": float(np.mean([len(f.lidar) for f in frames])),
        "radar": float(np.mean([len(f.radar) for f in frames])),
        "brightness": float(gray.mean()),
        "contrast": float(gray.std(axis=(1, 2)).mean()),
    }


def test_weather_degrades_sensors_like_real_ones() -> None:
    day, night, rain, fog = (_weather_stats(w) for w in ("day", "night", "rain", "fog"))
    assert night["brightness"] < 0.4 * day["brightness"]
    assert fog["contrast"] < 0.75 * day["contrast"]
    assert rain["lidar"] < 0.93 * day["lidar"]
    assert fog["lidar"] < 0.93 * day["lidar"]
    assert night["lidar"] == pytest.approx(day["lidar"], rel=0.03)
    # radar barely affected
    for w in (night, rain, fog):
        assert w["radar"] == pytest.approx(day["radar"], rel=0.35)


@pytest.mark.parametrize(
    "factory,param",
    [
        (lambda: SimConfig(lanes=0), "lanes"),
        (lambda: SimConfig(arrival_rate=-0.1), "arrival_rate"),
        (lambda: SimConfig(weather="snow"), "weather"),
        (lambda: SimConfig(rate_hz=0), "rate_hz"),
        (lambda: SimConfig(label_mode="best"), "label_mode"),
        (lambda: SimConfig(max_vehicles=-1), "max_vehicles"),
        (lambda: SimConfig(vehicle_mix=(1.0, -1.0, 0.0)), "vehicle_mix"),
        (lambda: CameraConfig(width=0), "camera.width"),
        (lambda: LidarConfig(channels=0), "lidar.channels"),
        (lambda: LidarConfig(range_m=-5), "lidar.range_m"),
        (lambda: RadarConfig(range_m=0), "radar.range_m"),
        (lambda: SimConfig(channel=ChannelConfig(array=ArrayConfig(n_cols=0))), "n_cols"),
        (lambda: SimConfig(channel=ChannelConfig(array=ArrayConfig.ura(1, 4))), "n_az"),
    ],
)
def test_bad_config_raises_naming_parameter(factory, param: str) -> None:
    with pytest.raises(ValueError, match=param):
        factory()


@pytest.mark.parametrize("lanes", [2, 3])
def test_lane_layouts(lanes: int) -> None:
    sim = Simulator(SimConfig(seed=2, lanes=lanes, arrival_rate=1.5))
    lanes_seen = set()
    for _ in range(150):
        sim.step()
        t = sim.traffic
        lanes_seen.update(zip(t.dir.tolist(), t.lane.tolist()))
        assert np.all(np.abs(t.y) < lanes * 3.5)
    assert lanes_seen == {(d, k) for d in (1, -1) for k in range(lanes)}
    assert sim.scene.half_road == pytest.approx(lanes * 3.5)
    # settled vehicles sit on lane centres; +x traffic on the y < 0 side (right-hand traffic)
    t = sim.traffic
    settled = t.lc_t == 0
    np.testing.assert_allclose(t.y[settled], -t.dir[settled] * (t.lane[settled] + 0.5) * 3.5, atol=1e-6)


def test_traffic_is_collision_free_with_urban_speeds_and_lane_changes() -> None:
    sim = Simulator(SimConfig(seed=4, lanes=3, arrival_rate=1.2))
    changes = 0
    for _ in range(300):
        before = dict(zip(sim.traffic.id.tolist(), sim.traffic.lane.tolist()))
        sim.step()
        t = sim.traffic
        changes += sum(before.get(i, k) != k for i, k in zip(t.id.tolist(), t.lane.tolist()))
        gap, _ = t._leaders()
        assert np.all(gap > 0.0)
        assert len(t) <= 40
        assert np.all((t.v >= 0) & (t.v < 22.0))
    assert changes > 0
    assert 6.0 < sim.traffic.v.mean() < 17.0


def test_single_label_tracks_one_vehicle_and_sum_rss_many() -> None:
    single = _frames(SimConfig(seed=8, label_mode="single"), 20)
    ids = [f.beam.vehicle_ids for f in single]
    assert all(len(i) == 1 for i in ids)
    switches = sum(a != b for a, b in itertools.pairwise(ids))
    assert switches <= 2  # kept while in range, re-chosen only when it leaves
    assert all(f.beam.mode == "single" for f in single)
    multi = _frames(SimConfig(seed=8, label_mode="sum_rss"), 3)
    assert len(multi[-1].beam.vehicle_ids) > 1
    # the sum over vehicles is at least as strong as any single vehicle on every beam
    sim = Simulator(SimConfig(seed=8))
    f = sim.step()
    rows = np.isin(sim.traffic.id, f.beam.vehicle_ids)
    assert np.all(f.beam.powers_dbm >= sim.powers_dbm[rows].max(0) - 1e-3)


@pytest.mark.parametrize("mode", ["sum_rss", "single"])
def test_geometry_ceiling_equals_labels_without_fading_shadowing_noise(mode: str) -> None:
    """The stored ceiling is the label itself once the channel has nothing the geometry does not know:
    incoherent paths (no fading), zero shadowing, and no noise draw (the incoherent model adds the mean
    noise power, as the ceiling does)."""
    quiet = ChannelConfig(combine="incoherent", shadowing_db=0.0)
    off = dict(camera=CameraConfig(enabled=False), radar=RadarConfig(enabled=False))
    frames = _frames(SimConfig(seed=11, label_mode=mode, channel=quiet, **off), 25)
    labelled = [f.beam for f in frames if f.beam is not None]
    assert len(labelled) > 20
    for b in labelled:
        assert b.ceiling_powers_dbm is not None and b.ceiling_powers_dbm.shape == b.powers_dbm.shape
        np.testing.assert_allclose(b.ceiling_powers_dbm, b.powers_dbm, atol=1e-4)
    # with the default channel (coherent, shadowed, noisy) the ceiling differs but labels do not move:
    # the ceiling's channel draws nothing from the main channel's random stream
    noisy = _frames(SimConfig(seed=11, label_mode=mode, **off), 25)
    assert any(not np.allclose(f.beam.ceiling_powers_dbm, f.beam.powers_dbm, atol=0.5) for f in noisy)
    again = Simulator(SimConfig(seed=11, label_mode=mode, **off))
    again.ceiling_channel = None  # a ceiling-free label pass must give the same labels
    again._ceiling_powers = lambda: np.zeros_like(again.powers_dbm)  # type: ignore[method-assign]
    for f in noisy:
        g = again.step()
        np.testing.assert_array_equal(f.beam.powers_dbm, g.beam.powers_dbm)

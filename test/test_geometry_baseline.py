"""The non-learned sensor baseline: LiDAR clusters -> boxes -> the RSU's channel geometry -> beams."""

from __future__ import annotations

import numpy as np
import pytest

from beam_tracking_ros.channel import ChannelModel, VehicleBoxes
from beam_tracking_ros.data.geometry_baseline import GeometryBaseline, GeometryInputError, GeometrySite
from beam_tracking_ros.sim import CameraConfig, RadarConfig, SimConfig, Simulator
from beam_tracking_ros.tracking import GeometryTracker, geometry_card

CFG = SimConfig(seed=3, arrival_rate=0.0, camera=CameraConfig(enabled=False), radar=RadarConfig(enabled=False))
CAR = np.array([4.5, 1.8, 1.5])


def _lone_vehicle_cloud(x: float, y: float) -> tuple[Simulator, np.ndarray, VehicleBoxes]:
    sim = Simulator(CFG)
    box = VehicleBoxes(np.array([[x, y, CAR[2] / 2]]), CAR[None], np.zeros(1))
    cloud = sim.lidar.scan(box.center, box.size, box.yaw, np.random.default_rng(0))
    return sim, cloud, box


@pytest.mark.parametrize("x, y", [(-30.0, -1.75), (12.0, 5.25), (25.0, -5.25), (45.0, 1.75)])
def test_lone_vehicle_gets_the_pattern_pointing_at_it(x: float, y: float) -> None:
    sim, cloud, box = _lone_vehicle_cloud(x, y)
    site = GeometrySite.from_sim_config(CFG)
    est = GeometryBaseline(site, horizon=0).predict(cloud)
    assert not est.degraded and est.vehicles == 1 and est.scores.shape == (1, sim.n_beams)
    beam = int(np.argmax(est.scores[0]))
    # the pattern the geometry ceiling picks for the true box
    ceiling = ChannelModel(sim.ceiling_channel.config, sim.channel.codebook)
    true = ceiling.compute(site.rsu, box, None, rng=None, shadow_db=np.zeros(1)).powers_dbm[0]
    assert beam == int(np.argmax(true))
    # ... which is the single-beam pattern whose direction is nearest the vehicle's azimuth
    cb = sim.channel.codebook
    assert (cb.members[beam] >= 0).sum() == 1
    d = box.antenna[0] - np.asarray(site.rsu.position)
    cy, sy = np.cos(site.rsu.yaw), np.sin(site.rsu.yaw)
    az = np.arctan2(-sy * d[0] + cy * d[1], cy * d[0] + sy * d[1])
    singles = np.nonzero((cb.members >= 0).sum(axis=1) == 1)[0]
    nearest = singles[np.argmin(np.abs(cb.directions[cb.members[singles, 0], 0] - az))]
    assert beam == nearest


def test_detection_finds_the_vehicle_where_it_is() -> None:
    _, cloud, box = _lone_vehicle_cloud(20.0, -1.75)
    det = GeometryBaseline(GeometrySite.from_sim_config(CFG)).detect(cloud)
    assert len(det.boxes) == 1
    np.testing.assert_allclose(det.boxes.center[0, :2], box.center[0, :2], atol=1.0)


def test_constant_velocity_horizon_follows_a_moving_vehicle() -> None:
    """Steps t+1..t+H extrapolate the velocity measured between frames."""
    site = GeometrySite.from_sim_config(CFG)
    base = GeometryBaseline(site, horizon=3)
    est = None
    for k in range(4):  # 15 m/s along +x
        _, cloud, _ = _lone_vehicle_cloud(5.0 + 1.5 * k, -1.75)
        est = base.predict(cloud, stamp=0.1 * k)
    assert est is not None
    ahead = [int(np.argmax(_expected(site, 5.0 + 1.5 * (3 + h), -1.75))) for h in range(4)]
    assert [int(b) for b in est.scores.argmax(axis=1)] == ahead
    assert len(set(ahead)) > 1  # the vehicle really changes beams over the horizon


def _expected(site: GeometrySite, x: float, y: float) -> np.ndarray:
    base = GeometryBaseline(site, horizon=0)
    box = VehicleBoxes(np.array([[x, y, CAR[2] / 2]]), CAR[None], np.zeros(1))
    return base.channel.compute(site.rsu, box, None, rng=None, shadow_db=np.zeros(1)).powers_dbm[0]


def test_empty_and_nan_clouds_give_a_degraded_prediction_and_bad_shapes_a_clear_error() -> None:
    site = GeometrySite.from_sim_config(CFG)
    base = GeometryBaseline(site, horizon=3)
    for cloud in (np.zeros((0, 4), np.float32), np.full((500, 4), np.nan, np.float32)):
        est = base.predict(cloud)
        assert est.degraded and est.vehicles == 0
        assert est.scores.shape == (4, base.n_beams) and np.all(np.isfinite(est.scores))
    assert base.predict(np.full((7, 4), np.nan, np.float32)).dropped_nonfinite == 7
    _, cloud, _ = _lone_vehicle_cloud(20.0, -1.75)
    noisy = np.concatenate([cloud, np.full((50, 4), np.inf, np.float32)])
    assert not base.predict(noisy).degraded
    with pytest.raises(GeometryInputError, match="lidar"):
        base.predict(np.zeros((10, 2), np.float32))
    with pytest.raises(GeometryInputError, match="lidar"):
        base.predict(np.zeros(12, np.float32))


def test_tracker_interface_and_card() -> None:
    """What the beam tracker node needs: push -> HorizonPrediction every frame, degraded when empty."""
    site = GeometrySite.from_sim_config(CFG)
    tracker = GeometryTracker(site, horizon=3, top_k=3)
    _, cloud, _ = _lone_vehicle_cloud(20.0, -1.75)
    pred = tracker.push(0.0, {"lidar": cloud})
    assert pred.beams.shape == (4,) and pred.top_k_beams.shape == (4, 3) and not pred.degraded
    assert np.allclose(pred.probs.sum(axis=1), 1.0) and np.all(np.diff(pred.top_k_probs, axis=1) <= 0)
    assert tracker.push(0.1, {"lidar": np.zeros((0, 4), np.float32)}).degraded
    tracker.push(0.05, {"lidar": cloud})  # stamp backwards: state reset, counted
    assert tracker.stats.window_resets == 1 and tracker.stats.predictions == 3 and tracker.degraded == 1
    with pytest.raises(ValueError, match="lidar"):
        tracker.push(0.2, {})
    card = geometry_card(site, 3)
    assert card["num_beams"] == 152 and card["H"] == 3 and card["modalities"] == ["lidar"]
    assert card["codebook"]["id"].endswith("_152")


def test_site_follows_the_scenario() -> None:
    site = GeometrySite.from_sim_config(SimConfig(lanes=3, label_mode="single"))
    assert site.road_y == (-10.5, 10.5) and site.label_mode == "single"
    # the street's building line by default: one facade per side at 3 lanes x 3.5 m + 3 m of sidewalk,
    # the same for every seed (the single buildings are the scene's, walls="scene")
    np.testing.assert_allclose(np.abs(site.walls.p0[:, 1]), [13.5, 13.5])
    other = GeometrySite.from_sim_config(SimConfig(lanes=3, seed=9))
    np.testing.assert_array_equal(other.walls.p0, site.walls.p0)
    scene = GeometrySite.from_sim_config(SimConfig(seed=4), walls="scene").walls
    assert scene is not None and len(scene.p0) > 2
    assert GeometrySite.from_sim_config(SimConfig(), walls="none").walls is None
    with pytest.raises(ValueError, match="walls"):
        GeometrySite.from_sim_config(SimConfig(), walls="map")


# ---- site files: what a real RSU's survey gives the baseline ---------------------------------------------
def test_site_file_round_trips_the_builtin_site_and_predicts_the_same(tmp_path) -> None:
    site = GeometrySite.from_sim_config(CFG)
    path = tmp_path / "site.yaml"
    path.write_text(site.to_yaml())
    again = GeometrySite.from_yaml(path)
    assert again.to_dict() == site.to_dict()
    _, cloud, _ = _lone_vehicle_cloud(18.0, -1.75)
    a = GeometryBaseline(site, horizon=2).predict(cloud)
    b = GeometryBaseline(again, horizon=2).predict(cloud)
    np.testing.assert_allclose(a.scores, b.scores)


def test_a_surveyed_array_heading_turns_the_beam_with_it(tmp_path) -> None:
    """A site file whose array is turned 20 deg (the LiDAR as before) points the lone vehicle's pattern
    along the vehicle's azimuth in the turned array's frame: the file's values are used, not the scene's."""
    sim, cloud, box = _lone_vehicle_cloud(12.0, 5.25)
    d = GeometrySite.from_sim_config(CFG).to_dict()
    d["rsu"]["yaw_deg"] += 20.0
    path = tmp_path / "site.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"site": d}))
    site = GeometrySite.from_yaml(path)
    beam = int(np.argmax(GeometryBaseline(site, horizon=0).predict(cloud).scores[0]))
    ceiling = ChannelModel(sim.ceiling_channel.config, sim.channel.codebook)
    true = ceiling.compute(site.rsu, box, None, rng=None, shadow_db=np.zeros(1)).powers_dbm[0]
    assert beam == int(np.argmax(true))
    default = int(np.argmax(GeometryBaseline(GeometrySite.from_sim_config(CFG), horizon=0).predict(cloud).scores[0]))
    assert beam != default


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(lable_mode="single"), "unknown key(s) ['lable_mode']"),
    (lambda d: d.pop("road"), "missing key(s) ['road']"),
    (lambda d: d["rsu"].update(position=[0, 0]), "rsu.position: expected a list of 3 numbers"),
    (lambda d: d["lidar"].update(yaw_deg="north"), "lidar.yaw_deg: expected a finite number"),
    (lambda d: d["road"].update(y_min=5.0, y_max=-5.0), "road_y must be (min, max)"),
    (lambda d: d["channel"]["array"].update(n_cols=0), "channel: n_cols"),
    (lambda d: d.update(walls=[{"p0": [0, 0], "p1": [0, 0], "height": 10}]), "zero-length wall"),
    (lambda d: d.update(label_mode="nearest"), "label_mode: unknown 'nearest'"),
])
def test_bad_site_files_name_the_file_and_the_key(tmp_path, edit, message) -> None:
    import yaml

    d = GeometrySite.from_sim_config(CFG).to_dict()
    edit(d)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({"site": d}))
    with pytest.raises(ValueError, match="site file") as info:
        GeometrySite.from_yaml(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_unreadable_site_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        GeometrySite.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("site: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        GeometrySite.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "top.yaml").write_text("rsu: {}\n")
    with pytest.raises(ValueError, match="top-level 'site:'"):
        GeometrySite.from_yaml(tmp_path / "top.yaml")


def test_site_cli_exports_a_template_and_checks_files(tmp_path, capsys) -> None:
    from beam_tracking_ros.cli import main

    assert main(["site", "export", "--lanes", "3", "--label-mode", "single"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "site.yaml"
    path.write_text(text)
    assert GeometrySite.from_yaml(path).to_dict() == GeometrySite.from_sim_config(
        SimConfig(lanes=3, label_mode="single")).to_dict()
    assert main(["site", "check", str(path)]) == 0
    assert "ok: array at" in capsys.readouterr().out
    path.write_text(text.replace("label_mode: single", "label_mode: nearest"))
    assert main(["site", "check", str(path)]) == 2
    assert "label_mode" in capsys.readouterr().err


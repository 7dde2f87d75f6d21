"""Beam-space features (lidar_beams / radar_beams), their vehicle tracks on the one data path, the
radar student that reads them, and the live score's references."""

import numpy as np
import pytest
import torch

from beam_tracking_ros.data import preprocess as P
from beam_tracking_ros.data.builder import EpisodeWindower
from beam_tracking_ros.data.generate import scenario, scenario_preprocess
from beam_tracking_ros.models import build_model, example_batch
from beam_tracking_ros.sim import generate_episode
from beam_tracking_ros.tracking import BeamTracker, OnlineBeamScore

CFG = scenario_preprocess(scenario(2), horizon=3)


@pytest.fixture(scope="module")
def frames():
    return list(generate_episode(scenario(2, seed=11), 60))


def test_features_point_where_the_label_does(frames):
    """Row 0 of the LiDAR feature (the detected vehicles through the site's geometry) scores near the
    label: its best pattern loses little power against the optimum on a real episode."""
    losses = []
    for f in frames[10:]:
        if f.beam is None:
            continue
        feat = P.lidar_beam_features(f.lidar, CFG)
        assert feat.shape == (4, 152) and feat.dtype == np.float32
        assert feat.max() == 0.0 and feat.min() >= -6.0
        p = f.beam.powers_dbm
        losses.append(p.max() - p[int(np.argmax(feat[0]))])
    assert losses and np.mean(losses) < 4.0  # the label prior loses ~12 dB here


def test_nothing_detected_gives_zeros_and_bad_clouds_raise():
    empty = np.zeros((0, 4), np.float32)
    assert not P.lidar_beam_features(empty, CFG).any()
    nan = np.full((5, 4), np.nan, np.float32)
    assert not P.lidar_beam_features(nan, CFG).any()
    assert not P.radar_beam_features(np.zeros((0, 4), np.float32), P.PreprocessConfig(
        geometry_lanes=2, allow_empty=True)).any()
    with pytest.raises(P.PreprocessError, match="geometry_lanes"):
        P.lidar_beam_features(empty, P.PreprocessConfig())
    with pytest.raises(P.PreprocessError):
        P.radar_beam_features(np.zeros((3, 2), np.float32), CFG)
    with pytest.raises(ValueError, match="geometry_lanes"):
        P.PreprocessConfig(geometry_lanes=9)


def test_tracks_change_only_the_horizon_rows(frames):
    tracks = P.BeamFeatureTracks()
    for f in frames[:20]:
        tracked = P.lidar_beam_features(f.lidar, CFG, tracks, f.stamp)
        alone = P.lidar_beam_features(f.lidar, CFG)
        np.testing.assert_array_equal(tracked[0], alone[0])  # now: the same detections either way
    tracks.reset()
    f = frames[20]
    np.testing.assert_array_equal(P.lidar_beam_features(f.lidar, CFG, tracks, f.stamp), P.lidar_beam_features(f.lidar, CFG))


def test_builder_and_live_tracker_give_the_same_features(frames):
    """One data path: the dataset builder's windows and the live tracker's windows hold bit-identical
    beam-space features for the same frames, including after a clock jump restarts both."""
    jumped = frames[:30] + [type(f)(**{**f.__dict__, "stamp": f.stamp - 10.0}) for f in frames[30:]]
    keys = ("radar_beams", "lidar_beams")
    w = EpisodeWindower(8, 3, CFG, ("radar", "lidar"))
    offline = {float(s["stamp"]): s for s in w.samples(iter(jumped), 0)}

    seen: dict[float, dict[str, np.ndarray]] = {}

    class Spy:
        def predict(self, inputs):
            seen[stamp] = {k: inputs[k][0].copy() for k in keys}
            return np.zeros((1, 4, 152), np.float32)

    tracker = BeamTracker(Spy(), keys, window=8, horizon=3, preprocess=CFG)
    for f in jumped:
        stamp = f.stamp
        tracker.push(stamp, {"radar": f.radar, "lidar": f.lidar})
    common = sorted(set(offline) & set(seen))
    assert len(common) > 20
    assert min(common) < 0.0 < max(common)  # windows on both sides of the jump
    for t in common:
        for k in keys:
            np.testing.assert_array_equal(offline[t][k], seen[t][k], err_msg=f"{k} at {t}")


def test_radar_student_reads_its_beam_features():
    m = build_model("student-radar-mlp", num_beams=152, hidden=16, beam_features=True)
    assert m.modalities == ("radar_points", "radar_beams")
    batch = {"radar_points": torch.zeros(2, 8, 64, 6), "radar_beams": torch.zeros(2, 8, 4, 152)}
    batch["radar_beams"][:, -1, :, 7] = 0.0
    batch["radar_beams"][:, -1, :, :7] = -3.0
    batch["radar_beams"][:, -1, :, 8:] = -3.0
    with torch.no_grad():
        for layer in m.head.heads:
            layer.weight.zero_()
            layer.bias.zero_()
        out = m.eval()(batch)["logits"]
    assert (out.argmax(-1) == 7).all()  # the skip alone already points at the feature's best pattern
    with pytest.raises(ValueError, match="radar_beams"):
        m({"radar_points": batch["radar_points"], "radar_beams": torch.zeros(2, 8, 2, 152)})
    teacher = build_model("teacher", modalities=("lidar_beams", "gps"), num_beams=152)
    assert teacher(example_batch(teacher, 1, CFG))["logits"].shape == (1, 4, 152)


def test_online_score_mpr_and_references():
    score = OnlineBeamScore(horizon=0, step_s=0.1, prior_beam=2)
    obs = np.array([0.0, -1.0, -5.0, -20.0], np.float32)
    ceiling = np.array([-3.0, 0.0, -9.0, -9.0], np.float32)
    score.add_observation(0, obs, ceiling)
    score.add_prediction(0, [1], [[1, 0]])
    s = score.summary()
    assert s["n"] == [1] and s["top1"] == [0.0] and s["topk"] == [1.0]
    assert s["mpr"] == [pytest.approx(3 / 4)] and s["power_loss_db"] == [pytest.approx(1.0)]
    refs = s["references"]
    assert refs["prior"]["mpr"] == [pytest.approx(2 / 4)] and refs["prior"]["power_loss_db"] == [pytest.approx(5.0)]
    assert refs["ceiling"]["mpr"] == [pytest.approx(3 / 4)]  # the ceiling's argmax is beam 1
    bare = OnlineBeamScore(horizon=0, step_s=0.1)
    bare.add_observation(0, obs)
    bare.add_prediction(0, [0], [[0]])
    assert bare.summary()["references"] == {} and bare.summary()["mpr"] == [1.0]


def test_gps_beams_follow_the_single_target():
    """Single-target labels: the GNSS fix is the target's, and its beam-space feature (the fix through the
    site's geometry, the street's facades included) ranks the label's beams far better than the prior;
    rows ahead use the speed of the line through the last fixes."""
    sc = scenario(2, label_mode="single", seed=4)
    cfg = scenario_preprocess(sc, horizon=3)
    tracks = P.BeamFeatureTracks()
    percentiles = []
    for f in generate_episode(sc, 80):
        if f.gnss is None or f.beam is None:
            tracks.reset()
            continue
        feat = P.gps_beam_features(f.gnss, cfg, tracks, f.stamp)
        assert feat.shape == (4, 152) and feat.max() == 0.0
        p = f.beam.powers_dbm
        percentiles.append(1.0 - np.count_nonzero(p > p[int(np.argmax(feat[0]))]) / p.size)
    assert len(percentiles) > 40 and np.mean(percentiles) > 0.9
    with pytest.raises(P.PreprocessError, match="gnss"):
        P.gps_beam_features(np.array([np.nan, 8.4, 110.0]), cfg)


def test_only_the_beam_features_a_model_reads_are_computed(frames):
    f = frames[20]
    full = P.preprocess_frame(f, CFG, ("radar", "lidar"))
    assert {"radar_beams", "lidar_beams"} <= set(full)
    live = P.preprocess_frame(f, CFG, ("radar", "lidar"), outputs=("radar_points", "lidar_beams"))
    assert "radar_beams" not in live and "lidar_beams" in live
    np.testing.assert_array_equal(live["lidar_beams"], full["lidar_beams"])


def test_radar_returns_of_one_car_make_one_vehicle():
    """A car's few radar returns are spread over its 4-5 m side: the radar's long cells keep them one
    vehicle, where the LiDAR's 0.5 m cells made a phantom car of each; two cars in adjacent lanes (3.5 m
    apart) stay two."""
    lidar = P._geometry_baseline(CFG, "lidar")
    radar = P._geometry_baseline(CFG, "radar")
    assert radar.cell_m == (1.5, 0.75) and lidar.cell_m == (0.5, 0.5)
    site = radar.site
    # world points on the near sides of two cars at x = 20 m, lanes -1.75 and +1.75 (road axis = world x)
    xs = np.array([18.0, 21.0])  # two returns 3 m apart on each car's side
    world = np.concatenate([np.c_[xs, np.full(2, y - 0.9), np.full(2, 1.0)] for y in (-1.75, 1.75)])
    # into the LiDAR's frame (CARLA: x forward along the mount's yaw, y right, z up)
    d = world - np.asarray(site.lidar_origin)
    c, s_ = np.cos(site.lidar_yaw), np.sin(site.lidar_yaw)
    cloud = np.c_[c * d[:, 0] + s_ * d[:, 1], s_ * d[:, 0] - c * d[:, 1], d[:, 2], np.zeros(len(d))]
    assert len(radar.detect(cloud).boxes) == 2
    assert len(type(lidar)(site, min_points=1).detect(cloud).boxes) == 4


def test_gps_speed_from_a_line_through_the_fixes():
    """0.3 m of fix noise at 10 Hz: the speed between two fixes is off by ~4 m/s, the line through the
    last fixes by well under 1; a jump no vehicle makes (the target changed) starts the line again."""
    rng = np.random.default_rng(0)
    axis = np.array([1.0, 0.0])
    tracks = P.BeamFeatureTracks()
    errors = []
    for i in range(40):
        t = 0.1 * i
        fix = np.array([-30.0 + 12.0 * t, -1.75]) + rng.normal(0, 0.3, 2)
        xy, speed = P._gps_track(tracks, t, fix, axis, 10.0, 10.0)
        if i >= P.GPS_FIT_FIXES:
            errors.append(speed - 12.0)
            assert abs(xy[0] - (-30.0 + 12.0 * t)) < 1.0
    assert np.sqrt(np.mean(np.square(errors))) < 1.0
    xy, speed = P._gps_track(tracks, 4.0, np.array([40.0, 1.75]), axis, -10.0, 10.0)
    assert len(tracks.gps_fixes) == 1 and speed == -10.0 and xy[0] == 40.0


def test_radar_doppler_gives_the_vehicles_speed(frames):
    """The radar's radial speeds become speeds along the road (the horizon rows move each vehicle at its
    own Doppler speed): on a real episode they are vehicle speeds in the lanes' directions from the very
    first frame, before any track exists (a wrong sign or frame would clip them to 0)."""
    speeds = []
    for f in frames[10:40]:
        tracks = P.BeamFeatureTracks()  # no history: whatever speed there is was measured now
        P.radar_beam_features(f.radar, CFG, tracks, f.stamp)
        base = tracks.baseline(CFG, "radar")
        speeds += np.abs(base._prev_v).tolist()
    # vehicles seen across the line of sight (under the mast) have no usable Doppler and keep the prior
    # speed of new tracks; the others carry their own measured speeds
    measured = np.array([v for v in speeds if v != pytest.approx(CFG.geometry_speed_mps)])
    assert len(speeds) >= 20 and len(measured) >= len(speeds) / 3
    assert 6.0 < np.median(measured) < 20.0
    # measured speeds replace the tracked ones; points without a measurement (NaN) keep the tracked speed
    site = base.site
    world = np.array([[20.0, -1.75 - 0.9, 1.0], [21.0, -1.75 - 0.9, 1.0]])
    d = world - np.asarray(site.lidar_origin)
    c, s_ = np.cos(site.lidar_yaw), np.sin(site.lidar_yaw)
    cloud = np.c_[c * d[:, 0] + s_ * d[:, 1], s_ * d[:, 0] - c * d[:, 1], d[:, 2], np.zeros(2)]
    det = base.detect(cloud, np.array([7.0, np.nan]))
    assert det.speed is not None and det.speed.tolist() == [7.0]
    with pytest.raises(P.PreprocessError, match="along_speed"):
        base.detect(cloud, np.zeros(3))


def test_radar_beams_undo_the_radar_mount_the_dataset_names():
    """radar_beams puts detections back into the site's frame with the radar's own pitch and height. A
    dataset of a radar mounted other than the built-in default (here the older 8-degree pitch) carries its
    mount in its PreprocessConfig (scenario_preprocess); undoing the default pitch instead would move
    every detection and the feature would point elsewhere."""
    import dataclasses

    from beam_tracking_ros.metrics import evaluate_predictions

    sc = scenario(2, seed=5)
    sc = dataclasses.replace(sc, radar=dataclasses.replace(sc.radar, pitch_deg=-8.0, vertical_fov_deg=30.0))
    cfg = scenario_preprocess(sc, horizon=3)
    assert cfg.radar_pitch_deg == -8.0 and cfg.radar_mount_height == sc.radar.mount_height
    assert cfg.radar_fov_deg == sc.radar.horizontal_fov_deg
    wrong = dataclasses.replace(cfg, radar_pitch_deg=None)  # None: the built-in RadarConfig's pitch
    scores: dict[str, list[np.ndarray]] = {"own": [], "default": []}
    labels, powers = [], []
    for f in list(generate_episode(sc, 100))[10:]:
        if f.beam is None:
            continue
        scores["own"].append(P.radar_beam_features(f.radar, cfg)[:1])
        scores["default"].append(P.radar_beam_features(f.radar, wrong)[:1])
        labels.append([f.beam.optimal_beam])
        powers.append(f.beam.powers_dbm[None])
    mpr = {k: evaluate_predictions(np.stack(v), np.array(labels), np.stack(powers))["ampr"] for k, v in scores.items()}
    assert mpr["own"] > mpr["default"] + 0.02, mpr
    with pytest.raises(ValueError, match="radar_pitch_deg"):
        P.PreprocessConfig(radar_pitch_deg=120.0)
    with pytest.raises(ValueError, match="radar_mount_height"):
        P.PreprocessConfig(radar_mount_height=0.0)

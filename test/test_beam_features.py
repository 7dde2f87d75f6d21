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
    site's geometry) ranks the label's beams far better than the prior; rows ahead use the speed measured
    between consecutive fixes."""
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

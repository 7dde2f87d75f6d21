"""Measurements fed back (issue 16): the beam_history input, its simulated sweeps, the live cache, the models."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from beam_tracking_ros.data.beam_history import (
    HISTORY_FLOOR,
    MeasurementCache,
    SweepRecord,
    SweepSimulator,
    beam_history_feature,
    merge_sweeps,
)
from beam_tracking_ros.data.builder import build_dataset
from beam_tracking_ros.data.preprocess import PreprocessConfig, PreprocessError, preprocess_frame
from beam_tracking_ros.data.store import DatasetReader
from beam_tracking_ros.modalities import sensors_for_inputs
from beam_tracking_ros.models.beam_models import MultimodalTeacher, RadarMLPStudent
from beam_tracking_ros.sim.types import BeamLabel, SensorFrame

B = 8
CFG = PreprocessConfig(radar_points=8, radar_range_bins=4, radar_angle_bins=4, history_beams=B)


def test_feature_marks_what_was_measured_relative_to_the_strongest() -> None:
    f = beam_history_feature(SweepRecord(np.array([1, 3, 9, 5]), np.array([-60.0, -75.0, -50.0, np.nan])), B)
    assert f.shape == (2, B) and f.dtype == np.float32
    assert f[1].tolist() == [0, 1, 0, 1, 0, 0, 0, 0]  # beam 9 out of range and beam 5's NaN are not measured
    assert f[0, 1] == 0.0 and f[0, 3] == pytest.approx(-1.5)
    assert np.all(f[0, f[1] == 0] == HISTORY_FLOOR)
    empty = beam_history_feature(None, B)
    assert np.all(empty[1] == 0) and np.all(empty[0] == HISTORY_FLOOR)
    assert np.array_equal(beam_history_feature(SweepRecord.empty(), B), empty)
    with pytest.raises(ValueError, match="3 beams but 2 powers"):
        beam_history_feature(SweepRecord(np.array([0, 1, 2]), np.array([1.0, 2.0])), B)


def test_sweeps_of_one_frame_merge_and_the_last_finite_value_wins() -> None:
    a = SweepRecord(np.array([0, 2]), np.array([-70.0, -80.0], np.float32), 1.0)
    b = SweepRecord(np.array([2, 4, 0]), np.array([-65.0, -90.0, np.nan], np.float32), 1.0)
    m = merge_sweeps([a, b])
    assert dict(zip(m.beams.tolist(), m.power_dbm.tolist())) == {0: -70.0, 2: -65.0, 4: -90.0}


def test_simulated_sweeps_are_seeded_and_keep_the_serving_beam() -> None:
    powers = np.linspace(-100, -60, B).astype(np.float32)  # beam 7 strongest
    sims = [SweepSimulator(seed=3, k_max=3, max_noise_db=0.0, full_sweep_prob=0.0) for _ in range(2)]
    first = [s.measure(powers) for s in sims]
    assert np.array_equal(first[0].beams, first[1].beams)  # same seed, same sweep
    assert 7 in first[0].beams and first[0].beams.size <= 3  # no noise: the top-k are the strongest
    assert np.array_equal(first[0].power_dbm, powers[first[0].beams])  # answered with the frame's powers
    moved = np.roll(powers, 3)  # the best beam moves to 2: the served beam 7 is measured still
    assert {2, 7} <= set(sims[0].measure(moved).beams.tolist())
    sims[0].reset()
    assert sims[0].serving is None
    full = SweepSimulator(full_sweep_prob=1.0).measure(powers)
    assert full.beams.tolist() == list(range(B))


def test_cache_gives_the_previous_frame_and_counts_what_it_cannot_use() -> None:
    cache = MeasurementCache(B, max_age_s=0.15, codebook_id="cb", max_frames=4)
    cache.add(SweepRecord(np.array([1, 2]), np.array([-60.0, -70.0], np.float32), 1.0))
    cache.add(SweepRecord(np.array([5]), np.array([-50.0], np.float32), 1.0))  # a recovery sweep, same frame
    assert not cache.add(SweepRecord(np.array([3]), np.array([-40.0], np.float32), 1.0), codebook_id="other")
    cache.add(SweepRecord(np.array([4, 20]), np.array([np.nan, -1.0], np.float32), 1.1))
    got = cache.sweep_before(1.1)  # the frame's own sweep (1.1) is not yet known to its prediction
    assert sorted(got.beams.tolist()) == [1, 2, 5]
    assert cache.sweep_before(1.2).beams.size == 0  # 1.1 measured only NaN / out-of-range beams: not kept
    assert cache.sweep_before(1.5).beams.size == 0  # too old
    c = cache.counts
    assert (c["other_codebook"], c["nonfinite_powers"], c["beams_out_of_range"]) == (1, 1, 1)
    assert c["frames_without_history"] == 2 and c["frames_with_history"] == 1 and c["unusable"] == 1
    for k in range(10):
        cache.add(SweepRecord(np.array([0]), np.array([-1.0], np.float32), 2.0 + k))
    assert len(cache._frames) == 4  # bounded
    cache.clear()
    assert cache.sweep_before(20.0).beams.size == 0


def _frame(k: int) -> SensorFrame:
    radar = np.array([[1.0, 0.1, 0.0, 10.0 + k], [-2.0, -0.2, 0.05, 30.0]], np.float32)
    powers = np.full(B, -90.0, np.float32)
    powers[k % B] = -60.0
    powers[(k + 1) % B] = -70.0
    return SensorFrame(stamp=0.1 * k, radar=radar, beam=BeamLabel(powers, k % B, [1], mode="single"))


def test_builder_feeds_each_frame_the_previous_frame_s_sweep(tmp_path) -> None:
    P, H, n = 3, 1, 12
    frames = [_frame(k) for k in range(n)]
    build_dataset(tmp_path / "ds", [(0, frames)], P=P, H=H, cfg=CFG, modalities=("radar", "radio"),
                  splits={0: "train"})
    r = DatasetReader(tmp_path / "ds")
    first = r.get("train", 0)["beam_history"]
    assert first.shape == (P, 2, B)
    assert np.all(first[0, 1] == 0)  # the run's first frame: nothing measured before it
    for i in range(r.count("train")):
        hist = r.get("train", i)["beam_history"]
        for j in range(1, P):
            prev = frames[i + j - 1].beam.powers_dbm  # window frame j's history = the frame before it
            measured = hist[j, 1] > 0
            assert measured.any()
            np.testing.assert_allclose(hist[j, 0, measured],
                                       np.clip((prev[measured] - prev[measured].max()) / 10, -4, 0), atol=1e-6)
    # the live path: a frame with its sweep preprocesses to the same feature; a wrong type is a clear error
    out = preprocess_frame({"radio": SweepRecord(np.array([2]), np.array([-50.0]))}, CFG, ("radio",))
    assert out["beam_history"][1].tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    with pytest.raises(PreprocessError, match="radio: expected a SweepRecord"):
        preprocess_frame({"radio": [1, 2]}, CFG, ("radio",))
    assert sensors_for_inputs(["radar_points", "beam_history"]) == ("radar", "radio")


def test_models_read_the_history_and_start_as_without_it() -> None:
    C, H, P = 16, 3, 4
    batch = {"radar_points": torch.randn(2, P, 8, 6), "beam_history": torch.zeros(2, P, 2, C)}
    batch["beam_history"][:, :, 0] = HISTORY_FLOOR
    batch["beam_history"][:, -1, :, 5] = torch.tensor([0.0, 1.0])
    student = RadarMLPStudent(num_beams=C, horizon=H, window=P, num_points=8, hidden=12, frames=1, history=True)
    assert student.modalities == ("radar_points", "beam_history")
    base = RadarMLPStudent(num_beams=C, horizon=H, window=P, num_points=8, hidden=12, frames=1)
    assert sum(p.numel() for p in student.parameters()) - sum(p.numel() for p in base.parameters()) == \
        2 * C * 12 + 2 * (H + 1)
    out = student(batch)["logits"]
    assert out.shape == (2, H + 1, C)
    with torch.no_grad():  # the skip: a weight on the mask lifts the measured beam 5 alone
        student.history_skip.weight[1].fill_(3.0)
        lifted = student(batch)["logits"] - out
    assert torch.allclose(lifted[:, :, 5], torch.full((2, H + 1), 3.0))
    assert torch.allclose(lifted[:, :, :5], torch.zeros(2, H + 1, 5))
    teacher = MultimodalTeacher(("radar_points", "beam_history"), num_beams=C, horizon=H, window=P, d_model=16,
                                heads=2, layers=1, point_features=6)
    assert teacher(batch)["logits"].shape == (2, H + 1, C)
    with pytest.raises(ValueError, match="beam_history"):
        student({**batch, "beam_history": torch.zeros(2, P, 2, C + 1)})


def test_manager_closed_loop_hands_each_frame_the_sweeps_before_it() -> None:
    """run_episode with a history model: frame t's prediction sees exactly the manager's sweeps of 0 .. t-1."""
    from beam_tracking_ros.beam_management import SweepPolicy, run_episode

    rng = np.random.default_rng(0)
    powers = rng.normal(-80, 8, (12, B))
    seen: list[int] = []

    def probs(t: int, sweeps: list[SweepRecord]) -> np.ndarray:
        seen.append(len(sweeps))
        if sweeps:  # the previous frame's sweep answered with that frame's powers
            last = sweeps[-1]
            np.testing.assert_allclose(last.power_dbm, powers[t - 1, last.beams], rtol=1e-6)
            out = beam_history_feature(last, B)[1] + 1e-3  # predict what was measured last frame
            return out / out.sum()
        return np.full(B, 1.0 / B)

    res = run_episode(probs, powers, SweepPolicy(k=2, include_serving=False))
    assert seen == list(range(12))
    assert res["served"].min() >= 0

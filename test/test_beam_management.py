"""The ROS-free beam-management loop: candidates, serving, beam failure, and bad input counted, not raised."""

from __future__ import annotations

import numpy as np
import pytest

from beam_tracking_ros.beam_management import (
    BeamManager,
    SweepPolicy,
    adaptive_k,
    candidate_beams,
    run_episode,
    scores_to_probabilities,
)


def test_adaptive_k_is_the_smallest_k_reaching_the_target() -> None:
    p = np.array([0.05, 0.5, 0.3, 0.1, 0.05])
    assert adaptive_k(p, 0.5) == 1
    assert adaptive_k(p, 0.8) == 2
    assert adaptive_k(p, 0.85) == 3
    assert adaptive_k(p, 0.99) == 5
    assert adaptive_k(p, 0.8, k_min=3) == 3 and adaptive_k(p, 0.99, k_max=4) == 4
    flat = np.full(152, 1 / 152)
    assert adaptive_k(flat, 0.9, k_max=16) == 16  # an unsure prediction costs up to k_max beams


def test_candidates_are_the_most_probable_beams() -> None:
    p = scores_to_probabilities(np.array([0.0, 3.0, 1.0, 2.5, -1.0]))
    assert candidate_beams(p, SweepPolicy(k=2)).tolist() == [1, 3]
    k = adaptive_k(p, 0.95)
    assert k == 3  # 0.55 + 0.34 + 0.08: the third beam reaches 0.95
    assert candidate_beams(p, SweepPolicy(k=0, target_probability=0.95)).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="k_min"):
        SweepPolicy(k_min=0)
    with pytest.raises(ValueError, match="target_probability"):
        SweepPolicy(target_probability=0.0)


def _probs(b: int, best: int, second: int | None = None) -> np.ndarray:
    p = np.full(b, 1e-3)
    p[best] = 1.0
    if second is not None:
        p[second] = 0.5
    return p / p.sum()


def test_serves_the_best_measured_candidate_not_the_top_ranked() -> None:
    mgr = BeamManager(8, SweepPolicy(k=2, include_serving=False))
    assert mgr.on_prediction(0.0, _probs(8, best=3, second=5))
    req = mgr.request(0.0)
    assert req.beams.tolist() == [3, 5] and not req.full and req.reason == "prediction"
    got = mgr.on_measurement(req.seq, req.beams, [-70.0, -60.0])
    assert got is not None and got.beam == 5 and got.power_dbm == -60.0 and not got.failed


def test_no_prediction_or_a_stale_one_sweeps_everything() -> None:
    mgr = BeamManager(6, SweepPolicy(k=1, prediction_deadline_s=0.25))
    req = mgr.request(0.0)
    assert req.full and req.reason == "no_prediction" and req.beams.tolist() == list(range(6))
    mgr.on_measurement(req.seq, req.beams, np.arange(6.0))
    mgr.on_prediction(0.1, _probs(6, best=2))
    assert not mgr.request(0.2).full
    mgr.on_measurement(2, [2], [-50.0])
    req = mgr.request(0.5)  # 0.4 s after the last prediction
    assert req.full and req.reason == "stale_prediction"
    assert mgr.counts["fallback_no_prediction"] == 1 and mgr.counts["fallback_stale_prediction"] == 1


def test_beam_failure_triggers_a_full_sweep_that_recovers() -> None:
    powers = np.full(10, -90.0)
    powers[7] = -50.0
    mgr = BeamManager(10, SweepPolicy(k=1, failure_drop_db=6.0, include_serving=False))
    mgr.on_prediction(0.0, _probs(10, best=7))
    req = mgr.request(0.0)
    assert mgr.on_measurement(req.seq, req.beams, powers[req.beams]).beam == 7
    # the vehicle moved: the prediction still says 7, the best beam is now 2 (-55 dBm); 7 reads -80 dBm
    powers[:] = -90.0
    powers[7], powers[2] = -80.0, -55.0
    mgr.on_prediction(0.1, _probs(10, best=7))
    req = mgr.request(0.1)
    got = mgr.on_measurement(req.seq, req.beams, powers[req.beams])
    assert got.failed and got.beam == 7
    rec = mgr.recovery_request()
    assert rec.full and rec.reason == "beam_failure"
    got = mgr.on_measurement(rec.seq, rec.beams, powers[rec.beams])
    assert got.beam == 2 and not got.failed
    assert mgr.counts["beam_failures"] == 1 and mgr.counts["fallback_beam_failure"] == 1


def test_bad_input_is_counted_never_raised_and_every_frame_keeps_a_serving_beam() -> None:
    mgr = BeamManager(8, SweepPolicy(k=2, include_serving=False))
    assert not mgr.on_prediction(0.0, np.ones(5) / 5)  # another codebook
    assert not mgr.on_prediction(0.0, np.full(8, np.nan))
    assert mgr.counts["bad_prediction"] == 2
    req = mgr.request(0.0)
    assert req.full  # nothing usable: full sweep
    got = mgr.on_measurement(req.seq, req.beams, np.linspace(-80, -60, 8))
    assert got.beam == 7
    mgr.on_prediction(0.1, _probs(8, best=1, second=2))
    req = mgr.request(0.1)
    # a beam that was not requested (5, strongest) and a NaN power: both dropped and counted
    got = mgr.on_measurement(req.seq, [1, 2, 5], [np.nan, -70.0, -40.0])
    assert got.beam == 2 and mgr.counts["unrequested_beams"] == 1 and mgr.counts["nan_powers"] == 1
    assert mgr.on_measurement(req.seq, [1], [-60.0]) is None  # answered twice: late
    assert mgr.counts["late_or_unknown_measurement"] == 1
    mgr.request(0.2)  # its measurement never comes ...
    req = mgr.request(0.3)  # ... counted at the next frame
    assert mgr.counts["missing_measurement"] == 1
    got = mgr.on_measurement(req.seq, req.beams, [np.nan] * req.beams.size)  # all NaN: keep the last beam
    assert got.beam == 2 and np.isnan(got.power_dbm) and mgr.counts["empty_measurement"] == 1
    assert mgr.on_measurement(req.seq + 5, [1], [-1.0]) is None


def test_the_last_serving_beam_is_measured_too() -> None:
    mgr = BeamManager(8, SweepPolicy(k=1, include_serving=True))
    req = mgr.request(0.0)
    mgr.on_measurement(req.seq, req.beams, np.where(np.arange(8) == 4, -50.0, -90.0))
    mgr.on_prediction(0.1, _probs(8, best=1))
    assert mgr.request(0.1).beams.tolist() == [1, 4]


def test_episode_with_a_perfect_predictor_costs_k_beams_and_no_loss() -> None:
    rng = np.random.default_rng(0)
    powers = rng.normal(-70, 5, (50, 16))
    probs = scores_to_probabilities(powers * 3)
    res = run_episode(probs, powers, SweepPolicy(k=1, include_serving=False, failure_drop_db=1e6))
    assert (res["measured"] == 1).all()  # each frame's prediction arrives before its sweep
    assert np.allclose(res["loss_db"], 0.0)
    noisy = run_episode(np.full((50, 16), np.nan), powers, SweepPolicy(k=1))
    assert (noisy["measured"] == 16).all() and np.allclose(noisy["loss_db"], 0.0)  # exhaustive every frame

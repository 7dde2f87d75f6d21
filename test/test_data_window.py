"""One window-continuity policy, offline and live: the tracker restarts its window where the dataset
builder cut one, and thins a faster source to the model's frame period."""

from __future__ import annotations

import numpy as np
import pytest

from beam_tracking_ros.data.builder import EpisodeWindower, build_dataset
from beam_tracking_ros.data.preprocess import PreprocessConfig
from beam_tracking_ros.data.window import ContinuityPolicy
from beam_tracking_ros.sim.types import BeamLabel, SensorFrame
from beam_tracking_ros.tracking import BeamTracker

B = 8
CFG = PreprocessConfig(radar_points=8, radar_range_bins=4, radar_angle_bins=4)
P = 3


def _frame(k: int, stamp: float, bad: bool = False) -> SensorFrame:
    radar = np.array([[1.0, 0.1, 0.0, 10.0 + k], [-2.0, -0.2, 0.05, 30.0]], np.float32)
    if bad:
        radar = np.full((2, 4), np.nan, np.float32)  # malformed: preprocessing drops the frame
    powers = np.full(B, -90.0, np.float32)
    powers[k % B] = -60.0
    return SensorFrame(stamp=stamp, radar=radar, beam=BeamLabel(powers, k % B, [1], mode="single"))


class Zeros:
    """A predictor that only records which windows it was asked about."""

    def predict(self, batch):
        return np.zeros((1, 1, B), np.float32)


def _live(frames, policy: ContinuityPolicy) -> tuple[list[float], BeamTracker]:
    tracker = BeamTracker(Zeros(), ["radar_points"], P, 0, CFG, policy=policy)
    out = []
    for f in frames:
        try:
            pred = tracker.push(f.stamp, {"radar": f.radar})
        except ValueError:  # PreprocessError: counted by the node, the frame is dropped
            continue
        if pred is not None:
            out.append(round(pred.stamp, 6))
    return out, tracker


def test_policy_rules_and_round_trip() -> None:
    pol = ContinuityPolicy(period_s=0.1, max_gap_s=0.5)
    assert pol.breaks(None, 1.0) is None and pol.breaks(1.0, 1.1) is None
    assert pol.breaks(1.0, 1.0) == "duplicate" and pol.breaks(1.0, 0.5) == "backwards"
    assert pol.breaks(1.0, 1.6) == "gap"
    assert pol.too_early(1.0, 1.05) and not pol.too_early(1.0, 1.08) and not pol.too_early(None, 1.0)
    assert pol.rate_mismatch(0.2) and not pol.rate_mismatch(0.11) and not pol.rate_mismatch(None)
    assert ContinuityPolicy.from_dict(pol.to_dict()) == pol and ContinuityPolicy.from_dict(None) == ContinuityPolicy()
    for bad in ({"period_s": 0}, {"max_gap_s": float("nan")}, {"period": 0.1}):
        with pytest.raises(ValueError):
            ContinuityPolicy.from_dict(bad)


def test_a_live_window_never_spans_a_hole_the_builder_cut(tmp_path) -> None:
    # 10 Hz with a dropped (malformed) frame, a 0.8 s hole, and a bag looping back
    stamps = [0.1 * k for k in range(8)] + [1.5 + 0.1 * k for k in range(6)] + [0.1 * k for k in range(5)]
    frames = [_frame(k, t, bad=(k == 4)) for k, t in enumerate(stamps)]
    meta = build_dataset(tmp_path / "ds", [(0, frames)], P=P, H=0, cfg=CFG, modalities=("radar",),
                         splits={0: "train"}, max_gap=0.5)
    policy = ContinuityPolicy.from_dict(meta["window_policy"])
    assert policy == ContinuityPolicy(period_s=0.1, max_gap_s=0.5)  # measured, and the builder's max_gap
    offline = [round(float(s["stamp"]), 6) for s in EpisodeWindower(P, 0, CFG, ("radar",), policy=policy)
               .samples(frames, 0)]
    live, tracker = _live(frames, policy)
    assert live == offline
    # windows of P=3 in: frames 0-3 | (4 dropped) 5-7 | the hole | 1.5-2.0 | looped back to 0.0-0.4
    assert offline == [0.2, 0.3, 0.7, 1.7, 1.8, 1.9, 2.0, 0.2, 0.3, 0.4]
    assert dict(tracker.stats.breaks) == {"dropped": 1, "gap": 1, "backwards": 1}


def test_a_duplicate_stamp_restarts_the_window_and_says_so() -> None:
    frames = [_frame(k, 1.0 + 0.1 * k) for k in range(5)]
    frames.insert(3, _frame(9, frames[2].stamp))  # the same instant twice
    live, tracker = _live(frames, ContinuityPolicy(period_s=0.1))
    assert dict(tracker.stats.breaks) == {"duplicate": 1} and live == [1.2, 1.4]


def test_a_faster_source_is_thinned_to_the_models_period() -> None:
    policy = ContinuityPolicy(period_s=0.1)
    frames = [_frame(k, 10.0 + 0.05 * k) for k in range(20)]  # 20 Hz input, a model trained at 10 Hz
    live, tracker = _live(frames, policy)
    assert tracker.stats.frames_skipped == 10 and not tracker.rate_mismatch
    assert np.allclose(np.diff(tracker.window.stamps()), 0.1)
    assert live == [round(10.0 + 0.1 * k, 6) for k in range(P - 1, 10)]
    slow, tracker = _live([_frame(k, 0.2 * k) for k in range(10)], policy)  # 5 Hz: nothing to thin
    assert len(slow) == 10 - P + 1 and tracker.rate_mismatch  # ... but the windows span twice the time

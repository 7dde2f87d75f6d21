"""Dataset builder: windows, future labels, episode splits, continuity breaks, failure leaves no manifest."""
from __future__ import annotations

import numpy as np
import pytest

from beam_tracking_ros.data.builder import assign_splits, build_dataset
from beam_tracking_ros.data.preprocess import PreprocessConfig, preprocess_frame
from beam_tracking_ros.data.store import DatasetReader, is_complete
from beam_tracking_ros.sim.types import BeamLabel, SensorFrame

B = 8
CFG = PreprocessConfig(radar_points=8, radar_range_bins=4, radar_angle_bins=4)


def _frame(ep: int, k: int, stamp: float | None = None, beam: bool = True) -> SensorFrame:
    """Frame k of episode ep: radar depth and GPS encode (ep, k) so the test can read them back."""
    radar = np.array([[1.0, 0.1, 0.0, 10.0 + k], [-2.0, -0.2, 0.05, 30.0]], np.float32)
    gnss = np.array([49.0 + 1e-5 * k, 8.4 + 1e-5 * ep, 110.0])
    powers = np.full(B, -90.0, np.float32)
    opt = (3 * k + ep) % B
    powers[opt] = -60.0
    label = BeamLabel(powers, opt, [1], los_blocked=bool(k % 5 == 0), mode="single") if beam else None
    return SensorFrame(stamp=0.1 * k if stamp is None else stamp, radar=radar, gnss=gnss, beam=label)


def _episodes(n_eps: int, n_frames: int):
    return [(ep, [_frame(ep, k) for k in range(n_frames)]) for ep in range(n_eps)]


def test_windows_and_future_labels(tmp_path):
    P, H, n = 3, 2, 12
    meta = build_dataset(tmp_path / "ds", _episodes(1, n), P=P, H=H, cfg=CFG, modalities=("radar", "gnss"),
                         splits={0: "train"}, chunk_size=4)
    r = DatasetReader(tmp_path / "ds")
    assert r.count("train") == n - (P - 1) - H == meta["counts"]["train"]
    assert meta["codebook_size"] == B and meta["label_mode"] == "single"
    frames = _episodes(1, n)[0][1]
    for i in range(r.count("train")):
        s = r.get("train", i)
        t = i + P - 1  # newest observed frame
        assert s["beams"].tolist() == [(3 * k) % B for k in range(t, t + H + 1)]
        assert s["powers_dbm"].shape == (H + 1, B) and s["powers_dbm"][1, s["beams"][1]] == -60.0
        assert s["los_blocked"].tolist() == [k % 5 == 0 for k in range(t, t + H + 1)]
        assert s["stamp"] == pytest.approx(0.1 * t)
        # inputs are exactly the live path: preprocess_frame of frames t-P+1 .. t, oldest first
        for j, k in enumerate(range(t - P + 1, t + 1)):
            ref = preprocess_frame(frames[k], CFG, ("radar", "gnss"))
            np.testing.assert_array_equal(s["radar_points"][j], ref["radar_points"])
            np.testing.assert_array_equal(s["gps"][j], ref["gps"])


def test_splits_by_episode_never_leak(tmp_path):
    eps = _episodes(10, 8)
    build_dataset(tmp_path / "ds", eps, P=2, H=1, cfg=CFG, modalities=("radar",), seed=5)
    r = DatasetReader(tmp_path / "ds")
    seen = {s: set(r.column(s, "episode").tolist()) for s in ("train", "val", "test")}
    assert seen["train"] and seen["val"] and seen["test"]
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"])
    assert not (seen["val"] & seen["test"])
    assert seen == {s: set(e) for s, e in r.meta["episodes"].items()}
    assert assign_splits(range(10), seed=5) == assign_splits(range(10), seed=5)
    assert assign_splits(range(10), seed=5) != assign_splits(range(10), seed=6)
    counts = list(assign_splits(range(10), seed=1).values())
    assert counts.count("val") == 1 and counts.count("test") == 1


def test_continuity_breaks(tmp_path):
    P, H = 2, 1
    frames = [_frame(0, k) for k in range(6)]
    frames[3] = _frame(0, 3, beam=False)  # unlabelled: no sample may span it
    frames += [_frame(0, k, stamp=0.1 * k) for k in range(4)]  # clock jumps back (bag looped)
    broken = _frame(0, 9, stamp=5.0)
    broken.radar = np.full((2, 4), np.nan, np.float32)  # all-NaN radar: malformed -> dropped
    frames.append(broken)
    meta = build_dataset(tmp_path / "ds", [(0, frames)], P=P, H=H, cfg=CFG, modalities=("radar",),
                         splits={0: "train"})
    st = meta["build_stats"]
    assert st["unlabelled_frames"] == 1 and st["dropped_frames"] == 1 and st["drop_reasons"] == {"radar": 1}
    # segments: frames 0-2 (1 sample), 4-5 (0 samples: 2 frames < P + H), replay 0-3 (2 samples)
    assert meta["counts"]["train"] == 3
    stamps = DatasetReader(tmp_path / "ds").column("train", "stamp")
    np.testing.assert_allclose(stamps, [0.1, 0.1, 0.2])


def test_failed_build_leaves_no_dataset(tmp_path):
    def bad_frames():
        yield from (_frame(0, k) for k in range(10))
        raise OSError("bag truncated")

    with pytest.raises(OSError, match="truncated"):
        build_dataset(tmp_path / "ds", iter([(0, bad_frames())]), P=2, H=1, cfg=CFG,
                      modalities=("radar",), splits={0: "train"}, chunk_size=2)
    assert not is_complete(tmp_path / "ds")
    with pytest.raises(ValueError, match="no samples"):
        build_dataset(tmp_path / "ds2", _episodes(1, 3), P=3, H=2, cfg=CFG, modalities=("radar",))
    assert not is_complete(tmp_path / "ds2")
    # a required modality absent from every frame
    with pytest.raises(ValueError, match=r"missing or malformed.*lidar"):
        build_dataset(tmp_path / "ds3", _episodes(1, 5), P=2, H=1, cfg=CFG, modalities=("lidar",))
    with pytest.raises(ValueError, match="modalities"):
        build_dataset(tmp_path / "ds4", _episodes(1, 5), P=2, H=1, cfg=CFG, modalities=("sonar",))

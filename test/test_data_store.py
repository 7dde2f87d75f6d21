"""Dataset store: round trip, memory-mapped streaming, crash safety (manifest written last)."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from beam_tracking_ros.data.store import (
    BeamDataset,
    ChunkShuffleSampler,
    DatasetError,
    DatasetReader,
    DatasetWriter,
    is_complete,
    summary,
)

P, H, B = 4, 2, 16


def _sample(i: int, episode: int) -> dict[str, np.ndarray]:
    beams = (np.arange(H + 1) + i) % B
    return {
        "radar_points": np.full((P, 8, 4), i, np.float32),
        "gps": np.full((P, 2), -i, np.float32),
        "beams": beams.astype(np.int64),
        "powers_dbm": np.full((H + 1, B), float(i), np.float32),
        "los_blocked": np.array([i % 4 == 0] * (H + 1)),
        "stamp": np.float64(i * 0.1),
        "episode": np.int64(episode),
    }


def _write(root, n=23, chunk=5):
    with DatasetWriter(root, {"P": P, "H": H, "codebook_size": B}, chunk_size=chunk) as w:
        for i in range(n):
            w.add(_sample(i, i // 10), "train" if i < 17 else "test")
    return root


def test_round_trip_and_mmap(tmp_path):
    root = _write(tmp_path / "ds")
    r = DatasetReader(root)
    assert r.count("train") == 17 and r.count("test") == 6 and r.count("val") == 0
    assert r.num_chunks("train") == 4  # 5+5+5+2
    for i in (0, 4, 5, 16):
        s = r.get("train", i)
        np.testing.assert_array_equal(s["radar_points"], _sample(i, 0)["radar_points"])
        np.testing.assert_array_equal(s["beams"], _sample(i, 0)["beams"])
        assert s["stamp"] == pytest.approx(i * 0.1)
    s = r.get("test", 0)
    assert s["episode"] == 1 and s["powers_dbm"][0, 0] == 17.0
    frames = r.frames("train", 1)
    assert isinstance(frames["radar_points"], np.memmap)  # streamed from disk, not loaded
    assert isinstance(r.chunk("train", 1)["beams"], np.memmap)
    assert r.meta["counts"] == {"train": 17, "val": 0, "test": 6}
    assert r.meta["P"] == P
    assert sum(r.meta["label_histogram"]["train"]) == 17


def test_torch_dataset_and_sampler(tmp_path):
    torch = pytest.importorskip("torch")
    root = _write(tmp_path / "ds")
    ds = BeamDataset(root, "train", modalities=["radar"])
    assert len(ds) == 17
    item = ds[7]
    assert "gps" not in item and item["radar_points"].dtype == torch.float32
    assert item["beams"].tolist() == _sample(7, 0)["beams"].tolist()
    sampler = ds.chunk_sampler(seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(17))
    # rows of one chunk stay together: each run of 5 maps to a single chunk
    chunk_of = [ds.reader.locate("train", i)[0] for i in order]
    changes = sum(a != b for a, b in itertools.pairwise(chunk_of))
    assert changes == 3
    loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=sampler)
    batch = next(iter(loader))
    assert batch["radar_points"].shape == (4, P, 8, 4)
    with pytest.raises(ValueError, match="lidar"):
        BeamDataset(root, "train", modalities=["lidar"])


def test_sampler_epochs_differ():
    s = ChunkShuffleSampler(np.array([0, 3, 6, 9]), seed=1)
    a = list(s)
    s.set_epoch(1)
    assert list(s) != a and sorted(list(s)) == sorted(a)


def test_interrupted_build_is_refused(tmp_path):
    root = tmp_path / "ds"
    w = DatasetWriter(root, {"P": P}, chunk_size=2)
    for i in range(7):
        w.add(_sample(i, 0), "train")
    # simulated crash: chunks on disk, close() never ran
    assert any(root.rglob("*.npy"))
    with pytest.raises(DatasetError, match="manifest"):
        DatasetReader(root)
    assert not is_complete(root)
    # a failure inside the context manager leaves no manifest either
    with pytest.raises(RuntimeError), DatasetWriter(root, {}, chunk_size=2) as w2:
        w2.add(_sample(0, 0), "train")
        raise RuntimeError("bag broke")
    assert not (root / "manifest.json").exists()


def test_rebuild_invalidates_old_manifest(tmp_path):
    root = _write(tmp_path / "ds")
    assert is_complete(root)
    w = DatasetWriter(root, {}, chunk_size=2)  # rebuild starts
    w.add(_sample(0, 0), "train")
    assert not is_complete(root)


def test_missing_chunk_and_bad_manifest(tmp_path):
    root = _write(tmp_path / "ds")
    (root / "train" / "chunk_000001" / "frames" / "radar_points.npy").unlink()
    with pytest.raises(DatasetError, match="missing"):
        DatasetReader(root)
    (root / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DatasetError, match="manifest"):
        DatasetReader(root)


def test_schema_mismatch_and_empty(tmp_path):
    w = DatasetWriter(tmp_path / "a", {}, chunk_size=4)
    w.add(_sample(0, 0), "train")
    bad = _sample(1, 0)
    bad["radar_points"] = np.zeros((P, 9, 4), np.float32)
    with pytest.raises(ValueError, match="radar_points"):
        w.add(bad, "train")
    with pytest.raises(ValueError, match="split"):
        w.add(_sample(1, 0), "training")
    with pytest.raises(DatasetError, match="no samples"):
        DatasetWriter(tmp_path / "b", {}).close()
    assert not is_complete(tmp_path / "b")


def test_summary(tmp_path):
    root = _write(tmp_path / "ds")
    st = summary(root)
    assert st["total"] == 23 and st["counts"]["test"] == 6
    assert st["optimum_change_rate"] == 1.0  # beams t+1 = beams t + 1 in the fixture
    assert st["los_blocked_fraction"] == pytest.approx(np.mean([i % 4 == 0 for i in range(23)]))
    assert sum(st["label_histogram"]) == 23 and len(st["label_histogram"]) == B


def _sliding(n: int, start: int = 0) -> list[dict[str, np.ndarray]]:
    """Samples whose windows slide by one frame over frames start .. start + n + P - 2 (frame k = value k)."""
    out = []
    for i in range(n):
        frames = np.arange(start + i, start + i + P, dtype=np.float32)
        out.append({**_sample(start + i, 0), "radar_points": np.broadcast_to(frames[:, None, None], (P, 8, 4)).copy(),
                    "gps": np.stack([frames, -frames], axis=1)})
    return out


def test_add_stores_sliding_windows_once(tmp_path):
    """The v1 add() interface: consecutive overlapping windows become one run of frames (stored once),
    non-overlapping ones a new run; the reader returns every window byte for byte."""
    samples = _sliding(12) + _sliding(5, start=100)  # second run does not continue the first
    with DatasetWriter(tmp_path / "ds", {"P": P}, chunk_size=8) as w:
        for s in samples:
            w.add(s, "train")
    r = DatasetReader(tmp_path / "ds")
    for i, ref in enumerate(samples):
        got = r.get("train", i)
        for k, v in ref.items():
            assert got[k].dtype == v.dtype and got[k].tobytes() == v.tobytes(), (i, k)
    chunks = r.manifest["splits"]["train"]["chunks"]
    assert [c["count"] for c in chunks] == [8, 8, 1]
    # chunk 0: frames 0..10; chunk 1: samples 8..11 (frames 8..14) + the new run's 4 samples (frames
    # 100..106); chunk 2: the last sample's window only
    assert [c["frames"] for c in chunks] == [8 + P - 1, (4 + P - 1) + (4 + P - 1), P]
    np.testing.assert_array_equal(r.column("train", "radar_points")[:, :, 0, 0],
                                  np.stack([s["radar_points"][:, 0, 0] for s in samples]))


def test_frame_level_api_checks(tmp_path):
    w = DatasetWriter(tmp_path / "ds", {}, window=3)
    labels = {"beams": np.zeros(H + 1, np.int64), "stamp": 0.0, "episode": 0}
    w.add_frame("train", {"gps": np.zeros(2)})
    with pytest.raises(ValueError, match="window of P=3"):
        w.add_sample("train", labels)
    ids = [w.add_frame("train", {"gps": np.full(2, k)}) for k in (1, 2, 3)]
    with pytest.raises(ValueError, match="shapes differ"):
        w.add_frame("train", {"gps": np.zeros(3)})
    with pytest.raises(ValueError, match="input keys"):
        w.add_sample("train", {**labels, "gps": np.zeros(2)})
    w.add_sample("train", labels, last_frame=ids[-1])
    with pytest.raises(ValueError, match="time order"):
        w.add_sample("train", labels, last_frame=ids[-2])
    w.end_run("train")
    with pytest.raises(ValueError, match="current run"):
        w.add_sample("train", labels)
    w.close()
    s = DatasetReader(tmp_path / "ds").get("train", 0)
    assert s["gps"].dtype == np.float32 and s["gps"][:, 0].tolist() == [1.0, 2.0, 3.0]  # stored like the window
    with pytest.raises(ValueError, match="P is unknown"):
        DatasetWriter(tmp_path / "ds2", {}).add_sample("train", labels)


def test_derived_motion_masks(tmp_path):
    """camera_motion is not stored: the reader recomputes it from camera_gray with the recorded threshold;
    a sample whose masks do not match that recipe is refused instead of silently changed."""
    from beam_tracking_ros.data.preprocess import motion_masks

    rng = np.random.default_rng(0)
    gray = rng.random((10, 1, 6, 6), dtype=np.float32)
    meta = {"P": P, "preprocess": {"motion_threshold": 0.3}}
    with DatasetWriter(tmp_path / "ds", meta) as w:
        for i in range(10 - P + 1):
            win = gray[i: i + P]
            w.add({**_sample(i, 0), "camera_gray": win, "camera_motion": motion_masks(win, 0.3)}, "train")
    r = DatasetReader(tmp_path / "ds")
    assert "camera_motion" not in r.frame_keys and r.derived["camera_motion"]["threshold"] == 0.3
    assert r.keys["camera_motion"] == (np.dtype(np.float32), (P, 1, 6, 6))
    for i in range(r.count("train")):
        got = r.get("train", i, ["camera_motion"])
        assert list(got) == ["camera_motion"]
        assert got["camera_motion"].tobytes() == motion_masks(gray[i: i + P], 0.3).tobytes()
    w = DatasetWriter(tmp_path / "bad", meta)
    with pytest.raises(ValueError, match="camera_motion"):
        w.add({**_sample(0, 0), "camera_gray": gray[:P], "camera_motion": motion_masks(gray[:P], 0.1)}, "train")
    with pytest.raises(ValueError, match="motion_threshold"):
        DatasetWriter(tmp_path / "bad2", {}).add(
            {**_sample(0, 0), "camera_gray": gray[:P], "camera_motion": motion_masks(gray[:P], 0.3)}, "train")


def test_old_format_is_refused(tmp_path):
    """A v1 directory (every sample's full windows) is refused with a message that says to rebuild."""
    root = _write(tmp_path / "ds")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["version"] = 1
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"format version 1.*reads version 2.*rebuild"):
        DatasetReader(root)
    assert not is_complete(root)
    with pytest.raises(DatasetError, match="rebuild"):
        BeamDataset(root, "train")


def test_corrupt_window_index(tmp_path):
    root = _write(tmp_path / "ds")
    path = root / "train" / "chunk_000000" / "frame_start.npy"
    starts = np.load(path)
    starts[-1] = 10_000
    np.save(path, starts)
    with pytest.raises(DatasetError, match="outside the chunk"):
        DatasetReader(root)


def test_writer_memory_stays_bounded(tmp_path):
    """Frames no window can reference any more are released while writing (a long recording streams
    through the writer): short runs cut by end_run, and frames older than the newest window."""
    w = DatasetWriter(tmp_path / "ds", {}, chunk_size=1000, window=3)
    labels = {"beams": np.zeros(H + 1, np.int64), "stamp": 0.0, "episode": 0}
    for k in range(300):  # runs of 2 frames: too short for a window, never referenced
        w.add_frame("train", {"gps": np.full(2, k)})
        if k % 2:
            w.end_run("train")
    assert len(w._buf["train"].frames) == 0
    for k in range(300):  # one long run with a sample per frame: only the live window's frames stay
        w.add_frame("train", {"gps": np.full(2, k)})
        if k >= 2:
            w.add_sample("train", labels)
    # buffered samples (chunk not yet full) keep their frames; none before the first window
    assert len(w._buf["train"].frames) == 300
    w.chunk_size = 10
    w.add_frame("train", {"gps": np.zeros(2)})
    w.add_sample("train", labels)  # flushes the buffered samples as a chunk
    assert len(w._buf["train"].frames) == 2  # the next window's P - 1 older frames
    w.close()
    r = DatasetReader(tmp_path / "ds")
    assert r.count("train") == 299 and r.get("train", 298)["gps"][:, 0].tolist() == [298, 299, 0]

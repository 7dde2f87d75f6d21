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
    chunk = r.chunk("train", 1)
    assert isinstance(chunk["radar_points"], np.memmap)  # streamed from disk, not loaded
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
    (root / "train" / "chunk_000001" / "radar_points.npy").unlink()
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

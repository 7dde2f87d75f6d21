"""Simulator -> dataset fast path: shapes, scenario info, config-hash caching."""
from __future__ import annotations

import numpy as np

from beam_tracking_ros.data.generate import generate_dataset, scenario
from beam_tracking_ros.data.store import BeamDataset, DatasetReader, input_keys, summary
from beam_tracking_ros.sim import CameraConfig, LidarConfig


def _scenarios():
    small = {"camera": CameraConfig(enabled=False), "lidar": LidarConfig(enabled=False)}
    return [scenario(2, **small), scenario(3, **small)]


def test_generate_and_cache(tmp_path):
    root = tmp_path / "ds"
    kw = {"episodes": 4, "frames_per_episode": 16, "seed": 3, "P": 3, "H": 2, "modalities": ("radar", "gnss")}
    generate_dataset(root, _scenarios(), **kw)
    r = DatasetReader(root)
    assert r.meta["source"] == "builtin_simulator" and len(r.meta["scenarios"]) == 2
    assert r.meta["episode_scenario"] == [0, 1, 0, 1]
    assert [sc["lanes"] for sc in r.meta["scenarios"]] == [2, 3]
    s = r.get("train", 0)
    assert s["radar_points"].shape[0] == 3 and s["gps"].shape == (3, 3)
    assert s["beams"].shape == (3,) and s["powers_dbm"].shape == (3, r.meta["codebook_size"])
    assert np.all(np.abs(s["gps"]) < 5)  # GPS centred on the RSU, not on (0, 0)
    # the simulator's geometry ceiling travels as a label, never as a model input
    assert s["ceiling_powers_dbm"].shape == s["powers_dbm"].shape and s["ceiling_powers_dbm"].dtype == np.float32
    assert "ceiling_powers_dbm" not in input_keys(list(r.keys))
    assert "ceiling_powers_dbm" not in BeamDataset(root, "train").input_keys
    st = summary(root)
    assert st["total"] == sum(r.meta["counts"].values()) > 0
    stamp = (root / "manifest.json").stat().st_mtime_ns
    generate_dataset(root, _scenarios(), **kw)  # same config: reused, not rebuilt
    assert (root / "manifest.json").stat().st_mtime_ns == stamp
    generate_dataset(root, _scenarios(), **{**kw, "seed": 4})  # different config: rebuilt
    assert DatasetReader(root).meta["config_hash"] != r.meta["config_hash"]


def test_cache_key_covers_store_format(tmp_path, monkeypatch):
    """A dataset of an older store layout is never reused: the format version is part of the cache key
    and the reader refuses the old layout (so generate rebuilds it instead of failing)."""
    import json

    from beam_tracking_ros.data import generate
    from beam_tracking_ros.data.store import FORMAT_VERSION, is_complete

    root = tmp_path / "ds"
    kw = {"episodes": 3, "frames_per_episode": 8, "seed": 1, "P": 2, "H": 1, "modalities": ("gnss",)}
    generate_dataset(root, _scenarios()[:1], **kw)
    first = DatasetReader(root).meta["config_hash"]
    monkeypatch.setattr(generate, "FORMAT_VERSION", FORMAT_VERSION + 1)
    generate_dataset(root, _scenarios()[:1], **kw)
    assert DatasetReader(root).meta["config_hash"] != first
    monkeypatch.undo()
    # an old-format directory with the current hash: refused by the reader, hence rebuilt
    generate_dataset(root, _scenarios()[:1], **kw)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["version"] = FORMAT_VERSION - 1
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert not is_complete(root)
    generate_dataset(root, _scenarios()[:1], **kw)
    assert DatasetReader(root).manifest["version"] == FORMAT_VERSION


def test_lidar_feature_sees_vehicles_not_the_ground(tmp_path):
    """The range profile must vary with the traffic: with ground returns kept it was the constant ground ring."""
    sc = scenario(2, camera=CameraConfig(enabled=False))
    root = generate_dataset(tmp_path / "ds", [sc], episodes=2, frames_per_episode=40, seed=1, P=2, H=1,
                            modalities=("lidar",))
    r = DatasetReader(root)
    assert r.meta["preprocess"]["lidar_min_z"] == -sc.lidar.mount_height + 0.3
    feat = np.concatenate([r.column(s, "lidar_feat")[:, -1] for s in ("train", "val", "test")])
    # vehicles pass through most azimuth bins: their nearest return changes from frame to frame
    assert np.median(feat.std(axis=0)) > 0.03, feat.std(axis=0)

"""Simulator -> dataset fast path: shapes, scenario info, config-hash caching."""
from __future__ import annotations

import numpy as np

from beam_tracking_ros.data.generate import generate_dataset, scenario
from beam_tracking_ros.data.store import DatasetReader, summary
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
    st = summary(root)
    assert st["total"] == sum(r.meta["counts"].values()) > 0
    stamp = (root / "manifest.json").stat().st_mtime_ns
    generate_dataset(root, _scenarios(), **kw)  # same config: reused, not rebuilt
    assert (root / "manifest.json").stat().st_mtime_ns == stamp
    generate_dataset(root, _scenarios(), **{**kw, "seed": 4})  # different config: rebuilt
    assert DatasetReader(root).meta["config_hash"] != r.meta["config_hash"]

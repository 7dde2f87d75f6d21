"""DeepSense 6G import on a tiny scenario laid out like the real one (scenarioX.csv + unit1/unit2 files)."""
from __future__ import annotations

import csv
import importlib.util

import numpy as np
import pytest

from beam_tracking_ros.data.deepsense import DeepSenseError, import_deepsense, read_ply
from beam_tracking_ros.data.preprocess import PreprocessConfig
from beam_tracking_ros.data.store import DatasetReader, is_complete

HAS_PIL = importlib.util.find_spec("PIL") is not None
COLUMNS = ["index", "unit1_rgb", "unit1_radar", "unit1_lidar", "unit1_loc", "unit2_loc", "unit1_pwr_60ghz",
           "unit1_beam", "unit1_max_pwr", "time_stamp[UTC]", "seq_index"]


def _make_scenario(folder, seqs=(1, 2, 3), n=7):
    rng = np.random.default_rng(0)
    for sub in ("unit1/camera_data", "unit1/radar_data", "unit1/lidar_data", "unit1/mmWave_data",
                "unit1/GPS_data", "unit2/GPS_data"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "unit1/GPS_data/gps_location.txt").write_text("33.4200\n-111.9290\n")
    rows, idx = [], 0
    for seq in seqs:
        for k in range(n):
            idx += 1
            beam = (5 * k + seq) % 64
            lin = np.full(64, 0.01)
            lin[beam] = 0.5
            if k == 2:
                lin[(beam + 7) % 64] = np.nan  # NaN beams exist in the real data
            np.savetxt(folder / f"unit1/mmWave_data/mmWave_power_{idx}.txt", lin)
            (folder / f"unit2/GPS_data/gps_location_{idx}.txt").write_text(f"{33.4200 + 1e-5 * k}\n-111.9290\n")
            cube = (rng.normal(size=(4, 16, 8)) + 1j * rng.normal(size=(4, 16, 8))).astype(np.complex64)
            np.save(folder / f"unit1/radar_data/radar_data_{idx}.npy", cube)
            pts = rng.uniform(-20, 20, (30, 3))
            body = "\n".join(f"{x:.3f} {y:.3f} {z:.3f} {i}" for (x, y, z), i in zip(pts, range(30)))
            (folder / f"unit1/lidar_data/lidar_data_{idx}.ply").write_text(
                "ply\nformat ascii 1.0\nelement vertex 30\nproperty double x\nproperty double y\n"
                "property double z\nproperty ushort intensity\nend_header\n" + body + "\n")
            if HAS_PIL:
                from PIL import Image
                Image.fromarray(np.full((12, 16, 3), 10 * k, np.uint8)).save(
                    folder / f"unit1/camera_data/image_{idx}.jpg")
            else:
                (folder / f"unit1/camera_data/image_{idx}.jpg").write_bytes(b"\xff\xd8\xff\xd9")
            rows.append({
                "index": idx, "unit1_rgb": f"./unit1/camera_data/image_{idx}.jpg",
                "unit1_radar": f"./unit1/radar_data/radar_data_{idx}.npy",
                "unit1_lidar": f"./unit1/lidar_data/lidar_data_{idx}.ply",
                "unit1_loc": "./unit1/GPS_data/gps_location.txt",
                "unit2_loc": f"./unit2/GPS_data/gps_location_{idx}.txt",
                "unit1_pwr_60ghz": f"./unit1/mmWave_data/mmWave_power_{idx}.txt",
                "unit1_beam": beam + 1, "unit1_max_pwr": 0.5,
                "time_stamp[UTC]": f"['11:{20 + seq}:{10 + k // 10:02d}-{(k % 10) * 100000:06d}']",
                "seq_index": seq,
            })
    with open(folder / "scenario9.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return folder


CFG = PreprocessConfig(bev_resolution=10.0, lidar_feature_bins=8, gps_reference=(33.42, -111.929, 0.0))


def test_import_sample(tmp_path):
    folder = _make_scenario(tmp_path / "scenario9")
    meta = import_deepsense(folder, tmp_path / "ds", modalities=("radar", "lidar", "gnss"), P=3, H=2,
                            cfg=CFG, radar_angle_bins=8)
    r = DatasetReader(tmp_path / "ds")
    assert sum(r.meta["counts"].values()) == 3 * (7 - 2 - 2) and meta["label_disagreements"] == 0
    assert r.meta["codebook_size"] == 64
    eps = {s: set(r.column(s, "episode").tolist()) for s in ("train", "val", "test")}
    assert set().union(*eps.values()) == {1, 2, 3} and all(eps.values())
    for split in ("train", "val", "test"):
        s = r.get(split, 0)
        seq = int(s["episode"])
        assert s["beams"].tolist() == [(5 * k + seq) % 64 for k in range(2, 5)]
        assert np.isfinite(s["powers_dbm"]).all()  # the NaN beam of frame 2 was replaced
        assert s["powers_dbm"][0, s["beams"][0]] == pytest.approx(10 * np.log10(0.5), abs=1e-5)
        assert s["radar_maps"].shape == (3, 2, 16, 8)
        assert s["gps"].shape == (3, 3) and abs(s["gps"][2, 1] * 100 - 2 * 1.113) < 0.05  # 2e-5 deg north


def test_missing_files_and_columns(tmp_path):
    folder = _make_scenario(tmp_path / "s", seqs=(1,), n=5)
    (folder / "unit1/radar_data/radar_data_3.npy").unlink()
    with pytest.raises(DeepSenseError, match=r"radar_data_3\.npy"):
        import_deepsense(folder, tmp_path / "ds", modalities=("radar",), P=2, H=1, cfg=CFG)
    assert not is_complete(tmp_path / "ds")
    text = (folder / "scenario9.csv").read_text().replace("unit1_lidar", "unit1_lidar_SCR")
    (folder / "scenario9.csv").write_text(text)
    with pytest.raises(DeepSenseError, match="unit1_lidar"):
        import_deepsense(folder, tmp_path / "ds", modalities=("lidar",), P=2, H=1, cfg=CFG)
    with pytest.raises(DeepSenseError, match="does not exist"):
        import_deepsense(tmp_path / "nowhere", tmp_path / "ds", modalities=("lidar",))


@pytest.mark.skipif(HAS_PIL, reason="checks the message shown when Pillow is absent")
def test_camera_without_pillow_is_a_clear_error(tmp_path):
    folder = _make_scenario(tmp_path / "s", seqs=(1,), n=5)
    with pytest.raises(DeepSenseError, match="Pillow"):
        import_deepsense(folder, tmp_path / "ds", modalities=("camera",), P=2, H=1, cfg=CFG)


@pytest.mark.skipif(not HAS_PIL, reason="Pillow not installed")
def test_camera_with_pillow(tmp_path):
    folder = _make_scenario(tmp_path / "s", seqs=(1, 2, 3), n=5)
    import_deepsense(folder, tmp_path / "ds", modalities=("camera",), P=2, H=1, cfg=CFG)
    assert DatasetReader(tmp_path / "ds").get("train", 0)["camera"].shape[0] == 2


def test_read_binary_ply(tmp_path):
    pts = np.array([(1.0, 2.0, 3.0, 7), (4.0, 5.0, 6.0, 9)], dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                                                    ("intensity", "<u2")])
    head = (b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
            b"property float z\nproperty ushort intensity\nend_header\n")
    (tmp_path / "a.ply").write_bytes(head + pts.tobytes())
    np.testing.assert_array_equal(read_ply(tmp_path / "a.ply"), [[1, 2, 3, 7], [4, 5, 6, 9]])

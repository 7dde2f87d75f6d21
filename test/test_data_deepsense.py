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


def _clock(seq: int, k: int) -> str:
    return f"['11:{20 + seq}:{10 + k // 10:02d}-{(k % 10) * 100000:06d}']"


def _make_scenario(folder, seqs=(1, 2, 3), n=7, cube=(4, 16, 8), stamp=_clock, powers=None):
    """``cube``: (Rx, samples, chirps) of the radar files; ``stamp(seq, k)`` the CSV time stamp;
    ``powers``: {index: linear powers} replacing those rows' power files."""
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
            if powers and idx in powers:
                lin = np.asarray(powers[idx], dtype=np.float64)
            np.savetxt(folder / f"unit1/mmWave_data/mmWave_power_{idx}.txt", lin)
            (folder / f"unit2/GPS_data/gps_location_{idx}.txt").write_text(f"{33.4200 + 1e-5 * k}\n-111.9290\n")
            cube_ = (rng.normal(size=cube) + 1j * rng.normal(size=cube)).astype(np.complex64)
            np.save(folder / f"unit1/radar_data/radar_data_{idx}.npy", cube_)
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
                "time_stamp[UTC]": stamp(seq, k),
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


def test_the_published_radar_layout_imports_with_the_defaults(tmp_path):
    """Scenario 9's cubes have 128 chirps, more than the old fixed 64 FFT bins: every frame was dropped with
    the reason swallowed. The bins now come from the cubes; a value too small is refused up front."""
    folder = _make_scenario(tmp_path / "s", seqs=(1, 2, 3), n=6, cube=(4, 8, 96))
    meta = import_deepsense(folder, tmp_path / "ds", modalities=("radar",), P=2, H=1, cfg=CFG)
    assert meta["radar_angle_bins"] == 96 and sum(meta["counts"].values()) == 3 * (6 - 1 - 1)
    assert DatasetReader(tmp_path / "ds").get("train", 0)["radar_maps"].shape == (2, 2, 8, 96)
    with pytest.raises(DeepSenseError, match=r"--radar-angle-bins 64 is below the cube's 4 antennas / 96 chirps.*"
                                             r"pass --radar-angle-bins 96"):
        import_deepsense(folder, tmp_path / "ds2", modalities=("radar",), P=2, H=1, cfg=CFG, radar_angle_bins=64)
    assert not is_complete(tmp_path / "ds2")


def test_a_build_without_samples_says_why_frames_were_dropped(tmp_path):
    folder = _make_scenario(tmp_path / "s", seqs=(1,), n=5, cube=(4, 8, 8))
    for f in (folder / "unit1/radar_data").glob("*.npy"):
        np.save(f, np.full((4, 8, 8), np.nan, np.complex64))  # every cube corrupt
    with pytest.raises(ValueError, match="first radar drop: radar: radar cube contains NaN/inf"):
        import_deepsense(folder, tmp_path / "ds", modalities=("radar",), P=2, H=1, cfg=CFG)


def test_time_stamps_in_the_scenarios_form_are_read_and_gaps_cut_windows(tmp_path):
    """['11-46-34.349'] (dashes, as the scenarios write it) was not parsed: stamps fell back to index x 0.1 s and
    windows spanned the real gaps. Frame 3 of every sequence comes 2 s late here: no window may span it."""
    def stamp(seq: int, k: int) -> str:
        t = 10.0 + 0.1 * k + (2.0 if k >= 3 else 0.0)
        return f"['11-{20 + seq}-{int(t):02d}.{round((t % 1) * 1000):03d}']"

    folder = _make_scenario(tmp_path / "s", seqs=(1, 2, 3), n=7, stamp=stamp)
    meta = import_deepsense(folder, tmp_path / "ds", modalities=("gnss",), P=2, H=1, cfg=CFG)
    assert meta["import"]["rows_without_time_stamp"] == 0
    assert meta["build_stats"]["resets"] == 3  # one cut per sequence, at the 2 s gap
    # frames 0-2 give 1 sample (P=2, H=1), frames 3-6 give 2: the window never spans the gap
    assert sum(meta["counts"].values()) == 3 * (1 + 2)
    r = DatasetReader(tmp_path / "ds")
    stamps = sorted(float(x) % 60 for sp in ("train", "val", "test") for x in r.column(sp, "stamp"))
    assert stamps[0] == pytest.approx(10.1) and 12.3 < stamps[-1] < 12.6


@pytest.mark.parametrize(("text", "seconds"), [("['11-46-34.349']", 42394.349), ("11:46:34-349000", 42394.349),
                                               ("2021-07-13 11:46:34", 42394.0), ("", None), ("index 7", None)])
def test_time_stamp_forms(text, seconds):
    from beam_tracking_ros.data.deepsense import _parse_time

    got = _parse_time(text)
    assert (got is None) if seconds is None else got == pytest.approx(seconds)


def test_non_finite_powers_are_counted_and_an_all_nan_row_is_unlabelled(tmp_path):
    """A power file with non-finite lines is repaired and counted; one without any finite power was labelled
    beam 0 with -200 dB -- it is unlabelled now (no sample ends on it or spans it)."""
    folder = _make_scenario(tmp_path / "s", seqs=(1,), n=8, powers={6: [np.nan] * 64})
    meta = import_deepsense(folder, tmp_path / "ds", modalities=("gnss",), P=2, H=1, cfg=CFG)
    imp = meta["import"]
    assert (imp["repaired_power_rows"], imp["unlabelled_rows"], imp["disagreeing_rows"]) == (1, 1, 0)
    # the powers are relative dB, and are printed so (they were printed as dBm)
    from beam_tracking_ros.train.trainer import format_metrics, rss_unit

    assert rss_unit(meta) == "dB" and rss_unit({"source": "builtin_simulator"}) == "dBm"
    assert "RSS -61.0 dB," in format_metrics({"mean_rss_dbm": -61.0, "rss_unit": rss_unit(meta), "ampr": 0.5}) + ","
    assert meta["build_stats"]["unlabelled_frames"] == 1
    r = DatasetReader(tmp_path / "ds")
    powers = np.concatenate([r.column(sp, "powers_dbm") for sp in ("train", "val", "test") if r.count(sp)])
    assert np.isfinite(powers).all() and powers.min() > -100  # no -200 dB filler
    # row 6 is frame 5: frames 0-4 give samples at 1..3 (P=2, H=1); frames 6-7 give none (no label after 7)
    assert sum(meta["counts"].values()) == 3

"""rosbag2 (MCAP) write/read round trip, crash recovery, bad bags, and bags -> dataset."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")
pytest.importorskip("mcap")

from beam_tracking_ros.data.bag import (
    BagError,
    BagWriter,
    bag_gps_reference,
    bag_topics,
    build_from_bags,
    check_topics,
    make_typestore,
    read_bag,
)
from beam_tracking_ros.data.preprocess import PreprocessConfig
from beam_tracking_ros.data.store import DatasetReader, is_complete
from beam_tracking_ros.io import convert as cv
from beam_tracking_ros.io.topics import Topics

ROOT = Path(__file__).resolve().parents[1]
T = Topics()
B = 8


@pytest.fixture(scope="module")
def ts():
    return make_typestore()


def _write_episode(w: BagWriter, ts, n: int, episode: int = 0, t0: float = 0.0, gps: bool = True,
                   rsu: tuple[float, float, float] | None = None) -> None:
    """``n`` frames of every modality; ``rsu``: also the RSU's own fix, as our simulator publishes it."""
    rng = np.random.default_rng(episode)
    for k in range(n):
        st = t0 + 0.1 * k
        jitter = 0.004  # sensors of one tick arrive a few ms apart, as over DDS
        img = np.full((6, 8, 4), k, np.uint8)
        w.write(T.camera, cv.image_to_msg(img, st, T.frame("camera"), types=ts))
        radar = np.column_stack([rng.normal(size=5), rng.uniform(-0.5, 0.5, 5), np.zeros(5),
                                 rng.uniform(5, 50, 5)]).astype(np.float32)
        w.write(T.radar, cv.radar_to_msg(radar, st + jitter, T.frame("radar"), types=ts))
        lidar = rng.uniform(-20, 20, (50, 4)).astype(np.float32)
        w.write(T.lidar, cv.lidar_to_msg(lidar, st + 2 * jitter, T.frame("lidar"), types=ts))
        if gps:
            w.write(T.gnss, cv.gnss_to_msg(49.0 + 1e-5 * k, 8.4, 110.0, st, "target/gnss", types=ts))
        if rsu is not None:
            w.write(T.rsu_gnss, cv.gnss_to_msg(*rsu, st, "rsu/gnss", types=ts))
        p = np.full(B, -90.0, np.float32)
        p[k % B] = -60.0
        w.write(T.beam_observation, cv.beam_observation_to_msg(
            p, k % B, st, T.frame("mmwave_array"), mode="single", episode=episode, types=ts))


def test_round_trip_mcap(tmp_path, ts):
    bag = tmp_path / "run1"
    with BagWriter(bag, ts) as w:
        _write_episode(w, ts, 4)
    assert (bag / "metadata.yaml").is_file() and list(bag.glob("*.mcap"))
    topics = bag_topics(bag)
    assert topics[T.beam_observation] == "beam_tracking_ros/msg/BeamObservation"
    assert topics[T.camera] == "sensor_msgs/msg/Image"
    msgs = list(read_bag(bag))
    assert len(msgs) == 20
    stamps = [m.stamp_ns for m in msgs]
    assert stamps == sorted(stamps)
    img = [m for m in msgs if m.topic == T.camera][2]
    np.testing.assert_array_equal(cv.image_from_msg(img.msg), np.full((6, 8, 4), 2, np.uint8))
    obs = cv.beam_observation_from_msg([m for m in msgs if m.topic == T.beam_observation][3].msg)
    assert obs.label.optimal_beam == 3 and obs.label.powers_dbm[3] == -60.0 and obs.label.mode == "single"


def test_round_trip_sqlite3(tmp_path, ts):
    bag = tmp_path / "sq"
    with BagWriter(bag, ts, storage="sqlite3") as w:
        _write_episode(w, ts, 3)
    assert list(bag.glob("*.db3"))
    got = [m for m in read_bag(bag, topics=[T.gnss])]
    assert [cv.gnss_from_msg(m.msg)[0] for m in got] == pytest.approx([49.0, 49.00001, 49.00002])


def _killed_recording(bag: Path, frames: int) -> None:
    """``frames`` frames written to ``bag`` (every message flushed) by a process then SIGKILLed, as a recorder
    killed mid-recording: no metadata.yaml, no MCAP summary."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_data_bag import _write_episode
        from beam_tracking_ros.data.bag import BagWriter, make_typestore
        ts = make_typestore()
        w = BagWriter({str(bag)!r}, ts, flush_interval=0.0)
        _write_episode(w, ts, {frames})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()


def test_killed_writer_is_recovered(tmp_path):
    """A writer SIGKILLed mid-recording leaves no metadata.yaml and no MCAP summary; what it flushed
    (flush_interval=0: every message) is still read back."""
    bag = tmp_path / "killed"
    _killed_recording(bag, 6)
    assert not (bag / "metadata.yaml").exists()
    msgs = list(read_bag(bag))
    assert len(msgs) == 30
    assert sum(m.topic == T.beam_observation for m in msgs) == 6
    with pytest.raises(BagError, match="not finalized"):
        list(read_bag(bag, recover=False))
    # the default build streams a killed recorder's bag, as it always did (only finalized bags are verified)
    meta = build_from_bags(tmp_path / "ds", [bag], modalities=("radar",), P=2, H=1,
                           cfg=PreprocessConfig(**SMALL))
    assert sum(meta["counts"].values()) == 6 - 1 - 1
    # reindexed: a finalized bag (metadata.yaml, summary, CRCs) that rosbags itself opens
    from rosbags.highlevel import AnyReader

    from beam_tracking_ros.cli import main
    from beam_tracking_ros.data.bag import reindex_bag, verify_bag

    assert main(["dataset", "reindex", str(bag), "--out", str(tmp_path / "fixed")]) == 0
    assert (tmp_path / "fixed" / "metadata.yaml").is_file() and verify_bag(tmp_path / "fixed") > 0
    with AnyReader([tmp_path / "fixed"]) as reader:
        assert reader.message_count == 30
    assert [m.stamp_ns for m in read_bag(tmp_path / "fixed", recover=False)] == [m.stamp_ns for m in msgs]
    with pytest.raises(BagError, match="exists already"):
        reindex_bag(bag, tmp_path / "fixed")


def test_truncated_and_corrupt_bags(tmp_path, ts):
    bag = tmp_path / "cut"
    with BagWriter(bag, ts, flush_interval=0.0) as w:
        _write_episode(w, ts, 8)
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match="cut"):
        list(read_bag(bag))
    salvaged = list(read_bag(bag, recover=True))
    assert 0 < len(salvaged) < 40
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "junk_0.mcap").write_bytes(b"this is not an mcap file at all" * 10)
    with pytest.raises(BagError, match="not a readable MCAP"):
        list(read_bag(junk))
    with pytest.raises(BagError, match="does not exist"):
        list(read_bag(tmp_path / "nope"))


def test_missing_topics_error(tmp_path, ts):
    bag = tmp_path / "nogps"
    with BagWriter(bag, ts) as w:
        _write_episode(w, ts, 3, gps=False)
    with pytest.raises(BagError, match="/carla/target/gnss"):
        check_topics(bag, {"gnss": T.gnss, "radar": T.radar})
    with pytest.raises(BagError, match="required topics missing"):
        build_from_bags(tmp_path / "ds", [bag], modalities=("radar", "gnss"))
    assert not is_complete(tmp_path / "ds")


def test_bags_to_dataset(tmp_path, ts):
    bags = []
    for i in range(3):
        bag = tmp_path / f"bag{i}"
        with BagWriter(bag, ts) as w:
            _write_episode(w, ts, 10, episode=2 * i)
            _write_episode(w, ts, 10, episode=2 * i + 1, t0=5.0)
        bags.append(bag)
    cfg = PreprocessConfig(image_size=(4, 4), radar_points=8, radar_range_bins=4, radar_angle_bins=4,
                           bev_resolution=10.0, lidar_feature_bins=8, gps_reference=(49.0, 8.4, 110.0))
    meta = build_from_bags(tmp_path / "ds", bags, P=3, H=2, cfg=cfg, slop=0.02, seed=1)
    r = DatasetReader(tmp_path / "ds")
    assert sum(r.meta["counts"].values()) == 6 * (10 - 2 - 2)  # 6 episodes, P-1 + H frames lost each
    assert meta["codebook_size"] == B
    for split in ("train", "val", "test"):
        for i in range(r.count(split)):
            s = r.get(split, i)
            t = round(float(s["stamp"]) * 10) % 50  # frame index within its episode
            assert s["beams"].tolist() == [k % B for k in range(t, t + 3)]
            assert s["camera"].shape == (3, 3, 4, 4) and s["gps"].shape == (3, 3)
    eps = {s: set(r.column(s, "episode").tolist()) for s in ("train", "val", "test")}
    assert all(eps.values()) and not (eps["train"] & eps["test"])
    assert len(set().union(*eps.values())) == 6


SMALL = dict(image_size=(4, 4), radar_points=8, radar_range_bins=4, radar_angle_bins=4, bev_resolution=10.0,
             lidar_feature_bins=8)
SITE = (49.0005, 8.4, 104.0)  # the RSU, ~55 m south of the target's track


def test_gps_reference_comes_from_the_rsu_fix_in_the_bags(tmp_path, ts):
    """A bag with the RSU's GNSS topic gives the GPS feature its origin: positions come out in metres
    around the pole (and the live node reads the same reference from the model card)."""
    bags = []
    for i in range(2):
        bag = tmp_path / f"bag{i}"
        with BagWriter(bag, ts) as w:
            w.write(T.rsu_gnss, cv.gnss_no_fix_msg(0.0, "rsu/gnss", types=ts))  # before its first fix
            jitter = (SITE[0] + 1e-6 * i, SITE[1], SITE[2] + 0.5 * i)  # receiver noise between recordings
            _write_episode(w, ts, 10, episode=2 * i, rsu=jitter)
            _write_episode(w, ts, 10, episode=2 * i + 1, t0=5.0, rsu=jitter)
        bags.append(bag)
    assert bag_gps_reference(bags, T.rsu_gnss) == pytest.approx(SITE)
    # these fixes are written as east/north (a real receiver's), so the site frame is ENU; the default,
    # "carla", would put north at -y as CARLA 0.9.16's projection implies (test_preprocess_core)
    build_from_bags(tmp_path / "ds", bags, modalities=("radar", "gnss"), P=3, H=2,
                    cfg=PreprocessConfig(**SMALL, gnss_frame="enu"), slop=0.02, seed=1)
    r = DatasetReader(tmp_path / "ds")
    assert r.meta["preprocess"]["gps_reference"] == pytest.approx(list(SITE))
    gps = np.concatenate([r.column(s, "gps") for s in ("train", "val", "test")]) * r.meta["preprocess"]["gps_scale"]
    assert np.abs(gps[..., 0]).max() < 1e-6  # same longitude as the RSU
    assert (gps[..., 1] > -56.0).all() and (gps[..., 1] < -45.0).all()  # 1.1 m north per frame, from -55.6 m
    np.testing.assert_allclose(gps[..., 2], 6.0, atol=1e-6)


def test_gps_reference_missing_explicit_or_from_two_sites(tmp_path, ts):
    """No RSU fix and no reference: refused before anything is written (positions from (0 deg, 0 deg)
    would be 5e6 m features). An explicit reference wins. Bags of RSUs 1 km apart: refused."""
    plain = tmp_path / "plain"
    with BagWriter(plain, ts) as w:
        _write_episode(w, ts, 8)
    with pytest.raises(ValueError, match=r"no GPS reference.*--gps-reference LAT,LON,ALT"):
        build_from_bags(tmp_path / "ds", [plain], modalities=("radar", "gnss"), cfg=PreprocessConfig(**SMALL))
    assert not is_complete(tmp_path / "ds")
    # without gnss nothing needs a reference
    build_from_bags(tmp_path / "radar_only", [plain], modalities=("radar",), P=2, H=1,
                    cfg=PreprocessConfig(**SMALL), fractions=(1.0, 0.0, 0.0))
    # an explicit reference is used as given
    build_from_bags(tmp_path / "explicit", [plain], modalities=("radar", "gnss"), P=2, H=1,
                    cfg=PreprocessConfig(**SMALL, gps_reference=SITE), fractions=(1.0, 0.0, 0.0))
    assert DatasetReader(tmp_path / "explicit").meta["preprocess"]["gps_reference"] == pytest.approx(list(SITE))
    # two sites
    far = tmp_path / "far"
    with BagWriter(far, ts) as w:
        _write_episode(w, ts, 4, rsu=(SITE[0] + 0.01, SITE[1], SITE[2]))
    near = tmp_path / "near"
    with BagWriter(near, ts) as w:
        _write_episode(w, ts, 4, rsu=SITE)
    with pytest.raises(BagError, match="one dataset per RSU site"):
        build_from_bags(tmp_path / "two", [near, far], modalities=("radar", "gnss"), cfg=PreprocessConfig(**SMALL))
    assert not is_complete(tmp_path / "two")
    # the RSU topic without one valid fix
    nofix = tmp_path / "nofix"
    with BagWriter(nofix, ts) as w:
        _write_episode(w, ts, 4)
        w.write(T.rsu_gnss, cv.gnss_no_fix_msg(0.05, "rsu/gnss", types=ts))
    with pytest.raises(BagError, match="no valid fix"):
        bag_gps_reference([nofix], T.rsu_gnss)


@pytest.mark.skipif(os.environ.get("CI") == "true" and sys.platform != "linux", reason="posix only")
def test_writer_refuses_existing(tmp_path, ts):
    (tmp_path / "x").mkdir()
    with pytest.raises(BagError, match="exists"):
        BagWriter(tmp_path / "x", ts)


def test_recorded_bags_carry_crcs_and_a_flipped_payload_is_caught(tmp_path, ts):
    """The recorder's bags had every MCAP CRC at 0: 4 KiB of random bytes in a bag's payload built a dataset
    with different camera arrays and no warning. Chunks, the data section and the summary carry CRCs now,
    and a build verifies them first."""
    from mcap.reader import make_reader
    from mcap.stream_reader import StreamReader

    from beam_tracking_ros.data.bag import verify_bag

    bag = tmp_path / "bag"
    with BagWriter(bag, ts) as w:
        _write_episode(w, ts, 40, rsu=(49.0, 8.4, 110.0))
    mcap = next(bag.glob("*.mcap"))
    recs = list(StreamReader(str(mcap), emit_chunks=True).records)
    chunks = [r for r in recs if type(r).__name__ == "Chunk"]
    assert chunks and all(c.uncompressed_crc != 0 for c in chunks)
    assert next(r for r in recs if type(r).__name__ == "DataEnd").data_section_crc != 0
    assert next(r for r in recs if type(r).__name__ == "Footer").summary_crc != 0
    with open(mcap, "rb") as fh:  # the summary CRC checks out with the mcap library's own reader
        assert make_reader(fh).get_summary() is not None
    assert verify_bag(bag) == len(chunks)
    cfg = PreprocessConfig(**SMALL)
    build_from_bags(tmp_path / "ok", [bag], P=2, H=1, cfg=cfg)
    # 4 KiB of noise in the middle of the first chunk's payload
    data = bytearray(mcap.read_bytes())
    at = len(data) // 4
    data[at:at + 4096] = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    mcap.write_bytes(bytes(data))
    with pytest.raises(BagError, match=r"fails its CRC"):
        verify_bag(bag)
    with pytest.raises(BagError, match=r"fails its CRC"):
        build_from_bags(tmp_path / "bad", [bag], P=2, H=1, cfg=cfg)
    assert not is_complete(tmp_path / "bad")


def test_a_damaged_record_mid_file_loses_only_its_chunk_and_is_reported_once(tmp_path, ts, caplog):
    """--recover stopped at the first damaged record (18 of 420 messages readable) and said "the rest was lost
    when the writer stopped", five times. The chunk index of the summary now carries the salvage past the
    damage; one line says what was skipped."""
    from mcap.reader import make_reader

    bag = tmp_path / "bag"
    with BagWriter(bag, ts, flush_interval=0.0) as w:  # a chunk per message
        _write_episode(w, ts, 20)
    total = len(list(read_bag(bag)))
    mcap = next(bag.glob("*.mcap"))
    with open(mcap, "rb") as fh:
        chunks = sorted(make_reader(fh).get_summary().chunk_indexes, key=lambda c: c.chunk_start_offset)
    assert len(chunks) >= 50
    data = bytearray(mcap.read_bytes())
    bad = chunks[len(chunks) // 3].chunk_start_offset
    data[bad + 1:bad + 41] = b"\xff" * 40  # the record's length and chunk header: the stream cannot go on
    mcap.write_bytes(bytes(data))
    with pytest.raises(BagError, match="--recover"):
        list(read_bag(bag))
    with pytest.raises(BagError, match="--recover"):  # the same rule for the bag's .mcap file
        list(read_bag(mcap))
    with caplog.at_level("WARNING", logger="beam_tracking_ros.data.bag"):
        got = list(read_bag(bag, recover=True))
        again = list(read_bag(bag, recover=True))
    assert len(got) == len(again) == total - 1  # only the damaged chunk's message is lost
    reports = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(reports) == 1 and f"read {total - 1} message(s)" in reports[0], reports
    assert sorted(m.stamp_ns for m in got) == [m.stamp_ns for m in got]  # still in time order


def test_without_a_chunk_index_the_salvage_resynchronises_on_the_next_whole_chunk(tmp_path):
    """A killed recorder's file has no summary to go on from: after a damaged record the salvage scans for the
    next whole chunk (its CRC must hold), so it still loses only the damaged chunk."""
    bag = tmp_path / "killed"
    _killed_recording(bag, 10)
    total = len(list(read_bag(bag, recover=True)))
    mcap = next(bag.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    chunks, at = [], 8  # walk the records: opcode u8, length u64
    while at + 9 <= len(data):
        length = int.from_bytes(data[at + 1:at + 9], "little")
        if data[at] == 0x06:
            chunks.append(at)
        at += 9 + length
    bad = chunks[len(chunks) // 2]
    data[bad + 1:bad + 41] = b"\xff" * 40
    mcap.write_bytes(bytes(data))
    assert len(list(read_bag(bag, recover=True))) == total - 1


def test_one_file_of_a_split_bag_is_read_on_its_own(tmp_path, ts):
    """Reading one .mcap of a finalized multi-file bag returned the whole bag (every file of its
    metadata.yaml), so building from the files of one bag stored every frame twice."""
    import yaml

    for name, t0 in (("a", 0.0), ("b", 10.0)):
        with BagWriter(tmp_path / name, ts) as w:
            _write_episode(w, ts, 4, t0=t0)
    split = tmp_path / "a"
    (tmp_path / "b" / "b.mcap").rename(split / "a_1.mcap")
    meta = yaml.safe_load((split / "metadata.yaml").read_text())
    meta["rosbag2_bagfile_information"]["relative_file_paths"] = ["a.mcap", "a_1.mcap"]
    (split / "metadata.yaml").write_text(yaml.safe_dump(meta))
    first = list(read_bag(split / "a.mcap"))
    second = list(read_bag(split / "a_1.mcap"))
    assert len(first) == len(second) == 20
    assert max(m.stamp_ns for m in first) < min(m.stamp_ns for m in second)


def _navsatfix_as_carla_ros_bridge(ts, lat: float, lon: float, alt: float, stamp: float, frame: str):
    """NavSatFix as carla-ros-bridge's gnss.py fills it: header and position only, so the status is the
    Kilted default STATUS_UNKNOWN (-2), the covariance zero and its type unknown."""
    m = cv.gnss_to_msg(lat, lon, alt, stamp, frame, types=ts)
    m.status = ts.types["sensor_msgs/msg/NavSatStatus"](status=-2, service=0)
    return m


def _carla_ros_bridge_recording(path: Path, ts, frames: int, dt: float, site: tuple[float, float, float]) -> None:
    """A bag as ``ros2 bag record -a`` makes it next to carla-ros-bridge (plus our bridge's ground truth):
    simulation-time stamps from CARLA's elapsed_seconds (a fresh world starts near 0), /clock every tick,
    /tf map -> rsu/<sensor>, camera image + camera_info, the LiDAR/radar layouts, NavSatFix status -2."""
    from beam_tracking_ros.io.frames import rsu_transforms, sim_mounts
    from beam_tracking_ros.sim import SimConfig, Simulator

    cfg = SimConfig()
    tfs = rsu_transforms("rsu", sim_mounts(cfg, Simulator(cfg).scene.rsu))
    T_ = ts.types
    rng = np.random.default_rng(3)
    with BagWriter(path, ts) as w:
        w.add_topic("/clock", "rosgraph_msgs/msg/Clock")
        w.add_topic("/tf", "tf2_msgs/msg/TFMessage")
        for k in range(frames):
            st = dt * (k + 1)
            ns = round(st * 1e9)
            w.write("/clock", T_["rosgraph_msgs/msg/Clock"](clock=cv.stamp_from_ns(ns, ts)), stamp_ns=ns)
            w.write("/tf", T_["tf2_msgs/msg/TFMessage"](transforms=[T_["geometry_msgs/msg/TransformStamped"](
                header=cv.make_header(st, t.parent, ts), child_frame_id=t.child,
                transform=T_["geometry_msgs/msg/Transform"](
                    translation=T_["geometry_msgs/msg/Vector3"](x=t.translation[0], y=t.translation[1],
                                                                 z=t.translation[2]),
                    rotation=T_["geometry_msgs/msg/Quaternion"](x=t.rotation[0], y=t.rotation[1],
                                                                 z=t.rotation[2], w=t.rotation[3])))
                for t in tfs]), stamp_ns=ns)
            w.write(T.camera, cv.image_to_msg(np.full((6, 8, 4), k, np.uint8), st, "rsu/camera", types=ts))
            w.write(T.camera_info, cv.camera_info_msg(8, 6, 90.0, st, "rsu/camera", types=ts))
            radar = np.column_stack([rng.normal(size=5), rng.uniform(-0.5, 0.5, 5), np.zeros(5),
                                     rng.uniform(5, 50, 5)]).astype(np.float32)
            w.write(T.radar, cv.radar_to_msg(radar, st, "rsu/radar", types=ts))
            w.write(T.lidar, cv.lidar_to_msg(rng.uniform(-20, 20, (50, 4)).astype(np.float32), st, "rsu/lidar",
                                             types=ts))
            w.write(T.gnss, _navsatfix_as_carla_ros_bridge(ts, 49.0 + 1e-5 * k, 8.4, 110.0, st, "target/gnss"))
            w.write(T.rsu_gnss, _navsatfix_as_carla_ros_bridge(ts, *site, st, "rsu/gnss"))
            p = np.full(B, -90.0, np.float32)
            p[k % B] = -60.0
            w.write(T.beam_observation, cv.beam_observation_to_msg(p, k % B, st, T.frame("mmwave_array"),
                                                                   mode="single", types=ts))


def test_a_carla_ros_bridge_recording_builds_a_dataset(tmp_path, ts):
    """Bags recorded next to carla-ros-bridge -- sim-time stamps near 0 (each new world restarts them), /clock
    and /tf topics, NavSatFix status -2 -- are accepted: every frame becomes a sample, the GPS reference is the
    RSU's STATUS_UNKNOWN fix, and the extra topics are ignored."""
    bags = [tmp_path / "run0", tmp_path / "run1"]
    for bag in bags:
        _carla_ros_bridge_recording(bag, ts, frames=12, dt=0.05, site=SITE)
    assert {"/clock", "/tf"} <= set(bag_topics(bags[0]))
    assert bag_gps_reference(bags, T.rsu_gnss) == pytest.approx(SITE)
    build_from_bags(tmp_path / "ds", bags, P=3, H=2, cfg=PreprocessConfig(**SMALL), slop=0.02, seed=1)
    r = DatasetReader(tmp_path / "ds")
    assert sum(r.meta["counts"].values()) == 2 * (12 - 2 - 2)
    assert r.meta["preprocess"]["gps_reference"] == pytest.approx(list(SITE))
    stamps = np.concatenate([r.column(s, "stamp") for s in ("train", "val", "test")])
    assert stamps.min() > 0 and stamps.max() < 1.0  # simulation seconds, kept as recorded

"""ROS message <-> numpy conversion (beam_tracking_ros.io.convert) against hand-built messages.

The references here are built byte by byte (struct.pack per point, in the test only) in the layouts
the CARLA ROS bridge publishes, so a wrong offset, sign or byte order fails. rosbags-typed messages
(the dataset builder's path) must give identical arrays to rclpy ones.
"""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from ros_testing import requires_ros

from beam_tracking_ros.io import convert as cv
from beam_tracking_ros.io.convert import ConversionError, FieldSpec

# rclpy-only tests carry this; the round trips run on both message backends (rclpy where it is there,
# the rosbags typestore everywhere), so the conversions are tested on a machine without ROS too.
ros_only = [pytest.mark.ros, requires_ros]


@pytest.fixture(params=[pytest.param("rclpy", marks=ros_only), "rosbags"])
def types(request):
    """``types=`` for the ``*_to_msg`` builders: None builds rclpy messages, a typestore rosbags ones."""
    if request.param == "rclpy":
        return None
    rb = pytest.importorskip("rosbags.typesys")
    return rb.get_typestore(rb.Stores.ROS2_KILTED)


@pytest.fixture(scope="module")
def msgs():
    from sensor_msgs import msg as sm
    from std_msgs.msg import Header

    return sm, Header


@pytest.fixture(scope="module")
def typestore():
    rb = pytest.importorskip("rosbags.typesys")
    return rb.get_typestore(rb.Stores.ROS2_KILTED)


def _pf(sm, name, offset, datatype, count=1):
    return sm.PointField(name=name, offset=offset, datatype=datatype, count=count)


def _cloud(sm, fields, data: bytes, width, height=1, point_step=None, row_step=None, bigendian=False):
    m = sm.PointCloud2()
    m.header.frame_id = "test"
    m.height, m.width = height, width
    m.fields = fields
    m.is_bigendian = bigendian
    m.point_step = point_step
    m.row_step = row_step if row_step is not None else point_step * width
    m.data = data
    return m


def _rng(seed=0):
    return np.random.default_rng(seed)


# --- stamps ------------------------------------------------------------------------------------
def test_stamp_helpers_roundtrip_and_negative(types):
    t = cv.stamp_from_sec(12.345678901, types=types)
    assert (t.sec, t.nanosec) == (12, 345678901)
    assert cv.stamp_to_ns(t) == 12_345_678_901
    assert cv.stamp_to_sec(t) == pytest.approx(12.345678901, abs=1e-9)
    neg = cv.stamp_from_ns(-1, types=types)
    assert (neg.sec, neg.nanosec) == (-1, 999_999_999)
    assert cv.stamp_to_ns(neg) == -1
    assert cv.stamp_to_ns(5) == 5 and cv.stamp_to_ns(0.5) == 500_000_000
    with pytest.raises(ConversionError, match="stamp"):
        cv.stamp_from_sec(float("nan"), types=types)
    with pytest.raises(ConversionError, match="stamp"):
        cv.stamp_to_ns("yesterday")


# --- LiDAR -------------------------------------------------------------------------------------
def test_lidar_to_msg_matches_bridge_layout_and_round_trips(types):
    pts = _rng().normal(size=(50, 4)).astype(np.float32)
    m = cv.lidar_to_msg(pts, 3.5, "rsu/lidar", types=types)
    assert [(f.name, f.offset, f.datatype, f.count) for f in m.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("intensity", 12, 7, 1)]
    assert (m.height, m.width, m.point_step, m.row_step) == (1, 50, 16, 800)
    assert m.header.frame_id == "rsu/lidar" and (m.header.stamp.sec, m.header.stamp.nanosec) == (3, 5 * 10**8)
    # the bridge publishes y negated (left-handed CARLA -> right-handed ROS)
    expected = b"".join(struct.pack("<4f", x, -y, z, i) for x, y, z, i in pts.tolist())
    assert bytes(m.data) == expected
    back = cv.lidar_from_msg(m)
    assert back.dtype == np.float32 and np.array_equal(back, pts)


@pytest.mark.ros
@requires_ros
def test_lidar_from_msg_undoes_the_bridge_y_flip_on_a_hand_built_cloud(msgs):
    sm, _ = msgs
    # a point 10 m ahead and 2 m to the LEFT in ROS (y=+2) is y=-2 in CARLA's left-handed frame
    data = struct.pack("<4f", 10.0, 2.0, 1.0, 0.5)
    fields = [_pf(sm, n, 4 * i, 7) for i, n in enumerate(["x", "y", "z", "intensity"])]
    out = cv.lidar_from_msg(_cloud(sm, fields, data, 1, point_step=16))
    assert out.tolist() == [[10.0, -2.0, 1.0, 0.5]]


def test_lidar_nonfinite_drop_count_raise_and_keep(types):
    pts = np.ones((6, 4), np.float32)
    pts[1, 0] = np.nan
    pts[4, 3] = np.inf
    m = cv.lidar_to_msg(pts, 0.0, "l", types=types)
    out, dropped = cv.lidar_from_msg(m, return_dropped=True)
    assert dropped == 2 and out.shape == (4, 4) and np.isfinite(out).all()
    with pytest.raises(ConversionError, match=r"lidar: 2 point.*\['x', 'intensity'\]"):
        cv.lidar_from_msg(m, nonfinite="raise")
    assert cv.lidar_from_msg(m, nonfinite="keep").shape == (6, 4)
    arr, n_bad = cv.finite_points(pts)
    assert n_bad == 2 and len(arr) == 4
    huge = np.full((3, 4), 3e38, np.float32)  # finite values whose sum overflows
    assert cv.finite_points(huge)[1] == 0


# --- radar -------------------------------------------------------------------------------------
def test_radar_to_msg_bridge_geometry_and_round_trip(types):
    det = np.array([[-3.0, 0.3, 0.1, 25.0], [1.5, -0.2, -0.05, 12.0]], np.float32)  # vel, az, alt, depth
    m = cv.radar_to_msg(det, 1.0, "radar", types=types)
    assert [(f.name, f.offset) for f in m.fields] == [
        ("x", 0), ("y", 4), ("z", 8), ("Range", 12), ("Velocity", 16), ("AzimuthAngle", 20),
        ("ElevationAngle", 28)]
    assert all(f.datatype == 7 for f in m.fields) and m.point_step == 32 and m.row_step == 64
    xyz = cv.read_points_numpy(m, ["x", "y", "z"])
    _v, az, alt, d = det.astype(np.float64).T
    ref = np.stack([d * np.cos(az) * np.cos(alt), -d * np.sin(az) * np.cos(alt), d * np.sin(alt)], 1)
    np.testing.assert_allclose(xyz, ref, rtol=1e-6)
    # positive azimuth (to the right in CARLA) lands at negative ROS y
    assert xyz[0, 1] < 0 < xyz[1, 1]
    back = cv.radar_from_msg(m)
    assert np.array_equal(back, det)


@pytest.mark.ros
@requires_ros
def test_radar_from_hand_built_bridge_bytes(msgs):
    sm, _ = msgs
    names = ["x", "y", "z", "Range", "Velocity", "AzimuthAngle", "ElevationAngle"]
    offs = [0, 4, 8, 12, 16, 20, 28]
    fields = [_pf(sm, n, o, 7) for n, o in zip(names, offs)]
    rows = [(1.0, 2.0, 3.0, 40.0, -7.0, 0.25, -0.125), (0, 0, 0, 5.0, 0.5, -0.5, 0.0625)]
    data = b"".join(struct.pack("<6f4xf", *r) for r in rows)
    out = cv.radar_from_msg(_cloud(sm, fields, data, 2, point_step=32))
    assert out.tolist() == [[-7.0, 0.25, -0.125, 40.0], [0.5, -0.5, 0.0625, 5.0]]


# --- generic PointCloud2 -------------------------------------------------------------------------
def _odd_layout(sm, bigendian=False):
    """27-byte points: u16 ring @0, f32 x @3 (unaligned), f64 t @7, i8 flag @15, f32[2] uv @16, pad."""
    fields = [_pf(sm, "ring", 0, 4), _pf(sm, "x", 3, 7), _pf(sm, "t", 7, 8), _pf(sm, "flag", 15, 1),
              _pf(sm, "uv", 16, 7, 2)]
    o = ">" if bigendian else "<"
    rows = [(i, 0.5 * i - 1, 1e9 + i / 3, (-1) ** i * i, (i * 0.25, -i * 2.0)) for i in range(7)]
    data = b"".join(struct.pack(f"{o}H1xfdb2f3x", r[0], r[1], r[2], r[3], *r[4]) for r in rows)
    return _cloud(sm, fields, data, len(rows), point_step=27, bigendian=bigendian), rows


@pytest.mark.ros
@requires_ros
@pytest.mark.parametrize("bigendian", [False, True])
def test_pointcloud2_to_array_reads_odd_padded_layouts(msgs, bigendian):
    sm, _ = msgs
    m, rows = _odd_layout(sm, bigendian)
    arr = cv.pointcloud2_to_array(m)
    assert arr.dtype.itemsize == 27 and arr.shape == (7,)
    assert arr["ring"].tolist() == [r[0] for r in rows]
    np.testing.assert_array_equal(arr["x"], np.float32([r[1] for r in rows]))
    assert arr["t"].tolist() == [r[2] for r in rows]
    assert arr["flag"].tolist() == [r[3] for r in rows]
    np.testing.assert_array_equal(arr["uv"], np.float32([r[4] for r in rows]))
    assert np.shares_memory(arr, np.frombuffer(m.data, np.uint8))  # zero-copy despite the odd layout
    sub = cv.pointcloud2_to_array(m, ["t", "ring"])
    assert sub.dtype.names == ("t", "ring") and sub["ring"].tolist() == [r[0] for r in rows]


@pytest.mark.ros
@requires_ros
def test_big_endian_floats_are_read_in_the_right_byte_order(msgs):
    sm, _ = msgs
    fields = [_pf(sm, n, 4 * i, 7) for i, n in enumerate(["x", "y", "z", "intensity"])]
    data = struct.pack(">4f", 1.5, -2.25, 3.0, 100.0)
    m = _cloud(sm, fields, data, 1, point_step=16, bigendian=True)
    assert cv.lidar_from_msg(m).tolist() == [[1.5, 2.25, 3.0, 100.0]]
    le = _cloud(sm, fields, data, 1, point_step=16, bigendian=False)  # same bytes, wrong flag
    assert cv.lidar_from_msg(le, nonfinite="keep").tolist() != [[1.5, 2.25, 3.0, 100.0]]


@pytest.mark.ros
@requires_ros
def test_organized_cloud_with_row_padding(msgs):
    sm, _ = msgs
    fields = [_pf(sm, "x", 0, 7), _pf(sm, "y", 4, 7), _pf(sm, "z", 8, 7), _pf(sm, "intensity", 12, 7)]
    vals = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    rows = [vals[r].tobytes() + b"\xee" * 8 for r in range(2)]  # 8 pad bytes per row
    m = _cloud(sm, fields, b"".join(rows), 3, height=2, point_step=16, row_step=56)
    out = cv.read_points_numpy(m)
    assert np.array_equal(out, vals.reshape(6, 4))


@pytest.mark.ros
@requires_ros
def test_read_points_numpy_zero_copy_when_packed(msgs):
    m = cv.lidar_to_msg(np.ones((10, 4), np.float32), 0.0, "l")
    out = cv.read_points_numpy(m)
    assert out.shape == (10, 4) and np.shares_memory(out, np.frombuffer(m.data, np.uint8))
    with pytest.raises(ConversionError, match="different datatypes"):
        sm, _ = msgs
        cv.read_points_numpy(_odd_layout(sm)[0], ["x", "t"])


@pytest.mark.ros
@requires_ros
def test_create_cloud_from_structured_and_tuples_agree(msgs):
    _, Header = msgs
    fields = [FieldSpec("a", 0, 7), FieldSpec("b", 8, 8), FieldSpec("c", 16, 6)]
    pts = [(1.0, 2.0, 3), (4.0, 5.0, 6)]
    m1 = cv.create_cloud(Header(frame_id="f"), fields, pts)
    dt = cv.dtype_from_fields(fields)
    m2 = cv.create_cloud(Header(frame_id="f"), fields, np.array(pts, dtype=dt))
    assert m1.point_step == 20 and bytes(m1.data) == bytes(m2.data)
    assert bytes(m1.data)[:20] == struct.pack("<f4xdI", 1.0, 2.0, 3)
    with pytest.raises(ConversionError, match="columns"):
        cv.create_cloud(Header(), fields, [(1.0, 2.0)])


# --- malformed clouds ----------------------------------------------------------------------------
@pytest.mark.ros
@requires_ros
def test_malformed_clouds_raise_naming_topic_and_field(msgs):
    sm, _ = msgs
    good = cv.lidar_to_msg(np.ones((4, 4), np.float32), 0.0, "l")
    no_int = _cloud(sm, list(good.fields)[:3], bytes(good.data), 4, point_step=16)
    with pytest.raises(ConversionError, match=r"/carla/rsu/lidar: point field\(s\) \['intensity'\] missing"):
        cv.lidar_from_msg(no_int, topic="/carla/rsu/lidar")
    short = _cloud(sm, list(good.fields), bytes(good.data)[:-3], 4, point_step=16)
    with pytest.raises(ConversionError, match="data has 61 bytes, expected"):
        cv.lidar_from_msg(short)
    f64 = [_pf(sm, n, 8 * i, 8) for i, n in enumerate(["x", "y", "z", "intensity"])]
    with pytest.raises(ConversionError, match="'x' must be FLOAT32"):
        cv.lidar_from_msg(_cloud(sm, f64, bytes(32), 1, point_step=32))
    with pytest.raises(ConversionError, match="empty cloud"):
        cv.lidar_from_msg(_cloud(sm, list(good.fields), b"", 0, point_step=16))
    empty = _cloud(sm, list(good.fields), b"", 0, point_step=16)
    assert cv.lidar_from_msg(empty, allow_empty=True).shape == (0, 4)
    with pytest.raises(ConversionError, match="unknown PointField datatype 9"):
        cv.pointcloud2_to_array(_cloud(sm, [_pf(sm, "x", 0, 9)], bytes(4), 1, point_step=4))
    with pytest.raises(ConversionError, match="point_step is 8"):
        cv.pointcloud2_to_array(_cloud(sm, [_pf(sm, "x", 6, 7)], bytes(8), 1, point_step=8))
    with pytest.raises(ConversionError, match="row_step"):
        cv.pointcloud2_to_array(_cloud(sm, [_pf(sm, "x", 0, 7)], bytes(8), 2, point_step=4, row_step=4))
    with pytest.raises(ConversionError, match="radar: point field"):
        cv.radar_from_msg(good)
    with pytest.raises(ConversionError, match="not a PointCloud2"):
        cv.pointcloud2_to_array(object())


# --- camera --------------------------------------------------------------------------------------
def test_image_bgra8_round_trip_is_zero_copy(types):
    img = _rng(1).integers(0, 256, (6, 8, 4), dtype=np.uint8)
    m = cv.image_to_msg(img, 2.0, "cam", types=types)
    assert (m.encoding, m.step, m.height, m.width) == ("bgra8", 32, 6, 8) and bytes(m.data) == img.tobytes()
    out = cv.image_from_msg(m)
    assert np.array_equal(out, img) and np.shares_memory(out, np.frombuffer(m.data, np.uint8))
    assert np.shares_memory(cv.image_from_msg(m, as_bgra=True), np.frombuffer(m.data, np.uint8))


@pytest.mark.ros
@requires_ros
@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "rgba8", "mono8", "bgra8"])
def test_image_encodings_with_step_padding_convert_to_bgra(msgs, encoding):
    sm, _ = msgs
    bgra = _rng(2).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    if encoding == "mono8":
        bgra[..., 1] = bgra[..., 2] = bgra[..., 0]
    if encoding in ("bgr8", "rgb8", "mono8"):
        bgra[..., 3] = 255
    order = {"bgr8": [0, 1, 2], "rgb8": [2, 1, 0], "rgba8": [2, 1, 0, 3], "mono8": [0], "bgra8": [0, 1, 2, 3]}
    native = bgra[..., order[encoding]]
    c = native.shape[2]
    step = 7 * c + 5  # 5 bytes of row padding
    rows = b"".join(native[r].tobytes() + b"\x11" * 5 for r in range(5))
    m = sm.Image(height=5, width=7, encoding=encoding, is_bigendian=0, step=step)
    m.data = rows
    view = cv.image_from_msg(m)
    assert view.shape == (5, 7, c) and np.array_equal(view, native)
    assert np.shares_memory(view, np.frombuffer(m.data, np.uint8))
    assert np.array_equal(cv.image_from_msg(m, as_bgra=True), bgra)


@pytest.mark.ros
@requires_ros
def test_malformed_images_raise(msgs):
    sm, _ = msgs
    m = sm.Image(height=4, width=4, encoding="yuv422", step=8)
    m.data = bytes(32)
    with pytest.raises(ConversionError, match=r"/cam: unsupported encoding 'yuv422'"):
        cv.image_from_msg(m, topic="/cam")
    m = sm.Image(height=4, width=4, encoding="bgra8", step=16)
    m.data = bytes(60)
    with pytest.raises(ConversionError, match="data has 60 bytes, expected height 4 \\* step 16 = 64"):
        cv.image_from_msg(m)
    m = sm.Image(height=4, width=4, encoding="bgra8", step=12)
    m.data = bytes(48)
    with pytest.raises(ConversionError, match="step 12 < width 4"):
        cv.image_from_msg(m)
    with pytest.raises(ConversionError, match="empty image"):
        cv.image_from_msg(sm.Image(height=0, width=4, encoding="bgra8", step=16))
    with pytest.raises(ConversionError, match=r"\(H, W, 4\) uint8"):
        cv.image_to_msg(np.zeros((4, 4, 3), np.uint8), 0.0, "c")


def test_camera_info_follows_bridge_pinhole(types):
    ci = cv.camera_info_msg(640, 480, 90.0, 1.0, "cam", types=types)
    assert (ci.width, ci.height, ci.distortion_model) == (640, 480, "plumb_bob")
    np.testing.assert_allclose(ci.k, [320, 0, 320, 0, 320, 240, 0, 0, 1])
    np.testing.assert_allclose(ci.p, [320, 0, 320, 0, 0, 320, 240, 0, 0, 0, 1, 0])
    fx = 256 / (2 * math.tan(math.radians(110) / 2))
    assert cv.camera_info_msg(256, 192, 110.0, 0.0, "c", types=types).k[0] == pytest.approx(fx)
    with pytest.raises(ConversionError, match="fov_deg"):
        cv.camera_info_msg(64, 48, 0.0, 0.0, "c", types=types)


# --- GNSS and beam observation ----------------------------------------------------------------
@pytest.mark.ros
@requires_ros
def test_gnss_round_trip_and_errors(msgs):
    sm, _ = msgs
    m = cv.gnss_to_msg(49.0, 8.4, 115.5, 1.5, "gnss")
    out = cv.gnss_from_msg(m)
    assert out.dtype == np.float64 and out.tolist() == [49.0, 8.4, 115.5]
    m.status.status = sm.NavSatStatus.STATUS_NO_FIX
    with pytest.raises(ConversionError, match="/gps: status -1 \\(no fix\\)"):
        cv.gnss_from_msg(m, topic="/gps")
    m = cv.gnss_to_msg(49.0, 8.4, 115.5, 1.5, "gnss")
    m.longitude = float("nan")
    with pytest.raises(ConversionError, match=r"\['longitude'\] not finite"):
        cv.gnss_from_msg(m)
    with pytest.raises(ConversionError, match="finite"):
        cv.gnss_to_msg(float("inf"), 0.0, 0.0, 0.0, "g")


def test_gnss_status_unknown_is_a_fix_of_unknown_quality(types):
    """carla-ros-bridge never sets NavSatFix.status, so since Kilted every fix it publishes carries the
    message default STATUS_UNKNOWN (-2): read as a fix, while STATUS_NO_FIX (-1) and undefined negative
    statuses are still refused and a NaN position still fails whatever the status says."""
    cls = cv._cls("sensor_msgs/msg/NavSatStatus", types)
    if types is None:
        assert cls().status == cls.STATUS_UNKNOWN == cv.STATUS_UNKNOWN  # the Kilted default the bridge leaves
    m = cv.gnss_to_msg(49.0, 8.4, 115.5, 1.5, "ego/gnss", types=types)
    m.status = cls(status=-2, service=0)
    assert cv.gnss_from_msg(m).tolist() == [49.0, 8.4, 115.5]
    for status in (-1, -3):
        m.status = cls(status=status, service=0)
        with pytest.raises(ConversionError, match=f"status {status} \\(no fix\\)"):
            cv.gnss_from_msg(m, topic="/carla/ego/gnss")
    m.status = cls(status=-2, service=0)
    m.latitude = float("nan")
    with pytest.raises(ConversionError, match="not finite"):
        cv.gnss_from_msg(m)


@pytest.mark.ros
@requires_ros
def test_beam_observation_round_trip_and_validation():
    p = _rng(3).normal(-80, 5, 64).astype(np.float32)
    best = int(np.argmax(p))
    m = cv.beam_observation_to_msg(p, best, 7.25, "bs_array", vehicle_ids=[12, 40], los_blocked=True,
                                   mode="single", episode=3, codebook_id="ula64", noise_dbm=-94.0)
    assert m.label_mode == 0 and list(m.vehicle_ids) == [12, 40]
    d = cv.beam_observation_from_msg(m)
    assert np.array_equal(d.label.powers_dbm, p) and d.label.optimal_beam == best
    assert (d.label.vehicle_ids, d.label.los_blocked, d.label.mode) == ([12, 40], True, "single")
    assert (d.stamp, d.episode, d.codebook_id) == (7.25, 3, "ula64")
    assert (d.noise_dbm, d.frame_id) == (-94.0, "bs_array")
    m2 = cv.beam_label_to_msg(d.label, 7.25, "bs_array", episode=3)
    assert list(m2.power_dbm) == list(m.power_dbm)
    with pytest.raises(ConversionError, match="optimal_beam 64 outside"):
        cv.beam_observation_to_msg(p, 64, 0.0, "f")
    with pytest.raises(ConversionError, match="mode"):
        cv.beam_observation_to_msg(p, 0, 0.0, "f", mode="best")
    m.optimal_beam = 99
    with pytest.raises(ConversionError, match="/beams: optimal_beam 99"):
        cv.beam_observation_from_msg(m, topic="/beams")


# --- rosbags messages (the dataset builder's path) ---------------------------------------------
@pytest.mark.ros
@requires_ros
def test_rosbags_messages_give_identical_arrays(typestore):
    from rclpy.serialization import serialize_message

    rng = _rng(4)
    lidar = rng.normal(size=(33, 4)).astype(np.float32)
    radar = np.abs(rng.normal(size=(9, 4))).astype(np.float32)
    img = rng.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    cases = [
        (cv.lidar_to_msg(lidar, 1.0, "l"), "sensor_msgs/msg/PointCloud2", cv.lidar_from_msg),
        (cv.radar_to_msg(radar, 1.0, "r"), "sensor_msgs/msg/PointCloud2", cv.radar_from_msg),
        (cv.image_to_msg(img, 1.0, "c"), "sensor_msgs/msg/Image", cv.image_from_msg),
        (cv.gnss_to_msg(1.0, 2.0, 3.0, 1.0, "g"), "sensor_msgs/msg/NavSatFix", cv.gnss_from_msg),
    ]
    for msg, name, conv in cases:
        # exactly what a bag holds: rclpy's CDR bytes, read back by rosbags as a dataclass
        rb = typestore.deserialize_cdr(serialize_message(msg), name)
        ours, theirs = conv(msg), conv(rb)
        assert type(rb).__module__.startswith("rosbags") and np.array_equal(ours, theirs), name
    rb_cloud = typestore.deserialize_cdr(serialize_message(cases[0][0]), "sensor_msgs/msg/PointCloud2")
    assert isinstance(rb_cloud.data, np.ndarray)
    assert np.shares_memory(cv.pointcloud2_to_array(rb_cloud), rb_cloud.data)
    rb_img = typestore.deserialize_cdr(serialize_message(cases[2][0]), "sensor_msgs/msg/Image")
    assert np.shares_memory(cv.image_from_msg(rb_img), rb_img.data)


@pytest.mark.ros
@requires_ros
def test_builders_make_rosbags_messages_that_serialize_like_rclpy(typestore):
    from rclpy.serialization import serialize_message

    def same(rb_msg, rclpy_msg, name):
        # rclpy leaves CDR padding bytes unset, so compare after a rosbags round trip of its bytes
        back = typestore.deserialize_cdr(serialize_message(rclpy_msg), name)
        return bytes(typestore.serialize_cdr(rb_msg, name)) == bytes(typestore.serialize_cdr(back, name))

    pts = _rng(5).normal(size=(7, 4)).astype(np.float32)
    rb = cv.lidar_to_msg(pts, 2.5, "l", types=typestore)
    assert same(rb, cv.lidar_to_msg(pts, 2.5, "l"), "sensor_msgs/msg/PointCloud2")
    assert np.array_equal(cv.lidar_from_msg(rb), pts)
    det = np.abs(_rng(6).normal(size=(3, 4))).astype(np.float32)
    assert same(cv.radar_to_msg(det, 1.0, "r", types=typestore), cv.radar_to_msg(det, 1.0, "r"),
                "sensor_msgs/msg/PointCloud2")
    assert same(cv.camera_info_msg(64, 48, 90.0, 1.0, "c", types=typestore),
                cv.camera_info_msg(64, 48, 90.0, 1.0, "c"), "sensor_msgs/msg/CameraInfo")
    img = _rng(7).integers(0, 256, (3, 5, 4), dtype=np.uint8)
    assert same(cv.image_to_msg(img, 1.0, "c", types=typestore), cv.image_to_msg(img, 1.0, "c"),
                "sensor_msgs/msg/Image")
    assert same(cv.gnss_to_msg(1.0, 2.0, 3.0, 1.0, "g", types=typestore),
                cv.gnss_to_msg(1.0, 2.0, 3.0, 1.0, "g"), "sensor_msgs/msg/NavSatFix")


# --- the real packages where they exist ------------------------------------------------------------
@pytest.mark.ros
@requires_ros
def test_matches_sensor_msgs_py_where_installed(msgs):
    pc2 = pytest.importorskip("sensor_msgs_py.point_cloud2")
    sm, Header = msgs
    pts = _rng(6).normal(size=(20, 4)).astype(np.float32)
    m = cv.lidar_to_msg(pts, 0.0, "l")
    np.testing.assert_array_equal(cv.read_points_numpy(m), pc2.read_points_numpy(m))
    # decoded values only: upstream leaves padding bytes (radar's 24..27) uninitialised
    theirs = pc2.create_cloud(Header(frame_id="l"), list(m.fields), cv.read_points_numpy(m))
    np.testing.assert_array_equal(cv.read_points_numpy(theirs), cv.read_points_numpy(m))
    assert theirs.point_step == m.point_step
    radar = cv.radar_to_msg(_rng(7).normal(size=(60, 4)).astype(np.float32), 0.0, "r")
    theirs = pc2.create_cloud(Header(frame_id="r"), list(radar.fields), cv.read_points_numpy(radar))
    np.testing.assert_array_equal(cv.read_points_numpy(theirs), cv.read_points_numpy(radar))
    assert theirs.point_step == 32
    odd = _odd_layout(sm)[0]
    np.testing.assert_array_equal(pc2.read_points(odd, field_names=["t"])["t"],
                                  cv.pointcloud2_to_array(odd, ["t"])["t"])


@pytest.mark.ros
@requires_ros
def test_matches_cv_bridge_where_installed():
    cvb = pytest.importorskip("cv_bridge")
    bridge = cvb.CvBridge()
    img = _rng(7).integers(0, 256, (6, 9, 4), dtype=np.uint8)
    m = cv.image_to_msg(img, 0.0, "c")
    theirs = bridge.cv2_to_imgmsg(img, encoding="bgra8")
    assert bytes(theirs.data) == bytes(m.data) and theirs.step == m.step
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(m, "bgra8"), cv.image_from_msg(m))
    rgb = bridge.cv2_to_imgmsg(np.ascontiguousarray(img[..., 2::-1]), encoding="rgb8")
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(rgb, "bgr8"),
                                  cv.image_from_msg(rgb, as_bgra=True)[..., :3])


# --- compat: the real packages first, ours otherwise ------------------------------------------------
@pytest.mark.ros
@requires_ros
def test_compat_point_cloud_functions_agree_with_ours(msgs):
    from beam_tracking_ros.ros import compat

    _, Header = msgs
    pts = _rng(8).normal(size=(12, 4)).astype(np.float32)
    m = cv.lidar_to_msg(pts, 0.0, "l")
    np.testing.assert_array_equal(compat.read_points_numpy(m), cv.read_points_numpy(m))
    theirs = compat.create_cloud(Header(frame_id="l"), list(m.fields), cv.read_points_numpy(m))
    np.testing.assert_array_equal(cv.read_points_numpy(theirs), cv.read_points_numpy(m))
    assert theirs.point_step == 16 and theirs.width == 12
    assert compat.point_cloud_backend() in ("sensor_msgs_py", "fallback")


@pytest.mark.ros
@requires_ros
def test_compat_reads_clouds_upstream_gets_wrong_with_ours(msgs, monkeypatch):
    """sensor_msgs_py's reader byte-swaps a big-endian cloud's data in place and ignores row padding; compat
    used it whenever it was importable, so on ROS machines such clouds were read wrong. A stand-in with that
    behaviour shows which reader compat picks for which cloud."""
    from beam_tracking_ros.ros import compat

    sm, _ = msgs
    calls = []

    class Upstream:  # what sensor_msgs_py 5.x does with such clouds: wrong values
        @staticmethod
        def read_points_numpy(cloud, field_names=None, skip_nans=False):
            calls.append(cloud)
            return np.zeros((1, 1), np.float32)

    monkeypatch.setattr(compat, "_import_real", lambda name: Upstream)
    fields = [_pf(sm, n, 4 * i, 7) for i, n in enumerate(["x", "y", "z", "intensity"])]
    big = _cloud(sm, fields, struct.pack(">4f", 1.5, -2.25, 3.0, 100.0), 1, point_step=16, bigendian=True)
    vals = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    padded = _cloud(sm, fields, b"".join(vals[r].tobytes() + b"\xee" * 8 for r in range(2)), 3, height=2,
                    point_step=16, row_step=56)
    assert compat.read_points_numpy(big).tolist() == [[1.5, -2.25, 3.0, 100.0]]
    np.testing.assert_array_equal(compat.read_points_numpy(padded), vals.reshape(6, 4))
    assert calls == []  # neither went upstream
    plain = cv.lidar_to_msg(np.ones((3, 4), np.float32), 0.0, "l")
    compat.read_points_numpy(plain)
    assert calls == [plain]  # a plain cloud still does


@pytest.mark.ros
@requires_ros
def test_compat_images_agree_with_ours_whichever_bridge(msgs):
    """compat's image functions (cv_bridge where installed, ours elsewhere) decode every encoding the nodes
    accept to the same values as the nodes' converter, padded rows included, with cv_bridge's shapes."""
    from beam_tracking_ros.ros import compat

    sm, Header = msgs
    img = _rng(9).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    for encoding, channels in (("bgra8", 4), ("rgb8", 3), ("mono8", 1)):
        part = np.ascontiguousarray(img[..., :channels])
        m = compat.numpy_to_imgmsg(part[..., 0] if channels == 1 else part, encoding=encoding)
        assert (m.height, m.width, m.step, m.encoding) == (5, 7, 7 * channels, encoding)
        padded = sm.Image(header=Header(frame_id="c"), height=5, width=7, encoding=encoding, is_bigendian=0,
                          step=7 * channels + 3,
                          data=b"".join(part[r].tobytes() + b"\xab" * 3 for r in range(5)))
        for msg in (m, padded):
            ours = cv.image_from_msg(msg)
            got = compat.imgmsg_to_numpy(msg)
            np.testing.assert_array_equal(got, ours[..., 0] if channels == 1 else ours)
            np.testing.assert_array_equal(got, part[..., 0] if channels == 1 else part)
        np.testing.assert_array_equal(compat.imgmsg_to_numpy(padded, "bgra8")[..., :3],
                                      cv.image_from_msg(padded, as_bgra=True)[..., :3])
    if compat.image_backend() == "fallback":
        with pytest.raises(ValueError, match="without cv_bridge"):
            compat.imgmsg_to_numpy(m, "32FC1")
    assert set(compat.implementations().values()) <= {"upstream", "fallback"}


@pytest.mark.ros
@requires_ros
def test_beam_observation_through_a_rosbags_typestore():
    from rclpy.serialization import serialize_message

    from beam_tracking_ros.data.bag import make_typestore

    ts = make_typestore()
    p = np.linspace(-90, -60, 16, dtype=np.float32)
    name = "beam_tracking_ros/msg/BeamObservation"
    m = cv.beam_observation_to_msg(p, 15, 4.5, "bs", vehicle_ids=[7], episode=2)
    rb = ts.deserialize_cdr(serialize_message(m), name)  # what the dataset builder reads from a bag
    a, b = cv.beam_observation_from_msg(m), cv.beam_observation_from_msg(rb)
    assert np.array_equal(a.label.powers_dbm, b.label.powers_dbm) and a.label.vehicle_ids == b.label.vehicle_ids
    assert (a.stamp, a.episode, a.label.optimal_beam) == (b.stamp, b.episode, b.label.optimal_beam) == (4.5, 2, 15)
    built = cv.beam_observation_to_msg(p, 15, 4.5, "bs", vehicle_ids=[7], episode=2, types=ts)
    assert bytes(ts.serialize_cdr(built, name)) == bytes(ts.serialize_cdr(rb, name))


@pytest.mark.ros
@requires_ros
def test_qos_profiles():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy

    from beam_tracking_ros.ros import qos

    s = qos.sensor_qos()
    assert (s.reliability, s.history, s.depth) == (ReliabilityPolicy.BEST_EFFORT, HistoryPolicy.KEEP_LAST, 5)
    r = qos.prediction_qos(3)
    assert (r.reliability, r.durability, r.depth) == (ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE, 3)
    assert qos.qos_by_name("clock").depth == 1
    with pytest.raises(ValueError, match="qos profile"):
        qos.qos_by_name("fast")
    with pytest.raises(ValueError, match="depth"):
        qos.sensor_qos(0)


def test_absurd_magnitudes_are_refused_naming_the_field():
    pts = _rng(5).normal(0, 20, (200, 4)).astype(np.float32)
    np.testing.assert_array_equal(cv.check_magnitude(pts, 1e4, "lidar"), pts)
    swapped = pts.byteswap()  # the right layout read with the wrong byte order: a quarter of values > 1e4
    assert np.nanmax(np.abs(swapped)) > 1e30
    with pytest.raises(cv.AbsurdValueError, match=r"lidar: \d+ point\(s\) beyond \+-10000 in field\(s\) "
                                                  r"\['x', 'y', 'z', 'intensity'\].*byte-swapped"):
        cv.check_magnitude(swapped, 1e4, "lidar", ("x", "y", "z", "intensity"))
    assert cv.AbsurdValueError.kind == "absurd" and issubclass(cv.AbsurdValueError, ConversionError)

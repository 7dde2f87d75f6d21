"""numpy <-> ROS 2 messages, following the CARLA ROS bridge (carla-simulator/ros-bridge) conventions.

Why one module: the simulator node, the CARLA bridge, the beam tracker, the recorder and the offline
dataset builder all turn the same messages into the same arrays here, so a frame is converted the
same way at recording, training and run time (architecture.md: "one data path").

Duck typing: every ``*_from_msg`` reads only attributes (``msg.data``, ``msg.fields[i].name`` ...),
so it accepts rclpy messages (``data`` is an ``array.array('B')``) and the dataclasses of the
``rosbags`` library (``data`` is a numpy uint8 array) alike. The dataset builder reads bags with
rosbags and never imports rclpy; this module imports rclpy message packages only lazily, inside the
``*_to_msg`` builders, and only when no ``types=`` (a rosbags ``Typestore``) is given.

Conventions of the bridge (its ``lidar.py``, ``radar.py``, ``camera.py``, ``gnss.py``):

* LiDAR ``PointCloud2``: fields x, y, z, intensity as FLOAT32 at offsets 0, 4, 8, 12 (point_step 16).
  CARLA's sensor frame is left-handed (Unreal: x forward, y right, z up); the bridge negates y so the
  cloud is right-handed as ROS (REP 103) requires. ``lidar_to_msg`` does the same, and
  ``lidar_from_msg`` undoes it: the ROS-free core (preprocessing, the simulator, the trained models)
  works in CARLA's own convention (CONTEXT.md "raw sensor formats"), so a cloud recorded from the
  real bridge and one from our simulator give the same array.
* Radar ``PointCloud2``: FLOAT32 fields x, y, z, Range, Velocity, AzimuthAngle, ElevationAngle at
  offsets 0, 4, 8, 12, 16, 20 and **28** (the bridge leaves bytes 24..27 unused), point_step 32, with
  x = depth cos(az) cos(alt), y = -depth sin(az) cos(alt), z = depth sin(alt) (again y negated to
  right-handed). ``radar_from_msg`` reads Velocity, AzimuthAngle, ElevationAngle and Range, which
  are CARLA's raw values, so no sign needs undoing: it returns CARLA's RadarDetection order
  [velocity, azimuth, altitude, depth].
* Camera: ``sensor_msgs/Image`` 'bgra8' (CARLA raw BGRA, step = 4 * width) plus ``CameraInfo`` with
  the pinhole model from the horizontal fov: fx = fy = width / (2 tan(fov / 2)), cx = width / 2,
  cy = height / 2, 'plumb_bob' with zero distortion.
* GNSS: ``NavSatFix`` with latitude, longitude, altitude. The bridge never sets the status, so it
  carries the message default: STATUS_FIX (0) up to Jazzy, STATUS_UNKNOWN (-2) since sensor_msgs added
  that constant (Kilted). ``gnss_to_msg`` says STATUS_FIX (our sources know they have a fix);
  ``gnss_from_msg`` reads -2 as a fix of unknown quality and rejects only STATUS_NO_FIX (-1).

Bad input raises :class:`ConversionError` (a ValueError) naming the topic and the field.
"""
from __future__ import annotations

import array
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib import recfunctions as rfn

from beam_tracking_ros.sim.types import BeamLabel

__all__ = [
    "CAMERA_ENCODINGS", "LIDAR_FIELDS", "POINTFIELD_DTYPES", "RADAR_FIELDS", "BeamObservationData",
    "ConversionError", "FieldSpec", "beam_label_to_msg", "beam_observation_from_msg",
    "beam_observation_to_msg", "camera_info_msg", "create_cloud", "dtype_from_fields", "finite_points",
    "gnss_from_msg", "gnss_to_msg", "image_from_msg", "image_to_msg", "lidar_from_msg", "lidar_to_msg",
    "make_header", "pointcloud2_to_array", "radar_from_msg", "radar_to_msg", "read_points_numpy",
    "stamp_from_ns", "stamp_from_sec", "stamp_to_ns", "stamp_to_sec",
]


class ConversionError(ValueError):
    """A message that cannot be converted (wrong fields, sizes, encoding, non-finite values...)."""

    kind = "conversion"  # the reason's class on /diagnostics


class AbsurdValueError(ConversionError):
    """Values far outside anything a sensor measures (a byte-swapped or corrupted cloud): never predicted on."""

    kind = "absurd"


#: |value| beyond any LiDAR or radar reading (m, m/s, rad): the live tracker's and the dataset builder's bound
MAX_ABS_VALUE = 1e4


def check_magnitude(points: np.ndarray, bound: float, topic: str, names: Sequence[str] = ()) -> np.ndarray:
    """``points`` unchanged, or :class:`AbsurdValueError` when a row has a |value| over ``bound`` (metres,
    m/s, radians: 1e4 is far beyond a real LiDAR's or radar's range, while a byte-swapped float is often
    ~1e38). ``points`` is (N, F); ``names`` the F field names for the message."""
    a = np.asarray(points)
    if a.ndim != 2 or not a.size or a.dtype.kind != "f":
        return a
    big = np.abs(a) > bound
    if big.any():
        cols = [names[i] if i < len(names) else str(i) for i in np.flatnonzero(big.any(axis=0))]
        raise AbsurdValueError(f"{topic}: {int(big.any(axis=1).sum())} point(s) beyond +-{bound:g} in field(s) "
                               f"{cols} (largest {float(np.abs(a).max()):.3g}): a byte-swapped or corrupted cloud")
    return a


# sensor_msgs/PointField datatype constants -> numpy scalar type (byte order applied per message).
POINTFIELD_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("i1"), 2: np.dtype("u1"), 3: np.dtype("i2"), 4: np.dtype("u2"),
    5: np.dtype("i4"), 6: np.dtype("u4"), 7: np.dtype("f4"), 8: np.dtype("f8"),
}
_NP_TO_POINTFIELD = {v.str[1:]: k for k, v in POINTFIELD_DTYPES.items()}
FLOAT32 = 7


@dataclass(frozen=True)
class FieldSpec:
    """A PointField without ROS: name, byte offset in the point, datatype constant, count."""

    name: str
    offset: int
    datatype: int
    count: int = 1


LIDAR_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("x", 0, FLOAT32), FieldSpec("y", 4, FLOAT32), FieldSpec("z", 8, FLOAT32),
    FieldSpec("intensity", 12, FLOAT32),
)
RADAR_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("x", 0, FLOAT32), FieldSpec("y", 4, FLOAT32), FieldSpec("z", 8, FLOAT32),
    FieldSpec("Range", 12, FLOAT32), FieldSpec("Velocity", 16, FLOAT32),
    FieldSpec("AzimuthAngle", 20, FLOAT32), FieldSpec("ElevationAngle", 28, FLOAT32),
)

# encoding -> (channels, channel order as a string of 'BGRA' letters, or 'L' for mono)
CAMERA_ENCODINGS: dict[str, tuple[int, str]] = {
    "bgra8": (4, "BGRA"), "rgba8": (4, "RGBA"), "bgr8": (3, "BGR"), "rgb8": (3, "RGB"), "mono8": (1, "L"),
}


# ----------------------------------------------------------------------------------------------
# message classes: rclpy packages by default, or a rosbags Typestore (types=...)
# ----------------------------------------------------------------------------------------------
_RCLPY_MODULES = {
    "builtin_interfaces/msg/Time": ("builtin_interfaces.msg", "Time"),
    "std_msgs/msg/Header": ("std_msgs.msg", "Header"),
    "sensor_msgs/msg/PointField": ("sensor_msgs.msg", "PointField"),
    "sensor_msgs/msg/PointCloud2": ("sensor_msgs.msg", "PointCloud2"),
    "sensor_msgs/msg/Image": ("sensor_msgs.msg", "Image"),
    "sensor_msgs/msg/CameraInfo": ("sensor_msgs.msg", "CameraInfo"),
    "sensor_msgs/msg/RegionOfInterest": ("sensor_msgs.msg", "RegionOfInterest"),
    "sensor_msgs/msg/NavSatFix": ("sensor_msgs.msg", "NavSatFix"),
    "sensor_msgs/msg/NavSatStatus": ("sensor_msgs.msg", "NavSatStatus"),
    "beam_tracking_ros/msg/BeamObservation": ("beam_tracking_ros.msg", "BeamObservation"),
}


def _cls(name: str, types: Any) -> Any:
    """Message class ``name`` from rclpy's generated packages, or from a rosbags Typestore."""
    if types is not None:
        try:
            return types.types[name]
        except (KeyError, AttributeError) as exc:
            raise ConversionError(f"types: the given typestore has no message type {name!r}") from exc
    module, attr = _RCLPY_MODULES[name]
    import importlib

    return getattr(importlib.import_module(module), attr)


def _is_rosbags(types: Any) -> bool:
    return types is not None


def _byte_data(buf: np.ndarray, types: Any) -> Any:
    """The value for a ``uint8[] data`` field: one copy into array('B') for rclpy, a view for rosbags."""
    flat = np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
    if _is_rosbags(types):
        return flat
    out = array.array("B")
    out.frombytes(memoryview(flat))  # one copy; rclpy keeps array('B') values without converting
    return out


# ----------------------------------------------------------------------------------------------
# stamps
# ----------------------------------------------------------------------------------------------
def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec), rclpy.time.Time, int ns or float s -> int nanoseconds."""
    if hasattr(stamp, "sec") and hasattr(stamp, "nanosec"):
        return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    if isinstance(stamp, (int, np.integer)) and not isinstance(stamp, bool):
        return int(stamp)
    if isinstance(stamp, (float, np.floating)):
        if not math.isfinite(stamp):
            raise ConversionError(f"stamp: not finite ({stamp})")
        return round(float(stamp) * 1e9)
    raise ConversionError(f"stamp: cannot read a time from {type(stamp).__name__}")


def stamp_to_sec(stamp: Any) -> float:
    """Any stamp accepted by :func:`stamp_to_ns` -> float seconds."""
    return stamp_to_ns(stamp) / 1e9  # correctly rounded (x * 1e-9 is not)


def stamp_from_ns(ns: int, types: Any = None) -> Any:
    """int nanoseconds -> builtin_interfaces/Time (floor division keeps 0 <= nanosec < 1e9)."""
    ns = int(ns)
    sec, nanosec = divmod(ns, 1_000_000_000)
    if not -(2**31) <= sec < 2**31:
        raise ConversionError(f"stamp: {ns} ns does not fit builtin_interfaces/Time (int32 seconds)")
    return _cls("builtin_interfaces/msg/Time", types)(sec=sec, nanosec=nanosec)


def stamp_from_sec(t: float, types: Any = None) -> Any:
    """float seconds -> builtin_interfaces/Time, rounded to the nearest nanosecond."""
    if not math.isfinite(float(t)):
        raise ConversionError(f"stamp: not finite ({t})")
    return stamp_from_ns(round(float(t) * 1e9), types)


def make_header(stamp: Any, frame_id: str, types: Any = None) -> Any:
    """std_msgs/Header from any stamp (float s, int ns, Time) and a frame id."""
    if not (hasattr(stamp, "sec") and hasattr(stamp, "nanosec")):
        stamp = stamp_from_ns(stamp_to_ns(stamp), types)
    elif types is not None or not type(stamp).__module__.startswith("builtin_interfaces"):
        stamp = stamp_from_ns(stamp_to_ns(stamp), types)  # re-create in the right message family
    return _cls("std_msgs/msg/Header", types)(stamp=stamp, frame_id=str(frame_id))


# ----------------------------------------------------------------------------------------------
# PointCloud2
# ----------------------------------------------------------------------------------------------
def _buffer(msg: Any, topic: str) -> np.ndarray:
    data = getattr(msg, "data", None)
    if data is None:
        raise ConversionError(f"{topic}: message has no 'data' field")
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.view(np.uint8).ravel()
    try:
        return np.frombuffer(data, dtype=np.uint8)  # zero-copy over array('B') / bytes / memoryview
    except (TypeError, ValueError):
        return np.asarray(data, dtype=np.uint8)  # a plain list (hand-built messages): copy


def dtype_from_fields(fields: Iterable[Any], point_step: int | None = None, is_bigendian: bool = False,
                      topic: str = "pointcloud") -> np.dtype:
    """Structured numpy dtype with the fields' names, types, counts and offsets; itemsize point_step.

    ``point_step=None`` gives the tightest itemsize (last field end), as the bridge's and
    sensor_msgs_py's ``create_cloud`` do.
    """
    names, formats, offsets = [], [], []
    order = ">" if is_bigendian else "<"
    end = 0
    for f in fields:
        try:
            name, offset, datatype, count = str(f.name), int(f.offset), int(f.datatype), int(f.count)
        except AttributeError as exc:
            raise ConversionError(f"{topic}: a point field lacks name/offset/datatype/count") from exc
        if datatype not in POINTFIELD_DTYPES:
            raise ConversionError(f"{topic}: field {name!r} has unknown PointField datatype {datatype}")
        if offset < 0 or count < 0:
            raise ConversionError(f"{topic}: field {name!r} has negative offset/count ({offset}, {count})")
        if name in names:
            raise ConversionError(f"{topic}: field {name!r} appears twice")
        if count == 0:
            continue  # a zero-count field occupies no bytes
        base = POINTFIELD_DTYPES[datatype].newbyteorder(order)
        names.append(name)
        formats.append(base if count == 1 else np.dtype((base, (count,))))
        offsets.append(offset)
        end = max(end, offset + base.itemsize * count)
    if point_step is None:
        point_step = end
    if end > point_step:
        raise ConversionError(f"{topic}: fields end at byte {end} but point_step is {point_step}")
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(point_step)})


def pointcloud2_to_array(msg: Any, fields: Sequence[str] | None = None, *, topic: str = "pointcloud",
                         allow_empty: bool = True) -> np.ndarray:
    """PointCloud2 -> 1-D structured array (height*width,) holding ``fields`` (all when None).

    Reads any layout: offsets with gaps, point_step padding, count > 1, every PointField datatype,
    either byte order. The result is a zero-copy view of ``msg.data`` whenever the rows are packed
    (``row_step == width * point_step``, always true for ``height == 1``); padded rows force one copy.
    """
    try:
        height, width = int(msg.height), int(msg.width)
        point_step, row_step = int(msg.point_step), int(msg.row_step)
        msg_fields = list(msg.fields)
        bigendian = bool(msg.is_bigendian)
    except AttributeError as exc:
        raise ConversionError(f"{topic}: not a PointCloud2 ({exc})") from exc
    n = height * width
    if n == 0 and not allow_empty:
        raise ConversionError(f"{topic}: empty cloud (height={height}, width={width})")
    if height < 0 or width < 0:
        raise ConversionError(f"{topic}: negative height/width ({height}, {width})")
    if point_step <= 0 and n:
        raise ConversionError(f"{topic}: point_step must be positive, got {point_step}")
    dtype = dtype_from_fields(msg_fields, max(point_step, 0), bigendian, topic)
    available = list(dtype.names or ())
    if fields is not None:
        missing = [f for f in fields if f not in available]
        if missing:
            raise ConversionError(f"{topic}: point field(s) {missing} missing; cloud has {available}")
    buf = _buffer(msg, topic)
    if n and row_step < width * point_step:
        raise ConversionError(f"{topic}: row_step {row_step} < width {width} * point_step {point_step}")
    if buf.size != row_step * height:
        raise ConversionError(
            f"{topic}: data has {buf.size} bytes, expected height {height} * row_step {row_step} "
            f"= {row_step * height} (width {width} * point_step {point_step})")
    if n == 0:
        arr = np.zeros(0, dtype=dtype)
    elif row_step == width * point_step or height == 1:
        arr = np.frombuffer(buf, dtype=dtype, count=n)
    else:  # padded rows: strided view then one copy into a packed array
        view = np.ndarray((height, width), dtype=dtype, buffer=buf, strides=(row_step, point_step))
        arr = view.reshape(-1)
    if fields is not None:
        arr = arr[list(fields)]  # multi-field index: still a view
    return arr


def read_points_numpy(msg: Any, field_names: Sequence[str] | None = None, skip_nans: bool = False, *,
                      topic: str = "pointcloud") -> np.ndarray:
    """(N, F) array of ``field_names`` in their common dtype, like sensor_msgs_py's function.

    Zero-copy when the fields are equally typed, packed and adjacent in the point (e.g. LiDAR x, y,
    z, intensity); otherwise one copy. Fields of different datatypes are rejected (as sensor_msgs_py
    does): use :func:`pointcloud2_to_array` for those.
    """
    arr = pointcloud2_to_array(msg, field_names, topic=topic)
    names = list(arr.dtype.names or ())
    types = {arr.dtype.fields[n][0].base.str for n in names}
    if len(types) > 1:
        raise ConversionError(f"{topic}: fields {names} have different datatypes {sorted(types)}")
    out = rfn.structured_to_unstructured(arr)
    if skip_nans and out.size and out.dtype.kind == "f":
        out = out[np.isfinite(out).all(axis=1)] if out.ndim == 2 else out
    return out


def create_cloud(header: Any, fields: Sequence[Any], points: Any, *, point_step: int | None = None,
                 types: Any = None) -> Any:
    """PointCloud2 (height 1, little-endian, is_dense False) from an (N, F) array, a structured array or
    a list of per-point tuples, as sensor_msgs_py's / the bridge's ``create_cloud`` lay it out.
    """
    dtype = dtype_from_fields(fields, point_step, False, "create_cloud")
    if isinstance(points, np.ndarray) and points.dtype.names is not None:
        if points.dtype.names != dtype.names:
            raise ConversionError(
                f"create_cloud: structured array fields {points.dtype.names} != point fields {dtype.names}")
        packed = np.zeros(points.shape[0], dtype=dtype)
        for name in dtype.names:
            packed[name] = points[name]
    else:
        pts = np.asarray(points if isinstance(points, np.ndarray) else list(points), dtype=np.float64)
        if pts.size == 0:
            pts = pts.reshape(0, len(dtype.names))
        if pts.ndim != 2:
            raise ConversionError(f"create_cloud: points must be (N, F), got shape {pts.shape}")
        packed = np.zeros(pts.shape[0], dtype=dtype)
        col = 0
        for name in dtype.names:
            sub = dtype.fields[name][0]
            width = int(np.prod(sub.shape)) if sub.shape else 1
            if col + width > pts.shape[1]:
                raise ConversionError(
                    f"create_cloud: points have {pts.shape[1]} columns, fields need more (at {name!r})")
            val = pts[:, col:col + width]
            packed[name] = val.reshape((pts.shape[0], *sub.shape)) if sub.shape else val[:, 0]
            col += width
        if col != pts.shape[1]:
            raise ConversionError(f"create_cloud: points have {pts.shape[1]} columns, fields take {col}")
    pf_cls = _cls("sensor_msgs/msg/PointField", types)
    msg_fields = [pf_cls(name=str(f.name), offset=int(f.offset), datatype=int(f.datatype), count=int(f.count))
                  for f in fields]
    n = packed.shape[0]
    return _cls("sensor_msgs/msg/PointCloud2", types)(
        header=header, height=1, width=n, fields=msg_fields, is_bigendian=sys.byteorder != "little",
        point_step=dtype.itemsize, row_step=dtype.itemsize * n, data=_byte_data(packed.view(np.uint8), types),
        is_dense=False)


def finite_points(arr: np.ndarray) -> tuple[np.ndarray, int]:
    """Rows of a (N, F) array with every value finite, and how many rows were dropped."""
    a = np.asarray(arr)
    if a.ndim != 2:
        raise ConversionError(f"points: expected a (N, F) array, got shape {a.shape}")
    if a.dtype.kind != "f":
        return a, 0
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(a.sum()):  # one fast reduction for the common all-finite case (overflow -> slow path)
            return a, 0
    ok = np.isfinite(a).all(axis=1)
    n_bad = int(a.shape[0] - np.count_nonzero(ok))
    return (a if n_bad == 0 else a[ok]), n_bad


def _finite(out: np.ndarray, nonfinite: str, topic: str, names: Sequence[str]) -> tuple[np.ndarray, int]:
    if nonfinite == "keep":
        return out, 0
    kept, n_bad = finite_points(out)
    if n_bad and nonfinite == "raise":
        bad_cols = [names[i] for i in np.flatnonzero(~np.isfinite(out).all(axis=0))]
        raise ConversionError(f"{topic}: {n_bad} point(s) with NaN/inf in field(s) {bad_cols}")
    if nonfinite not in ("drop", "raise"):
        raise ValueError(f"nonfinite must be 'drop', 'raise' or 'keep', got {nonfinite!r}")
    return kept, n_bad


def _check_float_fields(msg: Any, names: Sequence[str], topic: str) -> None:
    by_name = {str(f.name): f for f in getattr(msg, "fields", [])}
    for n in names:
        f = by_name.get(n)
        if f is not None and (int(f.datatype) != FLOAT32 or int(f.count) != 1):
            raise ConversionError(
                f"{topic}: field {n!r} must be FLOAT32 count 1, got datatype {f.datatype} count {f.count}")


# ----------------------------------------------------------------------------------------------
# LiDAR and radar
# ----------------------------------------------------------------------------------------------
def lidar_to_msg(points: np.ndarray, stamp: Any, frame_id: str, *, types: Any = None) -> Any:
    """(N, 4) [x, y, z, intensity] in CARLA's left-handed sensor frame -> PointCloud2 as the bridge
    publishes it (y negated to ROS's right-handed frame)."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 4:
        raise ConversionError(f"lidar points: expected (N, 4) [x, y, z, intensity], got {pts.shape}")
    data = pts.astype(np.float32, copy=True)
    data[:, 1] *= -1.0
    return create_cloud(make_header(stamp, frame_id, types), LIDAR_FIELDS, data, types=types)


def lidar_from_msg(msg: Any, *, topic: str = "lidar", nonfinite: str = "drop", allow_empty: bool = False,
                   return_dropped: bool = False) -> np.ndarray | tuple[np.ndarray, int]:
    """PointCloud2 -> (N, 4) float32 [x, y, z, intensity] in CARLA's sensor frame (y flip undone).

    ``nonfinite``: 'drop' rows with NaN/inf (organized clouds use NaN for no return), 'raise' a
    ConversionError, or 'keep'. ``return_dropped=True`` also returns how many rows were dropped.
    """
    names = ("x", "y", "z", "intensity")
    _check_float_fields(msg, names, topic)
    arr = pointcloud2_to_array(msg, names, topic=topic, allow_empty=allow_empty)
    out = np.array(rfn.structured_to_unstructured(arr), dtype=np.float32)  # view, then one native copy
    with np.errstate(invalid="ignore"):  # signalling NaNs of a corrupt cloud: dropped below, not warned about
        out[:, 1] *= -1.0
    out, n_bad = _finite(out, nonfinite, topic, names)
    return (out, n_bad) if return_dropped else out


def radar_to_msg(detections: np.ndarray, stamp: Any, frame_id: str, *, types: Any = None) -> Any:
    """(N, 4) CARLA RadarDetection [velocity, azimuth, altitude, depth] -> the bridge's radar PointCloud2."""
    det = np.asarray(detections, dtype=np.float64)
    if det.ndim != 2 or det.shape[1] != 4:
        raise ConversionError(
            f"radar detections: expected (N, 4) [velocity, azimuth, altitude, depth], got {det.shape}")
    vel, az, alt, depth = det.T
    cols = np.stack([
        depth * np.cos(az) * np.cos(-alt),
        depth * np.sin(-az) * np.cos(alt),
        depth * np.sin(alt),
        depth, vel, az, alt,
    ], axis=1)
    return create_cloud(make_header(stamp, frame_id, types), RADAR_FIELDS, cols, types=types)


def radar_from_msg(msg: Any, *, topic: str = "radar", nonfinite: str = "drop", allow_empty: bool = False,
                   return_dropped: bool = False) -> np.ndarray | tuple[np.ndarray, int]:
    """Bridge radar PointCloud2 -> (N, 4) float32 [velocity, azimuth, altitude, depth] (CARLA order)."""
    names = ("Velocity", "AzimuthAngle", "ElevationAngle", "Range")
    _check_float_fields(msg, names, topic)
    arr = pointcloud2_to_array(msg, names, topic=topic, allow_empty=allow_empty)
    out = np.array(rfn.structured_to_unstructured(arr), dtype=np.float32)
    out, n_bad = _finite(out, nonfinite, topic, names)
    return (out, n_bad) if return_dropped else out


# ----------------------------------------------------------------------------------------------
# camera
# ----------------------------------------------------------------------------------------------
def image_to_msg(bgra: np.ndarray, stamp: Any, frame_id: str, *, encoding: str = "bgra8",
                 types: Any = None) -> Any:
    """(H, W, C) uint8 -> sensor_msgs/Image (default 'bgra8', CARLA's raw layout), packed rows."""
    img = np.asarray(bgra)
    if encoding not in CAMERA_ENCODINGS:
        raise ConversionError(f"camera: unknown encoding {encoding!r}; known {sorted(CAMERA_ENCODINGS)}")
    channels = CAMERA_ENCODINGS[encoding][0]
    if img.ndim == 2 and channels == 1:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] != channels or img.dtype != np.uint8:
        raise ConversionError(
            f"camera: {encoding} needs an (H, W, {channels}) uint8 array, got {img.shape} {img.dtype}")
    h, w = img.shape[:2]
    if h == 0 or w == 0:
        raise ConversionError(f"camera: empty image {img.shape}")
    return _cls("sensor_msgs/msg/Image", types)(
        header=make_header(stamp, frame_id, types), height=h, width=w, encoding=encoding,
        is_bigendian=0, step=w * channels, data=_byte_data(img, types))


def image_from_msg(msg: Any, *, topic: str = "camera", as_bgra: bool = False) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, C) uint8, a zero-copy view of ``msg.data`` honouring ``step``.

    Encodings bgra8, bgr8, rgb8, rgba8, mono8. ``as_bgra=True`` returns (H, W, 4) BGRA as the core
    expects: still a view for 'bgra8', one converted copy for the others (alpha 255 where absent).
    """
    try:
        h, w, step = int(msg.height), int(msg.width), int(msg.step)
        encoding = str(msg.encoding)
    except AttributeError as exc:
        raise ConversionError(f"{topic}: not a sensor_msgs/Image ({exc})") from exc
    if encoding not in CAMERA_ENCODINGS:
        raise ConversionError(
            f"{topic}: unsupported encoding {encoding!r}; supported {sorted(CAMERA_ENCODINGS)}")
    channels, order = CAMERA_ENCODINGS[encoding]
    if h <= 0 or w <= 0:
        raise ConversionError(f"{topic}: empty image ({h}x{w})")
    if step < w * channels:
        raise ConversionError(f"{topic}: step {step} < width {w} * {channels} channels ({encoding})")
    buf = _buffer(msg, topic)
    if buf.size != step * h:
        raise ConversionError(
            f"{topic}: data has {buf.size} bytes, expected height {h} * step {step} = {step * h}")
    img = np.ndarray((h, w, channels), dtype=np.uint8, buffer=buf, strides=(step, channels, 1))
    if not as_bgra or encoding == "bgra8":
        return img
    out = np.empty((h, w, 4), dtype=np.uint8)
    if order == "L":
        out[..., :3] = img
    else:
        for dst, letter in enumerate("BGR"):
            out[..., dst] = img[..., order.index(letter)]
    out[..., 3] = img[..., order.index("A")] if "A" in order else 255
    return out


def camera_info_msg(width: int, height: int, fov_deg: float, stamp: Any, frame_id: str, *,
                    types: Any = None) -> Any:
    """CameraInfo of CARLA's pinhole camera from its horizontal fov, as the bridge builds it."""
    if int(width) <= 0 or int(height) <= 0:
        raise ConversionError(f"camera_info: width/height must be positive, got {width}x{height}")
    if not 0.0 < float(fov_deg) < 180.0:
        raise ConversionError(f"camera_info: fov_deg must be in (0, 180), got {fov_deg}")
    w, h = int(width), int(height)
    fx = w / (2.0 * math.tan(float(fov_deg) * math.pi / 360.0))
    cx, cy = w / 2.0, h / 2.0
    k = np.array([fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0])
    r = np.eye(3).reshape(-1)
    p = np.array([fx, 0.0, cx, 0.0, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    roi_cls = _cls("sensor_msgs/msg/RegionOfInterest", types)
    return _cls("sensor_msgs/msg/CameraInfo", types)(
        header=make_header(stamp, frame_id, types), height=h, width=w, distortion_model="plumb_bob",
        d=np.zeros(5) if types is not None else [0.0] * 5, k=k, r=r, p=p, binning_x=0, binning_y=0,
        roi=roi_cls(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


# ----------------------------------------------------------------------------------------------
# GNSS
# ----------------------------------------------------------------------------------------------
def gnss_to_msg(lat: float, lon: float, alt: float, stamp: Any, frame_id: str, *, types: Any = None) -> Any:
    """NavSatFix with latitude/longitude (deg) and altitude (m), as the bridge fills it."""
    vals = np.array([lat, lon, alt], dtype=np.float64)
    if not np.isfinite(vals).all():
        raise ConversionError(f"gnss: latitude/longitude/altitude must be finite, got {vals.tolist()}")
    status_cls = _cls("sensor_msgs/msg/NavSatStatus", types)
    return _cls("sensor_msgs/msg/NavSatFix", types)(
        header=make_header(stamp, frame_id, types), status=status_cls(status=0, service=0),
        latitude=float(lat), longitude=float(lon), altitude=float(alt),
        position_covariance=np.zeros(9), position_covariance_type=0)


def gnss_no_fix_msg(stamp: Any, frame_id: str, *, types: Any = None) -> Any:
    """NavSatFix of a receiver without a fix (STATUS_NO_FIX, NaN position), as ROS specifies it.

    The simulator and the CARLA bridge publish it when no vehicle is served, so the topic keeps its
    rate and a consumer sees why there is no position (``gnss_from_msg`` rejects it as "no fix").
    """
    status_cls = _cls("sensor_msgs/msg/NavSatStatus", types)
    return _cls("sensor_msgs/msg/NavSatFix", types)(
        header=make_header(stamp, frame_id, types), status=status_cls(status=-1, service=0),
        latitude=math.nan, longitude=math.nan, altitude=math.nan,
        position_covariance=np.zeros(9), position_covariance_type=0)


#: NavSatStatus.STATUS_NO_FIX and STATUS_UNKNOWN (sensor_msgs, Kilted): the values gnss_from_msg tells apart
STATUS_NO_FIX = -1
STATUS_UNKNOWN = -2


def gnss_from_msg(msg: Any, *, topic: str = "gnss") -> np.ndarray:
    """NavSatFix -> (3,) float64 [latitude, longitude, altitude]; no fix or NaN -> ConversionError.

    Status STATUS_UNKNOWN (-2) is accepted as a fix of unknown quality: it is the default of the
    message since Kilted, which carla-ros-bridge never overwrites, so every fix it records carries it;
    the finite, in-range position is what decides. STATUS_NO_FIX (-1) and any other negative status
    are refused as before.
    """
    try:
        status = int(msg.status.status)
        vals = np.array([msg.latitude, msg.longitude, msg.altitude], dtype=np.float64)
    except AttributeError as exc:
        raise ConversionError(f"{topic}: not a NavSatFix ({exc})") from exc
    if status < 0 and status != STATUS_UNKNOWN:  # STATUS_NO_FIX (-1) or a negative status no version defines
        raise ConversionError(f"{topic}: status {status} (no fix)")
    bad = [n for n, v in zip(("latitude", "longitude", "altitude"), vals) if not math.isfinite(v)]
    if bad:
        raise ConversionError(f"{topic}: field(s) {bad} not finite")
    if not -90.0 <= vals[0] <= 90.0 or not -180.0 <= vals[1] <= 180.0:
        raise ConversionError(f"{topic}: latitude {vals[0]} / longitude {vals[1]} out of range")
    return vals


# ----------------------------------------------------------------------------------------------
# BeamObservation (ground truth)
# ----------------------------------------------------------------------------------------------
_LABEL_MODES = {"single": 0, "sum_rss": 1}


@dataclass
class BeamObservationData:
    """A BeamObservation without ROS: the core's BeamLabel plus the message's bookkeeping."""

    stamp: float
    label: BeamLabel
    episode: int = 0
    codebook_id: str = ""
    noise_dbm: float = 0.0
    frame_id: str = ""


def beam_observation_to_msg(powers_dbm: np.ndarray, optimal_beam: int, stamp: Any, frame_id: str, *,
                            vehicle_ids: Sequence[int] = (), los_blocked: bool = False,
                            mode: str = "sum_rss", episode: int = 0, codebook_id: str = "",
                            noise_dbm: float = 0.0, types: Any = None, ceiling_dbm: Any = None) -> Any:
    """beam_tracking_ros/BeamObservation from per-beam powers (dBm), the optimal beam and the vehicles
    (``ceiling_dbm``: the geometry ceiling's powers, same length, or None)."""
    p = np.asarray(powers_dbm, dtype=np.float32).reshape(-1)
    c = np.zeros(0, np.float32) if ceiling_dbm is None else np.asarray(ceiling_dbm, dtype=np.float32).reshape(-1)
    if c.size not in (0, p.size) or not np.isfinite(c).all():
        raise ConversionError(f"beam observation: ceiling_dbm must be {p.size} finite powers or None, got {c.size}")
    if p.size == 0 or p.size > 65535:
        raise ConversionError(f"beam observation: powers_dbm must have 1..65535 beams, got {p.size}")
    if not 0 <= int(optimal_beam) < p.size:
        raise ConversionError(f"beam observation: optimal_beam {optimal_beam} outside 0..{p.size - 1}")
    if mode not in _LABEL_MODES:
        raise ConversionError(f"beam observation: mode must be one of {sorted(_LABEL_MODES)}, got {mode!r}")
    ids = np.asarray(list(vehicle_ids), dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 2**32):
        raise ConversionError(f"beam observation: vehicle_ids must fit uint32, got {ids.tolist()}")
    if not 0 <= int(episode) < 2**32:
        raise ConversionError(f"beam observation: episode must fit uint32, got {episode}")
    rosbags = _is_rosbags(types)
    return _cls("beam_tracking_ros/msg/BeamObservation", types)(
        header=make_header(stamp, frame_id, types), codebook_id=str(codebook_id),
        power_dbm=p if rosbags else array.array("f", p.tobytes()), optimal_beam=int(optimal_beam),
        ceiling_power_dbm=c if rosbags else array.array("f", c.tobytes()),
        label_mode=_LABEL_MODES[mode],
        vehicle_ids=ids.astype(np.uint32) if rosbags else array.array("I", ids.astype(np.uint32).tobytes()),
        los_blocked=bool(los_blocked), noise_dbm=float(noise_dbm), episode=int(episode))


def beam_label_to_msg(label: BeamLabel, stamp: Any, frame_id: str, **kwargs: Any) -> Any:
    """BeamObservation from the core's BeamLabel (kwargs: episode, codebook_id, noise_dbm, types)."""
    return beam_observation_to_msg(label.powers_dbm, label.optimal_beam, stamp, frame_id,
                                   vehicle_ids=label.vehicle_ids, los_blocked=label.los_blocked,
                                   mode=label.mode, ceiling_dbm=getattr(label, "ceiling_powers_dbm", None),
                                   **kwargs)


def beam_observation_from_msg(msg: Any, *, topic: str = "beam_observation") -> BeamObservationData:
    """BeamObservation -> BeamObservationData (label.powers_dbm float32 (B,), optimal beam checked)."""
    try:
        p = np.array(msg.power_dbm, dtype=np.float32).reshape(-1)
        best = int(msg.optimal_beam)
        mode_code = int(msg.label_mode)
        ids = [int(v) for v in msg.vehicle_ids]
        stamp = stamp_to_sec(msg.header.stamp)
    except AttributeError as exc:
        raise ConversionError(f"{topic}: not a BeamObservation ({exc})") from exc
    if p.size == 0:
        raise ConversionError(f"{topic}: power_dbm is empty")
    if not np.isfinite(p).all():
        raise ConversionError(f"{topic}: power_dbm has {int((~np.isfinite(p)).sum())} non-finite value(s)")
    if not 0 <= best < p.size:
        raise ConversionError(f"{topic}: optimal_beam {best} outside 0..{p.size - 1}")
    modes = {v: k for k, v in _LABEL_MODES.items()}
    if mode_code not in modes:
        raise ConversionError(f"{topic}: label_mode {mode_code} unknown (0 single, 1 sum_rss)")
    # the geometry ceiling where the publisher knew it (simulators) and it is usable; bags of older
    # recorders lack the field
    c = np.array(getattr(msg, "ceiling_power_dbm", ()), dtype=np.float32).reshape(-1)
    ceiling = c if c.size == p.size and np.isfinite(c).all() else None
    label = BeamLabel(powers_dbm=p, optimal_beam=best, vehicle_ids=ids, los_blocked=bool(msg.los_blocked),
                      mode=modes[mode_code], ceiling_powers_dbm=ceiling)
    return BeamObservationData(stamp=stamp, label=label, episode=int(msg.episode),
                               codebook_id=str(msg.codebook_id), noise_dbm=float(msg.noise_dbm),
                               frame_id=str(msg.header.frame_id))

"""Converters between CARLA raw sensor byte buffers and numpy, plus CARLA's GNSS geo-projection.

CARLA layouts (carla.Image / carla.RadarMeasurement / carla.LidarMeasurement ``raw_data``):

* image: height * width * 4 bytes, row-major, BGRA uint8;
* radar: 4 float32 per detection, in the order velocity, azimuth, altitude, depth;
* lidar: 4 float32 per point, x, y, z, intensity (sensor frame, left-handed, metres).

``*_from_bytes`` return zero-copy read-only views (np.frombuffer) of the buffer whenever it is a
bytes-like object; ``*_to_bytes`` produce exactly the bytes CARLA would send. Bad sizes raise
ValueError naming the argument.

GNSS: CARLA converts a location (x, y, z) in its left-handed map frame to latitude/longitude with a
spherical Mercator projection around the map's geo reference (``_location_to_gps`` of CARLA's
PythonAPI, equatorial radius 6378137 m): ``location_to_gnss`` reproduces that; ``gnss_to_location``
inverts it.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_EQUA = 6378137.0
_F32 = np.dtype("<f4")


def _as_buffer(raw: object, name: str) -> memoryview:
    try:
        return memoryview(raw).cast("B")  # type: ignore[arg-type]
    except TypeError as exc:
        raise ValueError(f"{name}: expected a bytes-like buffer, got {type(raw).__name__}") from exc


def image_from_bytes(raw: object, width: int, height: int) -> np.ndarray:
    """BGRA raw_data -> (height, width, 4) uint8 view."""
    if width <= 0 or height <= 0:
        raise ValueError(f"width/height must be positive, got {width}x{height}")
    buf = _as_buffer(raw, "raw_data")
    expected = width * height * 4
    if buf.nbytes != expected:
        raise ValueError(
            f"raw_data: image buffer has {buf.nbytes} bytes, expected {expected} ({width}x{height}x4)"
        )
    return np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 4)


def image_to_bytes(image: np.ndarray) -> bytes:
    """(H, W, 4) uint8 BGRA -> raw_data bytes."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 4 or img.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 4) uint8 BGRA, got {img.shape} {img.dtype}")
    return np.ascontiguousarray(img).tobytes()


def _points_from_bytes(raw: object, name: str) -> np.ndarray:
    buf = _as_buffer(raw, name)
    if buf.nbytes % 16:
        raise ValueError(f"{name}: {buf.nbytes} bytes is not a multiple of 16 (4 float32 per item)")
    return np.frombuffer(buf, dtype=_F32).reshape(-1, 4)


def _points_to_bytes(arr: np.ndarray, name: str) -> bytes:
    a = np.asarray(arr)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{name}: expected (N, 4) array, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=_F32).tobytes()


def radar_from_bytes(raw: object) -> np.ndarray:
    """Radar raw_data -> (N, 4) float32 [velocity, azimuth, altitude, depth] view."""
    return _points_from_bytes(raw, "radar raw_data")


def radar_to_bytes(detections: np.ndarray) -> bytes:
    return _points_to_bytes(detections, "radar detections")


def lidar_from_bytes(raw: object) -> np.ndarray:
    """LiDAR raw_data -> (N, 4) float32 [x, y, z, intensity] view."""
    return _points_from_bytes(raw, "lidar raw_data")


def lidar_to_bytes(points: np.ndarray) -> bytes:
    return _points_to_bytes(points, "lidar points")


def radar_to_xyz(detections: np.ndarray) -> np.ndarray:
    """(N, 4) radar detections -> (N, 3) points in a right-handed sensor frame (x fwd, y left, z up),
    with the sign conventions of the CARLA ROS bridge (azimuth positive to the right)."""
    d = np.asarray(detections, dtype=np.float32)
    az, alt, depth = d[:, 1], d[:, 2], d[:, 3]
    ca = np.cos(alt)
    return np.stack([depth * np.cos(az) * ca, -depth * np.sin(az) * ca, depth * np.sin(alt)], axis=1)


def location_to_gnss(location: np.ndarray, lat0: float, lon0: float, alt0: float = 0.0) -> np.ndarray:
    """CARLA map locations (..., 3) (left-handed x, y, z in metres) -> (..., 3) [lat, lon, alt]."""
    loc = np.asarray(location, dtype=np.float64)
    if loc.shape[-1] != 3:
        raise ValueError(f"location: expected (..., 3), got {loc.shape}")
    scale = np.cos(np.radians(lat0))
    mx = scale * np.radians(lon0) * EARTH_RADIUS_EQUA + loc[..., 0]
    my = scale * EARTH_RADIUS_EQUA * np.log(np.tan(np.radians(90.0 + lat0) / 2.0)) - loc[..., 1]
    lon = np.degrees(mx / (EARTH_RADIUS_EQUA * scale))
    lat = 2.0 * np.degrees(np.arctan(np.exp(my / (EARTH_RADIUS_EQUA * scale)))) - 90.0
    return np.stack([lat, lon, loc[..., 2] + alt0], axis=-1)


def gnss_to_location(gnss: np.ndarray, lat0: float, lon0: float, alt0: float = 0.0) -> np.ndarray:
    """Inverse of location_to_gnss."""
    g = np.asarray(gnss, dtype=np.float64)
    scale = np.cos(np.radians(lat0))
    mx0 = scale * np.radians(lon0) * EARTH_RADIUS_EQUA
    my0 = scale * EARTH_RADIUS_EQUA * np.log(np.tan(np.radians(90.0 + lat0) / 2.0))
    mx = np.radians(g[..., 1]) * EARTH_RADIUS_EQUA * scale
    my = scale * EARTH_RADIUS_EQUA * np.log(np.tan(np.radians(90.0 + g[..., 0]) / 2.0))
    return np.stack([mx - mx0, my0 - my, g[..., 2] - alt0], axis=-1)


def world_to_carla(xyz: np.ndarray) -> np.ndarray:
    """The package's right-handed world (y left) -> CARLA's left-handed frame (y right)."""
    out = np.array(xyz, dtype=np.float64, copy=True)
    out[..., 1] *= -1.0
    return out

"""Converters between CARLA raw sensor byte buffers and numpy, plus CARLA's GNSS geo-projection.

CARLA layouts (carla.Image / carla.RadarMeasurement / carla.LidarMeasurement ``raw_data``):

* image: height * width * 4 bytes, row-major, BGRA uint8;
* radar: 4 float32 per detection, in the order velocity, azimuth, altitude, depth;
* lidar: 4 float32 per point, x, y, z, intensity (sensor frame, left-handed, metres).

``*_from_bytes`` return zero-copy read-only views (np.frombuffer) of the buffer whenever it is a
bytes-like object; ``*_to_bytes`` produce exactly the bytes CARLA would send. Bad sizes raise
ValueError naming the argument.

GNSS: CARLA 0.9.16 converts a location (x, y, z) in its map frame to latitude/longitude with a
transverse Mercator projection around the map's geoReference ``+lat_0``/``+lon_0`` (the GNSS sensor and
``Map.transform_to_geolocation``): a sphere of radius 6378137 m, central scale factor 0.9996, no false
easting/northing (other ``+proj``/``+k``/``+x_0`` terms are ignored); +x is east and **+y is north**,
altitude is z. ``location_to_gnss`` reproduces it (to 1e-13 degrees, tested against ``carla.Map`` built
from an OpenDRIVE string) and ``gnss_to_location`` inverts it. CARLA <= 0.9.15 used a spherical
Mercator with +y south; a dataset's meta names the rule its raw fixes followed (``GNSS_PROJECTION``). The
GPS feature itself is the target's offset in the world frame (``PreprocessConfig.gnss_frame``), the same
under either rule.

Because CARLA's frame is left-handed and the package's world frame is CARLA's with y negated, north is
-y in the world frame of a CARLA (or built-in simulator) scene: see :func:`gnss_north_sign`.
"""

from __future__ import annotations

import math

import numpy as np

EARTH_RADIUS_EQUA = 6378137.0  # WGS-84 semi-major axis a (m): the radius of CARLA's projection sphere
TM_SCALE = 0.9996  # CARLA 0.9.16's central scale factor (UTM's), whatever the geoReference's +k says
#: The GNSS rule of this module (written into dataset meta so a reader can tell old data from new).
GNSS_PROJECTION = "carla-0.9.16-tmerc"
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
    """CARLA map locations (..., 3) (x east, y north as CARLA 0.9.16 projects, metres) -> (..., 3)
    [lat, lon, alt], as ``carla.Map.transform_to_geolocation`` computes it around ``(lat0, lon0)``:
    the inverse spherical transverse Mercator (Snyder, "Map Projections", eq. 8-6 and 8-7) on a sphere
    of radius a = 6378137 m with scale factor :data:`TM_SCALE`; alt = z + ``alt0``."""
    loc = np.asarray(location, dtype=np.float64)
    if loc.shape[-1] != 3:
        raise ValueError(f"location: expected (..., 3), got {loc.shape}")
    r = EARTH_RADIUS_EQUA * TM_SCALE
    x = loc[..., 0] / r
    d = loc[..., 1] / r + math.radians(lat0)
    lat = np.arcsin(np.sin(d) / np.cosh(x))
    lon = math.radians(lon0) + np.arctan2(np.sinh(x), np.cos(d))
    return np.stack([np.degrees(lat), np.degrees(lon), loc[..., 2] + alt0], axis=-1)


def gnss_to_location(gnss: np.ndarray, lat0: float, lon0: float, alt0: float = 0.0) -> np.ndarray:
    """Inverse of :func:`location_to_gnss` (the forward projection, ``carla.Map.geolocation_to_transform``)."""
    g = np.asarray(gnss, dtype=np.float64)
    if g.shape[-1] != 3:
        raise ValueError(f"gnss: expected (..., 3), got {g.shape}")
    r = EARTH_RADIUS_EQUA * TM_SCALE
    lat = np.radians(g[..., 0])
    dlon = np.radians(g[..., 1]) - math.radians(lon0)
    b = np.cos(lat) * np.sin(dlon)
    x = r * np.arctanh(b)
    y = r * (np.arctan2(np.tan(lat), np.cos(dlon)) - math.radians(lat0))
    return np.stack([x, y, g[..., 2] - alt0], axis=-1)


def gnss_north_sign() -> float:
    """The sign of north along the package's world y in a CARLA-based scene: -1.

    Why it exists: CARLA 0.9.16 projects +y of its left-handed map frame to north, and the package's
    right-handed world frame is CARLA's with y negated, so a GNSS offset (east, north) lies at world
    (east, -north). Geometry from fixes in such a scene must apply it (the built-in simulator is one).
    """
    return -1.0


def world_to_carla(xyz: np.ndarray) -> np.ndarray:
    """The package's right-handed world (y left) -> CARLA's left-handed frame (y right)."""
    out = np.array(xyz, dtype=np.float64, copy=True)
    out[..., 1] *= -1.0
    return out

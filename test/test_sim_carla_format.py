"""CARLA raw-buffer conversions, checked against buffers laid out exactly as CARLA lays them out."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from beam_tracking_ros.sim import (
    gnss_to_location,
    image_from_bytes,
    image_to_bytes,
    lidar_from_bytes,
    lidar_to_bytes,
    location_to_gnss,
    radar_from_bytes,
    radar_to_bytes,
    radar_to_xyz,
)


def test_image_bgra_bytes_roundtrip_zero_copy() -> None:
    w, h = 3, 2
    # carla.Image.raw_data: row-major pixels, each B, G, R, A
    pixels = [(10 * i, 10 * i + 1, 10 * i + 2, 255) for i in range(w * h)]
    raw = bytes(b for px in pixels for b in px)
    img = image_from_bytes(raw, w, h)
    assert img.shape == (2, 3, 4) and img.dtype == np.uint8
    assert tuple(img[1, 2]) == pixels[5]  # row 1, column 2 -> pixel index 1 * w + 2
    assert img[0, 1, 0] == 10 and img[0, 1, 2] == 12  # blue first, red third
    buf = bytearray(raw)
    view = image_from_bytes(buf, w, h)
    buf[0] = 99
    assert view[0, 0, 0] == 99  # a view of the buffer, not a copy
    assert image_to_bytes(img) == raw
    with pytest.raises(ValueError, match="raw_data"):
        image_from_bytes(raw[:-1], w, h)
    with pytest.raises(ValueError, match="image"):
        image_to_bytes(np.zeros((2, 3, 3), np.uint8))


def test_radar_detection_order_velocity_azimuth_altitude_depth() -> None:
    dets = [(-3.5, 0.1, -0.05, 20.0), (1.25, -0.3, 0.02, 55.5)]
    raw = b"".join(struct.pack("<4f", *d) for d in dets)
    arr = radar_from_bytes(raw)
    assert arr.shape == (2, 4) and arr.dtype == np.float32
    np.testing.assert_allclose(arr, np.array(dets, np.float32))
    assert radar_to_bytes(arr) == raw
    # azimuth positive = to the right (CARLA), so y (left) of the ROS-style point is negative
    xyz = radar_to_xyz(np.array([[0.0, np.pi / 2, 0.0, 10.0]], np.float32))
    np.testing.assert_allclose(xyz[0], [0.0, -10.0, 0.0], atol=1e-5)
    with pytest.raises(ValueError, match="multiple of 16"):
        radar_from_bytes(raw[:-4])


def test_lidar_points_xyz_intensity() -> None:
    pts = [(1.0, -2.0, 0.5, 0.9), (10.0, 3.0, -1.5, 0.1), (0.0, 0.0, 0.0, 0.0)]
    raw = b"".join(struct.pack("<ffff", *p) for p in pts)
    arr = lidar_from_bytes(memoryview(raw))
    np.testing.assert_allclose(arr, np.array(pts, np.float32))
    assert lidar_to_bytes(arr) == raw
    assert lidar_from_bytes(b"").shape == (0, 4)
    with pytest.raises(ValueError, match="lidar"):
        lidar_from_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="lidar points"):
        lidar_to_bytes(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="bytes-like"):
        lidar_from_bytes(12)


def _carla_map(geo_reference: str):
    """A server-free ``carla.Map`` of one straight road whose OpenDRIVE header carries ``geo_reference``."""
    carla = pytest.importorskip("carla")
    xodr = (
        '<?xml version="1.0" standalone="yes"?><OpenDRIVE><header revMajor="1" revMinor="4" name="t" '
        'version="1" north="0" south="0" east="0" west="0"><geoReference><![CDATA['
        f"{geo_reference}]]></geoReference></header>"
        '<road name="r" length="200" id="1" junction="-1"><link/><planView><geometry s="0" x="-100" y="0" '
        'hdg="0" length="200"><line/></geometry></planView><elevationProfile/><lateralProfile/><lanes>'
        '<laneSection s="0"><left/><center><lane id="0" type="none" level="false"/></center><right>'
        '<lane id="-1" type="driving" level="false"><width sOffset="0" a="3.5" b="0" c="0" d="0"/></lane>'
        "</right></laneSection></lanes></road></OpenDRIVE>"
    )
    return carla, carla.Map("t", xodr)


@pytest.mark.parametrize("lat0, lon0", [(49.0, 8.4), (0.0, 0.0), (-33.9, 151.2), (64.1, -21.9)])
def test_gnss_equals_carla_0916_transform_to_geolocation(lat0: float, lon0: float) -> None:
    """The projection of CARLA 0.9.16 itself (its GNSS sensor, Map.transform_to_geolocation), not the
    <= 0.9.15 Mercator that mirrored north-south: +y is north."""
    carla, cmap = _carla_map(f"+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k=1 +x_0=0 +y_0=0 +datum=WGS84")
    locs = np.round(np.random.default_rng(3).uniform(-20000.0, 20000.0, (200, 3)))  # exact in float32
    theirs = np.array([[g.latitude, g.longitude, g.altitude] for g in (
        cmap.transform_to_geolocation(carla.Location(*map(float, p))) for p in locs)])
    np.testing.assert_allclose(location_to_gnss(locs, lat0, lon0), theirs, rtol=0, atol=1e-11)
    north = location_to_gnss(np.array([0.0, 100.0, 0.0]), lat0, lon0)
    assert north[0] > lat0 and north[1] == pytest.approx(lon0)
    back = np.array([[v.x, v.y, v.z] for v in (
        cmap.geolocation_to_transform(carla.GeoLocation(*g)) for g in theirs)])
    np.testing.assert_allclose(gnss_to_location(theirs, lat0, lon0), back, atol=1e-3)  # theirs: float32
    np.testing.assert_allclose(gnss_to_location(location_to_gnss(locs, lat0, lon0), lat0, lon0), locs, atol=1e-6)


def test_gnss_of_the_issue_example_is_north_not_south() -> None:
    """Issue 17: geoReference +lat_0=49 +lon_0=8.4, location (0, 100, 0) -> latitude 49.00089867."""
    g = location_to_gnss(np.array([0.0, 100.0, 0.0]), 49.0, 8.4, 110.0)
    assert g[0] == pytest.approx(49.00089867, abs=1e-8) and g[2] == pytest.approx(110.0)

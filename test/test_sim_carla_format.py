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


def test_gnss_matches_carla_projection() -> None:
    lat0, lon0 = 49.0, 8.4
    g = location_to_gnss(np.zeros(3), lat0, lon0, 100.0)
    np.testing.assert_allclose(g, [lat0, lon0, 100.0], atol=1e-9)
    # CARLA: +x is east (longitude grows), +y is south (latitude falls); 1 m on the Mercator plane is
    # 1 / (R cos(lat0)) rad of longitude.
    east = location_to_gnss(np.array([100.0, 0.0, 0.0]), lat0, lon0)
    south = location_to_gnss(np.array([0.0, 100.0, 2.0]), lat0, lon0)
    dlon = np.degrees(100.0 / (6378137.0 * np.cos(np.radians(lat0))))
    assert east[1] - lon0 == pytest.approx(dlon, rel=1e-9)
    assert south[0] < lat0 and south[2] == pytest.approx(2.0)
    locs = np.array([[12.0, -40.0, 1.5], [-300.0, 250.0, 0.0]])
    np.testing.assert_allclose(
        gnss_to_location(location_to_gnss(locs, lat0, lon0), lat0, lon0), locs, atol=1e-6
    )

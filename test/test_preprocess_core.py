"""Preprocessing: shapes, BGRA handling, HPS, NaN handling, maps, BEV, GPS, and the observation window."""

import math

import numpy as np
import pytest

from beam_tracking_ros.data import preprocess as P
from beam_tracking_ros.data.window import ObservationWindow

CFG = P.PreprocessConfig()


def frame(rng, n_radar=100, n_lidar=3000):
    cam = rng.integers(0, 256, size=(96, 128, 4), dtype=np.uint8)
    radar = np.stack(
        [rng.uniform(-20, 20, n_radar), rng.uniform(-0.7, 0.7, n_radar), rng.uniform(-0.2, 0.2, n_radar),
         rng.uniform(1, 90, n_radar)], axis=1).astype(np.float32)
    lidar = np.stack(
        [rng.uniform(0, 80, n_lidar), rng.uniform(-40, 40, n_lidar), rng.uniform(-6, 2, n_lidar),
         rng.uniform(0, 1, n_lidar)], axis=1).astype(np.float32)
    gnss = np.array([0.0005, 0.0003, 2.0])
    return {"camera": cam, "radar": radar, "lidar": lidar, "gnss": gnss}


def test_shapes_match_output_shapes():
    rng = np.random.default_rng(0)
    out = P.preprocess_frame(frame(rng), CFG)
    shapes = P.output_shapes(CFG)
    for key, value in out.items():
        assert value.shape == shapes[key], key
        assert value.dtype == np.float32, key
        assert np.isfinite(value).all(), key


def test_camera_bgra_to_rgb_and_area_resize():
    img = np.zeros((4, 4, 4), np.uint8)
    img[..., 2] = 255  # red in BGRA
    img[:2, :2, 0] = 255  # blue in the top-left block
    cfg = P.PreprocessConfig(image_size=(2, 2), camera_mean=(0, 0, 0), camera_std=(1, 1, 1))
    cam = P.preprocess_camera(img, cfg)["camera"]
    assert np.allclose(cam[0], 1.0)  # R channel everywhere
    assert cam[2, 0, 0] == pytest.approx(1.0) and cam[2, 1, 1] == pytest.approx(0.0)
    # area averaging of a 2x2 block of [0, 255] pixels
    a = np.array([[0, 255], [255, 255]], dtype=np.float32)[..., None]
    assert P.resize_area(a, (1, 1))[0, 0, 0] == pytest.approx(191.25)


def test_motion_masks_mark_moving_pixels():
    g = np.zeros((3, 1, 4, 4), np.float32)
    g[1, 0, 1, 1] = 1.0  # appears in frame 1
    g[2, 0, 1, 1] = 1.0  # static afterwards
    m = P.motion_masks(g, 0.5)
    assert m.shape == g.shape
    assert m[1, 0, 1, 1] == 1 and m[2].sum() == 0 and m[0, 0, 1, 1] == 1


def test_highest_point_sampling_picks_highest_and_pads():
    det = np.zeros((5, 4), np.float32)
    det[:, 3] = 10.0  # depth
    det[:, 2] = np.radians([1.0, 5.0, -3.0, 3.0, 0.0])  # altitude -> z
    cfg = P.PreprocessConfig(radar_points=3, radar_sampling="height")
    pts, dropped = P.radar_points(det, cfg)
    z = pts[:, 2] * cfg.radar_max_range
    assert np.allclose(z, 10 * np.sin(np.radians([5.0, 3.0, 1.0])), atol=1e-5)
    assert dropped == 0
    cfg8 = P.PreprocessConfig(radar_points=8, radar_sampling="height")
    pts8, _ = P.radar_points(det, cfg8)
    assert pts8[:, 5].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert np.all(pts8[5:] == 0)


def test_sector_hps_drops_static_clutter_and_keeps_nearest_per_sector():
    # 4 sectors over 120 deg (30 deg each); velocity, azimuth, altitude, depth
    det = np.array([
        [-5.0, math.radians(-50), 0.0, 30.0],  # sector 0, far
        [-4.0, math.radians(-45), 0.0, 12.0],  # sector 0, nearer: kept
        [0.1, math.radians(-40), 0.0, 5.0],  # sector 0, nearest but static clutter: dropped
        [6.0, math.radians(20), 0.0, 40.0],  # sector 2
        [0.0, math.radians(50), 0.0, 8.0],  # sector 3, static only -> empty slot
    ], np.float32)
    cfg = P.PreprocessConfig(radar_points=4, radar_fov_deg=120, radar_min_speed=0.5)
    pts, _ = P.radar_points(det, cfg)
    assert pts[:, 5].tolist() == [1, 0, 1, 0]
    assert pts[0, 4] * cfg.radar_max_range == pytest.approx(12.0)
    assert pts[2, 3] * cfg.radar_max_velocity == pytest.approx(6.0)
    assert not pts[[1, 3]].any()
    # the order of the detections in the message does not matter
    perm = np.random.default_rng(0).permutation(len(det))
    assert np.array_equal(P.radar_points(det[perm], cfg)[0], pts)


def test_sector_hps_maps_drop_static_clutter():
    det = np.array([[0.0, 0.0, 0.0, 20.0], [8.0, 0.0, 0.0, 60.0]], np.float32)
    maps, _ = P.radar_detection_maps(det, P.PreprocessConfig(radar_range_bins=10, radar_angle_bins=10))
    assert maps[0, 6].sum() > 0 and maps[0, 2].sum() == 0  # only the moving detection at 60 m


def test_radar_sampling_rejects_unknown():
    with pytest.raises(ValueError, match="radar_sampling"):
        P.PreprocessConfig(radar_sampling="random")
    with pytest.raises(ValueError, match="radar_min_speed"):
        P.PreprocessConfig(radar_min_speed=-1.0)


def test_radar_xyz_from_spherical():
    det = np.array([[-5.0, math.radians(30), 0.0, 20.0]], np.float32)
    pts, _ = P.radar_points(det, P.PreprocessConfig(radar_points=1))
    xyz = pts[0, :3] * 100.0
    assert np.allclose(xyz, [20 * math.cos(math.radians(30)), 20 * math.sin(math.radians(30)), 0], atol=1e-4)
    assert pts[0, 3] == pytest.approx(-5.0 / 30.0)


def test_nan_points_dropped_and_counted():
    rng = np.random.default_rng(1)
    f = frame(rng)
    f["radar"][:7, 2] = np.nan
    f["lidar"][:11, 0] = np.inf
    out, stats = P.preprocess_frame(f, CFG, return_stats=True)
    assert stats == {"radar_dropped": 7, "lidar_dropped": 11}
    assert all(np.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("radar", np.zeros((0, 4), np.float32), "radar: empty"),
        ("radar", np.full((3, 4), np.nan, np.float32), "radar: all 3"),
        ("lidar", np.zeros((10, 3), np.float32), "lidar: expected shape"),
        ("lidar", np.zeros((10, 4), np.int32), "lidar: expected float"),
        ("camera", np.zeros((10, 10, 4), np.float32), "camera: expected uint8"),
        ("camera", np.zeros((10, 10), np.uint8), "camera"),
        ("gnss", np.array([np.nan, 0, 0]), "gnss"),
        ("gnss", np.array([100.0, 0, 0]), "gnss"),
    ],
)
def test_bad_input_raises_preprocess_error(key, value, match):
    f = frame(np.random.default_rng(2))
    f[key] = value
    with pytest.raises(P.PreprocessError, match=match):
        P.preprocess_frame(f, CFG)


def test_empty_allowed_gives_zeros():
    cfg = P.PreprocessConfig(allow_empty=True)
    pts, _ = P.radar_points(np.zeros((0, 4), np.float32), cfg)
    assert pts.shape == (cfg.radar_points, 6) and not pts.any()
    bev, _ = P.lidar_bev(np.zeros((0, 4), np.float32), cfg)
    assert not bev.any()


def test_radar_detection_maps_bins():
    cfg = P.PreprocessConfig(radar_range_bins=10, radar_angle_bins=10, radar_max_range=100.0,
                             radar_fov_deg=90, radar_min_speed=0.0)
    det = np.array([[0.0, 0.0, 0.0, 55.0], [0.0, 0.0, 0.0, 55.0], [29.0, -0.7, 0.0, 5.0]], np.float32)
    maps, _ = P.radar_detection_maps(det, cfg)
    assert maps.shape == (2, 10, 10)
    assert maps[0, 5, 5] == pytest.approx(1.0)  # two detections, the peak
    assert 0 < maps[0, 0, 0] < 1  # one detection at -40 deg, 5 m
    assert maps[1, 0, 9] > 0  # +29 m/s in the last Doppler bin


def test_radar_cube_maps_locate_target():
    s, c, a = 64, 32, 8
    n, m, k = np.meshgrid(np.arange(s), np.arange(c), np.arange(a), indexing="ij")
    rng_bin, dop, spatial = 10, 0.25, 0.125  # cycles per sample / chirp / antenna
    cube = np.exp(2j * np.pi * (rng_bin * n / s + dop * m + spatial * k))
    maps = P.radar_cube_maps(cube, n_angle=32, remove_static=False)
    assert maps.shape == (2, s, 32)
    ra, rd = maps
    r, ang = np.unravel_index(np.argmax(ra), ra.shape)
    assert r == rng_bin and ang == 16 + 4  # fftshift: 0.125 * 32 = bin 4 right of centre
    r2, d = np.unravel_index(np.argmax(rd), rd.shape)
    assert r2 == rng_bin and d == 16 + 8
    with pytest.raises(P.PreprocessError, match="radar"):
        P.radar_cube_maps(np.zeros((4, 4, 4)))


def test_lidar_bev_cells_and_height():
    cfg = P.PreprocessConfig(bev_x_range=(0, 10), bev_y_range=(-5, 5), bev_resolution=1.0,
                             lidar_z_range=(-2, 2))
    pts = np.array([[0.5, -4.5, 0.0, 1], [0.6, -4.4, 1.0, 1], [9.5, 4.5, -2.0, 1], [50, 0, 0, 1]], np.float32)
    bev, _ = P.lidar_bev(pts, cfg)
    assert bev.shape == (3, 10, 10)
    assert bev[0].sum() == 2
    assert bev[1, 0, 0] == pytest.approx(0.75)  # max z = 1 in [-2, 2]
    assert bev[1, 9, 9] == pytest.approx(0.0)
    cfg_ground = P.PreprocessConfig(bev_x_range=(0, 10), bev_y_range=(-5, 5), bev_resolution=1.0,
                                    lidar_z_range=(-2, 2), lidar_min_z=-1.0)
    assert P.lidar_bev(pts, cfg_ground)[0][0].sum() == 1


def test_lidar_range_profile_and_background():
    cfg = P.PreprocessConfig(lidar_feature_bins=4, lidar_feature_fov_deg=180, lidar_max_range=100)
    wall = np.array([[50 * math.cos(t), 50 * math.sin(t), 0, 1] for t in np.radians([-60, -20, 20, 60])],
                    np.float32)
    feat, _ = P.lidar_range_profile(wall, cfg)
    assert np.allclose(feat, 0.5)
    bg = P.estimate_lidar_background([wall, wall], cfg)
    car = np.array([[10 * math.cos(0.3), 10 * math.sin(0.3), 0, 1]], np.float32)
    feat2, _ = P.lidar_range_profile(np.concatenate([wall, car]), cfg, background=bg)
    assert feat2.tolist() == pytest.approx([0, 0, 0.9, 0])


def test_gps_local_metres():
    cfg = P.PreprocessConfig(gps_reference=(0.0, 0.0, 0.0), gps_scale=1.0, gnss_frame="enu")
    g = P.preprocess_gps(np.array([0.0, 0.001, 5.0]), cfg)
    assert g[0] == pytest.approx(math.radians(0.001) * P.EARTH_RADIUS_M, rel=1e-5)
    assert g[1] == pytest.approx(0.0) and g[2] == pytest.approx(5.0)
    multi = P.preprocess_gps(np.array([[0.001, 0.0, 0.0], [1.0, 1.0, 0.0]]), cfg)
    assert multi[1] == pytest.approx(math.radians(0.001) * P.EARTH_RADIUS_M, rel=1e-5)


def test_gps_feature_is_the_world_offset_for_carla_fixes():
    """Fixes projected as CARLA 0.9.16 does (+y of its map north; the simulator's and the bridge's) give
    the target's offset from the RSU in the package's world frame, to a millimetre: the same feature as
    the simulator's geometry, wherever the map's origin is."""
    from beam_tracking_ros.sim.carla_format import location_to_gnss, world_to_carla

    geo = (49.0, 8.4, 110.0)
    rsu, car = np.array([[120.0, -35.0, 6.0]]), np.array([[150.0, -23.0, 1.5]])
    ref = tuple(location_to_gnss(world_to_carla(rsu), *geo)[0])
    fix = location_to_gnss(world_to_carla(car), *geo)[0]
    cfg = P.PreprocessConfig(gps_reference=ref, gps_scale=1.0)
    assert cfg.gnss_frame == "carla"
    np.testing.assert_allclose(P.preprocess_gps(fix, cfg), (car - rsu)[0], atol=1e-3)
    enu = P.preprocess_gps(fix, P.PreprocessConfig(gps_reference=ref, gps_scale=1.0, gnss_frame="enu"))
    assert enu[1] == pytest.approx(-12.0, abs=0.02)  # north is -y of the world frame in a CARLA scene
    with pytest.raises(ValueError, match="gnss_frame"):
        P.PreprocessConfig(gnss_frame="ned")


def test_site_offset_between_an_rsu_fix_and_a_gps_reference():
    ref = (49.0, 8.4, 110.0)
    assert P.site_offset_m(ref, ref) == 0.0
    north = P.site_offset_m((49.01, 8.4, 110.0), ref)
    assert north == pytest.approx(math.radians(0.01) * P.EARTH_RADIUS_M, rel=1e-9)  # ~1.1 km: another site
    assert P.site_offset_m((49.0, 8.4, 113.0), ref) == pytest.approx(3.0)  # a mast height: the same site
    assert P.site_offset_m((49.0, 8.4, 113.0), ref) < P.SITE_TOLERANCE_M < north


def test_config_validation():
    with pytest.raises(ValueError, match="radar_points"):
        P.PreprocessConfig(radar_points=0)
    with pytest.raises(ValueError, match="unknown keys"):
        P.PreprocessConfig.from_dict({"image_sz": [1, 2]})
    assert P.PreprocessConfig.from_dict({"image_size": [32, 48]}).image_size == (32, 48)


# ---------------------------------------------------------------------------------------- window
def test_window_ring_order_and_fill():
    w = ObservationWindow(size=3)
    for t in range(5):
        w.push({"x": np.array([t], np.float32)}, stamp=float(t))
        assert w.fill_ratio == min(t + 1, 3) / 3
    assert w.is_full
    assert w.stack()["x"][:, 0].tolist() == [2, 3, 4]
    assert w.stamps().tolist() == [2, 3, 4]


def test_window_padding_and_reset_on_backwards():
    w = ObservationWindow(size=4)
    w.push({"x": np.ones(2)}, 1.0)
    w.push({"x": np.full(2, 2.0)}, 2.0)
    with pytest.raises(ValueError, match="not full"):
        w.stack()
    assert w.stack(pad="repeat")["x"][:, 0].tolist() == [1, 1, 1, 2]
    assert w.stack(pad="zeros")["x"][:, 0].tolist() == [0, 0, 1, 2]
    assert w.push({"x": np.full(2, 3.0)}, 0.5) is True  # clock jumped back
    assert len(w) == 1 and w.resets == 1
    with pytest.raises(ValueError, match="stamp"):
        w.push({"x": np.zeros(2)}, 0.1, on_backwards="raise")
    with pytest.raises(ValueError, match="shape"):
        w.push({"x": np.zeros(3)}, 9.0)
    with pytest.raises(ValueError, match="keys"):
        w.push({"y": np.zeros(2)}, 9.0)


def test_window_with_preprocessed_frames_and_motion():
    rng = np.random.default_rng(3)
    w = ObservationWindow(size=8)
    for t in range(8):
        w.push(P.preprocess_frame(frame(rng), CFG), stamp=0.1 * t)
    s = w.stack(motion_threshold=CFG.motion_threshold)
    assert s["camera"].shape == (8, 3, 64, 64)
    assert s["radar_points"].shape == (8, 64, 6)
    assert s["camera_motion"].shape == (8, 1, 64, 64)
    assert set(np.unique(s["camera_motion"])) <= {0.0, 1.0}

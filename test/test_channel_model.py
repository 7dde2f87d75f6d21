"""Channel model against hand-computed cases (LoS steering, blockage, path loss, labels, codebook)."""

from __future__ import annotations

import numpy as np
import pytest

from beam_tracking_ros.channel import (
    ArrayConfig,
    ChannelConfig,
    ChannelModel,
    CodebookConfig,
    RsuPose,
    VehicleBoxes,
    Walls,
    beam_powers,
    build_codebook,
    horizon_labels,
    knife_edge_db,
    label_powers,
    optimal_beam,
    steering_vector,
    sum_rss_dbm,
)

CAR = (4.5, 1.8, 1.5)
TRUCK = (8.0, 2.5, 4.0)


def _cars(xy, sizes=None, yaw=None):
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    sizes = np.asarray(sizes if sizes is not None else [CAR] * len(xy), dtype=float)
    center = np.c_[xy, sizes[:, 2] / 2]
    return VehicleBoxes(center, sizes, np.zeros(len(xy)) if yaw is None else yaw)


def _quiet(**kw) -> ChannelConfig:
    """No shadowing, no ground bounce, free space: only what the test names contributes."""
    base = dict(shadowing_db=0.0, ground_reflection=False, pathloss="fspl")
    base.update(kw)
    return ChannelConfig(**base)


def test_single_los_path_selects_steering_beam_towards_vehicle() -> None:
    array = ArrayConfig.ula(64)
    model = ChannelModel(_quiet(array=array, codebook=CodebookConfig(n_az=64, el_center_deg=0.0)))
    # RSU at the antenna height of a car so the LoS elevation is exactly 0.
    z_ant = CAR[2] + 0.1
    rsu = RsuPose((0.0, 0.0, z_ant), yaw=0.0)  # boresight along world +x
    az_beams = model.codebook.directions[:64, 0]
    k = 40
    d = 30.0
    xy = [d * np.cos(az_beams[k]), d * np.sin(az_beams[k])]
    res = model.compute(rsu, _cars(xy))
    assert int(optimal_beam(res.powers_dbm[0])) == k
    # Hand-computed: Ptx - FSPL(d) + 10 log10(N) (array gain) + 10 log10(cos az) (element pattern).
    fspl = 32.45 + 20 * np.log10(d) + 20 * np.log10(28.0)
    expected = 30.0 - fspl + 10 * np.log10(64) + 10 * np.log10(np.cos(az_beams[k]))
    assert res.powers_dbm[0, k] == pytest.approx(expected, abs=0.02)
    assert res.powers_dbm[0].max() - np.sort(res.powers_dbm[0])[-2] > 0.5


def test_blocked_los_switches_optimum_to_wall_reflection() -> None:
    model = ChannelModel(_quiet(codebook=CodebookConfig(n_az=32, max_beams=1)))
    rsu = RsuPose((0.0, -2.0, 2.0), yaw=np.pi / 2)
    walls = Walls([[-100.0, 25.0]], [[100.0, 25.0]], height=20.0, loss_db=6.0)
    target = [20.0, 10.0]
    free = model.compute(rsu, _cars([target]), walls)
    blocked = model.compute(rsu, _cars([target, [10.0, 4.0]], sizes=[CAR, TRUCK]), walls)
    # Angles of the LoS and the wall reflection, in the array frame.
    los_az = free.path_az[0, 0]
    refl_az = free.path_az[0, 1]
    assert free.path_valid[0, 1]
    beam_az = model.codebook.directions[:, 0]
    b_free = int(optimal_beam(free.powers_dbm[0]))
    b_blk = int(optimal_beam(blocked.powers_dbm[0]))
    assert abs(beam_az[b_free] - los_az) < np.radians(6)
    assert blocked.los_blocked[0] and not free.los_blocked[0]
    assert blocked.block_db[0, 0] > 15.0
    assert blocked.block_db[0, 1] == pytest.approx(0.0)
    assert abs(beam_az[b_blk] - refl_az) < np.radians(6)


def test_blockage_is_attenuation_growing_with_blocker_height() -> None:
    model = ChannelModel(_quiet())
    rsu = RsuPose((0.0, -2.0, 2.0), yaw=np.pi / 2)
    losses = []
    for h in (1.9, 2.5, 4.0):
        res = model.compute(rsu, _cars([[20.0, 10.0], [10.0, 4.0]], sizes=[CAR, (4.5, 1.8, h)]))
        losses.append(res.block_db[0, 0])
    assert 0.0 < losses[0] < losses[1] < losses[2]
    # Knife edge: nu = 0 gives 6 dB, far below the edge gives nothing.
    assert knife_edge_db(np.array([0.0]))[0] == pytest.approx(6.0, abs=0.1)
    assert knife_edge_db(np.array([-1.0]))[0] == 0.0


@pytest.mark.parametrize("pathloss,slope", [("fspl", 20.0), ("umi", 21.0)])
def test_power_falls_with_distance_as_pathloss_law(pathloss: str, slope: float) -> None:
    model = ChannelModel(_quiet(pathloss=pathloss))
    z = CAR[2] + 0.1
    rsu = RsuPose((0.0, 0.0, z), yaw=0.0)
    # One vehicle at a time: the near car would otherwise diffract the far car's LoS.
    near = model.compute(rsu, _cars([[5.0, 0.0]])).powers_dbm
    far = model.compute(rsu, _cars([[50.0, 0.0]])).powers_dbm
    drop = near.max() - far.max()
    assert drop == pytest.approx(slope, abs=0.05)


def test_codebook_has_152_patterns_for_64_elements() -> None:
    cb = build_codebook()
    assert cb.array.n_antennas == 64
    assert cb.weights.shape == (152, 64) and cb.weights.dtype == np.complex64
    np.testing.assert_allclose(np.linalg.norm(cb.weights, axis=1), 1.0, rtol=1e-5)
    counts = np.bincount(cb.n_beams_per_pattern)
    assert counts[1] == 32 and counts[2] == 36 and counts[3] == 84
    assert CodebookConfig().size == 152
    # A pair pattern radiates towards both members and not in between.
    pair = int(np.nonzero(cb.n_beams_per_pattern == 2)[0][0])
    m0, m1 = cb.members[pair, :2]
    az = cb.directions[[m0, m1], 0]
    el = cb.directions[m0, 1]
    gain = lambda a: np.abs(steering_vector(cb.array, a, el) @ cb.weights[pair].conj()) ** 2  # noqa: E731
    g_members = gain(az)
    g_mid = gain(np.arcsin(np.sin(az).mean()))
    assert np.all(g_members > 3 * g_mid)
    assert np.all(g_members > 64 / 2 * 0.8)


def test_sum_rss_label_differs_from_single_target() -> None:
    model = ChannelModel(_quiet(codebook=CodebookConfig(max_beams=1)))
    z = CAR[2] + 0.1
    rsu = RsuPose((0.0, 0.0, z), yaw=0.0)
    a_near, a_far = np.radians(-40), np.radians(40)
    veh = _cars([[8 * np.cos(a_near), 8 * np.sin(a_near)], [60 * np.cos(a_far), 60 * np.sin(a_far)]])
    p = model.compute(rsu, veh).powers_dbm
    beam_az = model.codebook.directions[:, 0]
    far = int(optimal_beam(label_powers(p, "single", target=1)))
    both = int(optimal_beam(label_powers(p, "sum_rss")))
    assert abs(beam_az[far] - a_far) < np.radians(6)
    assert abs(beam_az[both] - a_near) < np.radians(6)
    # Linear sum: two equal powers add 3.01 dB.
    assert sum_rss_dbm(np.array([[-60.0, -70.0], [-60.0, -90.0]]))[0] == pytest.approx(-56.99, abs=0.01)


def test_horizon_labels_shift_the_frames() -> None:
    p = np.zeros((6, 4), np.float32)
    p[np.arange(6), [0, 1, 2, 3, 0, 1]] = 1.0
    beams, powers = horizon_labels(p, 3)
    assert beams.shape == (3, 4) and powers.shape == (3, 4, 4)
    np.testing.assert_array_equal(beams[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(beams[2], [2, 3, 0, 1])
    with pytest.raises(ValueError, match="horizon"):
        horizon_labels(p, 6)


@pytest.mark.parametrize(
    "factory,param",
    [
        (lambda: ArrayConfig(n_cols=0), "n_cols"),
        (lambda: ArrayConfig(n_rows=-2), "n_rows"),
        (lambda: ArrayConfig(carrier_ghz=5.0), "carrier_ghz"),
        (lambda: ArrayConfig(kind="upa"), "kind"),
        (lambda: build_codebook(ArrayConfig.ula(8), CodebookConfig(n_az=64)), "n_az"),
        (lambda: build_codebook(ArrayConfig.ura(1, 4), CodebookConfig(n_az=8, multi_grid=9)), "multi_grid"),
        (lambda: build_codebook(ArrayConfig.ura(2, 16), CodebookConfig(n_el=9)), "n_el"),
        (lambda: CodebookConfig(max_beams=4), "max_beams"),
        (lambda: ChannelConfig(pathloss="hata"), "pathloss"),
        (lambda: ChannelConfig(shadowing_db=-1), "shadowing_db"),
        (lambda: label_powers(np.zeros((2, 3)), "max"), "mode"),
        (lambda: label_powers(np.zeros((2, 3)), "single", target=5), "target"),
    ],
)
def test_bad_config_raises_naming_parameter(factory, param: str) -> None:
    with pytest.raises(ValueError, match=param):
        factory()


def test_seeded_rng_is_deterministic_and_shapes() -> None:
    model = ChannelModel()
    rsu = RsuPose((0.0, -3.0, 6.0), np.pi / 2)
    rng_xy = np.random.default_rng(3)
    veh = _cars(np.c_[rng_xy.uniform(-50, 50, 40), rng_xy.uniform(1, 12, 40)])
    walls = Walls([[-100, 15], [100, -4]], [[100, 15], [-100, -4]], 20.0, 7.0)
    a = model.compute(rsu, veh, walls, np.random.default_rng(1)).powers_dbm
    b = model.compute(rsu, veh, walls, np.random.default_rng(1)).powers_dbm
    c = model.compute(rsu, veh, walls, np.random.default_rng(2)).powers_dbm
    assert a.shape == (40, 152) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_ura_steering_is_row_major_kronecker() -> None:
    array = ArrayConfig.ura(4, 16)
    az, el = np.radians(25.0), np.radians(-30.0)
    a = steering_vector(array, az, el)
    assert a.shape == (64,) and a.dtype == np.complex64
    u_y, u_z = np.cos(el) * np.sin(az), np.sin(el)
    r, c = 2, 5  # element n = r * n_cols + c
    expected = np.exp(1j * np.pi * ((c - 7.5) * u_y + (r - 1.5) * u_z))
    assert a[r * 16 + c] == pytest.approx(expected, abs=1e-5)
    assert steering_vector(array, np.zeros((3, 7)), 0.0).shape == (3, 7, 64)


def test_beam_powers_from_pose_arrays_matches_model_and_incoherent_mode() -> None:
    model = ChannelModel(_quiet())
    walls = Walls([[-100.0, 25.0]], [[100.0, 25.0]], height=20.0, loss_db=6.0)
    centers = np.array([[20.0, 10.0, 0.75], [-15.0, 5.0, 0.75]])
    sizes = np.array([CAR, CAR])
    p = beam_powers((0.0, -2.0, 5.0), np.pi / 2, centers, sizes, np.zeros(2), walls, model)
    ref = model.compute(RsuPose((0.0, -2.0, 5.0), np.pi / 2), VehicleBoxes(centers, sizes, np.zeros(2)), walls)
    np.testing.assert_array_equal(p, ref.powers_dbm)
    inc = ChannelModel(_quiet(combine="incoherent"))
    q = beam_powers((0.0, -2.0, 5.0), np.pi / 2, centers, sizes, np.zeros(2), walls, inc)
    # same strongest direction; incoherent power is the sum of per-path powers, so no fading nulls
    assert np.all(np.abs(optimal_beam(p) - optimal_beam(q)) <= 1)
    assert np.all(q.max(1) > p.max(1) - 6.0)

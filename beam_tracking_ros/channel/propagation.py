"""Propagation paths, blockage, path loss and received power per beam per vehicle.

World frame (shared with ``beam_tracking_ros.sim``): right-handed, metres, z up, ground at z = 0.
The CARLA bridge converts CARLA's left-handed locations by negating y (and yaw) before calling in.

Per vehicle the model traces these paths from the RSU array to the vehicle's roof antenna:

* **LoS**;
* **first-order specular reflections off building walls** (vertical rectangles, any number, both
  road sides) by the image method: the transmitter is mirrored in the wall plane, the reflection
  point is where the image-to-receiver segment meets the wall, valid only inside the wall's extent;
* **the ground reflection** (image method in z = 0).

Each path segment is tested against every *other* vehicle's box. A crossing costs a knife-edge
diffraction loss over the blocker's roof (ITU-R P.526 approximation
``J(v) = 6.9 + 20 log10(sqrt((v - 0.1)^2 + 1) + v - 0.1)`` with the Fresnel parameter ``v`` of the
roof edge above the ray), capped per blocker, summed in dB over blockers: a small car grazing the
ray costs a few dB, a truck in front of a car 20-30 dB -- attenuation, not just a flag.

Path loss: free space (20 dB/decade) or 3GPP TR 38.901 UMi street-canyon LoS
(``32.4 + 21 log10(d) + 20 log10(fc)``, 21 dB/decade) over the unfolded path length, plus a
fixed reflection loss per bounce, plus log-normal shadowing (given explicitly or drawn from a
seeded generator). The channel is ``h = sum_l g_l a(u_l)`` with complex gain ``g_l`` (amplitude from
the link budget, phase from the path length and a pi flip per reflection) and ``a`` the array
steering vector towards the path's direction of departure; element pattern cos(theta) in power,
nothing radiated backwards. Received power per beam ``|w_b^H h|^2`` (+ receiver noise) in dBm.

Vectorised over vehicles, paths, segments, blockers, antennas and beams; no Python loop over any
of them.

Public entry point for simulators and the CARLA bridge::

    model = ChannelModel(ChannelConfig(...))
    res = model.compute(rsu, vehicles, walls, rng=None)   # res.powers_dbm: (V, B) float32
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .array import ArrayConfig, steering_from_direction
from .codebook import Codebook, CodebookConfig, build_codebook, check_codebook_fits

PATHLOSS_MODELS = ("fspl", "umi")
COMBINE_MODES = ("coherent", "incoherent")
#: Path order in ChannelResult arrays: index 0 = LoS, 1..K = walls in the given order, K+1 = ground.
LOS, GROUND = "los", "ground"


@dataclass(frozen=True)
class RsuPose:
    """Position (x, y, z) of the array centre in the world frame and heading of its boresight (yaw,
    radians, counter-clockwise from world +x). The array plane is vertical."""

    position: tuple[float, float, float] = (0.0, 0.0, 6.0)
    yaw: float = np.pi / 2


@dataclass
class VehicleBoxes:
    """Vehicles as oriented boxes: centre (V, 3) (box centre, so z = height / 2 on flat ground),
    size (V, 3) (length, width, height), yaw (V,). The receive antenna sits on the roof centre,
    ``antenna_offset`` above it."""

    center: np.ndarray
    size: np.ndarray
    yaw: np.ndarray
    antenna_offset: float = 0.1

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, dtype=np.float64).reshape(-1, 3)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(-1, 3)
        self.yaw = np.asarray(self.yaw, dtype=np.float64).reshape(-1)
        v = self.center.shape[0]
        if self.size.shape[0] != v or self.yaw.shape[0] != v:
            raise ValueError(
                f"vehicles: center {self.center.shape}, size {self.size.shape} "
                f"and yaw {self.yaw.shape} disagree"
            )
        if np.any(self.size <= 0):
            raise ValueError("vehicles.size: box dimensions must be positive")
        if not (np.isfinite(self.center).all() and np.isfinite(self.yaw).all()):
            raise ValueError("vehicles.center/yaw: must be finite")

    def __len__(self) -> int:
        return int(self.center.shape[0])

    @property
    def antenna(self) -> np.ndarray:
        a = self.center.copy()
        a[:, 2] += self.size[:, 2] / 2 + self.antenna_offset
        return a


@dataclass
class Walls:
    """Vertical reflecting wall rectangles: ground-line endpoints p0, p1 (K, 2) and height (K,).
    ``loss_db`` (K,) is the reflection loss of each wall (concrete/glass at mmWave: ~6-10 dB)."""

    p0: np.ndarray
    p1: np.ndarray
    height: np.ndarray
    loss_db: np.ndarray

    def __post_init__(self) -> None:
        self.p0 = np.asarray(self.p0, dtype=np.float64).reshape(-1, 2)
        self.p1 = np.asarray(self.p1, dtype=np.float64).reshape(-1, 2)
        k = self.p0.shape[0]
        self.height = np.broadcast_to(np.asarray(self.height, dtype=np.float64), (k,)).copy()
        self.loss_db = np.broadcast_to(np.asarray(self.loss_db, dtype=np.float64), (k,)).copy()
        if self.p1.shape[0] != k:
            raise ValueError("walls: p0 and p1 must have the same length")
        if np.any(np.linalg.norm(self.p1 - self.p0, axis=1) <= 0):
            raise ValueError("walls: zero-length wall (p0 == p1)")
        if np.any(self.height <= 0):
            raise ValueError("walls.height must be positive")

    @classmethod
    def empty(cls) -> Walls:
        w = cls.__new__(cls)
        w.p0 = np.zeros((0, 2))
        w.p1 = np.zeros((0, 2))
        w.height = np.zeros(0)
        w.loss_db = np.zeros(0)
        return w

    def __len__(self) -> int:
        return int(self.p0.shape[0])

    @property
    def normal(self) -> np.ndarray:
        """Unit horizontal normals (K, 3)."""
        d = self.p1 - self.p0
        n = np.stack([-d[:, 1], d[:, 0], np.zeros(len(self))], axis=1)
        return n / np.linalg.norm(n, axis=1, keepdims=True)


@dataclass(frozen=True)
class ChannelConfig:
    """Link budget and propagation options.

    tx_power_dbm: RSU transmit power. bandwidth_hz / noise_figure_db: receiver thermal noise
    ``-174 + 10 log10(B) + NF`` dBm; n_pilots averages the per-beam measurement noise.
    pathloss: 'fspl' or 'umi'. shadowing_db: log-normal sigma (used when ``compute`` draws it).
    ground_loss_db: reflection loss of the road surface. combine: 'coherent' (``|w^H h|^2``, the
    physical default) or 'incoherent' (sum of per-path powers, as in CRKD eq. (2)).
    """

    array: ArrayConfig = field(default_factory=ArrayConfig)
    codebook: CodebookConfig = field(default_factory=CodebookConfig)
    tx_power_dbm: float = 30.0
    bandwidth_hz: float = 400e6
    noise_figure_db: float = 9.0
    n_pilots: int = 16
    pathloss: str = "umi"
    shadowing_db: float = 4.0
    ground_loss_db: float = 6.0
    ground_reflection: bool = True
    blocker_max_db: float = 35.0
    path_max_block_db: float = 60.0
    combine: str = "coherent"

    def __post_init__(self) -> None:
        if self.pathloss not in PATHLOSS_MODELS:
            raise ValueError(f"pathloss: unknown model {self.pathloss!r}, expected one of {PATHLOSS_MODELS}")
        if self.combine not in COMBINE_MODES:
            raise ValueError(f"combine: unknown mode {self.combine!r}, expected one of {COMBINE_MODES}")
        if self.bandwidth_hz <= 0:
            raise ValueError(f"bandwidth_hz must be positive, got {self.bandwidth_hz}")
        if self.shadowing_db < 0:
            raise ValueError(f"shadowing_db must be >= 0, got {self.shadowing_db}")
        if self.n_pilots <= 0:
            raise ValueError(f"n_pilots must be positive, got {self.n_pilots}")
        if self.ground_loss_db < 0 or self.blocker_max_db < 0 or self.path_max_block_db < 0:
            raise ValueError("ground_loss_db / blocker_max_db / path_max_block_db must be >= 0")
        check_codebook_fits(self.array, self.codebook)  # reject at configuration time, not first use

    @property
    def noise_dbm(self) -> float:
        return -174.0 + 10.0 * np.log10(self.bandwidth_hz) + self.noise_figure_db


def codebook_id(channel: ChannelConfig, n_beams: int) -> str:
    """A short id that changes whenever beam indices would mean other beams (array, carrier, codebook)."""
    a = channel.array
    return f"{a.kind}{a.n_rows}x{a.n_cols}_{a.carrier_ghz:g}ghz_{n_beams}"


@dataclass
class ChannelResult:
    """Output of ChannelModel.compute for V vehicles, L = 2 + K paths, B beams.

    powers_dbm (V, B) float32: received power per beam per vehicle (noise included).
    path_gain_db (V, L): link gain of each path (Ptx - losses), -inf where the path does not exist.
    path_az / path_el (V, L): direction of departure in the array frame (radians).
    path_valid (V, L) bool; block_db (V, L): blockage attenuation of each path.
    los_blocked (V,) bool: the LoS ray crosses another vehicle's box (its roof is above the ray).
    """

    powers_dbm: np.ndarray
    path_gain_db: np.ndarray
    path_az: np.ndarray
    path_el: np.ndarray
    path_valid: np.ndarray
    block_db: np.ndarray
    los_blocked: np.ndarray
    path_names: list[str]


def pathloss_db(d: np.ndarray, carrier_ghz: float, model: str = "umi") -> np.ndarray:
    """Path loss in dB over a (unfolded) distance d in metres (clamped to >= 1 m)."""
    d = np.maximum(np.asarray(d, dtype=np.float64), 1.0)
    if model == "fspl":
        return 32.45 + 20.0 * np.log10(d) + 20.0 * np.log10(carrier_ghz)
    if model == "umi":
        return 32.4 + 21.0 * np.log10(d) + 20.0 * np.log10(carrier_ghz)
    raise ValueError(f"pathloss: unknown model {model!r}, expected one of {PATHLOSS_MODELS}")


def knife_edge_db(nu: np.ndarray) -> np.ndarray:
    """ITU-R P.526 single knife-edge diffraction loss J(nu) in dB (0 for nu <= -0.78)."""
    nu = np.asarray(nu, dtype=np.float64)
    x = nu - 0.1
    j = 6.9 + 20.0 * np.log10(np.sqrt(x * x + 1.0) + x)
    return np.where(nu > -0.78, np.maximum(j, 0.0), 0.0)


def segment_blockage_db(
    start: np.ndarray,
    end: np.ndarray,
    boxes: VehicleBoxes,
    exclude: np.ndarray | None,
    wavelength: float,
    blocker_max_db: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Blockage loss (dB) of segments by boxes.

    start, end: (..., 3); exclude: integer array of the leading shape (broadcastable), the box that
    must not block each segment (the receiving vehicle itself), or None. Returns (loss_db (...),
    hit (...) bool) where hit means the segment passes below the roof of some box inside its
    footprint.

    Two stages, both vectorised: a cheap broad phase (distance of each box centre from each
    segment, as two small matrix products) keeps the few (segment, box) pairs that can touch, and
    the exact slab test + knife-edge loss runs on those pairs only. Why: almost all pairs are far
    apart, and the exact test on every pair dominated the channel model's cost.
    """
    shape = start.shape[:-1]
    loss = np.zeros(shape)
    hit = np.zeros(shape, dtype=bool)
    m = len(boxes)
    if m == 0:
        return loss, hit
    s2 = start[..., :2].reshape(-1, 2)
    d2 = end[..., :2].reshape(-1, 2) - s2
    seg_len2 = np.sqrt((d2 * d2).sum(-1))
    dh = d2 / np.maximum(seg_len2, 1e-9)[:, None]
    nh = np.stack([-dh[:, 1], dh[:, 0]], axis=1)
    cxy = boxes.center[:, :2].T  # (2, M)
    radius = 0.5 * np.hypot(boxes.size[:, 0], boxes.size[:, 1])
    dist = nh @ cxy - (nh * s2).sum(-1)[:, None]  # (VS, M)
    along = dh @ cxy - (dh * s2).sum(-1)[:, None]
    cand = (np.abs(dist) < radius) & (along > -radius) & (along < seg_len2[:, None] + radius)
    if exclude is not None:
        own = np.broadcast_to(np.asarray(exclude), shape).reshape(-1)
        cand[np.arange(own.size), own] = False
    si, bi = np.nonzero(cand)
    if si.size == 0:
        return loss, hit
    st = start.reshape(-1, 3)[si]
    en = end.reshape(-1, 3)[si]
    c = np.cos(boxes.yaw[bi])
    s = np.sin(boxes.yaw[bi])
    ctr = boxes.center[bi]
    sx, sy = st[:, 0] - ctr[:, 0], st[:, 1] - ctr[:, 1]
    ex, ey = en[:, 0] - ctr[:, 0], en[:, 1] - ctr[:, 1]
    lsx, lsy = c * sx + s * sy, -s * sx + c * sy
    dx = c * ex + s * ey - lsx
    dy = -s * ex + c * ey - lsy
    eps = 1e-9
    dx = np.where(np.abs(dx) < eps, eps, dx)
    dy = np.where(np.abs(dy) < eps, eps, dy)
    hl, hw = boxes.size[bi, 0] / 2, boxes.size[bi, 1] / 2
    tx1, tx2 = (-hl - lsx) / dx, (hl - lsx) / dx
    ty1, ty2 = (-hw - lsy) / dy, (hw - lsy) / dy
    t_in = np.maximum(np.maximum(np.minimum(tx1, tx2), np.minimum(ty1, ty2)), 0.0)
    t_out = np.minimum(np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2)), 1.0)
    crosses = t_out > t_in
    sz, ez = st[:, 2], en[:, 2]
    z_in = sz + t_in * (ez - sz)
    z_out = sz + t_out * (ez - sz)
    t_obs = np.where(z_in < z_out, t_in, t_out)
    h = ctr[:, 2] + boxes.size[bi, 2] / 2 - np.minimum(z_in, z_out)  # roof edge above the ray
    seg_len = np.linalg.norm(en - st, axis=-1)
    d1 = np.maximum(t_obs * seg_len, 0.05)
    d2b = np.maximum((1.0 - t_obs) * seg_len, 0.05)
    nu = h * np.sqrt(2.0 * (d1 + d2b) / (wavelength * d1 * d2b))
    pair_loss = np.where(crosses, np.minimum(knife_edge_db(nu), blocker_max_db), 0.0)
    flat_loss = loss.reshape(-1)
    np.add.at(flat_loss, si, pair_loss)
    flat_hit = hit.reshape(-1)
    flat_hit[si[crosses & (h > 0)]] = True
    return loss, hit


class ChannelModel:
    """Array + codebook + propagation: received power per beam per vehicle (see module docstring)."""

    def __init__(self, config: ChannelConfig | None = None, codebook: Codebook | None = None) -> None:
        self.config = config or ChannelConfig()
        self.array = self.config.array
        self.codebook = codebook or build_codebook(self.array, self.config.codebook)
        # conj once: y_b = w_b^H h  ->  (V, N) @ (N, B)
        self._wh = np.ascontiguousarray(self.codebook.weights.conj().T)

    @property
    def n_beams(self) -> int:
        return self.codebook.size

    @property
    def noise_dbm(self) -> float:
        """Receiver thermal noise power (dBm) over the bandwidth, before pilot averaging."""
        return float(self.config.noise_dbm)

    def compute(
        self,
        rsu: RsuPose,
        vehicles: VehicleBoxes,
        walls: Walls | None = None,
        rng: np.random.Generator | None = None,
        shadow_db: np.ndarray | None = None,
    ) -> ChannelResult:
        """Trace paths, apply blockage / path loss / shadowing and return per-beam powers.

        shadow_db: (V,) or (V, L) shadowing in dB added to the loss; when None it is drawn i.i.d.
        from ``rng`` with sigma ``config.shadowing_db`` (no shadowing when rng is None).
        rng also draws the receiver noise of each beam measurement; with rng None the mean noise
        power is added instead, so the result is deterministic.
        """
        cfg = self.config
        walls = walls if walls is not None else Walls.empty()
        lam = self.array.wavelength
        tx = np.asarray(rsu.position, dtype=np.float64)
        rx = vehicles.antenna  # (V, 3)
        nv, nk = len(vehicles), len(walls)
        nl = 2 + nk
        names = [LOS] + [f"wall{k}" for k in range(nk)] + [GROUND]
        # ---- image method: image sources (L-1 reflectors) -------------------------------------
        # Reflector planes: walls (point on plane, normal) and the ground.
        pts = np.concatenate([np.c_[walls.p0, np.zeros(nk)], np.zeros((1, 3))], axis=0)  # (R, 3)
        nrm = np.concatenate([walls.normal, np.array([[0.0, 0.0, 1.0]])], axis=0)
        img = tx - 2.0 * ((tx - pts) * nrm).sum(-1, keepdims=True) * nrm  # (R, 3)
        # Reflection point: where image->rx crosses the plane.
        d = rx[:, None, :] - img[None, :, :]  # (V, R, 3)
        den = (d * nrm).sum(-1)
        num = ((pts - img) * nrm).sum(-1)[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = num / den
        valid_r = (t > 0) & (t < 1) & np.isfinite(t)
        t = np.where(valid_r, t, 0.5)
        p_ref = img[None] + t[..., None] * d  # (V, R, 3)
        if nk:
            wd = walls.p1 - walls.p0
            wl = np.linalg.norm(wd, axis=1)
            along = ((p_ref[:, :nk, :2] - walls.p0) * wd).sum(-1) / wl  # (V, K)
            valid_r[:, :nk] &= (along >= 0) & (along <= wl) & (p_ref[:, :nk, 2] >= 0)
            valid_r[:, :nk] &= p_ref[:, :nk, 2] <= walls.height
        if not cfg.ground_reflection:
            valid_r[:, -1] = False
        # ---- path lengths, directions of departure ----------------------------------------------
        los_vec = rx - tx  # (V, 3)
        length = np.empty((nv, nl))
        length[:, 0] = np.linalg.norm(los_vec, axis=1)
        length[:, 1:] = np.linalg.norm(d, axis=-1)
        first = np.empty((nv, nl, 3))
        first[:, 0] = los_vec
        first[:, 1:] = p_ref - tx
        u = first / np.maximum(np.linalg.norm(first, axis=-1, keepdims=True), 1e-9)
        cy, sy = np.cos(rsu.yaw), np.sin(rsu.yaw)
        ul = np.stack([cy * u[..., 0] + sy * u[..., 1], -sy * u[..., 0] + cy * u[..., 1], u[..., 2]], -1)
        valid = np.empty((nv, nl), dtype=bool)
        valid[:, 0] = True
        valid[:, 1:] = valid_r
        valid &= ul[..., 0] > 0  # nothing radiated behind the panel
        # Only existing paths go further: with many facades most wall reflections fall outside
        # their wall, and compacting to the valid (vehicle, path) pairs keeps the cost ~linear in
        # the number of real paths.
        vi, li = np.nonzero(valid)
        n_p = vi.size
        # ---- blockage: segments tx->rx (LoS), tx->P and P->rx (reflections) ---------------------
        refl_p = li > 0
        pr = p_ref[vi[refl_p], li[refl_p] - 1]
        seg_s = np.concatenate([np.broadcast_to(tx, (n_p, 3)), pr])
        seg_e = np.concatenate([np.where(refl_p[:, None], 0.0, rx[vi]), rx[vi[refl_p]]])
        seg_e[:n_p][refl_p] = pr
        seg_path = np.concatenate([np.arange(n_p), np.nonzero(refl_p)[0]])
        seg_owner = vi[seg_path]
        seg_loss, seg_hit = segment_blockage_db(seg_s, seg_e, vehicles, seg_owner, lam, cfg.blocker_max_db)
        block_p = np.minimum(np.bincount(seg_path, weights=seg_loss, minlength=n_p), cfg.path_max_block_db)
        block = np.zeros((nv, nl))
        block[vi, li] = block_p
        los_blocked = np.zeros(nv, dtype=bool)
        is_los = li == 0
        los_blocked[vi[is_los]] = seg_hit[:n_p][is_los]
        # ---- link budget ------------------------------------------------------------------------
        refl = np.zeros((nv, nl))
        refl[:, 1:1 + nk] = walls.loss_db
        refl[:, -1] = cfg.ground_loss_db
        if shadow_db is None:
            draw = rng is not None and cfg.shadowing_db > 0
            shadow = rng.normal(0.0, cfg.shadowing_db, (nv, nl)) if draw else np.zeros((nv, nl))
        else:
            shadow = np.broadcast_to(np.asarray(shadow_db, dtype=np.float64).reshape(nv, -1), (nv, nl))
        pl = pathloss_db(length[vi, li], self.array.carrier_ghz, cfg.pathloss)
        gain_p = cfg.tx_power_dbm - pl - refl[vi, li] - block_p - shadow[vi, li]
        gain_db = np.full((nv, nl), -np.inf)
        gain_db[vi, li] = gain_p
        u_p = ul[vi, li]
        amp = np.sqrt(10.0 ** (gain_p / 10.0) * u_p[:, 0])  # sqrt(mW), cos(theta) element power pattern
        a = steering_from_direction(self.array, u_p)  # (P, N)
        noise_mw = 10.0 ** (cfg.noise_dbm / 10.0) / cfg.n_pilots
        if cfg.combine == "coherent":
            phase = -2.0 * np.pi * np.mod(length[vi, li] / lam, 1.0) + np.where(refl_p, np.pi, 0.0)
            g = np.zeros((nv, n_p), np.complex64)
            g[vi, np.arange(n_p)] = amp * np.exp(1j * phase)
            y = (g @ a) @ self._wh  # (V, N) -> (V, B)
            if rng is not None:
                nz = rng.standard_normal((2, nv, self.n_beams), dtype=np.float32)
                nz *= np.float32(np.sqrt(noise_mw / 2))
                y = y + (nz[0] + 1j * nz[1])
                p = y.real**2 + y.imag**2
            else:
                p = y.real**2 + y.imag**2 + noise_mw
        else:
            resp = a @ self._wh  # (P, B)
            g2 = np.zeros((nv, n_p), np.float32)
            g2[vi, np.arange(n_p)] = amp**2
            p = g2 @ (resp.real**2 + resp.imag**2) + noise_mw
        powers = (10.0 * np.log10(np.maximum(p, 1e-30))).astype(np.float32)
        return ChannelResult(
            powers_dbm=powers,
            path_gain_db=gain_db,
            path_az=np.arctan2(ul[..., 1], ul[..., 0]),
            path_el=np.arcsin(np.clip(ul[..., 2], -1, 1)),
            path_valid=valid,
            block_db=block,
            los_blocked=los_blocked,
            path_names=names,
        )


def beam_powers(
    rsu_position: np.ndarray,
    rsu_yaw: float,
    vehicle_centers: np.ndarray,
    vehicle_sizes: np.ndarray,
    vehicle_yaws: np.ndarray,
    walls: Walls | None = None,
    model: ChannelModel | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Per-beam received power (V, B) dBm from plain pose arrays (for the CARLA bridge).

    Positions in the right-handed world frame (negate CARLA's y and yaw first).
    """
    model = model or ChannelModel()
    rsu = RsuPose(tuple(np.asarray(rsu_position, dtype=float).tolist()), float(rsu_yaw))
    boxes = VehicleBoxes(vehicle_centers, vehicle_sizes, vehicle_yaws)
    return model.compute(rsu, boxes, walls, rng).powers_dbm

"""RSU sensor models (camera, LiDAR, radar, GNSS) producing CARLA's raw formats.

Speed: the camera and LiDAR are static on the pole, so everything that depends only on the static
scene (the per-pixel background image and depth, the per-ray range to ground and facades) is
computed once at start-up; per frame only the vehicles are drawn / ray-cast, each against the
small pixel box / ray block it covers (culling), with numpy masks.

Weather, as real sensors degrade:

* camera: night = dark scene, headlights/taillights and lit windows, more sensor noise (high gain);
  rain = dimmer, wet-dark road, streaks, light haze, more noise; fog = contrast falls with depth
  (blend towards the fog colour with ``1 - exp(-d / visibility)``);
* LiDAR: two-way extinction ``exp(-2 alpha d)`` of the return intensity, weak returns and a random
  fraction dropped, spurious near-range returns from droplets (rain) and backscatter (fog), more
  range noise; night has no effect;
* radar: barely affected: in rain slightly more clutter, noise and missed detections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import CameraConfig, LidarConfig, RadarConfig, SimConfig
from .scene import Scene

# Box faces by corner index; corners are (+-L/2, +-W/2, +-H/2) with bit order (x, y, z).
_CORNER_SIGNS = (
    np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float) / 2
)
_FACES = np.array([[4, 6, 7, 5], [0, 1, 3, 2], [2, 3, 7, 6], [0, 4, 5, 1], [1, 5, 7, 3], [0, 2, 6, 4]])
_FACE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)
_FACE_SHADE = np.array([0.85, 0.85, 0.7, 0.7, 1.0, 0.3])


@dataclass(frozen=True)
class WeatherEffects:
    ambient: float
    cam_noise: float
    fog_visibility: float  # metres; inf = clear
    fog_colour: tuple[float, float, float]
    lights: bool
    streaks: bool
    lidar_extinction: float  # 1/m
    lidar_drop: float
    lidar_spurious: float  # fraction of rays with a spurious return
    lidar_spurious_range: tuple[float, float]
    lidar_noise_scale: float
    radar_noise_scale: float
    radar_clutter_scale: float
    radar_miss: float


WEATHER_EFFECTS = {
    "day": WeatherEffects(
        1.0, 2.0, np.inf, (200, 200, 200), False, False, 0.0, 0.02, 0.0, (0, 0), 1.0, 1.0, 1.0, 0.0
    ),
    "night": WeatherEffects(
        0.16, 7.0, np.inf, (20, 20, 20), True, False, 0.0, 0.02, 0.0, (0, 0), 1.0, 1.0, 1.0, 0.0
    ),
    "rain": WeatherEffects(
        0.6, 4.0, 300.0, (150, 150, 145), True, True, 0.012, 0.12, 0.012, (0.5, 8.0), 2.0, 1.2, 1.4, 0.05
    ),
    "fog": WeatherEffects(
        0.85, 3.0, 25.0, (200, 200, 195), True, False, 0.05, 0.15, 0.03, (1.0, 20.0), 1.5, 1.05, 1.0, 0.01
    ),
}


def box_corners(center: np.ndarray, size: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(V, 8, 3) world corners of oriented boxes."""
    local = _CORNER_SIGNS[None] * size[:, None, :]
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + center[:, None, :]


def _sensor_axes(yaw: float, pitch: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward, left, up unit vectors of a sensor (right-handed world)."""
    f = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    left = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    up = np.cross(f, left)
    return f, left, up


def _ray_scene(
    scene: Scene, origin: np.ndarray, dirs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static ray casting against the ground and building facades.

    dirs (..., 3) unit. Returns (t, kind, building index) with kind 0 = sky/none, 1 = ground,
    2 = facade; t = inf for no hit.
    """
    t = np.full(dirs.shape[:-1], np.inf)
    kind = np.zeros(dirs.shape[:-1], dtype=np.int8)
    bidx = np.full(dirs.shape[:-1], -1, dtype=np.int64)
    dz = dirs[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        tg = np.where(dz < -1e-9, -origin[2] / dz, np.inf)
    t = np.where(tg < t, tg, t)
    kind[np.isfinite(tg)] = 1
    x0, x1, side, height = scene.building_arrays()
    for sgn in (-1.0, 1.0):
        sel = np.nonzero(side == sgn)[0]
        order = sel[np.argsort(x0[sel])]
        bx0, bx1, bh = x0[order], x1[order], height[order]
        with np.errstate(divide="ignore", invalid="ignore"):
            tw = (sgn * scene.facade_y - origin[1]) / dirs[..., 1]
        tw = np.where(tw > 0, tw, np.inf)
        px = origin[0] + np.where(np.isfinite(tw), tw, 0) * dirs[..., 0]
        pz = origin[2] + np.where(np.isfinite(tw), tw, 0) * dirs[..., 2]
        j = np.clip(np.searchsorted(bx0, px, side="right") - 1, 0, len(bx0) - 1)
        inside = (px >= bx0[j]) & (px <= bx1[j]) & (pz >= 0) & (pz <= bh[j]) & np.isfinite(tw)
        better = inside & (tw < t)
        t = np.where(better, tw, t)
        kind[better] = 2
        bidx[better] = order[j[better]]
    return t, kind, bidx


class Camera:
    """Pinhole camera on the RSU pole rendering (H, W, 4) BGRA frames."""

    def __init__(self, scene: Scene, cfg: CameraConfig, weather: str, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.fx = cfg.width / (2.0 * np.tan(np.radians(cfg.fov_deg) / 2.0))
        self.cx, self.cy = cfg.width / 2.0, cfg.height / 2.0
        rsu = scene.rsu
        self.origin = np.array([rsu.position[0], rsu.position[1], cfg.mount_height])
        f, left, up = _sensor_axes(rsu.yaw, np.radians(cfg.pitch_deg))
        self.f, self.right, self.down = f, -left, -up
        self.we = WEATHER_EFFECTS[weather]
        self.weather = weather
        self._render_background(scene)
        n = cfg.width * cfg.height * 3
        self._noise = np.round(rng.standard_normal(n + 8191) * self.we.cam_noise).astype(np.int16)
        if self.we.streaks:
            self._streaks = [self._make_streaks(rng) for _ in range(4)]

    def _render_background(self, scene: Scene) -> None:
        cfg, we = self.cfg, self.we
        v, u = np.mgrid[0 : cfg.height, 0 : cfg.width].astype(np.float64)
        d = (
            self.f[None, None]
            + ((u - self.cx + 0.5) / self.fx)[..., None] * self.right
            + ((v - self.cy + 0.5) / self.fx)[..., None] * self.down
        )
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        t, kind, bidx = _ray_scene(scene, self.origin, d)
        p = self.origin + np.where(np.isfinite(t), t, 0)[..., None] * d
        img = np.empty((cfg.height, cfg.width, 3), np.float32)
        # sky gradient
        img[:] = np.array([235, 200, 150], np.float32) * (0.9 + 0.1 * (v / cfg.height))[..., None]
        ground = kind == 1
        ay = np.abs(p[..., 1])
        road = ground & (ay <= scene.half_road)
        col = np.where(road[..., None], np.float32([80, 80, 85]), np.float32([170, 170, 165]))
        if self.weather == "rain":
            col = np.where(road[..., None], np.float32([55, 55, 58]), col)
        w = scene.config.lane_width
        mark = road & (ay < 0.2)
        yellow = mark.copy()
        for k in range(1, scene.config.lanes):
            mark |= road & (np.abs(ay - k * w) < 0.08) & (np.mod(p[..., 0], 9.0) < 3.0)
        mark |= road & (np.abs(ay - scene.half_road + 0.15) < 0.1)
        col = np.where(mark[..., None], np.float32([235, 235, 235]), col)
        col = np.where(yellow[..., None], np.float32([40, 200, 230]), col)
        img[ground] = col[ground]
        fac = kind == 2
        if fac.any():
            bcol = np.stack([b.colour for b in scene.buildings])[bidx[fac]]
            px, pz = p[..., 0][fac], p[..., 2][fac]
            window = (np.mod(px, 4.0) > 1.2) & (np.mod(px, 4.0) < 3.2) & (np.mod(pz, 3.5) > 1.0)
            window &= (np.mod(pz, 3.5) < 2.6) & (pz > 3.0)
            lit = (np.floor(px / 4.0) * 7 + np.floor(pz / 3.5) * 13) % 5 == 0
            wcol = np.where(
                (lit & we.lights & (self.weather == "night"))[:, None],
                np.float32([120, 220, 255]) / max(we.ambient, 1e-3),
                np.float32([90, 70, 60]),
            )
            img[fac] = np.where(window[:, None], wcol, bcol)
        img *= we.ambient
        self.depth = np.where(np.isfinite(t), t, 1e4).astype(np.float32)
        if np.isfinite(we.fog_visibility):
            a = (1.0 - np.exp(-self.depth / we.fog_visibility))[..., None]
            img = img * (1 - a) + np.float32(we.fog_colour) * a
        self.background = np.clip(img, 0, 255).astype(np.float32)

    def _make_streaks(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.cfg
        m = np.zeros((cfg.height, cfg.width), np.float32)
        n = cfg.width * cfg.height // 300
        xs = rng.integers(0, cfg.width, n)
        ys = rng.integers(0, cfg.height, n)
        ln = rng.integers(3, 9, n)
        for k in range(9):
            yy = np.clip(ys + k, 0, cfg.height - 1)
            m[yy[k < ln], xs[k < ln]] = 45.0
        return m

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> pixel coords (..., 2) and depth (...)."""
        d = pts - self.origin
        z = d @ self.f
        x = d @ self.right
        y = d @ self.down
        zs = np.maximum(z, 1e-6)
        return np.stack([self.fx * x / zs + self.cx, self.fx * y / zs + self.cy], axis=-1), z

    def _fill(self, img: np.ndarray, quad: np.ndarray, colour: np.ndarray) -> None:
        h, w = img.shape[:2]
        x0 = max(int(np.floor(quad[:, 0].min())), 0)
        x1 = min(int(np.ceil(quad[:, 0].max())) + 1, w)
        y0 = max(int(np.floor(quad[:, 1].min())), 0)
        y1 = min(int(np.ceil(quad[:, 1].max())) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
        q = quad.astype(np.float32)
        e = np.roll(q, -1, axis=0) - q
        area = np.sum(q[:, 0] * np.roll(q[:, 1], -1) - np.roll(q[:, 0], -1) * q[:, 1])
        sgn = np.float32(1.0 if area >= 0 else -1.0)
        inside = np.ones((y1 - y0, x1 - x0), bool)
        for k in range(4):
            inside &= sgn * (e[k, 0] * (ys - q[k, 1]) - e[k, 1] * (xs - q[k, 0])) >= 0
        img[y0:y1, x0:x1][inside] = colour

    def _disc(self, img: np.ndarray, c: np.ndarray, r: float, colour: np.ndarray) -> None:
        h, w = img.shape[:2]
        x0, x1 = max(int(c[0] - r), 0), min(int(c[0] + r) + 2, w)
        y0, y1 = max(int(c[1] - r), 0), min(int(c[1] + r) + 2, h)
        if x0 >= x1 or y0 >= y1:
            return
        ys = np.arange(y0, y1)[:, None] + 0.5 - c[1]
        xs = np.arange(x0, x1)[None, :] + 0.5 - c[0]
        img[y0:y1, x0:x1][(xs * xs + ys * ys) <= r * r] = colour

    def render(
        self,
        center: np.ndarray,
        size: np.ndarray,
        yaw: np.ndarray,
        colour: np.ndarray,
        vtype: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        we = self.we
        img = self.background.copy()
        if len(center):
            # cars get a glass cabin box on a lower body: reads as a car, not a brick
            is_car = vtype == 0
            body_size = size.copy()
            body_center = center.copy()
            body_size[is_car, 2] *= 0.55
            body_center[is_car, 2] = body_size[is_car, 2] / 2
            cab_idx = np.nonzero(is_car)[0]
            cab_size = size[cab_idx] * np.array([0.55, 0.92, 0.45])
            cab_center = center[cab_idx].copy()
            cab_center[:, 2] = body_size[cab_idx, 2] + cab_size[:, 2] / 2
            cab_center[:, :2] -= 0.05 * size[cab_idx, :1] * np.c_[np.cos(yaw[cab_idx]), np.sin(yaw[cab_idx])]
            all_c = np.concatenate([body_center, cab_center])
            all_s = np.concatenate([body_size, cab_size])
            all_yaw = np.concatenate([yaw, yaw[cab_idx]])
            all_col = np.concatenate([colour, np.tile(np.float32([70, 55, 45]), (cab_idx.size, 1))])
            owner = np.concatenate([np.arange(len(center)), cab_idx])
            corners = box_corners(all_c, all_s, all_yaw)  # (K, 8, 3)
            pix, depth = self.project(corners)
            ok = (depth > 0.5).all(axis=1)
            ok &= (pix[..., 0].max(1) >= 0) & (pix[..., 0].min(1) < self.cfg.width)
            ok &= (pix[..., 1].max(1) >= 0) & (pix[..., 1].min(1) < self.cfg.height)
            dist = np.linalg.norm(all_c - self.origin, axis=1)
            # painter's order: far first; a cabin after its own body
            order = np.lexsort((np.arange(len(all_c)), -np.round(dist[owner], 3)))
            c, s = np.cos(all_yaw), np.sin(all_yaw)
            rot = np.stack(
                [
                    np.stack([c, -s, 0 * c], -1),
                    np.stack([s, c, 0 * c], -1),
                    np.tile([0.0, 0.0, 1.0], (len(c), 1)),
                ],
                axis=1,
            )  # (K, 3, 3)
            normals = np.einsum("kij,fj->kfi", rot, _FACE_NORMALS)
            half = all_s / 2
            face_c = all_c[:, None, :] + np.einsum("kfi,kf->kfi", normals, (np.abs(_FACE_NORMALS) @ half.T).T)
            visible = np.einsum("kfi,kfi->kf", normals, face_c - self.origin) < 0
            fog_a = 0.0 if not np.isfinite(we.fog_visibility) else 1.0 - np.exp(-dist / we.fog_visibility)
            fog_a = np.broadcast_to(np.asarray(fog_a, dtype=np.float32), dist.shape)
            fogc = np.float32(we.fog_colour)
            for k in order:
                if not ok[k]:
                    continue
                for fi in np.nonzero(visible[k])[0]:
                    col = all_col[k] * _FACE_SHADE[fi] * we.ambient
                    col = col * (1 - fog_a[k]) + fogc * fog_a[k]
                    self._fill(img, pix[k, _FACES[fi]], col)
                if we.lights and owner[k] == k:
                    self._lights(img, all_c[k], all_s[k], all_yaw[k], visible[k], fog_a[k])
        out = np.empty((self.cfg.height, self.cfg.width, 4), np.uint8)
        off = int(rng.integers(0, 8192))
        n = self.cfg.width * self.cfg.height * 3
        noisy = img.reshape(-1) + self._noise[off : off + n]
        if we.streaks:
            noisy = (
                noisy.reshape(self.cfg.height, self.cfg.width, 3)
                + self._streaks[int(rng.integers(4))][..., None]
            )
        out[..., :3] = np.clip(noisy, 0, 255).reshape(self.cfg.height, self.cfg.width, 3)
        out[..., 3] = 255
        return out

    def _lights(
        self, img: np.ndarray, c: np.ndarray, s: np.ndarray, yaw: float, vis: np.ndarray, fog: float
    ) -> None:
        fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        left = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
        for face, sign, colour in (
            (0, 1.0, np.float32([210, 245, 255])),
            (1, -1.0, np.float32([30, 30, 230])),
        ):
            if not vis[face]:
                continue
            base = c + sign * fwd * (s[0] / 2 + 0.02)
            lamps = np.stack([base + left * (s[1] / 2 - 0.3), base - left * (s[1] / 2 - 0.3)])
            lamps[:, 2] = 0.7
            pix, z = self.project(lamps)
            for p, zz in zip(pix, z):
                if zz > 0.5:
                    r = max(1.0, (0.35 if face == 0 else 0.2) * self.fx / zz)
                    self._disc(img, p, r, colour * (1 - 0.5 * fog) + 0.5 * fog * 255)


class Lidar:
    """Ray-casting LiDAR on the RSU pole; output (N, 4) float32 x, y, z, intensity (CARLA frame)."""

    def __init__(self, scene: Scene, cfg: LidarConfig, weather: str) -> None:
        self.cfg = cfg
        self.we = WEATHER_EFFECTS[weather]
        rsu = scene.rsu
        self.origin = np.array([rsu.position[0], rsu.position[1], cfg.mount_height])
        self.yaw = rsu.yaw
        n_cols = max(round(cfg.horizontal_fov_deg / cfg.h_resolution_deg), 1)
        self.full_circle = cfg.horizontal_fov_deg >= 360.0
        az0 = -np.radians(cfg.horizontal_fov_deg) / 2
        self.az_step = np.radians(cfg.horizontal_fov_deg) / n_cols
        self.az = az0 + (np.arange(n_cols) + 0.5) * self.az_step  # relative to sensor yaw, left positive
        self.el = np.radians(np.linspace(cfg.lower_fov_deg, cfg.upper_fov_deg, cfg.channels))
        ce = np.cos(self.el)[:, None]
        self.dir_local = np.stack(
            np.broadcast_arrays(ce * np.cos(self.az), ce * np.sin(self.az), np.sin(self.el)[:, None]), axis=-1
        )  # (C, A, 3)
        cy, sy = np.cos(self.yaw), np.sin(self.yaw)
        dl = self.dir_local
        self.dir_world = np.stack(
            [cy * dl[..., 0] - sy * dl[..., 1], sy * dl[..., 0] + cy * dl[..., 1], dl[..., 2]], -1
        )
        t, kind, _ = _ray_scene(scene, self.origin, self.dir_world)
        self.static_t = np.where(t <= cfg.range_m, t, np.inf)
        p = self.origin + np.where(np.isfinite(t), t, 0)[..., None] * self.dir_world
        road = np.abs(p[..., 1]) <= scene.half_road
        self.static_refl = np.where(kind == 2, 0.6, np.where(road, 0.25, 0.45)).astype(np.float32)
        # CARLA frame: x fwd, y right, z up
        self.dir_carla = (self.dir_local * np.array([1.0, -1.0, 1.0])).astype(np.float32)

    def scan(
        self, center: np.ndarray, size: np.ndarray, yaw: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        cfg, we = self.cfg, self.we
        t = self.static_t.copy()
        refl = self.static_refl.copy()
        n_cols = self.az.size
        if len(center):
            corners = box_corners(center, size, yaw) - self.origin  # (V, 8, 3)
            az_c = np.arctan2(center[:, 1] - self.origin[1], center[:, 0] - self.origin[0]) - self.yaw
            az_corner = np.arctan2(corners[..., 1], corners[..., 0]) - self.yaw
            rel = np.angle(np.exp(1j * (az_corner - az_c[:, None])))
            amin = az_c + rel.min(1)
            amax = az_c + rel.max(1)
            horiz = np.hypot(corners[..., 0], corners[..., 1])
            elev = np.arctan2(corners[..., 2], horiz)
            emin, emax = elev.min(1), elev.max(1)
            near = np.linalg.norm(center - self.origin, axis=1) < cfg.range_m + 10
            c0 = np.floor((amin - self.az[0]) / self.az_step).astype(int)
            c1 = np.ceil((amax - self.az[0]) / self.az_step).astype(int) + 1
            r0 = np.searchsorted(self.el, emin) - 1
            r1 = np.searchsorted(self.el, emax) + 1
            cyaw, syaw = np.cos(yaw), np.sin(yaw)
            for i in np.nonzero(near)[0]:
                rows = np.arange(max(r0[i], 0), min(r1[i], self.el.size))
                cols = np.arange(c0[i], c1[i])
                cols = np.mod(cols, n_cols) if self.full_circle else cols[(cols >= 0) & (cols < n_cols)]
                if rows.size == 0 or cols.size == 0:
                    continue
                d = self.dir_world[rows[:, None], cols[None, :]]  # (r, c, 3)
                o = self.origin - center[i]
                # into box frame
                ox, oy = cyaw[i] * o[0] + syaw[i] * o[1], -syaw[i] * o[0] + cyaw[i] * o[1]
                dx = cyaw[i] * d[..., 0] + syaw[i] * d[..., 1]
                dy = -syaw[i] * d[..., 0] + cyaw[i] * d[..., 1]
                dz = d[..., 2]
                h = size[i] / 2
                with np.errstate(divide="ignore", invalid="ignore"):
                    t1x, t2x = (-h[0] - ox) / dx, (h[0] - ox) / dx
                    t1y, t2y = (-h[1] - oy) / dy, (h[1] - oy) / dy
                    t1z, t2z = (-h[2] - o[2]) / dz, (h[2] - o[2]) / dz
                tn = np.maximum(np.maximum(np.fmin(t1x, t2x), np.fmin(t1y, t2y)), np.fmin(t1z, t2z))
                tf = np.minimum(np.minimum(np.fmax(t1x, t2x), np.fmax(t1y, t2y)), np.fmax(t1z, t2z))
                hit = (tf >= tn) & (tn > 0)
                blk = t[rows[:, None], cols[None, :]]
                better = hit & (tn < blk) & (tn <= cfg.range_m)
                if better.any():
                    rr, cc = np.nonzero(better)
                    t[rows[rr], cols[cc]] = tn[rr, cc]
                    refl[rows[rr], cols[cc]] = 0.8
        valid = np.isfinite(t)
        tv = t[valid]
        intensity = refl[valid] * np.exp(-(cfg.atmosphere_attenuation_rate + 2 * we.lidar_extinction) * tv)
        keep = (rng.random(tv.size) >= we.lidar_drop) & (intensity > 0.02)
        tv = tv[keep] + rng.normal(0.0, cfg.range_noise_m * we.lidar_noise_scale, keep.sum())
        pts = self.dir_carla[valid][keep] * tv[:, None].astype(np.float32)
        out = [np.c_[pts, intensity[keep]].astype(np.float32)]
        if we.lidar_spurious > 0:
            n_sp = rng.poisson(we.lidar_spurious * self.dir_carla[..., 0].size)
            ridx = rng.integers(0, self.dir_carla[..., 0].size, n_sp)
            r = rng.uniform(*we.lidar_spurious_range, n_sp)
            sp = self.dir_carla.reshape(-1, 3)[ridx] * r[:, None].astype(np.float32)
            out.append(np.c_[sp, rng.uniform(0.0, 0.08, n_sp)].astype(np.float32))
        return np.concatenate(out, axis=0)


class Radar:
    """Radar on the RSU pole; output (N, 4) float32 [velocity, azimuth, altitude, depth]."""

    RCS_SCALE = np.array([1.0, 1.4, 2.5])

    def __init__(self, scene: Scene, cfg: RadarConfig, weather: str) -> None:
        self.cfg = cfg
        self.we = WEATHER_EFFECTS[weather]
        rsu = scene.rsu
        self.origin = np.array([rsu.position[0], rsu.position[1], cfg.mount_height])
        self.f, self.left, self.up = _sensor_axes(rsu.yaw, np.radians(cfg.pitch_deg))

    def _angles(self, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lx, ly, lz = vec @ self.f, vec @ self.left, vec @ self.up
        depth = np.sqrt(lx * lx + ly * ly + lz * lz)
        return -np.arctan2(ly, lx), np.arctan2(lz, np.hypot(lx, ly)), depth  # CARLA: azimuth right-positive

    def measure(
        self,
        center: np.ndarray,
        size: np.ndarray,
        yaw: np.ndarray,
        velocity: np.ndarray,
        vtype: np.ndarray,
        occluded: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        cfg, we = self.cfg, self.we
        parts = []
        if len(center):
            rel = center - self.origin
            dist = np.linalg.norm(rel, axis=1)
            lam = (
                cfg.points_per_vehicle * self.RCS_SCALE[vtype] * np.minimum(1.0, 20.0 / np.maximum(dist, 1.0))
            )
            lam = lam * np.where(occluded, 0.2, 1.0) * (1.0 - we.radar_miss)
            n = rng.poisson(lam)
            n[dist > cfg.range_m + 10] = 0
            idx = np.repeat(np.arange(len(center)), n)
            if idx.size:
                # points on the radar-facing vertical faces, chosen by projected area
                c, s = np.cos(yaw[idx]), np.sin(yaw[idx])
                o = self.origin - center[idx]
                ox, oy = c * o[:, 0] + s * o[:, 1], -s * o[:, 0] + c * o[:, 1]
                L, W, H = size[idx, 0], size[idx, 1], size[idx, 2]
                ax = np.abs(ox) / np.maximum(np.hypot(ox, oy), 1e-6) * W
                ay = np.abs(oy) / np.maximum(np.hypot(ox, oy), 1e-6) * L
                on_end = rng.random(idx.size) < ax / np.maximum(ax + ay, 1e-9)
                u = rng.uniform(-0.5, 0.5, (idx.size, 2))
                px = np.where(on_end, np.sign(ox) * L / 2, u[:, 0] * L)
                py = np.where(on_end, u[:, 1] * W, np.sign(oy) * W / 2)
                pz = rng.uniform(0.2, 1.0, idx.size) * H - H / 2
                wp = center[idx] + np.stack([c * px - s * py, s * px + c * py, pz], axis=1)
                vec = wp - self.origin
                az, alt, depth = self._angles(vec)
                vel = np.einsum("ij,ij->i", velocity[idx], vec) / np.maximum(depth, 1e-6)
                parts.append(np.stack([vel, az, alt, depth], axis=1))
        n_cl = rng.poisson(cfg.clutter_rate * we.radar_clutter_scale)
        if n_cl:
            az = rng.uniform(-1, 1, n_cl) * np.radians(cfg.horizontal_fov_deg) / 2
            depth = rng.uniform(3.0, cfg.range_m, n_cl)
            alt = np.arctan2(-cfg.mount_height + rng.uniform(0, 3.0, n_cl), depth) - np.radians(cfg.pitch_deg)
            parts.append(np.stack([rng.normal(0, 0.05, n_cl), az, alt, depth], axis=1))
        if not parts:
            return np.zeros((0, 4), np.float32)
        det = np.concatenate(parts, axis=0)
        k = we.radar_noise_scale
        det[:, 0] += rng.normal(0, cfg.velocity_noise * k, len(det))
        det[:, 1:3] += rng.normal(0, np.radians(cfg.angle_noise_deg) * k, (len(det), 2))
        det[:, 3] += rng.normal(0, cfg.depth_noise_m * k, len(det))
        inside = np.abs(det[:, 1]) <= np.radians(cfg.horizontal_fov_deg) / 2
        inside &= np.abs(det[:, 2]) <= np.radians(cfg.vertical_fov_deg) / 2
        inside &= (det[:, 3] > 0.5) & (det[:, 3] <= cfg.range_m)
        return det[inside].astype(np.float32)


def make_sensors(
    scene: Scene, cfg: SimConfig, rng: np.random.Generator
) -> tuple[Camera | None, Lidar | None, Radar | None]:
    cam = Camera(scene, cfg.camera, cfg.weather, rng) if cfg.camera.enabled else None
    lidar = Lidar(scene, cfg.lidar, cfg.weather) if cfg.lidar.enabled else None
    radar = Radar(scene, cfg.radar, cfg.weather) if cfg.radar.enabled else None
    return cam, lidar, radar

"""Traffic: Poisson arrivals, IDM car-following, MOBIL-like lane changes, despawn at the road end.

State is a struct of arrays (one row per vehicle) so that the car-following update is vectorised:
vehicles are sorted by (direction, lane, progress) and each one's leader is the next row of the
same group. Lane changes (rare: a handful of candidates per step) are evaluated per candidate with
the MOBIL incentive (own acceleration gain > threshold) and safety (new follower's braking above
-b_safe) criteria; the lateral move takes ``LANE_CHANGE_TIME`` with a smooth cosine profile.

Simplification: a vehicle belongs to its target lane from the moment its lane change starts (its
old follower stops seeing it), which is what keeps the leader search a single sort.

Vehicle types (box length, width, height; desired speed mean/std in m/s; IDM max acceleration):
car 4.5 x 1.8 x 1.5, 50 km/h; van 5.2 x 2.0 x 2.3, 47 km/h; truck 9.0 x 2.5 x 3.6, 40 km/h.
"""

from __future__ import annotations

import numpy as np

from .scene import Scene

TYPE_NAMES = ("car", "van", "truck")
TYPE_SIZE = np.array([[4.5, 1.8, 1.5], [5.2, 2.0, 2.3], [9.0, 2.5, 3.6]])
TYPE_SPEED = np.array([[13.9, 1.5], [13.0, 1.5], [11.0, 1.0]])
TYPE_ACCEL = np.array([1.5, 1.2, 0.8])
CAR_COLOURS = np.array(
    [
        [30, 30, 200],
        [200, 60, 30],
        [230, 230, 230],
        [25, 25, 25],
        [40, 160, 40],
        [0, 200, 230],
        [130, 130, 130],
        [90, 40, 120],
    ],
    dtype=np.float32,
)  # BGR
IDM_B, IDM_T, IDM_S0, IDM_DELTA = 2.0, 1.2, 2.0, 4.0
LANE_CHANGE_TIME = 3.0
MOBIL_THRESHOLD, MOBIL_B_SAFE, KEEP_RIGHT_BIAS = 0.3, 3.0, 0.1


def idm_accel(
    v: np.ndarray, v_des: np.ndarray, a_max: np.ndarray, gap: np.ndarray, dv: np.ndarray
) -> np.ndarray:
    """Intelligent Driver Model acceleration; gap to the leader's rear (m), dv = v - v_leader."""
    s_star = IDM_S0 + np.maximum(0.0, v * IDM_T + v * dv / (2.0 * np.sqrt(a_max * IDM_B)))
    return a_max * (1.0 - (v / v_des) ** IDM_DELTA - (s_star / np.maximum(gap, 0.1)) ** 2)


class Traffic:
    """Vehicles on the road of a Scene; ``step(dt)`` advances them."""

    FIELDS = ("id", "x", "y", "v", "v_des", "dir", "lane", "vtype", "y_from", "lc_t", "yaw")

    def __init__(self, scene: Scene, rng: np.random.Generator) -> None:
        self.scene = scene
        self.cfg = scene.config
        self.rng = rng
        self.next_id = 0
        self.id = np.zeros(0, dtype=np.int64)
        self.x = np.zeros(0)
        self.y = np.zeros(0)
        self.v = np.zeros(0)
        self.v_des = np.zeros(0)
        self.dir = np.zeros(0, dtype=np.int64)
        self.lane = np.zeros(0, dtype=np.int64)
        self.vtype = np.zeros(0, dtype=np.int64)
        self.y_from = np.zeros(0)
        self.lc_t = np.zeros(0)  # time left in the current lane change (0 = none)
        self.yaw = np.zeros(0)
        self.colour = np.zeros((0, 3), dtype=np.float32)
        self._prefill()

    # ---- population ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.x.size)

    @property
    def size(self) -> np.ndarray:
        return TYPE_SIZE[self.vtype]

    @property
    def center(self) -> np.ndarray:
        s = self.size
        return np.stack([self.x, self.y, s[:, 2] / 2], axis=1)

    @property
    def velocity(self) -> np.ndarray:
        """(V, 3) world velocity (m/s)."""
        return np.stack([self.v * np.cos(self.yaw), self.v * np.sin(self.yaw), np.zeros(len(self))], axis=1)

    def _append(self, x: np.ndarray, direction: np.ndarray, lane: np.ndarray, v: np.ndarray | None) -> None:
        n = x.size
        if n == 0:
            return
        mix = np.asarray(self.cfg.vehicle_mix, dtype=float)
        vtype = self.rng.choice(3, size=n, p=mix / mix.sum())
        v_des = np.maximum(self.rng.normal(TYPE_SPEED[vtype, 0], TYPE_SPEED[vtype, 1]), 5.0)
        y = self.scene.lane_y(direction, lane)
        self.id = np.concatenate([self.id, np.arange(self.next_id, self.next_id + n)])
        self.next_id += n
        self.x = np.concatenate([self.x, x])
        self.y = np.concatenate([self.y, y])
        self.v = np.concatenate([self.v, v_des if v is None else np.minimum(v, v_des)])
        self.v_des = np.concatenate([self.v_des, v_des])
        self.dir = np.concatenate([self.dir, direction])
        self.lane = np.concatenate([self.lane, lane])
        self.vtype = np.concatenate([self.vtype, vtype])
        self.y_from = np.concatenate([self.y_from, y])
        self.lc_t = np.concatenate([self.lc_t, np.zeros(n)])
        self.yaw = np.concatenate([self.yaw, np.where(direction > 0, 0.0, np.pi)])
        self.colour = np.concatenate([self.colour, CAR_COLOURS[self.rng.integers(len(CAR_COLOURS), size=n)]])

    def _keep(self, mask: np.ndarray) -> None:
        for name in self.FIELDS:
            setattr(self, name, getattr(self, name)[mask])
        self.colour = self.colour[mask]

    def _prefill(self) -> None:
        """Start in the stationary regime: per lane, positions with exponential headways of the
        arrival process (mean speed / lane rate), so episodes need no warm-up."""
        cfg = self.cfg
        lane_rate = cfg.arrival_rate / cfg.lanes
        if lane_rate <= 0 or cfg.max_vehicles == 0:
            return
        half = cfg.road_length / 2
        xs, ds, ls = [], [], []
        for d in (1, -1):
            for lane in range(cfg.lanes):
                mean_gap = TYPE_SPEED[0, 0] / lane_rate
                gaps = (
                    IDM_S0
                    + 10.0
                    + self.rng.exponential(mean_gap, size=int(4 * cfg.road_length / mean_gap) + 4)
                )
                s = -half + self.rng.uniform(0, mean_gap) + np.cumsum(gaps) - gaps[0]
                s = s[s < half - 5.0]
                xs.append(d * s)
                ds.append(np.full(s.size, d))
                ls.append(np.full(s.size, lane))
        x, d, lane = np.concatenate(xs), np.concatenate(ds), np.concatenate(ls)
        if x.size > cfg.max_vehicles:
            keep = np.sort(self.rng.choice(x.size, cfg.max_vehicles, replace=False))
            x, d, lane = x[keep], d[keep], lane[keep]
        self._append(x, d, lane, None)

    def _spawn(self, dt: float) -> None:
        cfg = self.cfg
        lane_rate = cfg.arrival_rate / cfg.lanes
        half = cfg.road_length / 2
        arrivals = self.rng.random((2, cfg.lanes)) < 1.0 - np.exp(-lane_rate * dt)
        for di, lane in zip(*np.nonzero(arrivals)):
            if len(self) >= cfg.max_vehicles:
                return
            d = 1 if di == 0 else -1
            same = (self.dir == d) & (self.lane == lane)
            s = d * self.x[same]
            x_entry = -d * half
            if s.size and s.min() + half < 14.0:  # entry blocked: the arrival is lost
                continue
            v = None
            if s.size:
                v = np.array([self.v[same][np.argmin(s)] + 1.0])
            self._append(np.array([x_entry], float), np.array([d]), np.array([lane]), v)

    # ---- dynamics -----------------------------------------------------------------------------
    def _leaders(self) -> tuple[np.ndarray, np.ndarray]:
        """Gap to the leader (inf if none) and leader speed for every vehicle, vectorised."""
        n = len(self)
        gap = np.full(n, np.inf)
        vlead = self.v.copy()
        if n < 2:
            return gap, vlead
        s = self.dir * self.x
        order = np.lexsort((s, self.lane, self.dir))
        so, lo, do = s[order], self.lane[order], self.dir[order]
        same = (lo[1:] == lo[:-1]) & (do[1:] == do[:-1])
        half_len = TYPE_SIZE[self.vtype[order], 0] / 2
        g = so[1:] - so[:-1] - half_len[1:] - half_len[:-1]
        gap_o = np.full(n, np.inf)
        gap_o[:-1] = np.where(same, g, np.inf)
        vl_o = self.v[order].copy()
        vl_o[:-1] = np.where(same, self.v[order][1:], vl_o[:-1])
        gap[order] = gap_o
        vlead[order] = vl_o
        return gap, vlead

    def _lane_changes(self, gap: np.ndarray, vlead: np.ndarray, dt: float) -> None:
        n = len(self)
        if n == 0 or self.cfg.lanes < 2:
            return
        amax = TYPE_ACCEL[self.vtype]
        a_cur = idm_accel(self.v, self.v_des, amax, gap, self.v - np.where(np.isfinite(gap), vlead, self.v))
        cand = np.nonzero((self.lc_t <= 0) & (self.rng.random(n) < dt / 4.0))[0]
        s = self.dir * self.x
        half_len = TYPE_SIZE[self.vtype, 0] / 2
        for i in cand:
            for target in (self.lane[i] + 1, self.lane[i] - 1):
                if not 0 <= target < self.cfg.lanes:
                    continue
                others = np.nonzero((self.dir == self.dir[i]) & (self.lane == target))[0]
                ahead = others[s[others] > s[i]]
                behind = others[s[others] <= s[i]]
                if ahead.size:
                    j = ahead[np.argmin(s[ahead])]
                    g_new, v_new = s[j] - s[i] - half_len[i] - half_len[j], self.v[j]
                else:
                    g_new, v_new = np.inf, self.v[i]
                if g_new < 2.0:
                    continue
                a_new = idm_accel(self.v[i], self.v_des[i], amax[i], g_new, self.v[i] - v_new)
                if behind.size:
                    k = behind[np.argmax(s[behind])]
                    g_f = s[i] - s[k] - half_len[i] - half_len[k]
                    if g_f < 2.0:
                        continue
                    a_f = idm_accel(self.v[k], self.v_des[k], amax[k], g_f, self.v[k] - self.v[i])
                    if a_f < -MOBIL_B_SAFE:
                        continue
                bias = KEEP_RIGHT_BIAS if target > self.lane[i] else -KEEP_RIGHT_BIAS  # outer lanes = right
                if a_new - a_cur[i] + bias > MOBIL_THRESHOLD:
                    self.y_from[i] = self.y[i]
                    self.lane[i] = target
                    self.lc_t[i] = LANE_CHANGE_TIME
                    break

    def step(self, dt: float) -> None:
        if len(self):
            gap, vlead = self._leaders()
            self._lane_changes(gap, vlead, dt)
            gap, vlead = self._leaders()
            amax = TYPE_ACCEL[self.vtype]
            dv = self.v - np.where(np.isfinite(gap), vlead, self.v)
            acc = np.clip(idm_accel(self.v, self.v_des, amax, gap, dv), -8.0, amax)
            v_new = np.maximum(self.v + acc * dt, 0.0)
            ds = np.maximum((self.v + v_new) / 2 * dt, 0.0)
            self.v = v_new
            # lateral: smooth cosine profile towards the target lane centre
            y_target = self.scene.lane_y(self.dir, self.lane)
            self.lc_t = np.maximum(self.lc_t - dt, 0.0)
            frac = 0.5 - 0.5 * np.cos(np.pi * (1.0 - self.lc_t / LANE_CHANGE_TIME))
            y_new = self.y_from + (y_target - self.y_from) * frac
            dy = y_new - self.y
            self.x = self.x + self.dir * ds
            self.y = y_new
            self.yaw = np.arctan2(dy, self.dir * np.maximum(ds, 1e-6))
            self._keep(np.abs(self.x) <= self.cfg.road_length / 2 + 1e-6)
        self._spawn(dt)

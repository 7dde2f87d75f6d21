"""The built-in V2I scenario simulator: traffic + channel + RSU sensors -> SensorFrame per step.

Usage::

    sim = Simulator(SimConfig(lanes=3, weather="rain", seed=7))
    frame = sim.step()                 # SensorFrame at t = 0, then t = dt, 2 dt, ...
    sim.vehicles                       # VehicleState snapshot (ids, boxes, velocities, types)
    sim.powers_dbm                     # (V, B) per-vehicle beam powers of the last frame
    for f in generate_episode(cfg, 200): ...

Determinism: one numpy SeedSequence from ``config.seed`` is split into independent streams for
the scene, the traffic, the channel and each sensor, so the same seed gives the same frames, and
disabling one sensor does not change the others' outputs.

Geometry ceiling: every label also carries ``ceiling_powers_dbm``, the same label vehicles through a
second ``ChannelModel`` with ``combine='incoherent'``, no shadowing and no noise draw (``rng=None``):
what a predictor that knows every true box but nothing about fading, shadowing or noise would compute
(docs: shared notes "prediction ceiling"). It has its own model instance and draws nothing, so the
main channel's random stream, and every label of a seed, is the same with or without it.

Shadowing is spatially correlated: each vehicle's per-path shadowing follows an AR(1) process in
travelled distance (Gudmundson model, decorrelation distance ``SHADOW_DCORR`` m), so labels do not
flicker from frame to frame because of i.i.d. draws.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from ..channel import ChannelModel, ChannelResult, VehicleBoxes, label_powers, optimal_beam
from .carla_format import location_to_gnss, world_to_carla
from .config import SimConfig
from .scene import build_scene
from .sensors import make_sensors
from .traffic import TYPE_NAMES, Traffic
from .types import BeamLabel, SensorFrame

SHADOW_DCORR = 10.0


@dataclass
class VehicleState:
    """Snapshot of all vehicles (world frame, right-handed, metres, radians)."""

    ids: np.ndarray
    center: np.ndarray
    size: np.ndarray
    yaw: np.ndarray
    velocity: np.ndarray
    vtype: np.ndarray
    lane: np.ndarray
    direction: np.ndarray

    @property
    def type_names(self) -> list[str]:
        return [TYPE_NAMES[t] for t in self.vtype]


class Simulator:
    """Step the scenario at ``config.rate_hz``; see the module docstring."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        cfg = self.config
        seeds = np.random.SeedSequence(cfg.seed).spawn(7)
        (
            self._rng_scene,
            self._rng_traffic,
            self._rng_channel,
            self._rng_cam,
            self._rng_lidar,
            self._rng_radar,
            self._rng_gnss,
        ) = (np.random.default_rng(s) for s in seeds)
        self.scene = build_scene(cfg, self._rng_scene)
        self.traffic = Traffic(self.scene, self._rng_traffic)
        self.channel = ChannelModel(cfg.channel)
        # the geometry ceiling's channel: same geometry and codebook, incoherent, never draws
        self.ceiling_channel = ChannelModel(replace(cfg.channel, combine="incoherent"), self.channel.codebook)
        self.camera, self.lidar, self.radar = make_sensors(self.scene, cfg, self._rng_cam)
        self.frame_index = 0
        self.time = 0.0
        self.target_id: int | None = None
        self._shadow_ids = np.zeros(0, dtype=np.int64)
        self._shadow = np.zeros((0, 2 + len(self.scene.walls)))
        self.powers_dbm = np.zeros((0, self.channel.n_beams), np.float32)
        self.channel_result: ChannelResult | None = None

    # ---- state access --------------------------------------------------------------------------
    @property
    def n_beams(self) -> int:
        return self.channel.n_beams

    @property
    def vehicles(self) -> VehicleState:
        t = self.traffic
        return VehicleState(
            t.id.copy(),
            t.center,
            t.size,
            t.yaw.copy(),
            t.velocity,
            t.vtype.copy(),
            t.lane.copy(),
            t.dir.copy(),
        )

    def vehicle_gnss(self, ids: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) lat/lon/alt of the vehicles' roof antennas (all, or the given ids), with noise."""
        t = self.traffic
        rows = np.arange(len(t)) if ids is None else np.searchsorted(t.id, np.asarray(ids))
        pos = t.center[rows].copy()
        pos[:, 2] += t.size[rows, 2] / 2
        g = self.config.gnss
        pos += self._rng_gnss.normal(0.0, g.noise_std_m, pos.shape)
        return location_to_gnss(world_to_carla(pos), g.lat0, g.lon0, g.alt0)

    def rsu_gnss(self) -> np.ndarray:
        """(3,) lat/lon/alt of the RSU's mmWave array, without noise.

        Why: the GPS feature is the target's position relative to the RSU, so every dataset and the
        live node need the RSU's own fix as the origin; the simulator node publishes it as the RSU's
        GNSS so a recorded bag carries the reference its dataset must use.
        """
        g = self.config.gnss
        pos = np.asarray(self.scene.rsu.position, dtype=np.float64)[None]
        return location_to_gnss(world_to_carla(pos), g.lat0, g.lon0, g.alt0)[0]

    # ---- stepping ------------------------------------------------------------------------------
    def _update_shadowing(self, dt: float) -> np.ndarray:
        t = self.traffic
        sigma = self.config.channel.shadowing_db
        keep = np.isin(self._shadow_ids, t.id)
        old = self._shadow[keep]
        n_new = len(t) - old.shape[0]
        new = self._rng_channel.normal(0.0, sigma, (n_new, self._shadow.shape[1]))
        rho = np.exp(-np.abs(t.v[: old.shape[0]]) * dt / SHADOW_DCORR)[:, None]
        innov = self._rng_channel.normal(0.0, sigma, old.shape)
        old = rho * old + np.sqrt(1.0 - rho**2) * innov
        self._shadow = np.concatenate([old, new], axis=0)
        self._shadow_ids = t.id.copy()
        return self._shadow

    def _in_range(self, res: ChannelResult) -> np.ndarray:
        d = np.linalg.norm(self.traffic.center[:, :2] - np.asarray(self.scene.rsu.position[:2]), axis=1)
        return (d <= self.config.label_range_m) & res.path_valid[:, 0]

    def _ceiling_powers(self) -> np.ndarray:
        """(V, B) per-vehicle powers of the geometry ceiling: every vehicle's true box (all of them
        block), incoherent paths, zero shadowing, mean noise power instead of a draw."""
        t = self.traffic
        return self.ceiling_channel.compute(
            self.scene.rsu,
            VehicleBoxes(t.center, t.size, t.yaw),
            self.scene.walls,
            rng=None,
            shadow_db=np.zeros(len(t)),
        ).powers_dbm

    def _label(self, res: ChannelResult) -> tuple[BeamLabel | None, int | None]:
        cfg = self.config
        t = self.traffic
        inr = self._in_range(res)
        if not inr.any():
            self.target_id = None
            return None, None
        if cfg.label_mode == "single":
            rows = np.nonzero(t.id == self.target_id)[0] if self.target_id is not None else np.zeros(0, int)
            if rows.size == 0 or not inr[rows[0]]:
                d = np.linalg.norm(t.center[:, :2] - np.asarray(self.scene.rsu.position[:2]), axis=1)
                row = int(np.argmin(np.where(inr, d, np.inf)))
                self.target_id = int(t.id[row])
            else:
                row = int(rows[0])
            p = label_powers(res.powers_dbm, "single", row)
            ceiling = label_powers(self._ceiling_powers(), "single", row)
            return BeamLabel(
                p, int(optimal_beam(p)), [int(t.id[row])], bool(res.los_blocked[row]), "single", ceiling
            ), row
        rows = np.nonzero(inr)[0]
        p = label_powers(res.powers_dbm[rows], "sum_rss")
        best = int(optimal_beam(p))
        dom = int(rows[np.argmax(res.powers_dbm[rows, best])])
        ceiling = label_powers(self._ceiling_powers()[rows], "sum_rss")
        label = BeamLabel(
            p, best, [int(i) for i in t.id[rows]], bool(res.los_blocked[dom]), "sum_rss", ceiling
        )
        # The GNSS published with a sum-RSS label is the nearest served vehicle's: chosen from the
        # geometry alone. Choosing the vehicle that dominates the optimal beam would leak the label
        # into the model's input.
        d = np.linalg.norm(t.center[rows, :2] - np.asarray(self.scene.rsu.position[:2]), axis=1)
        return label, int(rows[np.argmin(d)])

    def step(self) -> SensorFrame:
        """Advance one scene step (the first call returns the initial state at t = 0)."""
        cfg = self.config
        if self.frame_index > 0:
            self.traffic.step(cfg.dt)
            self.time = self.frame_index * cfg.dt
        t = self.traffic
        center, size, yaw = t.center, t.size, t.yaw
        shadow = self._update_shadowing(cfg.dt)
        beam, gnss = None, None
        if len(t):
            res = self.channel.compute(
                self.scene.rsu,
                VehicleBoxes(center, size, yaw),
                self.scene.walls,
                self._rng_channel,
                shadow_db=shadow,
            )
            self.channel_result = res
            self.powers_dbm = res.powers_dbm
            beam, row = self._label(res)
            if row is not None and cfg.gnss.enabled:
                gnss = self.vehicle_gnss(t.id[[row]])[0]
            occluded = res.los_blocked
        else:
            self.channel_result = None
            self.powers_dbm = np.zeros((0, self.n_beams), np.float32)
            occluded = np.zeros(0, bool)
        camera = (
            self.camera.render(center, size, yaw, t.colour, t.vtype, self._rng_cam)
            if self.camera is not None
            else None
        )
        lidar = self.lidar.scan(center, size, yaw, self._rng_lidar) if self.lidar is not None else None
        radar = (
            self.radar.measure(center, size, yaw, t.velocity, t.vtype, occluded, self._rng_radar)
            if self.radar is not None
            else None
        )
        frame = SensorFrame(stamp=self.time, camera=camera, radar=radar, lidar=lidar, gnss=gnss, beam=beam)
        self.frame_index += 1
        return frame


def generate_episode(config: SimConfig, n_frames: int) -> Iterator[SensorFrame]:
    """Yield ``n_frames`` consecutive frames of a fresh simulator for ``config``."""
    if not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise ValueError(f"n_frames must be a non-negative integer, got {n_frames!r}")
    sim = Simulator(config)
    for _ in range(n_frames):
        yield sim.step()

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
flicker from frame to frame because of i.i.d. draws. The label rule, the shadowing and the vehicles'
GNSS are :mod:`.ground_truth`'s, which the CARLA bridge uses too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from ..channel import ChannelModel, ChannelResult, VehicleBoxes
from .carla_format import location_to_gnss, world_to_carla
from .config import SimConfig
from .ground_truth import SHADOW_DCORR, ShadowingProcess, choose_label, roof_gnss
from .scene import build_scene
from .sensors import make_sensors
from .traffic import TYPE_NAMES, Traffic
from .types import BeamLabel, SensorFrame

__all__ = ["SHADOW_DCORR", "Simulator", "VehicleState", "generate_episode"]


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
        self.shadowing = ShadowingProcess(cfg.channel.shadowing_db, 2 + len(self.scene.walls), self._rng_channel)
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
        g = self.config.gnss
        return roof_gnss(t.center[rows], t.size[rows, 2], (g.lat0, g.lon0, g.alt0), self._rng_gnss, g.noise_std_m)

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
        label, row, target = choose_label(res, t.id, t.center, self.scene.rsu.position, cfg.label_mode,
                                          cfg.label_range_m, self.target_id, ceiling=self._ceiling_powers)
        if label is None or cfg.label_mode == "single":
            self.target_id = target
        return label, row

    def step(self) -> SensorFrame:
        """Advance one scene step (the first call returns the initial state at t = 0)."""
        cfg = self.config
        if self.frame_index > 0:
            self.traffic.step(cfg.dt)
            self.time = self.frame_index * cfg.dt
        t = self.traffic
        center, size, yaw = t.center, t.size, t.yaw
        shadow = self.shadowing.update(t.id, t.v, cfg.dt)
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

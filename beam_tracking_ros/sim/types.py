"""The frame contract between simulators, bridges, ROS conversion and preprocessing.

Everything in CARLA's own raw conventions (see ``carla_format``):

* camera: (H, W, 4) uint8 BGRA;
* radar: (N, 4) float32 [velocity (m/s, negative towards the sensor), azimuth (rad), altitude (rad),
  depth (m)] (CARLA RadarDetection order);
* lidar: (N, 4) float32 [x, y, z, intensity] in the sensor frame (left-handed: x fwd, y right, z up);
* gnss: (3,) float64 [latitude deg, longitude deg, altitude m] of the label's target vehicle;
* beam: per-beam ground truth (BeamLabel).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class BeamLabel:
    """Ground-truth beam of one frame.

    powers_dbm: (B,) float32 label power per codebook beam -- the target vehicle's received power
    (mode 'single') or the sum of linear RSS over all served vehicles, in dBm (mode 'sum_rss').
    optimal_beam: argmax of powers_dbm. vehicle_ids: the vehicles the label is for.
    los_blocked: the line of sight to the (dominant) labelled vehicle crosses another vehicle.
    ceiling_powers_dbm: optional (B,) float32 "geometry ceiling" of the same label: the same vehicles
    through the same channel geometry with incoherent path combining, no shadowing and no noise draw
    (what a predictor that knew every vehicle's true box, but nothing about fading, shadowing or noise,
    would compute). Set by the built-in simulator; None for labels from bags of other sources,
    CARLA or DeepSense.
    """

    powers_dbm: np.ndarray
    optimal_beam: int
    vehicle_ids: list[int] = field(default_factory=list)
    los_blocked: bool = False
    mode: str = "sum_rss"
    ceiling_powers_dbm: np.ndarray | None = None


@dataclass
class SensorFrame:
    """One synchronized scene frame at time ``stamp`` (seconds); any modality may be None."""

    stamp: float
    camera: np.ndarray | None = None
    radar: np.ndarray | None = None
    lidar: np.ndarray | None = None
    gnss: np.ndarray | None = None
    beam: BeamLabel | None = None

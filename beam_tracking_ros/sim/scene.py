"""Static scene: road, lanes, sidewalks, building blocks on both sides, and the RSU pole.

Building facades facing the road are the reflecting walls of the channel model and the walls
the LiDAR and camera see. Blocks have random lengths, gaps (alleys) and heights, drawn from the
scenario seed, so each seed gives a slightly different street canyon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..channel import RsuPose, Walls
from .config import SimConfig

BUILDING_COLOURS = np.array(
    [[150, 160, 175], [120, 135, 160], [175, 170, 160], [100, 110, 130], [160, 140, 120], [190, 185, 175]],
    dtype=np.float32,
)  # BGR


@dataclass
class Building:
    x0: float
    x1: float
    side: int  # +1: y > 0 side, -1: y < 0 side
    height: float
    colour: np.ndarray  # BGR float32


@dataclass
class Scene:
    """Static geometry derived from a SimConfig and a seed."""

    config: SimConfig
    half_road: float
    facade_y: float
    buildings: list[Building]
    walls: Walls
    rsu: RsuPose

    def lane_y(self, direction: np.ndarray, lane: np.ndarray) -> np.ndarray:
        """Lane centre y for direction (+1 drives towards +x, right-hand traffic) and lane index
        (0 = next to the centre line)."""
        w = self.config.lane_width
        return -np.asarray(direction) * (np.asarray(lane) + 0.5) * w

    def building_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x0, x1, side, height) arrays of all buildings."""
        b = self.buildings
        return (
            np.array([q.x0 for q in b]),
            np.array([q.x1 for q in b]),
            np.array([q.side for q in b], dtype=float),
            np.array([q.height for q in b]),
        )


def build_scene(config: SimConfig, rng: np.random.Generator) -> Scene:
    half_road = config.lanes * config.lane_width
    facade_y = half_road + config.sidewalk_width
    lo, hi = config.building_height
    ext = config.road_length / 2 + 60.0
    buildings: list[Building] = []
    for side in (-1, 1):
        x = -ext + rng.uniform(0, 10)
        while x < ext:
            length = rng.uniform(18.0, 50.0)
            buildings.append(
                Building(
                    x,
                    min(x + length, ext),
                    side,
                    float(rng.uniform(lo, hi)),
                    BUILDING_COLOURS[rng.integers(len(BUILDING_COLOURS))],
                )
            )
            x += length + (rng.uniform(6.0, 12.0) if rng.random() < 0.35 else rng.uniform(0.5, 2.0))
    p0 = np.array([[b.x0, b.side * facade_y] for b in buildings])
    p1 = np.array([[b.x1, b.side * facade_y] for b in buildings])
    walls = Walls(p0, p1, np.array([b.height for b in buildings]), loss_db=7.0)
    rsu = RsuPose(
        (config.rsu_x, -(half_road + 1.0), config.rsu_height), float(np.radians(config.rsu_heading_deg))
    )
    return Scene(config, half_road, facade_y, buildings, walls, rsu)

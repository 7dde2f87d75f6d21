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


FACADE_LOSS_DB = 7.0  # reflection loss of a facade (concrete/glass at mmWave: ~6-10 dB)


def _facade_extent(config: SimConfig) -> tuple[float, float]:
    """(|y| of the building line, half the length of the built street)."""
    return config.lanes * config.lane_width + config.sidewalk_width, config.road_length / 2 + 60.0


def street_walls(config: SimConfig) -> Walls:
    """The street canyon as a site survey knows it: one facade along each side of the road at the
    scenario's building line, the length of the street, at the mean building height.

    Why: the single buildings (their gaps and heights) change with every episode's seed, but the building
    line does not, and it is what turns single-target labels towards reflections: with it the GPS beam
    feature's Top-5 is 0.93 instead of 0.71 (2-lane single target, 4 episodes; the episode's exact
    buildings give 0.94). A real RSU gets the same from its map."""
    facade_y, ext = _facade_extent(config)
    height = float(np.mean(config.building_height))
    return Walls(np.array([[-ext, -facade_y], [-ext, facade_y]]), np.array([[ext, -facade_y], [ext, facade_y]]),
                 np.array([height, height]), loss_db=FACADE_LOSS_DB)


def build_scene(config: SimConfig, rng: np.random.Generator) -> Scene:
    half_road = config.lanes * config.lane_width
    facade_y, ext = _facade_extent(config)
    lo, hi = config.building_height
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
    walls = Walls(p0, p1, np.array([b.height for b in buildings]), loss_db=FACADE_LOSS_DB)
    rsu = RsuPose(
        (config.rsu_x, -(half_road + 1.0), config.rsu_height), float(np.radians(config.rsu_heading_deg))
    )
    return Scene(config, half_road, facade_y, buildings, walls, rsu)

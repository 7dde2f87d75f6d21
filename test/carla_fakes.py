"""Fakes with the attributes and byte layouts of CARLA's Python classes, for the bridge's tests.

carla.Image / RadarMeasurement / LidarMeasurement (raw_data bytes), carla.Actor (transform, bounding box,
velocity), and the built-in simulator's vehicles reported as CARLA would report them.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import numpy as np


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@dataclass
class Vec:
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@dataclass
class Rot:
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0


@dataclass
class Transform:
    location: Vec
    rotation: Rot


@dataclass
class BBox:
    location: Vec
    extent: Vec
    rotation: Rot = field(default_factory=Rot)


@dataclass
class FakeActor:
    """carla.Actor / carla.Vehicle: id, get_transform(), bounding_box (offset + half extents), get_velocity()."""

    id: int
    transform: Transform
    bounding_box: BBox
    velocity: Vec = field(default_factory=Vec)

    def get_transform(self) -> Transform:
        return self.transform

    def get_velocity(self) -> Vec:
        return self.velocity


@dataclass
class FakeMeasurement:
    """carla.Image / RadarMeasurement / LidarMeasurement: raw_data bytes, frame, timestamp (+ image size)."""

    raw_data: bytes
    frame: int = 0
    timestamp: float = 0.0
    width: int = 0
    height: int = 0
    fov: float = 90.0


def sim_frames(n: int = 12, **cfg):
    from beam_tracking_ros.sim import SimConfig, Simulator

    sim = Simulator(SimConfig(seed=3, arrival_rate=2.0, **cfg))
    return sim, [sim.step() for _ in range(n)]


def actors_from_sim(sim) -> list[FakeActor]:
    """The simulator's vehicles as CARLA would report them: left-handed, yaw clockwise in degrees,
    bounding box offset from the actor origin (here 0.3 m forward, so the rotation is exercised)."""
    t = sim.traffic
    out = []
    for i in range(len(t)):
        cx, cy, cz = t.center[i]
        yaw_c = -np.degrees(t.yaw[i])
        r = np.radians(yaw_c)
        off = (0.3, 0.0, 0.0)
        # actor origin = box centre - R(yaw) @ offset (CARLA frame)
        ox = cx - (np.cos(r) * off[0] - np.sin(r) * off[1])
        oy = -cy - (np.sin(r) * off[0] + np.cos(r) * off[1])
        out.append(FakeActor(
            id=int(t.id[i]), transform=Transform(Vec(ox, oy, cz - off[2]), Rot(yaw=yaw_c)),
            bounding_box=BBox(Vec(*off), Vec(*(t.size[i] / 2))),
            velocity=Vec(t.velocity[i][0], -t.velocity[i][1], t.velocity[i][2])))
    return out[::-1]  # any order: the bridge sorts by id


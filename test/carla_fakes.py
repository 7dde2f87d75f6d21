"""Fakes with the attributes and byte layouts of CARLA's Python classes, for the bridge's tests.

carla.Image / RadarMeasurement / LidarMeasurement (raw_data bytes), carla.Actor (transform, bounding box,
velocity), and the built-in simulator's vehicles reported as CARLA would report them. A server stand-in
for the node's set-up and shutdown: :class:`FakeClient` (its timeout enforced on ``load_world``),
:class:`FakeWorld` (settings history, spawned and destroyed actors) and :func:`fake_carla_module`; the map
is a real ``carla.Map`` built from a tiny OpenDRIVE road (:func:`tiny_road_map`), so waypoints are CARLA's.
"""

from __future__ import annotations

import copy
import itertools
import socket
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

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



# ================================================================================================
# A CARLA server stand-in for the node's set-up and shutdown
# ================================================================================================

SPAWN_POINT_LIFT_M = 0.6
"""CARLA places a map's spawn points about this far above the road, so that a vehicle drops onto it."""


def tiny_road_xodr(elevation_m: float = 2.0, length_m: float = 200.0) -> str:
    """OpenDRIVE of one straight two-lane road along x (from -length/2), its surface ``elevation_m`` up."""
    return f"""<?xml version="1.0" standalone="yes"?>
<OpenDRIVE>
  <header revMajor="1" revMinor="4" name="tiny" version="1.0"/>
  <road name="r0" length="{length_m}" id="0" junction="-1">
    <link/>
    <planView>
      <geometry s="0.0" x="{-length_m / 2}" y="0.0" hdg="0.0" length="{length_m}"><line/></geometry>
    </planView>
    <elevationProfile><elevation s="0.0" a="{elevation_m}" b="0.0" c="0.0" d="0.0"/></elevationProfile>
    <lateralProfile/>
    <lanes>
      <laneSection s="0.0">
        <left><lane id="1" type="driving" level="false"><link/><width sOffset="0.0" a="3.5" b="0" c="0" d="0"/>
        </lane></left>
        <center><lane id="0" type="none" level="false"><link/></lane></center>
        <right><lane id="-1" type="driving" level="false"><link/><width sOffset="0.0" a="3.5" b="0" c="0" d="0"/>
        </lane></right>
      </laneSection>
    </lanes>
  </road>
</OpenDRIVE>"""


def tiny_road_map(elevation_m: float = 2.0):
    """A real ``carla.Map`` (no server needed) of :func:`tiny_road_xodr`."""
    import carla

    return carla.Map("tiny", tiny_road_xodr(elevation_m))


class FakeMap:
    """carla.Map of a running world: waypoints and geolocation from a real OpenDRIVE map, spawn points on its
    lanes every 10 m lifted SPAWN_POINT_LIFT_M above the road, as CARLA's are (the OpenDRIVE-only map has none)."""

    def __init__(self, cmap: Any) -> None:
        import carla

        self.cmap = cmap
        self.spawn_points = []
        for x in np.arange(-90.0, 91.0, 10.0):
            wp = cmap.get_waypoint(carla.Location(x=float(x), y=1.75, z=0.0), project_to_road=True)
            loc = wp.transform.location
            self.spawn_points.append(carla.Transform(carla.Location(x=loc.x, y=loc.y, z=loc.z + SPAWN_POINT_LIFT_M),
                                                     wp.transform.rotation))

    def get_waypoint(self, location: Any, project_to_road: bool = True, lane_type: Any = None) -> Any:
        return self.cmap.get_waypoint(location, project_to_road=project_to_road)

    def get_spawn_points(self) -> list[Any]:
        return list(self.spawn_points)

    def transform_to_geolocation(self, location: Any) -> Any:
        return self.cmap.transform_to_geolocation(location)


@dataclass
class FakeSettings:
    """carla.WorldSettings with CARLA's defaults."""

    synchronous_mode: bool = False
    no_rendering_mode: bool = False
    fixed_delta_seconds: float | None = None
    substepping: bool = True
    max_substep_delta_time: float = 0.01
    max_substeps: int = 10


class FakeBlueprint:
    def __init__(self, bp_id: str, **attrs: Any) -> None:
        self.id = bp_id
        self.attrs: dict[str, str] = {k: str(v) for k, v in attrs.items()}

    def has_attribute(self, name: str) -> bool:
        return name in self.attrs

    def get_attribute(self, name: str) -> str:
        return self.attrs[name]

    def set_attribute(self, name: str, value: str) -> None:
        self.attrs[name] = str(value)


class FakeBlueprintLibrary:
    def __init__(self) -> None:
        self.vehicles = [FakeBlueprint("vehicle.tesla.model3", number_of_wheels=4, role_name=""),
                         FakeBlueprint("vehicle.bh.crossbike", number_of_wheels=2, role_name="")]

    def find(self, bp_id: str) -> FakeBlueprint:
        return FakeBlueprint(bp_id)

    def filter(self, pattern: str) -> list[FakeBlueprint]:
        return [copy.deepcopy(bp) for bp in self.vehicles]


@dataclass
class FakeSpawned:
    """A sensor or vehicle the node spawned: its blueprint, where, and what was called on it."""

    id: int
    blueprint: FakeBlueprint
    transform: Any
    listening: bool = False
    autopilot: bool = False

    def listen(self, callback: Any) -> None:
        self.listening = True

    def stop(self) -> None:
        self.listening = False

    def set_autopilot(self, on: bool, tm_port: int = 8000) -> None:
        self.autopilot = on


class FakeTrafficManager:
    def __init__(self) -> None:
        self.synchronous = False
        self.seed: int | None = None

    def set_synchronous_mode(self, on: bool) -> None:
        self.synchronous = on

    def set_random_device_seed(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise TypeError("Python argument types did not match C++ signature (Boost.Python.ArgumentError)")
        self.seed = seed


class FakeWorld:
    """carla.World: settings (a history of what was applied), weather, the map, spawning, actors.

    ``interrupt_on_spawn=n`` raises KeyboardInterrupt from the n-th spawn call (1-based): a Ctrl-C in set-up.
    """

    def __init__(self, cmap: Any, settings: FakeSettings | None = None, interrupt_on_spawn: int = 0) -> None:
        self.map = FakeMap(cmap)
        self.settings = settings or FakeSettings()
        self.applied: list[FakeSettings] = []
        self.weather: Any = "original weather"
        self.library = FakeBlueprintLibrary()
        self.ids = itertools.count(100)
        self.actors: dict[int, Any] = {7: SimpleNamespace(id=7, owner="another client")}  # not ours to destroy
        self.spawned: list[FakeSpawned] = []
        self.spawn_calls = 0
        self.interrupt_on_spawn = interrupt_on_spawn

    def get_settings(self) -> FakeSettings:
        return copy.copy(self.settings)

    def apply_settings(self, settings: FakeSettings) -> int:
        self.settings = copy.copy(settings)
        self.applied.append(copy.copy(settings))
        return 1

    def get_weather(self) -> Any:
        return self.weather

    def set_weather(self, weather: Any) -> None:
        self.weather = weather

    def get_map(self) -> FakeMap:
        return self.map

    def get_blueprint_library(self) -> FakeBlueprintLibrary:
        return self.library

    def get_environment_objects(self, label: Any) -> list[Any]:
        return []

    def _spawn(self, bp: FakeBlueprint, transform: Any) -> FakeSpawned:
        self.spawn_calls += 1
        if self.spawn_calls == self.interrupt_on_spawn:
            raise KeyboardInterrupt
        actor = FakeSpawned(next(self.ids), bp, transform)
        self.actors[actor.id] = actor
        self.spawned.append(actor)
        return actor

    def spawn_actor(self, bp: FakeBlueprint, transform: Any) -> FakeSpawned:
        return self._spawn(bp, transform)

    def try_spawn_actor(self, bp: FakeBlueprint, transform: Any) -> FakeSpawned:
        return self._spawn(bp, transform)


class FakeClient:
    """carla.Client: records ``set_timeout`` calls; ``load_world`` takes ``load_s`` seconds and, as the real
    client does, raises RuntimeError("time-out of ...") when its current timeout is shorter than that."""

    def __init__(self, world: FakeWorld | None = None, load_s: float = 0.0, host: str = "127.0.0.1",
                 port: int = 2000) -> None:
        self.world = world
        self.load_s = load_s
        self.where = f"{host}:{port}"
        self.timeout: float | None = None
        self.timeouts: list[float] = []
        self.loaded: list[str] = []
        self.destroyed: list[int] = []
        self.tm = FakeTrafficManager()

    def set_timeout(self, seconds: float) -> None:
        self.timeout = seconds
        self.timeouts.append(seconds)

    def get_server_version(self) -> str:
        return "0.9.16"

    def get_client_version(self) -> str:
        return "0.9.16-fake"

    def load_world(self, name: str) -> FakeWorld | None:
        if self.timeout is not None and self.timeout < self.load_s:
            time.sleep(self.timeout)
            raise RuntimeError(f"time-out of {round(self.timeout * 1000)}ms while waiting for the simulator, "
                               f"make sure the simulator is ready and connected to {self.where}")
        time.sleep(self.load_s)
        self.loaded.append(name)
        return self.world

    def get_world(self) -> FakeWorld | None:
        return self.world

    def get_trafficmanager(self, port: int) -> FakeTrafficManager:
        return self.tm

    def apply_batch_sync(self, commands: list[Any]) -> list[Any]:
        for kind, actor_id in commands:
            assert kind == "destroy"
            self.destroyed.append(actor_id)
            if self.world is not None:
                self.world.actors.pop(actor_id, None)
        return []


def fake_carla_module(client: FakeClient | None = None) -> SimpleNamespace:
    """What the node uses of the ``carla`` module: the real geometry classes, the rest faked."""
    import carla

    return SimpleNamespace(
        Client=lambda host, port: client, Location=carla.Location, Rotation=carla.Rotation, Transform=carla.Transform,
        WeatherParameters=carla.WeatherParameters, CityObjectLabel=SimpleNamespace(Buildings="Buildings"),
        command=SimpleNamespace(DestroyActor=lambda actor_id: ("destroy", actor_id)))

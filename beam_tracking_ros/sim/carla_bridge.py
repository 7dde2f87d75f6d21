"""CARLA -> the core: actor poses, the RSU, walls, ground-truth labels, frame matching, bridge config.

The ROS-free half of the CARLA bridge (the node in ``ros/carla_bridge_node.py`` is the other half):
everything that turns CARLA objects into numpy is a plain function over duck-typed objects (the
attributes of ``carla.Image``, ``carla.RadarMeasurement``, ``carla.LidarMeasurement``,
``carla.GnssMeasurement``, ``carla.Actor``, ``carla.EnvironmentObject``), so it is tested with small
fakes and without rclpy. It sits next to the built-in simulator because it is the same job -- a world
-> sensor arrays and a ground-truth ``BeamLabel`` -- done for a CARLA world.

Coordinates. CARLA uses Unreal's left-handed frame (x forward, y right, z up; yaw in degrees,
clockwise seen from above). The channel model works in a right-handed world frame (y left, yaw
counter-clockwise in radians, ground at z = 0). The conversion is a mirror in y::

    x_w = x_c,   y_w = -y_c,   z_w = z_c - ground_z,   yaw_w = -radians(yaw_c)

which maps CARLA's rotations onto right-handed ones (a mirror reverses the sense of rotation).
Box sizes are ``2 * bounding_box.extent`` (length, width, height); the box centre is the actor's
location plus its ``bounding_box.location`` offset rotated by the actor's yaw (pitch and roll are
ignored: vehicles on a road). Sensor data is NOT mirrored here: the core keeps CARLA's own raw
conventions (CONTEXT "raw sensor formats"), and ``io.convert`` does the ROS mirroring as the
carla-simulator/ros-bridge does.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..channel import (
    ChannelModel,
    ChannelResult,
    RsuPose,
    VehicleBoxes,
    Walls,
)
from . import CameraConfig, LidarConfig, RadarConfig
from .carla_format import image_from_bytes, lidar_from_bytes, radar_from_bytes
from .carla_probe import carla_server_answers, describe_no_server
from .config import LABEL_MODES, WEATHERS
from .ground_truth import GeoReference, project_gnss, roof_gnss

# ================================================================================================
# Pure conversions (no server, no ROS): CARLA objects -> the core's numpy arrays
# ================================================================================================


def image_from_carla(image: Any) -> np.ndarray:
    """carla.Image (raw_data, width, height) -> (H, W, 4) uint8 BGRA, a view of its buffer."""
    return image_from_bytes(image.raw_data, int(image.width), int(image.height))


def radar_from_carla(measurement: Any) -> np.ndarray:
    """carla.RadarMeasurement -> (N, 4) float32 [velocity, azimuth, altitude, depth] (CARLA order)."""
    return radar_from_bytes(measurement.raw_data)


def lidar_from_carla(measurement: Any) -> np.ndarray:
    """carla.LidarMeasurement -> (N, 4) float32 [x, y, z, intensity] in CARLA's sensor frame."""
    return lidar_from_bytes(measurement.raw_data)


def gnss_from_carla(measurement: Any) -> np.ndarray:
    """carla.GnssMeasurement -> (3,) float64 [latitude deg, longitude deg, altitude m].

    Provided for a GNSS sensor on a user's own vehicle; the bridge itself computes the target's
    fix with :func:`gnss_of_vehicles`, because the label target is re-chosen as vehicles pass and
    a sensor would have to be re-attached each time (its first fix arrives a frame late).
    """
    out = np.array([measurement.latitude, measurement.longitude, measurement.altitude], dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"gnss measurement: latitude/longitude/altitude not finite: {out.tolist()}")
    return out


def carla_to_world(xyz: np.ndarray, ground_z: float = 0.0) -> np.ndarray:
    """CARLA left-handed locations (..., 3) -> the channel model's right-handed world frame."""
    out = np.array(xyz, dtype=np.float64, copy=True)
    out[..., 1] *= -1.0
    out[..., 2] -= ground_z
    return out


def carla_yaw_to_world(yaw_deg: np.ndarray | float) -> np.ndarray:
    """CARLA yaw (degrees, clockwise from above) -> world yaw (radians, counter-clockwise)."""
    return -np.radians(np.asarray(yaw_deg, dtype=np.float64))


@dataclass
class ActorPoses:
    """Vehicles read from CARLA actors, in the channel model's world frame, sorted by actor id."""

    ids: np.ndarray  # (V,) int64 actor ids
    boxes: VehicleBoxes  # centre (V, 3), size (V, 3), yaw (V,) in the world frame
    velocity: np.ndarray  # (V, 3) m/s, world frame
    carla_center: np.ndarray  # (V, 3) box centres in CARLA's frame (for GNSS)

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def speed(self) -> np.ndarray:
        return np.linalg.norm(self.velocity[:, :2], axis=1)


def poses_from_actors(actors: Iterable[Any], ground_z: float = 0.0) -> ActorPoses:
    """carla.Actor-like objects (id, get_transform(), bounding_box, get_velocity()) -> ActorPoses.

    One attribute read per actor (the client API offers nothing batched), then vectorised maths:
    box centre = location + R(yaw) @ bounding_box.location, size = 2 * extent, then the mirror of
    the module docstring.
    """
    rows = []
    for a in actors:
        tf = a.get_transform()
        bb = a.bounding_box
        v = a.get_velocity()
        rows.append((a.id, tf.location.x, tf.location.y, tf.location.z, tf.rotation.yaw,
                     bb.location.x, bb.location.y, bb.location.z, bb.extent.x, bb.extent.y, bb.extent.z,
                     v.x, v.y, v.z))
    if not rows:
        empty = VehicleBoxes(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
        return ActorPoses(np.zeros(0, np.int64), empty, np.zeros((0, 3)), np.zeros((0, 3)))
    a = np.array(rows, dtype=np.float64)
    a = a[np.argsort(a[:, 0], kind="stable")]
    ids = a[:, 0].astype(np.int64)
    loc, yaw_c, off, ext, vel = a[:, 1:4], a[:, 4], a[:, 5:8], a[:, 8:11], a[:, 11:14]
    c, s = np.cos(np.radians(yaw_c)), np.sin(np.radians(yaw_c))
    center_c = np.stack([loc[:, 0] + c * off[:, 0] - s * off[:, 1],
                         loc[:, 1] + s * off[:, 0] + c * off[:, 1],
                         loc[:, 2] + off[:, 2]], axis=1)
    size = np.maximum(2.0 * ext, 1e-3)  # a degenerate (zero-extent) box would be rejected by the model
    boxes = VehicleBoxes(carla_to_world(center_c, ground_z), size, carla_yaw_to_world(yaw_c))
    return ActorPoses(ids, boxes, carla_to_world(vel), center_c)


def walls_from_building_boxes(objects: Iterable[Any], rsu_position: Sequence[float], radius_m: float,
                              ground_z: float = 0.0, loss_db: float = 7.0) -> Walls:
    """Building bounding boxes (carla.EnvironmentObject-like: bounding_box with world location,
    extent, rotation.yaw) -> the facades that can reflect the RSU's signal, as channel ``Walls``.

    Why only some faces: the channel model's image method knows nothing of building interiors, so
    a face turned away from the RSU (reachable only through the building) would give a phantom
    reflection; for a box only the faces whose outward side holds the RSU are kept. Buildings
    whose footprint lies farther than ``radius_m`` from the RSU are dropped (they add cost, not
    power).
    """
    rows = []
    for o in objects:
        bb = o.bounding_box
        rows.append((bb.location.x, bb.location.y, bb.location.z, bb.extent.x, bb.extent.y, bb.extent.z,
                     bb.rotation.yaw))
    if not rows:
        return Walls.empty()
    b = np.array(rows, dtype=np.float64)
    ctr = carla_to_world(b[:, 0:3], ground_z)
    ex, ey, ez = b[:, 3], b[:, 4], b[:, 5]
    yaw = carla_yaw_to_world(b[:, 6])
    tx = np.asarray(rsu_position, dtype=np.float64)
    near = np.hypot(ctr[:, 0] - tx[0], ctr[:, 1] - tx[1]) - np.hypot(ex, ey) <= radius_m
    top = ctr[:, 2] + ez
    near &= (top > 0) & (ex > 0) & (ey > 0)
    ctr, ex, ey, yaw, top = ctr[near], ex[near], ey[near], yaw[near], top[near]
    if ctr.shape[0] == 0:
        return Walls.empty()
    # corners counter-clockwise in the box frame; edge k joins corner k and k+1
    sx = np.array([1.0, -1.0, -1.0, 1.0])
    sy = np.array([1.0, 1.0, -1.0, -1.0])
    lx, ly = sx[None] * ex[:, None], sy[None] * ey[:, None]  # (M, 4)
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    cx = ctr[:, 0:1] + c * lx - s * ly
    cy = ctr[:, 1:2] + s * lx + c * ly
    p0 = np.stack([cx, cy], axis=-1)  # (M, 4, 2)
    p1 = np.roll(p0, -1, axis=1)
    d = p1 - p0
    outward = np.stack([d[..., 1], -d[..., 0]], axis=-1)  # right of a CCW edge points outside
    mid = 0.5 * (p0 + p1)
    facing = ((tx[:2] - mid) * outward).sum(-1) > 0
    height = np.broadcast_to(top[:, None], facing.shape)
    return Walls(p0[facing], p1[facing], height[facing], loss_db=loss_db)


def rsu_from_spawn_point(x: float, y: float, z: float, yaw_deg: float, side_offset_m: float
                         ) -> tuple[float, float, float, float]:
    """Place the RSU pole ``side_offset_m`` to the right of a lane spawn point (CARLA frame: the
    right of heading yaw is (-sin yaw, cos yaw)), looking back across the road (yaw - 90 deg).
    Returns (x, y, ground_z, yaw_deg) in CARLA's frame; right-hand traffic puts it on the kerb."""
    r = math.radians(yaw_deg)
    yaw = (yaw_deg - 90.0 + 180.0) % 360.0 - 180.0
    return (x - side_offset_m * math.sin(r), y + side_offset_m * math.cos(r), z, yaw)


def road_height(cmap: Any, location: Any) -> float:
    """CARLA z of the road surface nearest ``location`` (a ``carla.Location``) on ``cmap`` (a ``carla.Map``).

    Why waypoints and not spawn points: CARLA places spawn points about 0.6 m above the road so that
    a vehicle drops onto it; taking their z as the ground would lift the world frame's z = 0 above
    the road and shift every vehicle box, facade, sensor mount and the RSU's fix by that much. The
    waypoint projected onto the nearest driving lane lies on the road surface itself.
    """
    wp = cmap.get_waypoint(location, project_to_road=True)
    if wp is None:
        raise ValueError(f"the map has no driving lane near ({location.x:.1f}, {location.y:.1f}) to take "
                         "the ground height from")
    return float(wp.transform.location.z)


def rsu_pose_world(x: float, y: float, yaw_deg: float, height: float) -> RsuPose:
    """The mmWave array of an RSU at CARLA (x, y) with CARLA yaw, ``height`` above ground."""
    return RsuPose((float(x), float(-y), float(height)), float(carla_yaw_to_world(yaw_deg)))


def map_projection(cmap: Any, carla_module: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The map's own geo-projection, ``Map.transform_to_geolocation``, over (N, 3) CARLA locations.

    Why not a formula: the projection is the server's (0.9.16 changed it; later versions read more of
    the geoReference), so fixes computed through it are what CARLA's GNSS sensor and carla-ros-bridge
    report on that map, whatever the version."""

    def project(locations: np.ndarray) -> np.ndarray:
        out = np.empty((len(locations), 3), dtype=np.float64)
        for i, (x, y, z) in enumerate(np.asarray(locations, dtype=np.float64).reshape(-1, 3)):
            g = cmap.transform_to_geolocation(carla_module.Location(x=float(x), y=float(y), z=float(z)))
            out[i] = (g.latitude, g.longitude, g.altitude)
        return out

    return project


def rsu_gnss(x: float, y: float, ground_z: float, height: float, geo_ref: GeoReference) -> np.ndarray:
    """(3,) lat/lon/alt of the RSU's array at CARLA (x, y), ``height`` above ``ground_z``: its own fix,
    published on the RSU's GNSS topic so a recorded bag carries the GPS feature's reference."""
    return project_gnss(np.array([[x, y, ground_z + height]], dtype=np.float64), geo_ref)[0]


def gnss_of_vehicles(poses: ActorPoses, rows: np.ndarray, geo_ref: GeoReference,
                     rng: np.random.Generator | None = None, noise_std_m: float = 0.0) -> np.ndarray:
    """(R, 3) [lat, lon, alt] of the roof centres of ``rows`` (:func:`.ground_truth.roof_gnss`, the
    simulator's rule) through the map's projection ``geo_ref`` (:func:`map_projection`, or the
    geoReference's (lat0, lon0, alt0)); CARLA's altitudes are above the map's origin, not the road, so
    the ground height the world frame took off is added back."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    fix = roof_gnss(poses.boxes.center[rows], poses.boxes.size[rows, 2], geo_ref, rng, noise_std_m)
    fix[:, 2] += poses.carla_center[rows, 2] - poses.boxes.center[rows, 2]
    return fix


def ground_truth(model: ChannelModel, rsu: RsuPose, poses: ActorPoses, walls: Walls | None,
                 shadow_db: np.ndarray | None = None, rng: np.random.Generator | None = None
                 ) -> ChannelResult | None:
    """ChannelModel on the actors' boxes (None without vehicles): the bridge's ground truth."""
    if len(poses) == 0:
        return None
    return model.compute(rsu, poses.boxes, walls, rng=rng, shadow_db=shadow_db)


WEATHER_PRESETS: dict[str, tuple[str, dict[str, float]]] = {
    # the simulator's weathers -> carla.WeatherParameters preset + attribute overrides
    "day": ("ClearNoon", {}),
    "night": ("ClearNight", {}),
    "rain": ("HardRainNoon", {}),
    "fog": ("CloudyNoon", {"fog_density": 60.0, "fog_distance": 5.0}),
}


def weather_preset(name: str) -> tuple[str, dict[str, float]]:
    """(preset attribute of carla.WeatherParameters, overrides) for the simulator's weather names."""
    if name not in WEATHER_PRESETS:
        raise ValueError(f"weather: unknown {name!r}, expected one of {WEATHERS}")
    return WEATHER_PRESETS[name]


def carla_weather(carla_module: Any, name: str) -> Any:
    """A new ``carla.WeatherParameters`` for the simulator's weather ``name``: the preset's values plus the
    overrides. Why a copy: the presets are shared class attributes, so setting the fog on
    ``carla.WeatherParameters.CloudyNoon`` itself would change that preset for everyone in the process."""
    preset, overrides = weather_preset(name)
    base = getattr(carla_module.WeatherParameters, preset)
    values = {k: getattr(base, k) for k in dir(base)
              if not k.startswith("_") and isinstance(getattr(base, k), (int, float))}
    return carla_module.WeatherParameters(**{**values, **overrides})


class FrameCollector:
    """Matches sensor callbacks to simulation frames.

    CARLA calls each sensor's ``listen`` callback from its own client thread; in synchronous mode
    every sensor delivers one measurement per ``world.tick()``, stamped with the tick's frame id.
    Each sensor has a bounded queue (the oldest item is dropped when full, so a stalled consumer
    cannot grow memory); :meth:`collect` waits until every sensor has delivered ``frame`` or the
    timeout passes, drops older leftovers and keeps newer ones for the next frame.
    """

    def __init__(self, names: Iterable[str], maxsize: int = 8) -> None:
        if maxsize <= 0:
            raise ValueError(f"maxsize must be positive, got {maxsize}")
        self.queues: dict[str, queue.Queue] = {n: queue.Queue(maxsize) for n in names}
        self.pending: dict[str, Any] = {}
        self.dropped = 0

    def callback(self, name: str) -> Callable[[Any], None]:
        q = self.queues[name]

        def put(data: Any) -> None:
            while True:
                try:
                    q.put_nowait(data)
                    return
                except queue.Full:
                    try:
                        q.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass

        return put

    def collect(self, frame: int, timeout_s: float) -> dict[str, Any]:
        """{sensor: measurement of ``frame``} for the sensors that delivered it within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        out: dict[str, Any] = {}
        for name, q in self.queues.items():
            item = self.pending.pop(name, None)
            while True:
                if item is not None:
                    f = int(item.frame)
                    if f == frame:
                        out[name] = item
                        break
                    if f > frame:  # we missed ours; keep this one for its own tick
                        self.pending[name] = item
                        break
                    self.dropped += 1  # stale
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = q.get(timeout=left)
                except queue.Empty:
                    break
        return out


# ================================================================================================
# Parameters
# ================================================================================================

MAX_SUBSTEP_DELTA_S = 0.01
"""Longest physics substep (s) the bridge lets CARLA take: CARLA's default, below which its vehicle physics is
stable."""
MAX_SUBSTEPS = 16
"""The most physics substeps per tick CARLA accepts (its settings refuse more)."""
MIN_RATE_HZ = 1.0 / (MAX_SUBSTEP_DELTA_S * MAX_SUBSTEPS)
"""Slowest scene rate (6.25 Hz) whose step CARLA's physics can cover: a longer step would be simulated
only in part (CARLA merely logs a warning), so slower rates are refused before the world is touched."""
SEED_MAX = 2**64 - 1
"""Largest seed ``TrafficManager.set_random_device_seed`` accepts (a C++ unsigned long); a seed outside
0..SEED_MAX would fail there with a Boost ArgumentError, after the world is already synchronous."""


def physics_substeps(dt: float) -> int:
    """Substeps of at most MAX_SUBSTEP_DELTA_S that cover a tick of ``dt`` seconds, as CARLA requires
    (``fixed_delta_seconds <= max_substep_delta_time * max_substeps``); ValueError when more than
    MAX_SUBSTEPS would be needed. The 1e-9 tolerance keeps 0.1 / 0.01 at 10, not 11."""
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"the step must be a positive number of seconds, got {dt!r}")
    n = max(1, math.ceil(dt / MAX_SUBSTEP_DELTA_S - 1e-9))
    if n > MAX_SUBSTEPS:
        raise ValueError(f"a step of {dt:g} s needs {n} physics substeps of {MAX_SUBSTEP_DELTA_S:g} s, "
                         f"CARLA allows at most {MAX_SUBSTEPS}")
    return n


def synchronous_settings(settings: Any, dt: float) -> Any:
    """``settings`` (a ``carla.WorldSettings``) switched to synchronous mode with a fixed step ``dt`` whose
    physics is fully simulated: substepping on, MAX_SUBSTEP_DELTA_S substeps, as many as the step needs."""
    n = physics_substeps(dt)
    settings.synchronous_mode = True
    settings.fixed_delta_seconds = dt
    settings.substepping = True
    settings.max_substep_delta_time = MAX_SUBSTEP_DELTA_S
    settings.max_substeps = n
    return settings


BRIDGE_PARAMS: dict[str, tuple[Any, str]] = {
    "host": ("127.0.0.1", "Host of the CARLA server."),
    "port": (2000, "RPC port of the CARLA server (the streaming port is port + 1)."),
    "timeout_s": (2.0, "Client timeout (s): connection and every blocking call; no answer -> exit 1."),
    "town": ("", "Map to load (e.g. Town10HD_Opt); empty keeps the server's current map."),
    "load_timeout_s": (60.0, "Client timeout (s) while loading `town` (takes tens of seconds); exceeded -> exit 1."),
    "rate_hz": (10.0, "Scene rate: synchronous mode with fixed_delta_seconds = 1 / rate_hz; >= 6.25 (physics "
                      "substeps of <= 0.01 s, at most 16)."),
    "realtime_factor": (1.0, "Simulated seconds per wall second (<= 0: tick as fast as the server can)."),
    "role_name": ("rsu", "CARLA-bridge role name of the RSU (topic prefix /carla/<role_name>/)."),
    "target_role_name": ("target", "Role name of the tracked vehicle (its GNSS topic /carla/<it>/gnss)."),
    "n_vehicles": (30, "Autopilot vehicles to spawn, at the spawn points nearest the RSU."),
    "tm_port": (8000, "Traffic Manager port."),
    "seed": (0, "Seed (integer 0..2**64-1) of the vehicle blueprints, the Traffic Manager, shadowing and GNSS "
                "noise."),
    "weather": ("day", "day | night | rain | fog, mapped to CARLA weather presets."),
    "rsu_spawn_point": (0, "Place the RSU beside this map spawn point (>= 0); -1 uses rsu_x/rsu_y/..."),
    "rsu_side_offset_m": (6.0, "Distance of the RSU pole to the right of the chosen spawn point (m)."),
    "rsu_x": (0.0, "RSU pole x in CARLA's frame (m), used when rsu_spawn_point = -1."),
    "rsu_y": (0.0, "RSU pole y in CARLA's frame (m, left-handed: y right), when rsu_spawn_point = -1."),
    "rsu_ground_z": (0.0, "Ground height at the RSU pole in CARLA's frame (m), when rsu_spawn_point = -1."),
    "rsu_yaw_deg": (90.0, "RSU heading in CARLA's frame (deg, clockwise from +x), when rsu_spawn_point = -1."),
    "rsu_height": (6.0, "Height of the mmWave array above the ground (m), as in the built-in scene."),
    "label_mode": ("sum_rss", "Ground-truth label: single (one tracked vehicle) or sum_rss (CRKD)."),
    "label_range_m": (80.0, "Vehicles within this distance of the RSU are served (labelled)."),
    "walls_radius_m": (150.0, "Building facades within this distance reflect (channel model walls)."),
    "wall_loss_db": (7.0, "Reflection loss of a building facade (dB)."),
    "gnss_noise_std_m": (0.3, "GNSS noise std (m) of the target's fix, as the built-in simulator."),
    "sync_timeout_s": (2.0, "Wait at most this long per tick for every sensor's measurement."),
    "max_frames": (0, "Stop (exit 0) after this many frames; 0 = run until shut down."),
    "camera_enabled": (True, "Spawn and publish the RSU camera (sensor.camera.rgb)."),
    "camera_width": (256, "Camera image_size_x in pixels."),
    "camera_height": (192, "Camera image_size_y in pixels."),
    "camera_fov_deg": (90.0, "Camera horizontal field of view (deg)."),
    "camera_pitch_deg": (-12.0, "Camera pitch (deg, negative = down)."),
    "camera_mount_height": (5.5, "Camera height above ground (m)."),
    "lidar_enabled": (True, "Spawn and publish the RSU LiDAR (sensor.lidar.ray_cast)."),
    "lidar_channels": (16, "LiDAR channels."),
    "lidar_range_m": (80.0, "LiDAR range (m)."),
    "lidar_upper_fov_deg": (2.0, "LiDAR upper_fov (deg)."),
    "lidar_lower_fov_deg": (-30.0, "LiDAR lower_fov (deg)."),
    "lidar_h_resolution_deg": (0.5, "Horizontal step (deg): points_per_second = channels*360/step*rate."),
    "lidar_mount_height": (5.0, "LiDAR height above ground (m)."),
    "radar_enabled": (True, "Spawn and publish the RSU radar (sensor.other.radar)."),
    "radar_horizontal_fov_deg": (150.0, "Radar horizontal_fov (deg)."),
    "radar_vertical_fov_deg": (40.0, "Radar vertical_fov (deg)."),
    "radar_range_m": (100.0, "Radar range (m)."),
    "radar_points_per_second": (4500, "Radar points_per_second."),
    "radar_pitch_deg": (-15.0, "Radar pitch (deg, negative = down)."),
    "radar_mount_height": (5.0, "Radar height above ground (m)."),
}


@dataclass(frozen=True)
class BridgeConfig:
    """Validated parameters of the bridge (see BRIDGE_PARAMS for their meaning)."""

    host: str
    port: int
    timeout_s: float
    town: str
    load_timeout_s: float
    rate_hz: float
    realtime_factor: float
    role_name: str
    target_role_name: str
    n_vehicles: int
    tm_port: int
    seed: int
    weather: str
    rsu_spawn_point: int
    rsu_side_offset_m: float
    rsu_x: float
    rsu_y: float
    rsu_ground_z: float
    rsu_yaw_deg: float
    rsu_height: float
    label_mode: str
    label_range_m: float
    walls_radius_m: float
    wall_loss_db: float
    gnss_noise_std_m: float
    sync_timeout_s: float
    max_frames: int
    radar_points_per_second: int
    camera: CameraConfig = field(default_factory=CameraConfig)
    lidar: LidarConfig = field(default_factory=LidarConfig)
    radar: RadarConfig = field(default_factory=RadarConfig)

    @property
    def dt(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def connect_deadline_s(self) -> float:
        """Overall bound on the connection phase (probe + version + map load + world), whatever the client does."""
        return 3.0 * self.timeout_s + 2.0 + (self.load_timeout_s if self.town else 0.0)

    @property
    def lidar_points_per_second(self) -> int:
        return round(self.lidar.channels * 360.0 / self.lidar.h_resolution_deg * self.rate_hz)


def _bad(name: str, why: str, value: Any) -> ValueError:
    return ValueError(f"parameter {name}: {why}, got {value!r}")


def bridge_config_from_params(params: dict[str, Any]) -> BridgeConfig:
    """Validate the flat parameters; ValueError naming the parameter (the node exits 2)."""
    p = dict(params)
    unknown = sorted(set(p) - set(BRIDGE_PARAMS))
    if unknown:
        raise ValueError(f"unknown carla_bridge parameter(s): {unknown}")
    v = {k: p.get(k, d) for k, (d, _) in BRIDGE_PARAMS.items()}
    if not isinstance(v["host"], str) or not v["host"].strip():
        raise _bad("host", "must be a non-empty host name", v["host"])
    for name, lo, hi in (("port", 1, 65535), ("tm_port", 1, 65535)):
        if isinstance(v[name], bool) or not isinstance(v[name], int) or not lo <= v[name] <= hi:
            raise _bad(name, f"must be an integer in {lo}..{hi}", v[name])
    for name in ("timeout_s", "load_timeout_s", "rate_hz", "rsu_height", "label_range_m", "walls_radius_m",
                 "sync_timeout_s"):
        if not (isinstance(v[name], (int, float)) and math.isfinite(v[name]) and v[name] > 0):
            raise _bad(name, "must be a positive number", v[name])
    for name in ("wall_loss_db", "gnss_noise_std_m", "rsu_side_offset_m"):
        if not (isinstance(v[name], (int, float)) and math.isfinite(v[name]) and v[name] >= 0):
            raise _bad(name, "must be a number >= 0", v[name])
    if v["rate_hz"] < MIN_RATE_HZ:
        raise _bad("rate_hz", f"must be >= {MIN_RATE_HZ:g} (CARLA covers a step with at most {MAX_SUBSTEPS} "
                              f"physics substeps of {MAX_SUBSTEP_DELTA_S:g} s)", v["rate_hz"])
    if isinstance(v["seed"], bool) or not isinstance(v["seed"], int) or not 0 <= v["seed"] <= SEED_MAX:
        raise _bad("seed", "must be an integer in 0..2**64-1 (the Traffic Manager's seed range)", v["seed"])
    if not isinstance(v["town"], str):
        raise _bad("town", "must be a map name (a string)", v["town"])
    for name in ("n_vehicles", "max_frames", "radar_points_per_second"):
        if isinstance(v[name], bool) or not isinstance(v[name], int) or v[name] < 0:
            raise _bad(name, "must be a non-negative integer", v[name])
    if isinstance(v["rsu_spawn_point"], bool) or not isinstance(v["rsu_spawn_point"], int) or v["rsu_spawn_point"] < -1:
        raise _bad("rsu_spawn_point", "must be an integer >= -1", v["rsu_spawn_point"])
    if v["label_mode"] not in LABEL_MODES:
        raise _bad("label_mode", f"must be one of {LABEL_MODES}", v["label_mode"])
    if v["weather"] not in WEATHERS:
        raise _bad("weather", f"must be one of {WEATHERS}", v["weather"])
    for name in ("role_name", "target_role_name"):
        if not isinstance(v[name], str) or not v[name] or not v[name].replace("_", "a").isalnum():
            raise _bad(name, "must be a non-empty name of letters, digits and '_'", v[name])
    try:
        cam = CameraConfig(enabled=bool(v["camera_enabled"]), width=v["camera_width"], height=v["camera_height"],
                           fov_deg=float(v["camera_fov_deg"]), pitch_deg=float(v["camera_pitch_deg"]),
                           mount_height=float(v["camera_mount_height"]))
        lidar = LidarConfig(enabled=bool(v["lidar_enabled"]), channels=v["lidar_channels"],
                            range_m=float(v["lidar_range_m"]), upper_fov_deg=float(v["lidar_upper_fov_deg"]),
                            lower_fov_deg=float(v["lidar_lower_fov_deg"]),
                            h_resolution_deg=float(v["lidar_h_resolution_deg"]),
                            mount_height=float(v["lidar_mount_height"]))
        radar = RadarConfig(enabled=bool(v["radar_enabled"]),
                            horizontal_fov_deg=float(v["radar_horizontal_fov_deg"]),
                            vertical_fov_deg=float(v["radar_vertical_fov_deg"]), range_m=float(v["radar_range_m"]),
                            pitch_deg=float(v["radar_pitch_deg"]), mount_height=float(v["radar_mount_height"]))
    except ValueError as exc:  # the core names e.g. 'camera.width': say which parameter that is
        raise ValueError(f"parameter {str(exc).split(' ')[0].replace('.', '_')}: {exc}") from exc
    scalars = {k: v[k] for k in BridgeConfig.__dataclass_fields__ if k not in ("camera", "lidar", "radar")}
    for k in ("timeout_s", "load_timeout_s", "rate_hz", "realtime_factor", "rsu_side_offset_m", "rsu_x", "rsu_y",
              "rsu_ground_z", "rsu_yaw_deg", "rsu_height", "label_range_m", "walls_radius_m", "wall_loss_db",
              "gnss_noise_std_m", "sync_timeout_s"):
        if isinstance(scalars[k], bool) or not isinstance(scalars[k], (int, float)) or not math.isfinite(scalars[k]):
            raise _bad(k, "must be a finite number", scalars[k])
        scalars[k] = float(scalars[k])
    return BridgeConfig(**scalars, camera=cam, lidar=lidar, radar=radar)


class CarlaConnectionError(RuntimeError):
    """No CARLA server answered, or it did not finish loading the town (the node logs the message, exits 1)."""


def describe_load_timeout(town: str, host: str, port: int, timeout: float) -> str:
    """The one line when the server answered but loading ``town`` did not finish in time: distinct from
    "no server answered", because the cure differs (a longer ``load_timeout_s``, not starting a server)."""
    return (f"CARLA server at {host}:{port} answered, but loading town {town} did not finish within {timeout:g} s "
            f"(raise load_timeout_s, or leave town empty to keep the server's current map)")


def connect(cfg: BridgeConfig, carla: Any) -> tuple[Any, Any, str]:
    """(client, world, server_version) or CarlaConnectionError within ``cfg.connect_deadline_s``.

    A TCP probe first gives a closed port its answer at once; the client calls then run in a daemon
    thread joined with a deadline (the client releases the GIL while waiting), so even a server
    that accepts connections but never replies cannot hang the node. Loading ``cfg.town`` takes far
    longer than any other call, so ``load_world`` runs under its own client timeout,
    ``cfg.load_timeout_s``, and the client's timeout is set back to ``cfg.timeout_s`` afterwards.
    """
    where = f"{cfg.host}:{cfg.port}"
    if not carla_server_answers(cfg.host, cfg.port, cfg.timeout_s):
        raise CarlaConnectionError(describe_no_server(cfg.host, cfg.port, cfg.timeout_s))
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            client = carla.Client(cfg.host, cfg.port)
            client.set_timeout(cfg.timeout_s)
            version = client.get_server_version()  # RuntimeError on timeout
            if cfg.town:
                box["phase"] = "load"
                client.set_timeout(cfg.load_timeout_s)
                try:
                    client.load_world(cfg.town)
                finally:
                    client.set_timeout(cfg.timeout_s)
                box["phase"] = "world"
            box["ok"] = (client, client.get_world(), version)
        except Exception as exc:
            box["error"] = exc

    th = threading.Thread(target=work, name="carla-connect", daemon=True)
    th.start()
    th.join(cfg.connect_deadline_s)
    if "ok" in box:
        return box["ok"]
    if box.get("phase") == "load":
        err = box.get("error")
        if th.is_alive() or (isinstance(err, RuntimeError) and "time-out" in str(err)):
            raise CarlaConnectionError(describe_load_timeout(cfg.town, cfg.host, cfg.port, cfg.load_timeout_s))
        raise CarlaConnectionError(f"CARLA server at {where}: loading town {cfg.town} failed: {err}")
    if th.is_alive() or isinstance(box.get("error"), RuntimeError):
        raise CarlaConnectionError(describe_no_server(cfg.host, cfg.port, cfg.timeout_s))
    raise CarlaConnectionError(f"CARLA server at {where}: {box.get('error')}")

"""ROS 2 node ``carla_bridge``: a CARLA server's RSU sensors and traffic on the simulator's topics.

For users with a CARLA server (it needs a large GPU machine; none can run where this package is
developed). The node connects with the ``carla`` Python client, switches the world to synchronous
mode with a fixed step of ``1 / rate_hz`` seconds, spawns a static RSU (camera, radar, LiDAR, not
attached to any actor) and autopilot traffic, and on every ``world.tick()`` publishes exactly what
the built-in ``simulator`` node publishes -- the same topics, messages, frame ids and point layouts
(:mod:`beam_tracking_ros.io.topics`, :mod:`beam_tracking_ros.io.convert`) -- so the tracker, the
recorder and the dataset builder cannot tell the two apart (``carla_ros_bridge_compat:=true`` also
publishes them as carla-ros-bridge does: reliable sensors, simulation-time stamps -- CARLA's
``elapsed_seconds`` -- on the headers and ``/clock``, and ``/tf``; see :mod:`beam_tracking_ros.io.frames`).
The ground-truth ``BeamObservation``
comes from the same :class:`~beam_tracking_ros.channel.ChannelModel`, fed with the actors' poses,
and the label target is chosen by the simulator's rule (see :func:`~beam_tracking_ros.sim.ground_truth.choose_label`).

Failure is explicit and bounded: when no server answers, the node logs ONE line
(:func:`~beam_tracking_ros.sim.carla_probe.describe_no_server`) and exits with code 1; the
connection phase also has an overall deadline (the client's calls run in a helper thread that is
abandoned if it overruns), so the node never hangs; loading ``town`` has its own, longer timeout
(``load_timeout_s``) and its own message. Bad parameters (a seed CARLA cannot take, a rate whose
physics CARLA cannot cover, ...) exit with code 2 before any connection is tried, and everything
read from the map (spawn points, ground height, blueprints) is checked before the world's settings
change. On every exit -- normal shutdown, an error, Ctrl-C during set-up -- the actors the node
spawned (and only those) are destroyed and the world's original settings restored.

The ROS-free half -- CARLA objects to numpy, the coordinate mirror, actor poses, walls, the RSU,
the ground-truth label, frame matching, the validated parameters -- is
:mod:`beam_tracking_ros.sim.carla_bridge`, tested with small fakes and without rclpy; this node only
spawns, ticks and publishes, and that part needs a live server (untested here beyond its error paths).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from rclpy.node import Node

from ..channel import ChannelConfig, ChannelModel, codebook_id
from ..io import convert
from ..io.frames import (
    PUBLISH_PARAMS,
    FrameTransform,
    carla_mount,
    publish_options_from_params,
    rsu_transforms,
    sim_stamp_ns,
)
from ..io.topics import Topics
from ..sim.carla_bridge import (
    BRIDGE_PARAMS,
    BridgeConfig,
    CarlaConnectionError,
    FrameCollector,
    bridge_config_from_params,
    carla_weather,
    connect,
    gnss_of_vehicles,
    ground_truth,
    image_from_carla,
    lidar_from_carla,
    map_projection,
    poses_from_actors,
    radar_from_carla,
    road_height,
    rsu_from_spawn_point,
    rsu_gnss,
    rsu_pose_world,
    synchronous_settings,
    walls_from_building_boxes,
)
from ..sim.ground_truth import ShadowingProcess, choose_label
from .params import declare
from .rsu_publishers import RsuPublishers
from .spin import run_node


def bridge_transforms(cfg: BridgeConfig, x: float, y: float, ground_z: float, yaw_deg: float,
                      map_frame: str = "map") -> list[FrameTransform]:
    """/tf of the RSU spawned at CARLA (x, y) on ``ground_z`` with CARLA yaw ``yaw_deg``: each enabled sensor
    where ``_spawn_sensors`` puts it (its mount height and pitch), the mmWave array and the RSU's GNSS antenna
    at ``rsu_height``, in carla-ros-bridge's map frame (CARLA's world mirrored in y, :func:`carla_mount`)."""
    mounts = [carla_mount(name, x, y, ground_z + cfg.rsu_height, yaw_deg, 0.0) for name in ("mmwave_array", "gnss")]
    for name in ("camera", "radar", "lidar"):
        sensor = getattr(cfg, name)
        if sensor.enabled:
            pitch = getattr(sensor, "pitch_deg", 0.0) if name != "lidar" else 0.0  # the LiDAR spawns level
            mounts.append(carla_mount(name, x, y, ground_z + sensor.mount_height, yaw_deg, pitch))
    return rsu_transforms(cfg.role_name, mounts, map_frame)


# ================================================================================================
# The node (needs a live CARLA server: not testable here beyond its error paths)
# ================================================================================================


class CarlaBridgeNode(Node):
    """Ticks a CARLA world in synchronous mode and publishes the simulator's topics; see module doc."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("carla_bridge", **kwargs)
        params = {name: _declare(self, name, default, desc) for name, (default, desc) in BRIDGE_PARAMS.items()}
        self.cfg = cfg = bridge_config_from_params(params)  # ValueError -> exit 2, before connecting
        self.options = publish_options_from_params(
            {name: declare(self, name, default, desc) for name, (default, desc) in PUBLISH_PARAMS.items()})
        self.sensor_transforms: list[FrameTransform] = []
        try:
            import carla
        except ImportError as exc:
            raise ValueError("the 'carla' Python client is not installed: pip install carla==<server version>"
                             ) from exc
        self.carla = carla
        self.topics = Topics(role=cfg.role_name, target_role=cfg.target_role_name)
        self.channel = ChannelModel(ChannelConfig())
        self.codebook_id = codebook_id(self.channel.config, self.channel.n_beams)
        self.noise_dbm = float(self.channel.config.noise_dbm)
        self.actors: list[Any] = []
        self.sensors: list[Any] = []
        self.original_settings = None
        self.original_weather = None
        self.world = None
        self.tm = None
        try:
            self.client, self.world, version = connect(cfg, carla)
        except CarlaConnectionError as exc:
            self.get_logger().error(str(exc))
            raise SystemExit(1) from None
        self.client_version = self.client.get_client_version()  # 0.9.16 has no carla.__version__
        self.get_logger().info(f"connected to CARLA {version} at {cfg.host}:{cfg.port} "
                               f"(client {self.client_version})")
        try:
            self._setup()
        except BaseException:  # KeyboardInterrupt too: a Ctrl-C must not leave the world synchronous
            self._cleanup()
            raise
        period = cfg.dt / cfg.realtime_factor if cfg.realtime_factor > 0 else 0.0
        self.timer = self.create_timer(period, self.tick)

    # ---- set-up ----------------------------------------------------------------------------------
    def _setup(self) -> None:
        """Read and check everything the map must offer first, then change the world: an error found
        before ``apply_settings`` leaves the server exactly as it was."""
        carla, cfg, world = self.carla, self.cfg, self.world
        cmap = world.get_map()
        self.geo_ref = map_projection(cmap, carla)  # fixes as the map's GNSS sensor would report them
        spawn_points = cmap.get_spawn_points()
        if cfg.rsu_spawn_point >= 0:
            if cfg.rsu_spawn_point >= len(spawn_points):
                raise ValueError(f"parameter rsu_spawn_point: {cfg.rsu_spawn_point} >= the map's "
                                 f"{len(spawn_points)} spawn points")
            sp = spawn_points[cfg.rsu_spawn_point]
            # the road under the spawn point, not the spawn point (CARLA puts those ~0.6 m above the road)
            gz = road_height(cmap, sp.location)
            x, y, gz, yaw = rsu_from_spawn_point(sp.location.x, sp.location.y, gz, sp.rotation.yaw,
                                                 cfg.rsu_side_offset_m)
        else:
            x, y, gz, yaw = cfg.rsu_x, cfg.rsu_y, cfg.rsu_ground_z, cfg.rsu_yaw_deg
        vehicle_bps = self._vehicle_blueprints() if cfg.n_vehicles else []
        weather = carla_weather(carla, cfg.weather)
        # from here on the world changes; _cleanup undoes it on any exit
        self.original_settings = world.get_settings()
        world.apply_settings(synchronous_settings(world.get_settings(), cfg.dt))
        self.tm = self.client.get_trafficmanager(cfg.tm_port)
        self.tm.set_synchronous_mode(True)
        self.tm.set_random_device_seed(cfg.seed)
        self.original_weather = world.get_weather()
        world.set_weather(weather)
        self.rsu_carla = (x, y, gz, yaw)
        self.rsu = rsu_pose_world(x, y, yaw, cfg.rsu_height)
        self.rsu_fix = rsu_gnss(x, y, gz, cfg.rsu_height, self.geo_ref)
        buildings = world.get_environment_objects(carla.CityObjectLabel.Buildings)
        self.walls = walls_from_building_boxes(buildings, self.rsu.position, cfg.walls_radius_m, gz, cfg.wall_loss_db)
        rng = np.random.default_rng(cfg.seed)
        self.rng_shadow, self.rng_gnss = (np.random.default_rng(s) for s in rng.bit_generator.seed_seq.spawn(2))
        self.shadowing = ShadowingProcess(self.channel.config.shadowing_db, 2 + len(self.walls), self.rng_shadow)
        self._spawn_sensors(x, y, gz, yaw)
        self._spawn_traffic(spawn_points, vehicle_bps, x, y, rng)
        self._make_publishers()
        self.frames = 0
        self.target_id: int | None = None
        self.t0_ns = time.time_ns()
        self.elapsed0: float | None = None
        self.missing = 0
        self.get_logger().info(
            f"CARLA bridge: RSU at CARLA ({x:.1f}, {y:.1f}) yaw {yaw:.0f} deg, {len(self.walls)} facades, "
            f"{len(self.actors)} autopilot vehicles, {cfg.rate_hz:g} Hz, {cfg.weather}, "
            f"{self.channel.n_beams} beams ({self.codebook_id}), topics under /carla/{cfg.role_name}/")

    def _spawn_sensors(self, x: float, y: float, gz: float, yaw: float) -> None:
        carla, cfg, world = self.carla, self.cfg, self.world
        lib = world.get_blueprint_library()
        specs: list[tuple[str, str, dict[str, Any], float, float]] = []
        if cfg.camera.enabled:
            c = cfg.camera
            specs.append(("camera", "sensor.camera.rgb", {"image_size_x": c.width, "image_size_y": c.height,
                                                          "fov": c.fov_deg}, c.mount_height, c.pitch_deg))
        if cfg.radar.enabled:
            r = cfg.radar
            specs.append(("radar", "sensor.other.radar", {
                "horizontal_fov": r.horizontal_fov_deg, "vertical_fov": r.vertical_fov_deg, "range": r.range_m,
                "points_per_second": cfg.radar_points_per_second}, r.mount_height, r.pitch_deg))
        if cfg.lidar.enabled:
            li = cfg.lidar
            specs.append(("lidar", "sensor.lidar.ray_cast", {
                "channels": li.channels, "range": li.range_m, "rotation_frequency": cfg.rate_hz,
                "points_per_second": cfg.lidar_points_per_second, "upper_fov": li.upper_fov_deg,
                "lower_fov": li.lower_fov_deg, "horizontal_fov": li.horizontal_fov_deg,
                "atmosphere_attenuation_rate": li.atmosphere_attenuation_rate}, li.mount_height, 0.0))
        self.collector = FrameCollector([s[0] for s in specs])
        self.sensor_transforms = bridge_transforms(cfg, x, y, gz, yaw, self.options.map_frame)
        for name, bp_id, attrs, height, pitch in specs:
            bp = lib.find(bp_id)
            bp.set_attribute("role_name", f"{cfg.role_name}_{name}")
            bp.set_attribute("sensor_tick", "0.0")
            for k, val in attrs.items():
                bp.set_attribute(k, str(val))
            tf = carla.Transform(carla.Location(x=x, y=y, z=gz + height), carla.Rotation(pitch=pitch, yaw=yaw))
            sensor = world.spawn_actor(bp, tf)  # attached to nothing: a static RSU sensor
            self.sensors.append(sensor)
            sensor.listen(self.collector.callback(name))

    def _vehicle_blueprints(self) -> list[Any]:
        """The 4-wheeled vehicle blueprints (ValueError when there are none: checked before the world changes)."""
        bps = [bp for bp in self.world.get_blueprint_library().filter("vehicle.*")
               if not bp.has_attribute("number_of_wheels") or int(bp.get_attribute("number_of_wheels")) == 4]
        if not bps:
            raise ValueError("the map's blueprint library has no 4-wheeled vehicle.* blueprints")
        return bps

    def _spawn_traffic(self, spawn_points: list[Any], bps: list[Any], x: float, y: float,
                       rng: np.random.Generator) -> None:
        cfg, world = self.cfg, self.world
        if cfg.n_vehicles == 0:
            return
        xy = np.array([[sp.location.x, sp.location.y] for sp in spawn_points]).reshape(-1, 2)
        order = np.argsort(np.hypot(xy[:, 0] - x, xy[:, 1] - y), kind="stable")  # near the RSU first
        for i in order:
            if len(self.actors) >= cfg.n_vehicles:
                break
            bp = bps[int(rng.integers(len(bps)))]
            if bp.has_attribute("role_name"):
                bp.set_attribute("role_name", "autopilot")
            vehicle = world.try_spawn_actor(bp, spawn_points[int(i)])
            if vehicle is not None:
                vehicle.set_autopilot(True, cfg.tm_port)
                self.actors.append(vehicle)
        if len(self.actors) < cfg.n_vehicles:
            self.get_logger().warning(f"spawned {len(self.actors)} of {cfg.n_vehicles} vehicles (spawn points busy)")

    def _make_publishers(self) -> None:
        cfg = self.cfg
        self.pubs = RsuPublishers(self, self.topics, camera=cfg.camera.enabled, radar=cfg.radar.enabled,
                                  lidar=cfg.lidar.enabled, codebook_id=self.codebook_id, noise_dbm=self.noise_dbm,
                                  options=self.options, transforms=self.sensor_transforms)

    # ---- per tick --------------------------------------------------------------------------------
    def tick(self) -> None:
        if not self.context.ok():
            return
        cfg = self.cfg
        if cfg.max_frames and self.frames >= cfg.max_frames:
            self.get_logger().info(f"done: {self.frames} frames")
            self.timer.cancel()
            raise SystemExit(0)
        try:
            frame = int(self.world.tick(cfg.timeout_s))
            snapshot = self.world.get_snapshot()
        except RuntimeError as exc:
            self.get_logger().error(f"CARLA server at {cfg.host}:{cfg.port} stopped answering: {exc}")
            raise SystemExit(1) from None
        data = self.collector.collect(frame, cfg.sync_timeout_s)
        missing = sorted(set(self.collector.queues) - set(data))
        if missing:
            self.missing += 1
            self.get_logger().warning(f"frame {frame}: no {missing} measurement within {cfg.sync_timeout_s:g} s",
                                      throttle_duration_sec=5.0)
        stamp = convert.stamp_from_ns(self.stamp_ns(float(snapshot.timestamp.elapsed_seconds)))
        self.publish_frame(stamp, data)
        self.frames += 1

    def stamp_ns(self, elapsed: float) -> int:
        """Stamp of the tick whose snapshot says ``elapsed`` simulated seconds since the world started.

        ``stamps:=sim`` (carla-ros-bridge's convention): ``elapsed`` itself, on the headers and /clock, so
        nodes with ``use_sim_time`` run on CARLA's clock. Otherwise the wall clock at the first tick plus
        the simulated time since, so stamps advance exactly by the fixed step whatever the server's pace.
        """
        if self.options.sim_stamps:
            return sim_stamp_ns(elapsed)
        if self.elapsed0 is None:
            self.elapsed0 = elapsed
        return self.t0_ns + round((elapsed - self.elapsed0) * 1e9)

    def publish_frame(self, stamp: Any, data: dict[str, Any]) -> None:
        """One tick: the sensors' measurements, then the ground truth of the actors' poses (sim.ground_truth)."""
        cfg = self.cfg
        img = data.get("camera")
        vehicles = self.world.get_actors().filter("vehicle.*")
        poses = poses_from_actors(vehicles, self.rsu_carla[2])
        shadow = self.shadowing.update(poses.ids, poses.speed, cfg.dt)
        res = ground_truth(self.channel, self.rsu, poses, self.walls, shadow_db=shadow, rng=self.rng_shadow)
        label, row = None, None
        if res is not None:
            label, row, self.target_id = choose_label(res, poses.ids, poses.boxes.center, self.rsu.position,
                                                      cfg.label_mode, cfg.label_range_m, self.target_id)
        fix = (None if row is None else
               gnss_of_vehicles(poses, np.array([row]), self.geo_ref, self.rng_gnss, cfg.gnss_noise_std_m)[0])
        self.pubs.publish(
            stamp, rsu_fix=self.rsu_fix,
            camera=None if img is None else image_from_carla(img),
            camera_model=None if img is None else (int(img.width), int(img.height), float(img.fov)),
            radar=radar_from_carla(data["radar"]) if "radar" in data else None,
            lidar=lidar_from_carla(data["lidar"]) if "lidar" in data else None,
            target_fix=fix, label=label, episode=0)

    # ---- shutdown --------------------------------------------------------------------------------
    def _cleanup(self) -> None:
        """Stop and destroy what we spawned (only that: other clients' actors stay), give the world back its
        settings and weather (best effort: each step runs even if an earlier one failed)."""
        log = self.get_logger()
        for s in self.sensors:
            try:
                s.stop()
            except Exception as exc:
                log.warning(f"stopping sensor: {exc}")
        ids = [a.id for a in self.sensors + self.actors]
        if ids:
            try:
                self.client.apply_batch_sync([self.carla.command.DestroyActor(i) for i in ids])
            except Exception as exc:
                log.warning(f"destroying {len(ids)} actors: {exc}")
        self.sensors, self.actors = [], []
        if self.tm is not None:
            try:
                self.tm.set_synchronous_mode(False)
            except Exception as exc:
                log.warning(f"traffic manager: {exc}")
        if self.original_settings is not None and self.world is not None:
            try:
                self.world.apply_settings(self.original_settings)
            except Exception as exc:
                log.warning(f"restoring world settings: {exc}")
            self.original_settings = None
        if self.original_weather is not None and self.world is not None:
            try:
                self.world.set_weather(self.original_weather)
            except Exception as exc:
                log.warning(f"restoring the weather: {exc}")
            self.original_weather = None

    def destroy_node(self) -> None:
        if getattr(self, "world", None) is not None:
            self._cleanup()
        super().destroy_node()


def _declare(node: Node, name: str, default: Any, description: str) -> Any:
    """:func:`.params.declare`, with a value of the wrong type (``seed:=1.5``, ``seed:=2**70`` which
    ROS reads as a double) reported as the other bad parameters are -- one line, exit 2 -- instead of
    rclpy's traceback."""
    from rclpy.exceptions import InvalidParameterTypeException

    try:
        return declare(node, name, default, description)
    except InvalidParameterTypeException as exc:
        raise ValueError(f"parameter {name}: {exc}") from None


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run beam_tracking_ros carla_bridge``."""
    return run_node("carla_bridge", CarlaBridgeNode, args)


if __name__ == "__main__":
    sys.exit(main())

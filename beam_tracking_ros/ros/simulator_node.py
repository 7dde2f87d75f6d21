"""ROS 2 node ``simulator``: the built-in V2I scenario simulator publishing CARLA-bridge topics.

A thin shell over :class:`beam_tracking_ros.sim.Simulator`: each timer tick steps the scene and
publishes the RSU camera (``sensor_msgs/Image`` bgra8 + ``CameraInfo``), radar and LiDAR
(``sensor_msgs/PointCloud2`` in the bridge's field layouts), the target vehicle's GNSS
(``sensor_msgs/NavSatFix``), the ground-truth ``BeamObservation`` and ``/clock``, with the topic
names and frame ids of the CARLA ROS bridge (see :mod:`beam_tracking_ros.io.topics`).
``carla_ros_bridge_compat:=true`` also publishes as carla-ros-bridge does -- reliable sensors,
simulation-time stamps and ``/tf`` (:mod:`beam_tracking_ros.io.frames`).

Episodes: with ``episode_frames > 0`` the scene restarts every that many frames with the next seed
(``seed + episode``) and ``episodes > 0`` ends the node after that many, which is how the recorder
launch file records N episodes. Stamps keep increasing across episodes (a new episode is not a
clock jump); the episode number travels in ``BeamObservation.episode``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rclpy.node import Node

from ..channel import codebook_id
from ..io import convert
from ..io.frames import PUBLISH_PARAMS, publish_options_from_params, rsu_transforms, sim_mounts, sim_stamp_ns
from ..io.topics import Topics
from ..sim import SimConfig, Simulator
from .params import declare, sim_config_from_params
from .rsu_publishers import RsuPublishers
from .spin import run_node

SIM_PARAMS: dict[str, tuple[Any, str]] = {
    "seed": (0, "Random seed of the first episode (episode k uses seed + k); same seed, same scene."),
    "lanes": (2, "Lanes per direction: 2 or 3 are CRKD's scenes (1..5 allowed)."),
    "weather": ("day", "day | night | rain | fog: degrades camera (night, fog) and LiDAR (rain, fog)."),
    "arrival_rate": (0.8, "Poisson vehicle arrivals per second per direction."),
    "max_vehicles": (40, "Upper bound on vehicles in the scene."),
    "rate_hz": (10.0, "Scene rate: frames per second of simulated time."),
    "label_mode": ("sum_rss", "Ground-truth label: single (one tracked vehicle) or sum_rss (CRKD)."),
    "camera_enabled": (True, "Publish the RSU camera."),
    "camera_width": (256, "Camera image width in pixels."),
    "camera_height": (192, "Camera image height in pixels."),
    "camera_fov_deg": (90.0, "Camera horizontal field of view in degrees."),
    "lidar_enabled": (True, "Publish the RSU LiDAR."),
    "lidar_channels": (16, "LiDAR vertical channels."),
    "radar_enabled": (True, "Publish the RSU radar."),
}


class SimulatorNode(Node):
    """Publishes one simulated frame per timer tick; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("simulator", **kwargs)
        params = {name: declare(self, name, default, desc) for name, (default, desc) in SIM_PARAMS.items()}
        role = declare(self, "role_name", "rsu", "CARLA-bridge role name of the RSU (topic prefix).")
        target_role = declare(self, "target_role_name", "target", "Role name of the tracked vehicle (GNSS).")
        self.episode_frames = int(declare(self, "episode_frames", 0, "Frames per episode; 0 = one endless episode."))
        self.episodes = int(declare(self, "episodes", 0, "Stop after this many episodes; 0 = never."))
        speed = float(declare(self, "realtime_factor", 1.0,
                              "Simulated seconds per wall second (<= 0: as fast as possible)."))
        self.wait_s = float(declare(self, "wait_for_subscriber_s", 0.0,
                                    "Before the first frame, wait up to this long for a subscriber of the ground "
                                    "truth (a recorder), so a recording starts with frame 0; 0 = start at once."))
        if self.episode_frames < 0 or self.episodes < 0 or self.wait_s < 0:
            raise ValueError("episode_frames, episodes and wait_for_subscriber_s must be >= 0")
        self.options = publish_options_from_params(
            {name: declare(self, name, default, desc) for name, (default, desc) in PUBLISH_PARAMS.items()})
        self.base_config: SimConfig = sim_config_from_params(params)
        self.topics = Topics(role=role, target_role=target_role)
        self.episode = 0
        self.sim = Simulator(self.base_config)
        self.rsu_fix = self.sim.rsu_gnss()  # the pole stands still: one fix, republished every frame
        self.codebook_id = codebook_id(self.base_config.channel, self.sim.n_beams)
        self.noise_dbm = float(getattr(self.sim.channel, "noise_dbm", 0.0))
        self.frames_published = 0
        self.dt = 1.0 / self.base_config.rate_hz
        self.t0 = time.time()
        self.last_ns = 0
        self.realtime = speed == 1.0

        cfg = self.base_config
        self.pubs = RsuPublishers(self, self.topics, camera=cfg.camera.enabled, radar=cfg.radar.enabled,
                                  lidar=cfg.lidar.enabled, codebook_id=self.codebook_id, noise_dbm=self.noise_dbm,
                                  options=self.options, transforms=rsu_transforms(
                                      role, sim_mounts(cfg, self.sim.scene.rsu), self.options.map_frame))
        period = self.dt / speed if speed > 0 else 0.0
        self.timer = self.create_timer(period, self.tick)
        self.get_logger().info(
            f"built-in simulator: {cfg.lanes} lanes/direction, {cfg.weather}, seed {cfg.seed}, "
            f"{cfg.rate_hz:g} Hz, {self.sim.n_beams} beams ({self.codebook_id}), topics under /carla/{role}/"
            + (", carla-ros-bridge compatible" if self.options.compat else "")
            + (", simulation-time stamps" if self.options.sim_stamps else "")
            + (", reliable sensors" if self.options.reliable else ""))

    def stamp_ns(self, now: float) -> int:
        """Stamp of the frame whose tick started at wall time ``now``.

        With simulation-time stamps (``stamps:=sim``, carla-ros-bridge's convention) it is the scene's
        time: frame k (counted over all episodes) at (k + 1) / rate_hz, whatever the wall clock does, and
        /clock says the same. Otherwise, in real time (realtime_factor 1) it is the tick's wall-clock
        start, as a real sensor stamps its capture, so end-to-end latencies measured against it are
        real; else scene time anchored at the first tick (exactly 1 / rate_hz apart). Always strictly
        increasing.
        """
        if self.options.sim_stamps:
            ns = sim_stamp_ns((self.frames_published + 1) * self.dt)
        elif self.realtime:
            ns = round(now * 1e9)
        else:
            ns = round((self.t0 + self.frames_published * self.dt) * 1e9)
        ns = max(ns, self.last_ns + 1)
        self.last_ns = ns
        return ns

    def next_episode(self) -> bool:
        """Start the next episode; False when the configured number of episodes is done."""
        self.episode += 1
        if self.episodes and self.episode >= self.episodes:
            return False
        cfg = self.base_config
        self.sim = Simulator(SimConfig(**{**cfg.__dict__, "seed": cfg.seed + self.episode}))
        self.rsu_fix = self.sim.rsu_gnss()
        self.get_logger().info(f"episode {self.episode} (seed {cfg.seed + self.episode})")
        return True

    def tick(self) -> None:
        if not self.context.ok():
            return
        if (self.frames_published == 0 and self.wait_s > 0 and self.pubs.beam.get_subscription_count() == 0
                and time.time() - self.t0 < self.wait_s):
            return  # DDS discovery of a late recorder can take seconds on a busy machine
        if self.episode_frames and self.sim.frame_index >= self.episode_frames and not self.next_episode():
            self.get_logger().info(f"done: {self.episode} episode(s), {self.frames_published} frames")
            self.timer.cancel()
            raise SystemExit(0)
        now = time.time()
        if self.frames_published == 0:  # anchor scene time at the first tick, so stamps track the wall clock
            self.t0 = now
        frame = self.sim.step()
        ns = self.stamp_ns(now)
        stamp = convert.stamp_from_ns(ns)
        cam = self.base_config.camera
        self.pubs.publish(stamp, rsu_fix=self.rsu_fix, camera=frame.camera,
                          camera_model=(cam.width, cam.height, cam.fov_deg), radar=frame.radar, lidar=frame.lidar,
                          target_fix=frame.gnss, label=frame.beam, episode=self.episode)
        self.frames_published += 1


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run beam_tracking_ros simulator``."""
    return run_node("simulator", SimulatorNode, args)


if __name__ == "__main__":
    sys.exit(main())

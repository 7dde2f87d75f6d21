"""Node parameters: declaration with descriptions and validation, shared by the nodes.

Why a helper: every node declares typed, described parameters (visible with
``ros2 param describe``) and rejects bad values at start with a message naming the parameter,
instead of failing later in the core.
"""

from __future__ import annotations

from typing import Any

from ..sim import CameraConfig, LidarConfig, RadarConfig, SimConfig


def declare(node: Any, name: str, default: Any, description: str, read_only: bool = False) -> Any:
    """Declare ``name`` with a description on ``node`` and return its value."""
    from rcl_interfaces.msg import ParameterDescriptor

    node.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=read_only))
    return node.get_parameter(name).value


def sim_config_from_params(params: dict[str, Any]) -> SimConfig:
    """Build a validated :class:`SimConfig` from the flat parameters of the simulator / launch files.

    Raises ValueError naming the parameter for bad values (the dataclasses validate the ranges).
    """
    p = dict(params)
    cam = CameraConfig(enabled=bool(p.pop("camera_enabled", True)), width=int(p.pop("camera_width", 256)),
                       height=int(p.pop("camera_height", 192)), fov_deg=float(p.pop("camera_fov_deg", 90.0)))
    lidar = LidarConfig(enabled=bool(p.pop("lidar_enabled", True)), channels=int(p.pop("lidar_channels", 16)))
    radar = RadarConfig(enabled=bool(p.pop("radar_enabled", True)))
    rate = float(p.pop("rate_hz", 10.0))
    if not rate > 0:
        raise ValueError(f"rate_hz must be positive, got {rate}")
    cfg = SimConfig(
        seed=int(p.pop("seed", 0)), lanes=int(p.pop("lanes", 2)), weather=str(p.pop("weather", "day")),
        arrival_rate=float(p.pop("arrival_rate", 0.8)), max_vehicles=int(p.pop("max_vehicles", 40)),
        rate_hz=rate, label_mode=str(p.pop("label_mode", "sum_rss")), camera=cam, lidar=lidar, radar=radar,
    )
    if p:
        raise ValueError(f"unknown simulator parameter(s): {sorted(p)}")
    return cfg

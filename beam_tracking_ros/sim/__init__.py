"""Built-in V2I scenario simulator (ROS-free): road, traffic, RSU sensors in CARLA formats, beams.

Public API::

    SimConfig(seed=0, lanes=2, weather='day'|'night'|'rain'|'fog', arrival_rate=0.6, max_vehicles=40,
              rate_hz=10, label_mode='sum_rss'|'single', channel=ChannelConfig(), camera=CameraConfig(),
              lidar=LidarConfig(), radar=RadarConfig(), gnss=GnssConfig())
    Simulator(config).step() -> SensorFrame; .vehicles -> VehicleState; .powers_dbm (V, B);
        .channel_result; .vehicle_gnss(ids=None) -> (V, 3); .scene (walls, rsu pose)
    generate_episode(config, n_frames) -> Iterator[SensorFrame]
    sim_config_from_dict(dataclasses.asdict(config)) -> SimConfig (e.g. from a dataset's meta)
    SensorFrame / BeamLabel (types.py): the frame contract
    carla_format: image/radar/lidar <-> CARLA raw bytes, location_to_gnss
"""

from .carla_format import (
    gnss_to_location,
    image_from_bytes,
    image_to_bytes,
    lidar_from_bytes,
    lidar_to_bytes,
    location_to_gnss,
    radar_from_bytes,
    radar_to_bytes,
    radar_to_xyz,
    world_to_carla,
)
from .config import (
    LABEL_MODES,
    WEATHERS,
    CameraConfig,
    GnssConfig,
    LidarConfig,
    RadarConfig,
    SimConfig,
    sim_config_from_dict,
)
from .simulator import Simulator, VehicleState, generate_episode
from .types import BeamLabel, SensorFrame

__all__ = [
    "LABEL_MODES",
    "WEATHERS",
    "BeamLabel",
    "CameraConfig",
    "GnssConfig",
    "LidarConfig",
    "RadarConfig",
    "SensorFrame",
    "SimConfig",
    "Simulator",
    "VehicleState",
    "generate_episode",
    "gnss_to_location",
    "image_from_bytes",
    "image_to_bytes",
    "lidar_from_bytes",
    "lidar_to_bytes",
    "location_to_gnss",
    "radar_from_bytes",
    "radar_to_bytes",
    "radar_to_xyz",
    "sim_config_from_dict",
    "world_to_carla",
]

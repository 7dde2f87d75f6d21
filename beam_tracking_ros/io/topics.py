"""Default topic names and frame ids, following the CARLA ROS bridge (carla-simulator/ros-bridge).

The bridge publishes each sensor of an actor with role name ``<role>`` under
``/carla/<role>/<sensor_id>`` (cameras under ``.../image`` and ``.../camera_info``) with frame id
``<role>/<sensor_id>``. The built-in simulator and our CARLA bridge publish the RSU's sensors under
the role ``rsu`` and the tracked vehicle's GNSS under the role ``target``, so a CARLA user finds
the names they know, and the tracker, recorder and dataset builder cannot tell the sources apart.
"""

from __future__ import annotations

from dataclasses import dataclass

RSU_ROLE = "rsu"
TARGET_ROLE = "target"


@dataclass(frozen=True)
class Topics:
    """The topic names of one RSU (``role``) and its target vehicle (``target_role``)."""

    role: str = RSU_ROLE
    target_role: str = TARGET_ROLE

    @property
    def camera(self) -> str:
        return f"/carla/{self.role}/camera/image"

    @property
    def camera_info(self) -> str:
        return f"/carla/{self.role}/camera/camera_info"

    @property
    def radar(self) -> str:
        return f"/carla/{self.role}/radar"

    @property
    def lidar(self) -> str:
        return f"/carla/{self.role}/lidar"

    @property
    def gnss(self) -> str:
        return f"/carla/{self.target_role}/gnss"

    @property
    def rsu_gnss(self) -> str:
        """The RSU's own fix: the origin of the GPS feature, recorded so a bag carries its reference."""
        return f"/carla/{self.role}/gnss"

    @property
    def beam_observation(self) -> str:
        return f"/carla/{self.role}/beam_observation"

    @property
    def beam_prediction(self) -> str:
        return f"/{self.role}/beam_prediction"

    @property
    def beam_sweep_request(self) -> str:
        """BeamSweepRequest: the beam manager asks the RSU's radio to measure some beams."""
        return f"/carla/{self.role}/beam_sweep_request"

    @property
    def beam_measurement(self) -> str:
        """BeamMeasurement: the radio's answer (the simulator, the CARLA bridge, a real RSU stack)."""
        return f"/carla/{self.role}/beam_measurement"

    @property
    def serving_beam(self) -> str:
        """ServingBeam: the beam the beam manager serves each frame."""
        return f"/{self.role}/serving_beam"

    def frame(self, sensor: str) -> str:
        """Frame id of ``sensor`` ('camera', 'radar', 'lidar', 'mmwave_array') on the RSU."""
        return f"{self.role}/{sensor}"

    def modality_topics(self) -> dict[str, str]:
        """Sensor name (modalities.SENSORS) -> topic."""
        return {"camera": self.camera, "radar": self.radar, "lidar": self.lidar, "gnss": self.gnss}


"""Launch the beam tracker: `ros2 launch beam_tracking_ros beam_tracker.launch.py model:=teacher`.

`model:=geometry lanes:=3` runs the non-learned LiDAR baseline for the built-in 3-lane scene.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("beam_tracking_ros")
    return LaunchDescription([
        DeclareLaunchArgument("model", default_value="student",
                              description="Model directory or name under share/beam_tracking_ros/models, or "
                                          "'geometry' (the non-learned LiDAR baseline)"),
        DeclareLaunchArgument("lanes", default_value="2",
                              description="Lanes per direction of the built-in scene (model:=geometry only)"),
        DeclareLaunchArgument("backend", default_value="auto", choices=["auto", "onnx", "torch"],
                              description="Inference runtime"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "beam_tracker.yaml"]),
                              description="Parameters of the tracker"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the tracker node"),
        DeclareLaunchArgument("top_k", default_value="3",
                              description="Candidates per horizon step in BeamPrediction (a beam manager sweeps "
                                          "up to this many)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="Follow /clock (sources stamping in simulation time, e.g. "
                                          "carla-ros-bridge or carla_ros_bridge_compat:=true)"),
        # Large images and clouds between processes: shared memory with 16 MiB segments, unless the
        # user already chose a Fast DDS profile (docs/transport.md).
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", EnvironmentVariable(
            "FASTDDS_DEFAULT_PROFILES_FILE", default_value=PathJoinSubstitution([share, "config", "fastdds_shm.xml"]))),
        Node(
            package="beam_tracking_ros",
            executable="beam_tracker",
            name="beam_tracker",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[LaunchConfiguration("params_file"),
                        {"model": LaunchConfiguration("model"), "backend": LaunchConfiguration("backend"),
                         "geometry_lanes": LaunchConfiguration("lanes"),
                         "top_k": ParameterValue(LaunchConfiguration("top_k"), value_type=int),
                         "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
        ),
    ])

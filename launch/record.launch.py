"""Record N episodes of the built-in simulator into a rosbag2 (MCAP) for the dataset builder.

    ros2 launch beam_tracking_ros record.launch.py bag:=bags/lanes3_fog episodes:=8 lanes:=3 weather:=fog seed:=10
    beam-tracking dataset build --out data/lanes3_fog bags/lanes3_fog

The simulator restarts the scene every ``episode_frames`` frames with the next seed and exits after
``episodes`` episodes; its exit shuts the launch down (``on_exit=Shutdown``), which sends the recorder
SIGINT, so the recorder finishes the bag (MCAP summary and metadata.yaml) and prints what it recorded.
Episode k of the bag has seed ``seed + k`` and carries k in ``BeamObservation.episode``.
``realtime_factor`` speeds the scene up (simulated seconds per wall second); bag times are the
messages' header stamps, i.e. scene time, so a faster recording is the same data.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable, Shutdown, TimerAction
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# name -> (default, type, description); the type keeps e.g. realtime_factor:=2 a double parameter
SCENARIO_ARGS = {
    "lanes": ("2", int, "Lanes per direction (CRKD: 2 or 3)"),
    "weather": ("day", str, "day | night | rain | fog"),
    "seed": ("0", int, "Seed of the first episode (episode k uses seed + k)"),
    "episodes": ("4", int, "Episodes to record; the launch ends after the last one"),
    "episode_frames": ("200", int, "Frames per episode (10 Hz scene: 200 = 20 s)"),
    "realtime_factor": ("4.0", float, "Simulated seconds per wall second (<= 0: as fast as possible)"),
}


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("beam_tracking_ros")
    args = [DeclareLaunchArgument(name, default_value=default, description=desc)
            for name, (default, _, desc) in SCENARIO_ARGS.items()]
    args += [
        DeclareLaunchArgument("bag", default_value="bags/recording",
                              description="rosbag2 directory to write (must not exist unless overwrite:=true)"),
        DeclareLaunchArgument("overwrite", default_value="false", choices=["true", "false"],
                              description="Replace an existing bag directory"),
        DeclareLaunchArgument("sim_params_file",
                              default_value=PathJoinSubstitution([share, "config", "simulator.yaml"]),
                              description="Parameters of the simulator"),
        DeclareLaunchArgument("start_delay", default_value="2.0",
                              description="Seconds the simulator waits so the recorder's subscriptions are "
                                          "matched before the first frame (DDS discovery)"),
        DeclareLaunchArgument("recorder_params_file",
                              default_value=PathJoinSubstitution([share, "config", "recorder.yaml"]),
                              description="Parameters of the recorder"),
    ]
    scenario = {name: ParameterValue(LaunchConfiguration(name), value_type=kind)
                for name, (_, kind, _) in SCENARIO_ARGS.items()}
    return LaunchDescription([
        *args,
        # camera images and LiDAR clouds between processes: shared memory (docs/transport.md)
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", EnvironmentVariable(
            "FASTDDS_DEFAULT_PROFILES_FILE", default_value=PathJoinSubstitution([share, "config", "fastdds_shm.xml"]))),
        # the recorder first; the simulator after start_delay, when the recorder hears the topics (they are
        # volatile: a frame published before the subscriptions match is lost to the bag)
        Node(
            package="beam_tracking_ros", executable="recorder", name="recorder", output="screen",
            parameters=[LaunchConfiguration("recorder_params_file"),
                        {"output": ParameterValue(LaunchConfiguration("bag"), value_type=str),
                         "overwrite": ParameterValue(LaunchConfiguration("overwrite"), value_type=bool)}],
            on_exit=Shutdown(reason="the recorder ended"),
        ),
        TimerAction(period=LaunchConfiguration("start_delay"), actions=[Node(
            package="beam_tracking_ros", executable="simulator", name="simulator", output="screen",
            parameters=[LaunchConfiguration("sim_params_file"), scenario,
                        # and it waits (bounded) for the recorder's ground-truth subscription to match
                        {"wait_for_subscriber_s": 15.0}],
            on_exit=Shutdown(reason="the simulator finished its episodes"),
        )]),
    ])

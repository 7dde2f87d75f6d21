"""The sensing side and the tracker: CARLA when a server answers, else the built-in simulator.

    ros2 launch beam_tracking_ros carla_bridge.launch.py                       # auto
    ros2 launch beam_tracking_ros carla_bridge.launch.py simulator:=builtin lanes:=3 weather:=fog
    ros2 launch beam_tracking_ros carla_bridge.launch.py simulator:=carla host:=10.0.0.5
    ros2 launch beam_tracking_ros carla_bridge.launch.py simulator:=builtin model:=geometry   # no training

simulator:=auto connects to CARLA at host:port when a server answers within probe_timeout seconds
and otherwise runs the built-in simulator, saying so in one line; simulator:=carla insists on the
server; builtin never tries.

Exit codes: 0 when the nodes end normally (a simulator run for a given number of episodes); non-zero
when simulator:=carla finds no server (checked here, before any node starts, so it holds under the real
``ros2 launch`` -- which ends with 0 when a node it ran exits with an error -- as under the package's
fallback launcher) or when a node fails to start.
"""

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    SetEnvironmentVariable,
    Shutdown,
)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

SCENARIO_ARGS = {
    "lanes": ("2", "Lanes per direction (CRKD: 2 or 3)"),
    "max_vehicles": ("40", "Maximum number of vehicles"),
    "weather": ("day", "day | night | rain | fog"),
    "seed": ("0", "Random seed of the scenario"),
    "rate_hz": ("10.0", "Scene rate in Hz"),
}


def _sensing(context, *args, **kwargs):
    """Choose CARLA or the built-in simulator at launch time (needs a network probe, so opaque)."""
    from beam_tracking_ros.sim.carla_probe import carla_server_answers

    mode = LaunchConfiguration("simulator").perform(context)
    host = LaunchConfiguration("host").perform(context)
    port = int(LaunchConfiguration("port").perform(context))
    probe_timeout = float(LaunchConfiguration("probe_timeout").perform(context))
    scenario = {
        "lanes": int(LaunchConfiguration("lanes").perform(context)),
        "max_vehicles": int(LaunchConfiguration("max_vehicles").perform(context)),
        "weather": LaunchConfiguration("weather").perform(context),
        "seed": int(LaunchConfiguration("seed").perform(context)),
        "rate_hz": float(LaunchConfiguration("rate_hz").perform(context)),
    }
    compat = LaunchConfiguration("carla_ros_bridge_compat").perform(context) == "true"
    share = FindPackageShare("beam_tracking_ros").perform(context)
    actions = []
    if mode == "auto":
        if carla_server_answers(host, port, probe_timeout):
            mode = "carla"
            actions.append(LogInfo(msg=f"CARLA server answered at {host}:{port}: using the CARLA bridge"))
        else:
            mode = "builtin"
            actions.append(LogInfo(msg=f"no CARLA server answered at {host}:{port} within {probe_timeout:g} s: "
                                       "running the built-in simulator"))
    if mode == "carla" and LaunchConfiguration("simulator").perform(context) == "carla":
        # strict mode: no server is a failed launch, not a launch that ends with 0 once the bridge has died
        from beam_tracking_ros.sim.carla_probe import describe_no_server

        timeout = float(LaunchConfiguration("timeout").perform(context))
        if not carla_server_answers(host, port, timeout):
            raise RuntimeError(describe_no_server(host, port, timeout))
    if mode == "carla":
        actions.append(Node(
            package="beam_tracking_ros", executable="carla_bridge", name="carla_bridge", output="screen",
            parameters=[f"{share}/config/carla_bridge.yaml",
                        {"host": host, "port": port,
                         "timeout_s": float(LaunchConfiguration("timeout").perform(context)),
                         # the CARLA town fixes the road layout: `lanes` applies to the built-in scene only
                         "n_vehicles": scenario["max_vehicles"], "weather": scenario["weather"],
                         "seed": scenario["seed"], "rate_hz": scenario["rate_hz"],
                         "town": LaunchConfiguration("town").perform(context),
                         "load_timeout_s": float(LaunchConfiguration("load_timeout").perform(context)),
                         "carla_ros_bridge_compat": compat}],
            on_exit=Shutdown(reason="the CARLA bridge ended"),
        ))
    else:
        actions.append(Node(
            package="beam_tracking_ros", executable="simulator", name="simulator", output="screen",
            parameters=[f"{share}/config/simulator.yaml", {**scenario, "carla_ros_bridge_compat": compat}],
            on_exit=Shutdown(reason="the simulator ended"),
        ))
    return actions


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("beam_tracking_ros")
    args = [
        DeclareLaunchArgument("simulator", default_value="auto", choices=["auto", "carla", "builtin"],
                              description="Sensor source: auto | carla | builtin"),
        DeclareLaunchArgument("host", default_value="localhost", description="CARLA server host"),
        DeclareLaunchArgument("port", default_value="2000", description="CARLA server port"),
        DeclareLaunchArgument("timeout", default_value="5.0", description="CARLA client timeout (s)"),
        DeclareLaunchArgument("probe_timeout", default_value="1.0",
                              description="How long simulator:=auto waits for a CARLA server (s)"),
        DeclareLaunchArgument("town", default_value="",
                              description="CARLA map to load, e.g. Town10HD_Opt (empty: keep the server's)"),
        DeclareLaunchArgument("load_timeout", default_value="60.0",
                              description="How long loading `town` may take (s)"),
        DeclareLaunchArgument("carla_ros_bridge_compat", default_value="false", choices=["true", "false"],
                              description="Publish as carla-ros-bridge does (reliable sensors, simulation-time "
                                          "stamps with /clock, /tf); the tracker then runs on use_sim_time"),
        DeclareLaunchArgument("tracker", default_value="true", description="Also start the beam tracker"),
        DeclareLaunchArgument("beam_manager", default_value="true", choices=["true", "false"],
                              description="Also start the beam manager (sweeps the tracker's candidates on the "
                                          "simulator's or bridge's radio; needs tracker:=true)"),
        DeclareLaunchArgument("model", default_value="student",
                              description="Model for the tracker (a name under models/, a directory, or geometry: "
                                          "the non-learned LiDAR baseline)"),
    ]
    args += [DeclareLaunchArgument(name, default_value=default, description=desc)
             for name, (default, desc) in SCENARIO_ARGS.items()]
    return LaunchDescription([
        *args,
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", EnvironmentVariable(
            "FASTDDS_DEFAULT_PROFILES_FILE", default_value=PathJoinSubstitution([share, "config", "fastdds_shm.xml"]))),
        OpaqueFunction(function=_sensing),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "beam_tracker.launch.py"])),
            launch_arguments={"model": LaunchConfiguration("model"), "lanes": LaunchConfiguration("lanes"),
                              "use_sim_time": LaunchConfiguration("carla_ros_bridge_compat"),
                              # the beam manager's adaptive rule reads up to k_max = 16 candidates
                              "top_k": "16"}.items(),
            condition=IfCondition(LaunchConfiguration("tracker")),
        ),
        Node(
            package="beam_tracking_ros", executable="beam_manager", name="beam_manager", output="screen",
            parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("carla_ros_bridge_compat"),
                                                        value_type=bool),
                         "frame_period_s": ParameterValue(
                             PythonExpression(["1.0 / ", LaunchConfiguration("rate_hz")]), value_type=float)}],
            condition=IfCondition(PythonExpression(["'", LaunchConfiguration("tracker"), "' == 'true' and '",
                                                    LaunchConfiguration("beam_manager"), "' == 'true'"])),
        ),
    ])

"""The simulator node's topics, received over DDS by another process; bad parameters rejected."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

from ros_testing import popen_python, requires_ros, run_python

SUBSCRIBER = r"""
import json, time, rclpy
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2, NavSatFix, CameraInfo
from rosgraph_msgs.msg import Clock
from beam_tracking_ros.msg import BeamObservation
from beam_tracking_ros.io import convert
rclpy.init()
n = rclpy.create_node("sim_probe")
got = {}
def keep(name):
    return lambda m: got.setdefault(name, []).append(m)
n.create_subscription(Image, "/carla/rsu/camera/image", keep("image"), qos_profile_sensor_data)
n.create_subscription(CameraInfo, "/carla/rsu/camera/camera_info", keep("info"), qos_profile_sensor_data)
n.create_subscription(PointCloud2, "/carla/rsu/radar", keep("radar"), qos_profile_sensor_data)
n.create_subscription(PointCloud2, "/carla/rsu/lidar", keep("lidar"), qos_profile_sensor_data)
n.create_subscription(NavSatFix, "/carla/target/gnss", keep("gnss"), qos_profile_sensor_data)
n.create_subscription(NavSatFix, "/carla/rsu/gnss", keep("rsu_gnss"), qos_profile_sensor_data)
n.create_subscription(BeamObservation, "/carla/rsu/beam_observation", keep("beam"),
                      QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))
n.create_subscription(Clock, "/clock", keep("clock"), 10)
deadline = time.time() + 40
while time.time() < deadline and min(len(got.get(k, [])) for k in ("image", "radar", "lidar", "gnss", "rsu_gnss", "beam", "clock", "info")) < 5:
    rclpy.spin_once(n, timeout_sec=0.05)
img = convert.image_from_msg(got["image"][-1])
lidar = convert.lidar_from_msg(got["lidar"][-1])
radar = convert.radar_from_msg(got["radar"][-1])
beam = convert.beam_observation_from_msg(got["beam"][-1])
stamps = [convert.stamp_to_ns(m.header.stamp) for m in got["image"]]
print(json.dumps({
    "counts": {k: len(v) for k, v in got.items()},
    "image": [img.shape[0], img.shape[1], img.shape[2], got["image"][-1].encoding, got["image"][-1].header.frame_id],
    "lidar_fields": [f.name for f in got["lidar"][-1].fields], "lidar_n": int(lidar.shape[0]),
    "radar_fields": [f.name for f in got["radar"][-1].fields], "radar_cols": int(radar.shape[1]),
    "beam": [len(beam.label.powers_dbm), int(beam.label.optimal_beam), beam.codebook_id],
    "rsu_gnss": [convert.gnss_from_msg(m).tolist() for m in got["rsu_gnss"][-2:]],
    "rsu_frame": got["rsu_gnss"][-1].header.frame_id,
    "stamps_increasing": all(b > a for a, b in zip(stamps, stamps[1:])),
    "dt_ms": (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1) / 1e6,
}))
"""


@requires_ros
def test_simulator_topics_reach_another_process() -> None:
    sim = popen_python(
        "import sys; from beam_tracking_ros.ros.simulator_node import main; "
        "sys.exit(main(['sim', '--ros-args', '-p', 'seed:=5', '-p', 'arrival_rate:=2.0', '-p', 'realtime_factor:=2.0']))"
    )
    try:
        res = run_python(SUBSCRIBER, timeout=90)
    finally:
        sim.terminate()
        sim.wait(timeout=20)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["image"] == [192, 256, 4, "bgra8", "rsu/camera"]
    assert got["lidar_fields"] == ["x", "y", "z", "intensity"] and got["lidar_n"] > 100
    assert got["radar_fields"] == ["x", "y", "z", "Range", "Velocity", "AzimuthAngle", "ElevationAngle"]
    assert got["radar_cols"] == 4
    assert got["beam"][0] == 152 and 0 <= got["beam"][1] < 152 and got["beam"][2].endswith("_152")
    assert got["stamps_increasing"]
    assert abs(got["dt_ms"] - 100.0) < 1.0  # 10 Hz scene time, whatever the wall rate
    # the RSU's own fix (the GPS feature's origin, recorded with the bag) is the scene's RSU, every frame
    from beam_tracking_ros.sim import SimConfig, Simulator

    rsu = Simulator(SimConfig(seed=5, arrival_rate=2.0)).rsu_gnss().tolist()
    assert got["rsu_gnss"] == [rsu, rsu] and got["rsu_frame"] == "rsu/gnss"


@requires_ros
def test_simulator_rejects_bad_parameters_with_a_clear_message() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "beam_tracking_ros.ros.simulator_node", "--ros-args", "-p", "rate_hz:=-5.0"],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 2
    assert "rate_hz" in res.stderr


@requires_ros
def test_simulator_stops_after_the_configured_episodes() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "beam_tracking_ros.ros.simulator_node", "--ros-args", "-p", "episode_frames:=5",
         "-p", "episodes:=2", "-p", "realtime_factor:=0.0"],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "done: 2 episode(s), 10 frames" in res.stderr + res.stdout


@requires_ros
def test_simulator_without_vehicles_publishes_no_fix_and_keeps_running() -> None:
    """No vehicle in range: a NavSatFix without fix (NaN, STATUS_NO_FIX), not a crash."""
    res = subprocess.run(
        [sys.executable, "-m", "beam_tracking_ros.ros.simulator_node", "--ros-args", "-p", "arrival_rate:=0.0",
         "-p", "episode_frames:=3", "-p", "episodes:=1", "-p", "realtime_factor:=0.0"],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "done: 1 episode(s), 3 frames" in res.stderr + res.stdout


@requires_ros
def test_no_fix_message_is_rejected_by_the_reader_as_no_fix() -> None:
    import math

    import pytest

    from beam_tracking_ros.io import convert

    msg = convert.gnss_no_fix_msg(convert.stamp_from_sec(1.0), "target/gnss")
    assert msg.status.status == msg.status.STATUS_NO_FIX and math.isnan(msg.latitude)
    with pytest.raises(convert.ConversionError, match="no fix"):
        convert.gnss_from_msg(msg, topic="/carla/target/gnss")


RELIABLE_PROBE = r"""
import json, time, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2, NavSatFix
from rosgraph_msgs.msg import Clock
from beam_tracking_ros.io import convert
rclpy.init()
n = rclpy.create_node("reliable_probe")
reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # what carla-ros-bridge consumers use
got = {}
order = []
def keep(name):
    def cb(m):
        got.setdefault(name, []).append(m)
        order.append(name)
    return cb
n.create_subscription(Image, "/carla/rsu/camera/image", keep("image"), reliable)
n.create_subscription(PointCloud2, "/carla/rsu/lidar", keep("lidar"), reliable)
n.create_subscription(NavSatFix, "/carla/rsu/gnss", keep("rsu_gnss"), reliable)
n.create_subscription(Clock, "/clock", keep("clock"), reliable)
deadline = time.time() + 30
while time.time() < deadline and min(len(got.get(k, [])) for k in ("image", "lidar", "rsu_gnss", "clock")) < 5:
    rclpy.spin_once(n, timeout_sec=0.05)
clock = {convert.stamp_to_ns(m.clock) for m in got.get("clock", [])}
print(json.dumps({
    "counts": {k: len(v) for k, v in got.items()},
    "image_ns": [convert.stamp_to_ns(m.header.stamp) for m in got.get("image", [])],
    "image_on_clock": all(convert.stamp_to_ns(m.header.stamp) in clock for m in got.get("image", [])),
}))
"""


@requires_ros
def test_compat_mode_reaches_reliable_subscribers_with_sim_time_stamps_and_clock() -> None:
    """carla_ros_bridge_compat: a reliable subscriber (which hears nothing from a best-effort publisher)
    gets the sensors; stamps are simulation time (frame k at (k + 1) / rate_hz, not the wall clock) and
    every image's stamp is a time /clock announced."""
    sim = popen_python(
        "import sys; from beam_tracking_ros.ros.simulator_node import main; "
        "sys.exit(main(['sim', '--ros-args', '-p', 'seed:=5', '-p', 'realtime_factor:=2.0', "
        "'-p', 'carla_ros_bridge_compat:=true']))"
    )
    try:
        res = run_python(RELIABLE_PROBE, timeout=60)
    finally:
        sim.terminate()
        _, err = sim.communicate(timeout=20)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert min(got["counts"].get(k, 0) for k in ("image", "lidar", "rsu_gnss", "clock")) >= 5, (got["counts"], err)
    ns = got["image_ns"]
    assert all(v % 100_000_000 == 0 and 0 < v < 3600 * 10**9 for v in ns), ns  # scene seconds, not 1.7e9 s
    assert all(b - a == 100_000_000 for a, b in itertools.pairwise(ns))
    assert got["image_on_clock"]


@requires_ros
def test_transforms_become_transform_stamped_messages() -> None:
    """The /tf payload (geometry_msgs/TransformStamped, no tf2_msgs needed to build or check it)."""
    from beam_tracking_ros.io import convert
    from beam_tracking_ros.io.frames import rsu_transforms, sim_mounts
    from beam_tracking_ros.ros.rsu_publishers import transform_msgs
    from beam_tracking_ros.sim import SimConfig, Simulator

    cfg = SimConfig()
    tfs = rsu_transforms("rsu", sim_mounts(cfg, Simulator(cfg).scene.rsu))
    msgs = transform_msgs(tfs, convert.stamp_from_sec(3.5))
    assert [(m.header.frame_id, m.child_frame_id) for m in msgs] == [(t.parent, t.child) for t in tfs]
    cam = next(m for m in msgs if m.child_frame_id == "rsu/camera")
    t = next(t for t in tfs if t.child == "rsu/camera")
    assert convert.stamp_to_sec(cam.header.stamp) == 3.5
    q = cam.transform.rotation
    assert (q.x, q.y, q.z, q.w) == t.rotation and cam.transform.translation.z == cfg.camera.mount_height


@requires_ros
def test_simulator_answers_beam_sweep_requests_from_its_frames() -> None:
    """The RSU's radio for beam management: a BeamSweepRequest for a frame is answered with that frame's
    per-beam powers (the BeamObservation's) of the requested beams; beams out of range are left out, a
    request for another codebook is not answered."""
    import threading
    import time

    import numpy as np
    import rclpy
    from beam_tracking_ros.msg import BeamMeasurement, BeamObservation, BeamSweepRequest
    from rclpy.executors import SingleThreadedExecutor

    from beam_tracking_ros.io import convert
    from beam_tracking_ros.ros import qos

    sim = popen_python(
        "import sys; from beam_tracking_ros.ros.simulator_node import main; "
        "sys.exit(main(['sim', '--ros-args', '-p', 'seed:=5', '-p', 'arrival_rate:=2.0', '-p', 'camera_enabled:=false']))"
    )
    rclpy.init()
    node = rclpy.create_node("radio_test")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    obs: list = []
    meas: list = []
    rel = qos.reliable_qos(20)
    node.create_subscription(BeamObservation, "/carla/rsu/beam_observation", obs.append, rel)
    node.create_subscription(BeamMeasurement, "/carla/rsu/beam_measurement", meas.append, rel)
    pub = node.create_publisher(BeamSweepRequest, "/carla/rsu/beam_sweep_request", rel)
    try:
        deadline = time.monotonic() + 30
        while len(obs) < 3 or pub.get_subscription_count() == 0:
            assert time.monotonic() < deadline and sim.poll() is None, "no frames from the simulator"
            time.sleep(0.05)
        o = obs[-2]
        req = BeamSweepRequest(header=o.header, seq=7, codebook_id=o.codebook_id, codebook_size=len(o.power_dbm),
                               beams=[3, 40, 151, 500], reason="prediction")
        pub.publish(req)
        pub.publish(BeamSweepRequest(header=o.header, seq=8, codebook_id="another_codebook", beams=[1]))
        while not meas and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        sim.terminate()
        sim.wait(timeout=20)
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    assert [m.seq for m in meas] == [7]
    m = meas[0]
    assert convert.stamp_to_ns(m.header.stamp) == convert.stamp_to_ns(o.header.stamp)
    assert list(m.beams) == [3, 40, 151]  # 500 is not a beam of this codebook
    np.testing.assert_array_equal(np.asarray(m.power_dbm, np.float32),
                                  np.asarray(o.power_dbm, np.float32)[[3, 40, 151]])

"""BeamPrediction / BeamObservation cross a real process boundary over Fast DDS intact."""

from __future__ import annotations

import json

from ros_testing import popen_python, requires_ros, run_python

PUBLISHER = r"""
import time, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
from builtin_interfaces.msg import Duration
from beam_tracking_ros.msg import BeamPrediction, BeamHorizonStep, BeamObservation

rclpy.init()
node = rclpy.create_node("foundation_publisher")
qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
pub = node.create_publisher(BeamPrediction, "/test/beam_prediction", qos)
pub_obs = node.create_publisher(BeamObservation, "/test/beam_observation", qos)
m = BeamPrediction()
m.header.stamp.sec = 1234; m.header.stamp.nanosec = 567000000; m.header.frame_id = "rsu_array"
m.model_name = "student_radar_mlp"; m.role = BeamPrediction.ROLE_STUDENT
m.modalities = ["radar", "gps"]; m.codebook_id = "ula64_152"; m.codebook_size = 152
for i in range(4):
    s = BeamHorizonStep()
    s.time_offset = Duration(sec=0, nanosec=100_000_000 * i)
    s.beam = 10 + i; s.top_k_beams = [10 + i, 11 + i, 151]; s.top_k_probs = [0.5, 0.25, 0.125]
    m.horizon.append(s)
m.inference_latency_ms = 1.5; m.window_size = 8; m.window_fill = 0.875
m.degraded = True; m.missing_modalities = ["camera"]
o = BeamObservation()
o.header.stamp.sec = 1234; o.header.frame_id = "rsu_array"; o.codebook_id = "ula64_152"
o.power_dbm = [-80.5 - i for i in range(152)]; o.optimal_beam = 0
o.label_mode = BeamObservation.LABEL_SUM_RSS; o.vehicle_ids = [3, 7]; o.los_blocked = True
o.noise_dbm = -94.0; o.episode = 4
pub.publish(m); pub_obs.publish(o)
deadline = time.time() + 20
while time.time() < deadline and (pub.get_subscription_count() == 0 or pub_obs.get_subscription_count() == 0):
    rclpy.spin_once(node, timeout_sec=0.1)
for _ in range(30):  # keep publishing until the subscriber has what it needs and exits us
    pub.publish(m); pub_obs.publish(o); rclpy.spin_once(node, timeout_sec=0.1)
"""

SUBSCRIBER = r"""
import json, time, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
from beam_tracking_ros.msg import BeamPrediction, BeamObservation
rclpy.init()
node = rclpy.create_node("foundation_subscriber")
qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
got = {}
node.create_subscription(BeamPrediction, "/test/beam_prediction", lambda m: got.setdefault("p", m), qos)
node.create_subscription(BeamObservation, "/test/beam_observation", lambda m: got.setdefault("o", m), qos)
deadline = time.time() + 30
while time.time() < deadline and len(got) < 2:
    rclpy.spin_once(node, timeout_sec=0.1)
p, o = got["p"], got["o"]
print(json.dumps({
  "stamp": [p.header.stamp.sec, p.header.stamp.nanosec], "frame": p.header.frame_id,
  "name": p.model_name, "role": p.role, "mods": list(p.modalities), "cb": [p.codebook_id, p.codebook_size],
  "horizon": [[s.time_offset.sec, s.time_offset.nanosec, s.beam, list(s.top_k_beams), [float(x) for x in s.top_k_probs]] for s in p.horizon],
  "lat": p.inference_latency_ms, "win": [p.window_size, p.window_fill], "deg": [p.degraded, list(p.missing_modalities)],
  "obs": [o.header.stamp.sec, o.codebook_id, len(o.power_dbm), float(o.power_dbm[0]), float(o.power_dbm[151]), o.optimal_beam,
          o.label_mode, list(o.vehicle_ids), o.los_blocked, o.noise_dbm, o.episode],
}))
"""


@requires_ros
def test_beam_messages_round_trip_between_processes() -> None:
    pub = popen_python(PUBLISHER)
    try:
        res = run_python(SUBSCRIBER, timeout=60)
    finally:
        pub.kill()
        pub.wait()
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["stamp"] == [1234, 567000000]
    assert got["frame"] == "rsu_array"
    assert got["name"] == "student_radar_mlp" and got["role"] == 1
    assert got["mods"] == ["radar", "gps"] and got["cb"] == ["ula64_152", 152]
    assert len(got["horizon"]) == 4
    for i, (sec, nsec, beam, topk, probs) in enumerate(got["horizon"]):
        assert (sec, nsec) == (0, 100_000_000 * i)
        assert beam == 10 + i and topk == [10 + i, 11 + i, 151] and probs == [0.5, 0.25, 0.125]
    assert got["lat"] == 1.5 and got["win"] == [8, 0.875]
    assert got["deg"] == [True, ["camera"]]
    assert got["obs"] == [1234, "ula64_152", 152, -80.5, -231.5, 0, 1, [3, 7], True, -94.0, 4]

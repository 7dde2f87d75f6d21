"""Latency of the live beam tracker over real DDS (issue: the live beam tracker node).

For each model (the shipped student and teacher by default) this starts the ``beam_tracker`` node
in its own process, and from another process plays simulator frames (camera 256x192 bgra8, radar,
LiDAR ~11k points, GNSS) at ``--rate`` Hz with fresh wall-clock stamps. It reports:

- node latency: from the last message of a synchronized set arriving in the tracker to the
  prediction being published (``BeamPrediction.inference_latency_ms``), p50 / p99;
- end to end: from the newest sensor stamp to the prediction's arrival in the player process;
- frames thinned: sets the tracker skipped because they came faster than the frame period the model was
  trained at (its card's window_policy: 20 Hz input to a 10 Hz model skips every other set, by design);
- frames dropped: synchronized sets published minus those thinned minus predictions received (after the
  window filled): what the node lost;
- CPU use of the tracker process (user + system time over wall time, 100% = one core).

    source env.sh && python bench/tracker_latency.py                 # student and teacher, 20 Hz, 30 s
    python bench/tracker_latency.py --models student --rate 20 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PLAYER = r"""
import json, math, sys, time
import numpy as np, rclpy
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2, NavSatFix
from beam_tracking_ros.msg import BeamPrediction
from diagnostic_msgs.msg import DiagnosticArray
from beam_tracking_ros.io import convert
from beam_tracking_ros.sim import SimConfig, Simulator

rate, seconds, sensors = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3].split(",")
width, height = map(int, sys.argv[4].split("x"))
rclpy.init()
n = rclpy.create_node("latency_player")
pubs = {
    "camera": n.create_publisher(Image, "/carla/rsu/camera/image", qos_profile_sensor_data),
    "radar": n.create_publisher(PointCloud2, "/carla/rsu/radar", qos_profile_sensor_data),
    "lidar": n.create_publisher(PointCloud2, "/carla/rsu/lidar", qos_profile_sensor_data),
    "gnss": n.create_publisher(NavSatFix, "/carla/target/gnss", qos_profile_sensor_data),
}
got = []
def on_pred(m):
    got.append((time.time(), convert.stamp_to_sec(m.header.stamp), m.inference_latency_ms))
n.create_subscription(BeamPrediction, "/rsu/beam_prediction", on_pred,
                      QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE))
diag = {}
def on_diag(m):
    for st in m.status:
        if st.name.startswith("beam_tracker"):
            diag.update({kv.key: kv.value for kv in st.values})
n.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
deadline = time.time() + 60
while time.time() < deadline and any(pubs[s].get_subscription_count() == 0 for s in sensors):
    rclpy.spin_once(n, timeout_sec=0.05)
time.sleep(1.0)
from beam_tracking_ros.sim import CameraConfig
sim = Simulator(SimConfig(seed=11, arrival_rate=1.5, camera=CameraConfig(width=width, height=height)))
frames = [sim.step() for _ in range(200)]  # played in a loop: publishing, not simulating, is measured
period = 1.0 / rate
count = int(seconds * rate)
t_next = time.time()
for i in range(count):
    f = frames[i % len(frames)]
    st = convert.stamp_from_sec(time.time())
    if "camera" in sensors: pubs["camera"].publish(convert.image_to_msg(f.camera, st, "rsu/camera"))
    if "radar" in sensors: pubs["radar"].publish(convert.radar_to_msg(f.radar, st, "rsu/radar"))
    if "lidar" in sensors: pubs["lidar"].publish(convert.lidar_to_msg(f.lidar, st, "rsu/lidar"))
    if "gnss" in sensors:
        g = f.gnss if f.gnss is not None else frames[0].gnss
        pubs["gnss"].publish(convert.gnss_to_msg(*map(float, g), st, "target/gnss"))
    t_next += period
    while True:
        left = t_next - time.time()
        if left <= 0: break
        rclpy.spin_once(n, timeout_sec=min(left, 0.005))
end = time.time() + 2.5  # the last predictions and a /diagnostics report after them
while time.time() < end:
    rclpy.spin_once(n, timeout_sec=0.02)
print(json.dumps({"sent": count, "got": got, "skipped": int(diag.get("frames_skipped", 0) or 0),
                  "period_s": diag.get("frame_period_s", "")}))
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def run(model: str, rate: float, seconds: float, backend: str, transport: str, camera: str) -> dict:
    card = json.loads((REPO / "models" / model / "model_card.json").read_text())
    sensors = ["camera", "radar", "lidar", "gnss"]  # all four publish, whatever the model reads
    env = os.environ.copy()
    if transport == "default":  # Fast DDS defaults, for comparison with the shipped SHM profile
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    else:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(REPO / "config" / "fastdds_shm.xml")
    tracker = subprocess.Popen(
        [sys.executable, "-m", "beam_tracking_ros.ros.beam_tracker_node", "--ros-args", "-p",
         f"model:={REPO / 'models' / model}", "-p", f"backend:={backend}", "-p", "publish_markers:=false"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        time.sleep(3.0)  # model load, ONNX Runtime warm-up
        cpu0, wall0 = cpu_seconds(tracker.pid), time.time()
        res = subprocess.run([sys.executable, "-c", PLAYER, str(rate), str(seconds), ",".join(sensors), camera],
                             capture_output=True, text=True, timeout=seconds + 120, env=env)
        cpu1, wall1 = cpu_seconds(tracker.pid), time.time()
    finally:
        tracker.terminate()
        out, _ = tracker.communicate(timeout=20)
    if res.returncode != 0:
        raise SystemExit(f"player failed: {res.stderr[-2000:]}\ntracker:\n{out[-2000:]}")
    data = json.loads(res.stdout.strip().splitlines()[-1])
    got = data["got"]
    node = [g[2] for g in got]
    e2e = [(g[0] - g[1]) * 1e3 for g in got]
    expected = data["sent"] - data["skipped"] - (card["P"] - 1)
    return {
        "model": model, "transport": transport, "camera": camera, "role": card["role"],
        "inputs": "+".join(card["modalities"]),
        "backend": backend,
        "params": card["parameters"], "flops": card["flops"],
        "node_p50": percentile(node, 50), "node_p99": percentile(node, 99),
        "e2e_p50": percentile(e2e, 50), "e2e_p99": percentile(e2e, 99),
        "sent": data["sent"], "predictions": len(got), "thinned": data["skipped"],
        "model_period_s": data["period_s"], "dropped": max(0, expected - len(got)),
        "cpu_percent": 100.0 * (cpu1 - cpu0) / (wall1 - wall0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__).splitlines()[1])
    parser.add_argument("--models", nargs="+", default=["student", "teacher"])
    parser.add_argument("--rate", type=float, default=20.0, help="sensor rate in Hz (default 20)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"])
    parser.add_argument("--transport", default="shm", choices=["shm", "default", "both"],
                        help="Fast DDS set-up: the shipped SHM profile, Fast DDS defaults, or both")
    parser.add_argument("--camera", default="256x192",
                        help="camera image size WxH (default: the simulator's 256x192; 640x480 is a real camera's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    transports = ["shm", "default"] if args.transport == "both" else [args.transport]
    rows = [run(m, args.rate, args.seconds, args.backend, t, args.camera) for t in transports for m in args.models]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"beam_tracker latency, {args.rate:g} Hz camera {args.camera} + radar + LiDAR + GPS from another process, "
          f"{args.seconds:g} s, "
          f"{os.cpu_count()} cores; models trained at frame periods "
          f"{sorted({str(r['model_period_s']) for r in rows})} s (faster input is thinned to that)")
    print(f"{'transport':9} {'model':10} {'inputs':40} {'params':>9} {'MFLOPs':>8} {'node p50':>9} {'node p99':>9} "
          f"{'e2e p50':>8} {'e2e p99':>8} {'preds':>6} {'thinned':>7} {'dropped':>7} {'CPU %':>6}")
    for r in rows:
        print(f"{r['transport']:9} {r['model']:10} {r['inputs'][:40]:40} {r['params']:>9,} {r['flops'] / 1e6:>8.2f} "
              f"{r['node_p50']:>7.2f}ms "
              f"{r['node_p99']:>7.2f}ms {r['e2e_p50']:>6.2f}ms {r['e2e_p99']:>6.2f}ms {r['predictions']:>6} "
              f"{r['thinned']:>7} {r['dropped']:>7} {r['cpu_percent']:>6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

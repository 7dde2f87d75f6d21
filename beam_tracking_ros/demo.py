"""The main job (``make demo``): the built-in simulator feeds the beam tracker with the shipped student.

It launches ``carla_bridge.launch.py simulator:=builtin`` (simulator node + beam tracker node, over
real DDS) with ``ros2 launch``, runs the live evaluator in this process, which prints the live
Top-1/Top-k accuracy against the ground-truth beams, the power loss in dB and the latency every
second, and after ``--duration`` seconds stops everything with one SIGINT, as Ctrl-C would.

    python -m beam_tracking_ros.demo --duration 30 --model student --lanes 2 --weather day
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m beam_tracking_ros.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of live tracking (default 30)")
    parser.add_argument("--model", default="student", help="model name under models/ or a model directory")
    parser.add_argument("--lanes", type=int, default=2, choices=[1, 2, 3, 4, 5])
    parser.add_argument("--weather", default="day", choices=["day", "night", "rain", "fog"])
    parser.add_argument("--seed", type=int, default=1000, help="scenario seed (default: one not used in training)")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    ros2 = shutil.which("ros2")
    if ros2 is None:
        print("demo: no `ros2` command: run `make demo`, or `source env.sh` first", file=sys.stderr)
        return 2
    cmd = [ros2, "launch", "beam_tracking_ros", "carla_bridge.launch.py", "simulator:=builtin",
           f"model:={args.model}", f"lanes:={args.lanes}", f"weather:={args.weather}", f"seed:={args.seed}"]
    print("demo: " + " ".join(cmd[1:]), flush=True)
    launch = subprocess.Popen(cmd, start_new_session=True, env=os.environ.copy())
    try:
        from .ros.live_eval_node import main as live_eval

        code = live_eval(["live_eval", "--ros-args", "-p", f"duration_s:={args.duration}"])
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGINT)
            try:
                launch.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(launch.pid, signal.SIGKILL)
                launch.wait()
    if code != 0:
        print(f"demo: no prediction was scored (launch exit code {launch.returncode}); see the log above",
              file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The main job (``make demo``): the built-in simulator feeds the beam tracker with the shipped student.

It launches ``carla_bridge.launch.py simulator:=builtin`` (simulator node + beam tracker node, over
real DDS) with ``ros2 launch``, runs the live evaluator in this process, which prints the live
Top-1/Top-k accuracy against the ground-truth beams, the power loss in dB and the latency every
second, and after ``--duration`` seconds stops everything with one SIGINT, as Ctrl-C would.

    python -m beam_tracking_ros.demo --duration 30 --model student --lanes 2 --weather day
    python -m beam_tracking_ros.demo --model geometry     # the non-learned LiDAR baseline instead
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m beam_tracking_ros.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of live tracking (default 30)")
    parser.add_argument("--model", default="student",
                        help="model name under models/, a model directory, or 'geometry' (the non-learned LiDAR "
                             "baseline: no training, the honest reference a learned model must beat)")
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
    env = os.environ.copy()
    launch = subprocess.Popen(cmd, start_new_session=True, env=env)
    evaluator = subprocess.Popen(
        [sys.executable, "-P", "-m", "beam_tracking_ros.ros.live_eval_node", "--ros-args",
         "-p", f"duration_s:={args.duration}", "-p", f"prior_beam:={_prior_beam(args.model)}"],
        start_new_session=True, env=env)
    try:
        # Whichever ends first: the evaluator after --duration (the normal end), or the launch
        # (a node failed: no point in waiting for predictions that cannot come).
        while evaluator.poll() is None and launch.poll() is None:
            time.sleep(0.2)
        if launch.poll() is not None and evaluator.poll() is None:
            print(f"demo: the launch ended early (exit code {launch.returncode}); see its log above", file=sys.stderr)
            _stop(evaluator)
            return 1
        code = evaluator.returncode
    finally:
        for proc in (evaluator, launch):
            _stop(proc)
    if code != 0:
        print("demo: no prediction was scored; see the log above", file=sys.stderr)
    return code


def _prior_beam(model: str) -> int:
    """The label prior of the model's training set (its card's ``dataset.label_prior_beam``), scored live
    beside the model; -1 where unknown (the geometry baseline, an old card)."""
    import json

    from .resources import find_model_dir

    try:
        card = find_model_dir(model) / "model_card.json"
    except FileNotFoundError:
        return -1
    try:
        beam = json.loads(card.read_text(encoding="utf-8")).get("dataset", {}).get("label_prior_beam")
    except (OSError, ValueError):
        return -1
    return int(beam) if isinstance(beam, int) else -1


def _stop(proc: subprocess.Popen) -> None:
    """One SIGINT to the process group (as Ctrl-C), then SIGKILL if it has not ended in 20 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

if __name__ == "__main__":
    sys.exit(main())

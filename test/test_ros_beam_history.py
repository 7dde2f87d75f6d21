"""The beam tracker with a model that reads the beam history, over real DDS (issue 16).

A small radar + beam-history student is trained and exported here; the tracker runs it, a player process
publishes radar frames and, after each frame, the radio's BeamMeasurement of that frame -- with some for
another codebook, some NaN, some missing. Every frame must still be predicted, the predictions must equal
offline inference fed the same sweeps, and each bad measurement must be counted on /diagnostics.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ros_testing import popen_python, requires_ros

pytestmark = [requires_ros, pytest.mark.slow]

P, H, FRAMES, SEED = 3, 1, 24, 11
STAMPS = [500.0 + 0.1 * i for i in range(FRAMES)]
MEASURED = list(range(0, 152, 19))  # the beams every sweep measures
OTHER_CODEBOOK, NAN_POWERS, MISSING = {4, 5}, {8}, {12, 13}

PLAYER = r"""
import json, sys, time
import numpy as np, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from diagnostic_msgs.msg import DiagnosticArray
from beam_tracking_ros.msg import BeamMeasurement, BeamPrediction
from beam_tracking_ros.io import convert
from beam_tracking_ros.sim import SimConfig, Simulator

plan = json.loads(sys.argv[1])
rclpy.init()
n = rclpy.create_node("history_player")
qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
radar = n.create_publisher(PointCloud2, "/carla/rsu/radar", qos)
meas = n.create_publisher(BeamMeasurement, "/carla/rsu/beam_measurement", qos)
preds, diags = [], []
n.create_subscription(BeamPrediction, "/rsu/beam_prediction", preds.append, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
n.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
deadline = time.time() + 30
while time.time() < deadline and (radar.get_subscription_count() == 0 or meas.get_subscription_count() == 0):
    rclpy.spin_once(n, timeout_sec=0.05)
time.sleep(0.5)
sim = Simulator(SimConfig(seed=plan["seed"]))
for i in range(plan["frames"]):
    f = sim.step()
    st = convert.stamp_from_sec(plan["stamps"][i])
    radar.publish(convert.radar_to_msg(f.radar, st, "rsu/radar"))
    end = time.time() + 0.08
    while time.time() < end:
        rclpy.spin_once(n, timeout_sec=0.01)
    if i in plan["missing"]:
        continue
    m = BeamMeasurement(header=convert.make_header(st, "rsu/mmwave_array"), seq=i,
                        codebook_id="another" if i in plan["other_codebook"] else plan["codebook_id"])
    powers = np.asarray(f.beam.powers_dbm, np.float32)[plan["measured"]]
    if i in plan["nan"]:
        powers[:] = np.nan
    m.beams = list(plan["measured"])
    m.power_dbm = powers.tolist()
    meas.publish(m)
    end = time.time() + 0.08
    while time.time() < end:
        rclpy.spin_once(n, timeout_sec=0.01)
end = time.time() + 3.0
while time.time() < end:
    rclpy.spin_once(n, timeout_sec=0.05)
last = {kv.key: kv.value for kv in diags[-1].status[0].values} if diags else {}
print(json.dumps({"preds": {round(p.header.stamp.sec + p.header.stamp.nanosec * 1e-9, 6): [int(s.beam) for s in p.horizon] for p in preds},
                  "diag": last}))
"""


@pytest.fixture(scope="module")
def history_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A radar + beam-history student trained for a few steps on a small simulated dataset, exported."""
    from beam_tracking_ros.data.generate import generate_dataset, scenario
    from beam_tracking_ros.train.api import export_run, fit
    from beam_tracking_ros.train.config import config_from_dict

    root = tmp_path_factory.mktemp("history")
    generate_dataset(root / "ds", [scenario(2)], episodes=4, frames_per_episode=30, seed=SEED, P=P, H=H,
                     modalities=("radar", "radio"))
    cfg = config_from_dict({
        "name": "history_student", "role": "student",
        "data": {"path": str(root / "ds"), "modalities": ["radar_points", "beam_history"]},
        "model": {"name": "student-radar-mlp", "kwargs": {"hidden": 8, "frames": 1, "history": True}},
        "train": {"epochs": 1, "batch_size": 16, "device": "cpu"},
    })
    fit(cfg, root / "run", progress=False, log=lambda _m: None)
    export_run(root / "run", root / "model")
    return root / "model"


def _offline(model: Path, plan: dict) -> dict[float, list[int]]:
    """The same frames and the same sweeps (as the node would have them) through the tracker's core."""
    from beam_tracking_ros.data.beam_history import SweepRecord
    from beam_tracking_ros.inference import load_model
    from beam_tracking_ros.sim import SimConfig, Simulator
    from beam_tracking_ros.tracking import BeamTracker

    predictor, card = load_model(model, backend="auto")
    tracker = BeamTracker(predictor, card["modalities"], card["P"], card["H"], card["preprocess"])
    sim = Simulator(SimConfig(seed=plan["seed"]))
    out, previous = {}, SweepRecord.empty()
    for i in range(plan["frames"]):
        f = sim.step()
        pred = tracker.push(plan["stamps"][i], {"radar": f.radar, "radio": previous})
        if pred is not None:
            out[round(plan["stamps"][i], 6)] = pred.beams.tolist()
        usable = i not in plan["missing"] and i not in plan["other_codebook"] and i not in plan["nan"]
        beams = np.asarray(plan["measured"])
        previous = (SweepRecord(beams, np.asarray(f.beam.powers_dbm, np.float32)[beams], plan["stamps"][i])
                    if usable else SweepRecord.empty())
    return out


def test_history_model_over_dds_counts_bad_measurements_and_matches_offline(history_model: Path) -> None:
    card = json.loads((history_model / "model_card.json").read_text())
    assert "beam_history" in card["modalities"]
    plan = {"seed": SEED, "frames": FRAMES, "stamps": STAMPS, "measured": MEASURED,
            "codebook_id": card["codebook"]["id"], "other_codebook": sorted(OTHER_CODEBOOK),
            "nan": sorted(NAN_POWERS), "missing": sorted(MISSING)}
    args = ["--ros-args", "-p", f"model:={history_model}", "-p", "diagnostics_period_s:=0.5",
            "-p", "sensor_qos:=reliable"]
    tracker = popen_python("import sys; from beam_tracking_ros.ros.beam_tracker_node import main; "
                           f"sys.exit(main(['beam_tracker', *{args!r}]))")
    try:
        res = subprocess.run([sys.executable, "-c", PLAYER, json.dumps(plan)], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        out = json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        tracker.terminate()
        log = tracker.communicate(timeout=20)[0]
    assert tracker.returncode == 0, log[-3000:]
    live = {float(k): v for k, v in out["preds"].items()}
    assert len(live) == FRAMES - P + 1, (sorted(live), log[-2000:])  # every frame predicted, bad sweeps included
    offline = _offline(history_model, plan)
    assert live == offline
    counts = dict(kv.split(":") for kv in out["diag"]["beam_history"].split(","))
    assert int(counts["other_codebook"]) == len(OTHER_CODEBOOK)
    assert int(counts["nonfinite_powers"]) == len(MEASURED) * len(NAN_POWERS)
    # no usable sweep before: the first frame, those after a missing / foreign / NaN one
    assert int(counts["frames_without_history"]) == 1 + len(MISSING | OTHER_CODEBOOK | NAN_POWERS)
    assert int(counts["frames_with_history"]) == FRAMES - int(counts["frames_without_history"])

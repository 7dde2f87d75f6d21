"""The beam manager node over real DDS: a scripted tracker and radio in this process, the node in another.

One run walks through the cases of issue 16 frame by frame: correct predictions (k beams, no fallback),
a beam failure (full sweep in the same frame), a measurement with an unrequested beam and a NaN power,
a measurement that never comes, a prediction for another codebook (then a full sweep once the last
prediction is stale) -- and checks every frame got a ServingBeam and every bad input was counted.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from ros_testing import popen_python, requires_ros

B = 16
NS = 1_000_000_000

pytestmark = [requires_ros, pytest.mark.ros]


def _start_manager(*params: str):
    args = ["--ros-args", "-p", "k:=2", "-p", "include_serving:=false", "-p", "diagnostics_period_s:=0.3",
            "-p", "measurement_timeout_s:=0.1", "-p", "prediction_deadline_s:=0.5", *params]
    return popen_python("import sys; from beam_tracking_ros.ros.beam_manager_node import main; "
                        f"sys.exit(main(['beam_manager', *{args!r}]))")


def test_manager_sweeps_candidates_recovers_and_counts_bad_input() -> None:
    import rclpy
    from beam_tracking_ros.msg import (
        BeamHorizonStep,
        BeamMeasurement,
        BeamPrediction,
        BeamSweepRequest,
        ServingBeam,
    )
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    from beam_tracking_ros.io import convert
    from beam_tracking_ros.ros import qos

    proc = _start_manager()
    rclpy.init()
    node = rclpy.create_node("bm_test")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    rel = qos.reliable_qos(20)
    pub_pred = node.create_publisher(BeamPrediction, "/rsu/beam_prediction", rel)
    pub_meas = node.create_publisher(BeamMeasurement, "/carla/rsu/beam_measurement", rel)
    requests: list[BeamSweepRequest] = []
    serving: list[ServingBeam] = []
    diags: list[dict[str, str]] = []
    # the radio: per frame stamp, the powers and how to misbehave
    frames: dict[int, tuple[np.ndarray, str]] = {}

    def on_request(req: BeamSweepRequest) -> None:
        requests.append(req)
        want = convert.stamp_to_ns(req.header.stamp)  # the node's own sweeps carry its clock: the newest frame
        known = [ns for ns in frames if ns <= want]
        if not known:
            return
        powers, mode = frames[known[-1]]
        if mode == "silent":
            return
        beams = list(req.beams)
        p = [float(powers[b]) for b in beams]
        if mode == "dirty" and not req.full_sweep:
            beams.append(15)  # not requested, and the strongest: must not be served
            p.append(0.0)
            p[0] = float("nan")
        msg = BeamMeasurement(header=req.header, seq=req.seq, codebook_id="cb16", beams=beams, power_dbm=p)
        pub_meas.publish(msg)

    node.create_subscription(BeamSweepRequest, "/carla/rsu/beam_sweep_request", on_request, rel)
    node.create_subscription(ServingBeam, "/rsu/serving_beam", serving.append, rel)
    node.create_subscription(
        DiagnosticArray, "/diagnostics",
        lambda m: diags.extend({kv.key: kv.value for kv in s.values} for s in m.status
                               if s.name.endswith("beam_manager")), 10)

    def predict(t_ns: int, top: list[int], probs: list[float], size: int = B) -> None:
        step = BeamHorizonStep(beam=top[0], top_k_beams=top, top_k_probs=probs)
        pub_pred.publish(BeamPrediction(header=convert.make_header(t_ns, "rsu/mmwave_array"), codebook_id="cb16",
                                        codebook_size=size, horizon=[step]))

    def powers_with(best: int, level: float = -50.0) -> np.ndarray:
        p = np.full(B, -90.0)
        p[best] = level
        return p

    try:
        deadline = time.monotonic() + 20
        while pub_pred.get_subscription_count() == 0 or pub_meas.get_subscription_count() == 0:
            assert time.monotonic() < deadline and proc.poll() is None, "the beam manager did not come up"
            time.sleep(0.05)
        time.sleep(0.5)
        t = 100 * NS
        script = []
        for _ in range(4):  # right predictions: k = 2 beams, beam 4 served
            script.append((powers_with(4), "ok", [4, 5], [0.7, 0.2]))
        p = powers_with(9, -55.0)
        p[4] = -75.0  # failure: the predicted beam fell 25 dB, the best is elsewhere
        script.append((p, "ok", [4, 5], [0.7, 0.2]))
        p = powers_with(9)
        p[10] = -52.0
        script.append((p, "dirty", [9, 10], [0.6, 0.3]))  # 9 reads NaN, 15 (not asked) reads strongest
        script.append((powers_with(9), "silent", [9, 10], [0.6, 0.3]))
        for k, (pw, mode, top, probs) in enumerate(script):
            stamp = t + k * NS // 10
            frames[stamp] = (pw, mode)
            predict(stamp, top, probs)
            time.sleep(0.2)
        # a prediction for another codebook, then nothing: the node sweeps everything on its own
        stamp = t + len(script) * NS // 10
        frames[stamp] = (powers_with(2), "ok")
        predict(stamp, [1, 2], [0.5, 0.5], size=8)
        stale_from = time.monotonic()
        while not any(r.reason == "stale_prediction" for r in requests) and time.monotonic() - stale_from < 5:
            time.sleep(0.05)
        time.sleep(1.0)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()

    # the node's own full sweeps are stamped with its clock; map them onto the last frame for the radio
    by_stamp = {convert.stamp_to_ns(s.header.stamp): s for s in serving}
    served = [by_stamp.get(t + k * NS // 10) for k in range(len(script))]
    assert all(s is not None for s in served), (len(serving), err[-2000:])
    for s in served[:4]:
        assert s.beam == 4 and s.beams_measured == 2 and not s.full_sweep and s.reason == "prediction"
    fail = served[4]
    assert fail.beam == 9 and fail.beam_failure and fail.full_sweep and fail.beams_measured == 2 + B
    dirty = served[5]
    assert dirty.beam == 10 and not dirty.beam_failure  # 15 was not requested, 9 was NaN
    silent = served[6]
    assert silent.beam == 10 and np.isnan(silent.power_dbm)  # nothing came: the last beam stays
    assert any(r.reason == "stale_prediction" and r.full_sweep and len(r.beams) == B for r in requests)
    assert diags, err[-2000:]
    last = diags[-1]
    for key in ("beam_failures", "unrequested_beams", "nan_powers", "missing_measurement", "bad_prediction",
                "fallback_stale_prediction", "fallback_beam_failure"):
        assert int(last[key]) >= 1, (key, last)
    assert float(last["decision_latency_ms_p99"]) < 50.0
    assert "Traceback" not in err

"""The suite's fallback mode (issue 15): ``BEAM_TRACKING_ROS_FALLBACKS=force`` takes the package's own
implementations even where the upstream packages are importable, and every resolution is recorded.

The "upstream" packages here are stand-ins on PYTHONPATH (message_filters, sensor_msgs_py, cv_bridge,
launch, launch_ros with the names the real ones export), so both sides of the switch are exercised on a
machine without ROS; in a subprocess, so nothing leaks into this session's imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ros_testing import REPO

STANDINS = {
    "message_filters/__init__.py": "class Subscriber: pass\nclass SimpleFilter: pass\n"
                                   "class ApproximateTimeSynchronizer: pass\n",
    "sensor_msgs_py/__init__.py": "",
    "sensor_msgs_py/point_cloud2.py": "def read_points_numpy(*a, **k): raise AssertionError('upstream used')\n"
                                      "def create_cloud(*a, **k): return 'upstream cloud'\n",
    "cv_bridge/__init__.py": "class CvBridge:\n    def cv2_to_imgmsg(self, img, encoding): return 'upstream'\n",
    "launch/__init__.py": "",
    "launch_ros/__init__.py": "",
}

PROBE = """
import json, sys
from beam_tracking_ros.ros import compat
from beam_tracking_ros.ros.fallback.ros2cli import real_launch_available
import numpy as np
print(json.dumps({"impl": compat.implementations(), "sync": compat.sync_implementation(),
                  "real_launch": real_launch_available(),
                  "image": type(compat.numpy_to_imgmsg(np.zeros((2, 2, 4), np.uint8))).__name__}))
"""


@pytest.fixture
def standins(tmp_path: Path) -> Path:
    root = tmp_path / "upstream"
    for rel, text in STANDINS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _probe(standins: Path, log: Path, force: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BEAM_TRACKING_ROS_FALLBACKS"}
    env["PYTHONPATH"] = os.pathsep.join([str(standins), str(REPO), env.get("PYTHONPATH", "")])
    env["BEAM_TRACKING_ROS_IMPLEMENTATION_LOG"] = str(log)
    if force is not None:
        env["BEAM_TRACKING_ROS_FALLBACKS"] = force
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)


def test_without_the_switch_the_upstream_packages_are_taken(standins: Path, tmp_path: Path) -> None:
    res = _probe(standins, tmp_path / "auto.log", None)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.splitlines()[-1])
    assert set(out["impl"].values()) == {"upstream"} and out["sync"] == "message_filters"
    assert out["real_launch"] is True and out["image"] == "str"  # the stand-in CvBridge answered
    assert {"message_filters upstream", "cv_bridge upstream"} <= set((tmp_path / "auto.log").read_text().split("\n"))


def test_forced_fallbacks_take_the_package_s_own_everywhere_and_record_it(standins: Path, tmp_path: Path) -> None:
    res = _probe(standins, tmp_path / "forced.log", "force")
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.splitlines()[-1])
    assert set(out["impl"].values()) == {"fallback"} and out["sync"] == "fallback"
    assert out["real_launch"] is False and out["image"] != "str"
    lines = set((tmp_path / "forced.log").read_text().split("\n")) - {""}
    assert lines == {"message_filters fallback", "cv_bridge fallback"}  # once each, though resolved twice


def test_a_bad_switch_value_is_a_clear_error(standins: Path, tmp_path: Path) -> None:
    res = _probe(standins, tmp_path / "bad.log", "sometimes")
    assert res.returncode != 0
    assert "BEAM_TRACKING_ROS_FALLBACKS='sometimes': expected 'auto' (default) or 'force'" in res.stderr


def test_this_session_records_which_implementation_each_test_uses() -> None:
    """conftest points the record at a file of this test's own; what compat resolves here lands in it."""
    from beam_tracking_ros.ros import compat

    log = Path(os.environ["BEAM_TRACKING_ROS_IMPLEMENTATION_LOG"])
    compat.sync_implementation()
    assert f"message_filters {'upstream' if compat.have_message_filters() else 'fallback'}" in log.read_text()

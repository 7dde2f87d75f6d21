"""The colcon-built package is a real ROS 2 package: ament index, share/, executables; core imports without rclpy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ros_testing import REPO, requires_ros

CORE_MODULES = [
    "beam_tracking_ros",
    "beam_tracking_ros.channel",
    "beam_tracking_ros.sim",
    "beam_tracking_ros.data",
    "beam_tracking_ros.models",
    "beam_tracking_ros.kd",
    "beam_tracking_ros.train",
]


@requires_ros
def test_ament_index_lists_package_with_share_dirs() -> None:
    from ament_index_python.packages import get_package_prefix, get_package_share_directory, get_packages_with_prefixes

    assert "beam_tracking_ros" in get_packages_with_prefixes()
    share = Path(get_package_share_directory("beam_tracking_ros"))
    for sub in ("launch", "config", "models"):
        assert (share / sub).is_dir(), f"share/beam_tracking_ros/{sub} missing"
    assert (share / "package.xml").is_file()
    lib = Path(get_package_prefix("beam_tracking_ros")) / "lib" / "beam_tracking_ros"
    scripts = sorted(p.name for p in (REPO / "scripts").iterdir())
    assert scripts, "no node executables in scripts/"
    for name in scripts:
        assert os.access(lib / name, os.X_OK), f"executable {name} not installed in {lib}"


@requires_ros
def test_generated_messages_import_from_install() -> None:
    from beam_tracking_ros.msg import BeamHorizonStep, BeamObservation, BeamPrediction

    assert BeamPrediction.ROLE_STUDENT == 1 and BeamObservation.LABEL_SUM_RSS == 1
    assert "top_k_probs" in BeamHorizonStep.get_fields_and_field_types()


def test_core_imports_without_rclpy() -> None:
    """Block rclpy and every ROS message module, then import the whole ROS-free core."""
    code = f"""
import sys, importlib, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        root = name.split('.')[0]
        if root in ('rclpy', 'rosidl_runtime_py', 'sensor_msgs', 'std_msgs', 'builtin_interfaces') \
                or name.startswith('beam_tracking_ros.msg') or name.startswith('beam_tracking_ros.ros'):
            raise ImportError('blocked for this test: ' + name)
        return None
sys.meta_path.insert(0, Block())
import pkgutil
for m in {CORE_MODULES!r}:
    mod = importlib.import_module(m)
    for info in pkgutil.walk_packages(mod.__path__, m + '.'):
        if '.ros' in info.name or info.name.endswith('.msg') or 'carla_bridge' in info.name:
            continue
        importlib.import_module(info.name)
assert 'rclpy' not in sys.modules
print('ok')
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr

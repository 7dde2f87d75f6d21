"""The suite starts on a ROS 2 machine too, where launch_testing's pytest plugin is importable.

launch_testing (and launch_testing_ros) register pytest plugins whose hooks still take the ``path``
argument pytest 9 removed: loading them stops pytest before it collects anything (``PluginValidationError``).
pyproject.toml keeps them out (``-p no:launch_testing -p no:launch_ros``); this test installs a stand-in with
the same entry point and the same hook signature and checks both sides.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _stand_in(site: Path) -> dict[str, str]:
    pkg = site / "launch_testing_stand_in"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("def pytest_pycollect_makemodule(path, parent):  # launch_testing 3.x\n"
                                     "    return None\n")
    dist = site / "launch_testing-3.7.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: launch_testing\nVersion: 3.7.1\n")
    (dist / "entry_points.txt").write_text("[pytest11]\nlaunch_testing = launch_testing_stand_in\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


def test_the_suite_starts_with_launch_testings_plugin_installed(tmp_path: Path) -> None:
    env = _stand_in(tmp_path / "site")
    ours = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "test/test_resources.py"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert ours.returncode == 0, ours.stdout[-2000:] + ours.stderr[-2000:]
    # without the project's configuration the stand-in stops pytest, as launch_testing does
    bare = subprocess.run([sys.executable, "-m", "pytest", "-c", os.devnull, "--co", "-q",
                           str(REPO / "test" / "test_resources.py")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert bare.returncode != 0 and "PluginValidationError" in bare.stdout + bare.stderr

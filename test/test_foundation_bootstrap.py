"""The bootstrap stops with a clear message when a system tool is missing, and does nothing twice."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from ros_testing import REPO


def _path_without(tool: str, tmp: Path) -> str:
    """A PATH holding every executable of this machine except ``tool``."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        p = Path(d)
        if not p.is_dir() or p.resolve() == (REPO / ".venv" / "bin").resolve():
            continue
        for exe in p.iterdir():
            target = bin_dir / exe.name
            if exe.name != tool and not target.exists() and os.access(exe, os.X_OK) and exe.is_file():
                target.symlink_to(exe)
    return str(bin_dir)


def test_missing_cmake_stops_the_bootstrap_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = _path_without("cmake", tmp_path)
    res = subprocess.run(["bash", str(REPO / "tools" / "bootstrap.sh")], capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode != 0
    assert "missing system tools" in res.stderr and "cmake" in res.stderr


@pytest.mark.slow  # two full bootstrap runs (colcon included)
def test_second_run_with_nothing_changed_skips_every_step() -> None:
    if not (REPO / ".venv").is_dir():
        pytest.skip("the bootstrap has not run in this checkout (make test runs it first)")
    res = subprocess.run(["bash", str(REPO / "tools" / "bootstrap.sh")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(["bash", str(REPO / "tools" / "bootstrap.sh")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "requirements up to date" in res.stdout and "package build up to date" in res.stdout

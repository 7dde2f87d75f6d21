"""Helpers for tests that use real ROS 2 (rclpy over Fast DDS) and the built package."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def have_rclpy() -> bool:
    """True when rclpy and the built message package are importable (after `source env.sh`)."""
    try:
        import rclpy  # noqa: F401
        from beam_tracking_ros.msg import BeamPrediction  # noqa: F401
    except ImportError:
        return False
    return True


# Under `make test` / CI the environment is always built, so a missing rclpy there is a failure,
# not a skip; a developer running the core tests from a plain venv gets a skip with the reason.
requires_ros = pytest.mark.skipif(
    not have_rclpy() and not os.environ.get("CI"),
    reason="needs rclpy and the built package: run `make test` or `source env.sh`",
)


def run_python(code: str, timeout: float = 60.0, **kwargs) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python process with this environment (own OS process, own DDS participant)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, env=os.environ.copy(), **kwargs,
    )


def popen_python(code: str, **kwargs) -> subprocess.Popen:
    """Start ``code`` in a background Python process; the caller must wait/kill it."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(), **kwargs,
    )

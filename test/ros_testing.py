"""Helpers for tests that use real ROS 2 (rclpy over Fast DDS) and the built package."""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import IO

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


def ros2_command() -> list[str]:
    """The ``ros2`` a user has (the real one, or the fallback the bootstrap installs); under the suite's
    fallback mode (``BEAM_TRACKING_ROS_FALLBACKS=force``) the package's own, even where a real one exists."""
    from beam_tracking_ros.ros.fallback import fallbacks_forced

    if fallbacks_forced():
        return [sys.executable, "-m", "beam_tracking_ros.ros.fallback.ros2cli"]
    exe = shutil.which("ros2")
    assert exe, "no ros2 command on PATH: the bootstrap installs one (`make bootstrap`, then `source env.sh`)"
    return [exe]


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


# Fast DDS supports domain ids 0..232; 0 is everybody's default and 201..232 are left to the
# benchmarks (bench/full_loop.py), so the tests take 11..200.
TEST_DOMAINS = range(11, 201)


def claim_domain() -> tuple[int, IO[str]]:
    """A ROS_DOMAIN_ID no other test session on this machine holds, and the lock that holds it.

    The lock is an exclusive flock on a file named after the id, kept while the returned handle is
    open (the session's lifetime for conftest's claim), so concurrent sessions never share a domain.
    """
    ids = list(TEST_DOMAINS)
    random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little")).shuffle(ids)
    lock_dir = Path(tempfile.gettempdir())
    for domain in ids:
        handle = open(lock_dir / f"beam_tracking_ros.ros_domain.{domain}.lock", "w")  # noqa: SIM115 (held open)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return domain, handle
    raise RuntimeError(f"every test ROS_DOMAIN_ID in {TEST_DOMAINS} is held by another test session")

"""Shared test set-up.

DDS isolation: every test session claims its own ROS_DOMAIN_ID and uses localhost-only discovery,
so parallel runs (two CI jobs, a developer's demo, a benchmark) never hear each other. The id is
claimed with an exclusive lock file held for the whole session, so two concurrent sessions on one
machine can never pick the same one; subprocesses inherit it through the environment.
"""

from __future__ import annotations

import os

from ros_testing import claim_domain

_DOMAIN, _DOMAIN_LOCK = claim_domain()
os.environ["ROS_DOMAIN_ID"] = str(_DOMAIN)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated in favour of the variable above
os.environ.setdefault("PYTHONUNBUFFERED", "1")


def pytest_report_header(config: object) -> list[str]:
    """Say which implementation of each upstream ROS package this session tests (upstream or fallback)."""
    try:
        from beam_tracking_ros.ros import compat
    except ImportError as exc:  # the ROS layer itself is not importable: the ROS tests skip
        return [f"ROS packages: not checked ({exc})"]
    return ["ROS packages: " + ", ".join(f"{name} {impl}" for name, impl in compat.implementations().items())]


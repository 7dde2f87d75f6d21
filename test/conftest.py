"""Shared test set-up.

DDS isolation: every test session claims its own ROS_DOMAIN_ID and uses localhost-only discovery,
so parallel runs (two CI jobs, a developer's demo, a benchmark) never hear each other. The id is
claimed with an exclusive lock file held for the whole session, so two concurrent sessions on one
machine can never pick the same one; subprocesses inherit it through the environment.
"""

from __future__ import annotations

import collections
import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
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



# Which implementation of each upstream ROS package every test used -- in-process and in the nodes and
# launchers it started (they inherit the variable) -- recorded through
# beam_tracking_ros.ros.fallback.record_implementation and summed up at the end of the session. With
# BEAM_TRACKING_ROS_FALLBACKS=force (`make test-fallbacks`) every entry must say "fallback".
_RECORD_ENV = "BEAM_TRACKING_ROS_IMPLEMENTATION_LOG"
_RECORD_DIR = Path(tempfile.mkdtemp(prefix="beam_tracking_impl_"))
_record_ids = itertools.count()
_used: dict[tuple[str, str], list[str]] = collections.defaultdict(list)


@pytest.fixture(autouse=True)
def _record_implementations(request: pytest.FixtureRequest) -> Iterator[None]:
    log = _RECORD_DIR / f"{next(_record_ids)}.log"
    previous = os.environ.get(_RECORD_ENV)
    os.environ[_RECORD_ENV] = str(log)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_RECORD_ENV, None)
        else:
            os.environ[_RECORD_ENV] = previous
        seen = sorted(set(log.read_text(encoding="utf-8").split("\n")) - {""}) if log.exists() else []
        for line in seen:
            package, _, impl = line.partition(" ")
            _used[(package, impl)].append(request.node.nodeid)
        request.node.user_properties.append(("ros_implementations", ", ".join(seen) or "none"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import shutil

    shutil.rmtree(_RECORD_DIR, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: object, exitstatus: int, config: object) -> None:
    """One line per (package, implementation): how many tests used it, and the first of them."""
    if not _used:
        return
    tr = terminalreporter
    tr.section("ROS package implementations used by the tests")  # type: ignore[attr-defined]
    forced = os.environ.get("BEAM_TRACKING_ROS_FALLBACKS", "") not in ("", "auto", "0")
    tr.write_line(f"fallback mode: {'forced' if forced else 'auto (upstream wherever importable)'}")  # type: ignore[attr-defined]
    for (package, impl), tests in sorted(_used.items()):
        shown = ", ".join(tests[:3]) + (f", ... ({len(tests) - 3} more)" if len(tests) > 3 else "")
        tr.write_line(f"{package}: {impl} in {len(tests)} test(s): {shown}")  # type: ignore[attr-defined]

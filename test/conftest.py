"""Shared test set-up.

DDS isolation: every test session claims its own ROS_DOMAIN_ID and uses localhost-only discovery,
so parallel runs (two CI jobs, a developer's demo, a benchmark) never hear each other. The id is
claimed with an exclusive lock file held for the whole session, so two concurrent sessions on one
machine can never pick the same one; subprocesses inherit it through the environment.
"""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
from pathlib import Path
from typing import IO

# Fast DDS supports domain ids 0..232; 0 is everybody's default and 201..232 are left to the
# benchmarks (bench/full_loop.py), so the tests take 11..200.
_TEST_DOMAINS = range(11, 201)


def _claim_domain() -> tuple[int, IO[str]]:
    ids = list(_TEST_DOMAINS)
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
    raise RuntimeError(f"every test ROS_DOMAIN_ID in {_TEST_DOMAINS} is held by another test session")


_DOMAIN, _DOMAIN_LOCK = _claim_domain()
os.environ["ROS_DOMAIN_ID"] = str(_DOMAIN)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated in favour of the variable above
os.environ.setdefault("PYTHONUNBUFFERED", "1")

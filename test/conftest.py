"""Shared test set-up.

DDS isolation: every test session gets its own ROS_DOMAIN_ID and localhost-only discovery, so
parallel runs (two CI jobs, a developer's demo) never hear each other. Subprocesses inherit it.
"""

from __future__ import annotations

import os
import random

# Fast DDS supports domain ids 0..232; avoid 0 (the default every other ROS user is on).
_DOMAIN = str(random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little")).randint(11, 200))
os.environ["ROS_DOMAIN_ID"] = _DOMAIN
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated in favour of the variable above
os.environ.setdefault("PYTHONUNBUFFERED", "1")



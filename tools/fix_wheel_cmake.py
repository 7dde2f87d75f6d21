"""Rewrite the manylinux build paths baked into the ROS 2 wheels' exported CMake files.

The PyPI ROS 2 wheels were built in a manylinux image; their exported CMake targets name the
Python include directory and NumPy include directory of that image, which do not exist on this
machine, so ``colcon build`` of a package with messages fails. This replaces them with this
interpreter's paths. Idempotent: a second run changes nothing.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_PY_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
BUILD_NUMPY_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def main(prefix: str) -> int:
    """Patch every *.cmake file under ``<prefix>/share``; print how many were changed."""
    replacements = {
        BUILD_NUMPY_INCLUDE: numpy.get_include(),
        BUILD_PY_INCLUDE: sysconfig.get_paths()["include"],
    }
    changed = 0
    for path in Path(prefix, "share").rglob("*.cmake"):
        text = path.read_text(errors="surrogateescape")
        new = text
        for old, repl in replacements.items():
            new = new.replace(old, repl)
        if new != text:
            path.write_text(new, errors="surrogateescape")
            changed += 1
    print(f"fix_wheel_cmake: patched {changed} CMake file(s) under {prefix}/share")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))

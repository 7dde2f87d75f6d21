"""Small stand-ins for ROS 2 tools that cannot be installed from PyPI (launch, launch_ros, ros2cli).

Why: on machines where ROS 2 comes from PyPI wheels, users still type ``ros2 launch`` / ``ros2 run`` /
``ros2 topic``. The bootstrap installs a ``ros2`` script running :mod:`.ros2cli` only when no real ``ros2``
exists. The ``launch`` and ``launch_ros`` mini packages live here under private names and are aliased to
their real names only inside that fallback process, so they never shadow a real install.

This module holds the ament resource index look-ups everything else needs; it is the same lookup as
``ament_index_python`` (a package is marked by ``<prefix>/share/ament_index/resource_index/packages/<pkg>``)
without depending on it.

It also holds the two switches of the test suite's fallback mode (README, "On a machine with ROS 2"):

* ``BEAM_TRACKING_ROS_FALLBACKS=force`` makes every look-up of an upstream package (``compat``, the ``ros2``
  fallback's launcher) take the package's own implementation even where the real one is importable, so
  a ROS 2 machine can prove that both paths pass the same suite (``make test-fallbacks``);
* ``BEAM_TRACKING_ROS_IMPLEMENTATION_LOG=<file>``: each process appends ``<package> <upstream|fallback>``
  once per package it resolves, so a test session can say which implementation each test used, its
  subprocesses (nodes, launchers) included.
"""

from __future__ import annotations

import os
from pathlib import Path

FORCE_ENV = "BEAM_TRACKING_ROS_FALLBACKS"
RECORD_ENV = "BEAM_TRACKING_ROS_IMPLEMENTATION_LOG"
_FORCE_VALUES = {"": False, "auto": False, "0": False, "force": True, "1": True}
_recorded: set[tuple[str, str, str]] = set()


def fallbacks_forced() -> bool:
    """True when ``BEAM_TRACKING_ROS_FALLBACKS`` asks for the package's own implementations everywhere.

    A value other than auto/0/force/1 is a configuration mistake, refused with one clear error rather
    than silently testing the wrong path.
    """
    value = os.environ.get(FORCE_ENV, "").strip().lower()
    if value not in _FORCE_VALUES:
        raise ValueError(f"{FORCE_ENV}={os.environ[FORCE_ENV]!r}: expected 'auto' (default) or 'force'")
    return _FORCE_VALUES[value]


def record_implementation(package: str, implementation: str) -> None:
    """Append ``package implementation`` to the file named by ``BEAM_TRACKING_ROS_IMPLEMENTATION_LOG``
    (once per process, package and file); nothing without it. Never raises: a record is a diagnostic."""
    path = os.environ.get(RECORD_ENV)
    if not path or (path, package, implementation) in _recorded:
        return
    _recorded.add((path, package, implementation))
    try:
        with open(path, "a", encoding="utf-8") as f:  # one short line: appends are atomic on POSIX
            f.write(f"{package} {implementation}\n")
    except OSError:
        pass


class PackageNotFoundError(LookupError):
    """A package is not registered in any prefix of AMENT_PREFIX_PATH."""


def ament_prefixes() -> list[Path]:
    """Prefixes from AMENT_PREFIX_PATH in search order (first wins, like ament_index_python)."""
    return [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]


def _marker(prefix: Path, package: str) -> Path:
    return prefix / "share" / "ament_index" / "resource_index" / "packages" / package


def list_packages() -> dict[str, Path]:
    """All registered packages mapped to their prefix (the first prefix that registers a name wins)."""
    found: dict[str, Path] = {}
    for prefix in ament_prefixes():
        index = _marker(prefix, "x").parent
        if index.is_dir():
            for entry in sorted(index.iterdir()):
                found.setdefault(entry.name, prefix)
    return found


def get_package_prefix(package: str) -> Path:
    """Install prefix of ``package``; raises :class:`PackageNotFoundError` naming the searched prefixes."""
    if not package or "/" in package:
        raise PackageNotFoundError(f"invalid package name {package!r}")
    for prefix in ament_prefixes():
        if _marker(prefix, package).is_file():
            return prefix
    searched = [str(p) for p in ament_prefixes()] or ["<AMENT_PREFIX_PATH is empty>"]
    raise PackageNotFoundError(f"package '{package}' not found, searching: {searched}")


def get_package_share_directory(package: str) -> Path:
    """``<prefix>/share/<package>``, where launch/, config/ and models/ are installed."""
    return get_package_prefix(package) / "share" / package


def list_executables(package: str) -> list[str]:
    """Executable files in ``<prefix>/lib/<package>`` (what ``ros2 run`` can start), sorted."""
    libdir = get_package_prefix(package) / "lib" / package
    if not libdir.is_dir():
        return []
    return sorted(p.name for p in libdir.iterdir() if p.is_file() and os.access(p, os.X_OK))


def find_executable(package: str, executable: str) -> Path:
    """Path of ``executable`` of ``package``; the error lists what the package does provide."""
    libdir = get_package_prefix(package) / "lib" / package
    path = libdir / executable
    if path.is_file() and os.access(path, os.X_OK):
        return path
    available = list_executables(package)
    raise PackageNotFoundError(
        f"executable '{executable}' not found in package '{package}' ({libdir}); "
        f"available executables: {', '.join(available) if available else 'none'}"
    )

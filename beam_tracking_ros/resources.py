"""Where the package's shipped files are (models/, config/, msg/): one lookup for every caller.

Why one: the tracker looks up a model by name, the trainer its configs, the bag reader and writer the
.msg definitions, the demo a model's card. Written five times they searched in five orders, and a
model found by one was missed by another. The order here, first match wins:

1. ``$BEAM_TRACKING_ROS_ROOT`` -- a checkout the user points at explicitly;
2. the installed share directory, through ``ament_index_python`` (the colcon or apt install that was
   sourced; the real ROS 2 way, and what ``ros2 launch`` itself uses);
3. the source checkout this module sits in (a plain clone, ``pip install -e``).

A path that exists as given (absolute, or relative to the working directory) is always taken as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PACKAGE", "find_model_dir", "find_resource", "resource_roots"]

PACKAGE = "beam_tracking_ros"


def resource_roots() -> list[Path]:
    """The directories searched, in order (each holds ``models/``, ``config/``, ``msg/`` ... when complete)."""
    roots: list[Path] = []
    if os.environ.get("BEAM_TRACKING_ROS_ROOT"):
        roots.append(Path(os.environ["BEAM_TRACKING_ROS_ROOT"]).expanduser())
    try:
        from ament_index_python.packages import get_package_share_directory

        roots.append(Path(get_package_share_directory(PACKAGE)))
    except (ImportError, LookupError, ValueError, OSError):  # no ROS, no sourced prefix, or not installed in one
        pass
    roots.append(Path(__file__).resolve().parents[1])
    seen: set[Path] = set()
    return [r for r in roots if not (r in seen or seen.add(r))]


def find_resource(relative: str | os.PathLike[str], *, kind: str = "file", marker: str | None = None,
                  as_given: bool = True) -> Path:
    """The first ``root / relative`` that is a ``kind`` ('file' or 'dir'; a dir must hold ``marker`` when
    given), after ``relative`` itself unless ``as_given`` is false. FileNotFoundError lists every place
    that was looked at."""
    if kind not in ("file", "dir"):
        raise ValueError(f"kind: expected 'file' or 'dir', got {kind!r}")

    def ok(p: Path) -> bool:
        if kind == "file":
            return p.is_file()
        return p.is_dir() and (marker is None or (p / marker).exists())

    given = Path(relative).expanduser()
    if as_given and ok(given):
        return given
    tried = [str(given)] if as_given else []
    if not given.is_absolute():
        for root in resource_roots():
            p = root / given
            if ok(p):
                return p
            tried.append(str(p))
    raise FileNotFoundError(f"{PACKAGE}: no {kind} {str(relative)!r} (looked in {tried})")


def find_model_dir(model: str | os.PathLike[str]) -> Path:
    """An exported model: ``model`` as a directory, else ``models/<model>`` under the roots above (e.g. the
    shipped 'student'); FileNotFoundError when neither holds a ``model_card.json``."""
    given = Path(model).expanduser()
    if given.is_dir():
        return given
    # not as given: "models/student" under the working directory is not what the name means
    return find_resource(Path("models") / given, kind="dir", marker="model_card.json", as_given=False)

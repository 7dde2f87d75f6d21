"""Atomic writes leave readers a whole file, with the mode open() would give it (not mkstemp's 0600)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from beam_tracking_ros.io.files import atomic_write_json


def test_atomic_json_has_the_usual_file_mode_and_no_leftovers(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    atomic_write_json(tmp_path / "meta.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "meta.json").read_text()) == {"a": [1, 2], "b": 1}
    assert stat.S_IMODE((tmp_path / "meta.json").stat().st_mode) == 0o666 & ~umask  # a shared dataset stays readable
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]

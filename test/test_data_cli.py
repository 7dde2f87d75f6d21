"""`beam-tracking dataset ...` subcommands through the top-level parser."""
from __future__ import annotations

import json

from beam_tracking_ros.cli import main


def test_generate_then_summary(tmp_path, capsys):
    out = tmp_path / "ds"
    rc = main(["dataset", "generate", "--out", str(out), "--episodes", "3", "--frames", "12", "--P", "2",
               "--H", "1", "--modalities", "radar,gnss", "--lanes", "2", "3"])
    assert rc == 0
    capsys.readouterr()
    assert main(["dataset", "summary", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"] > 0 and stats["H"] == 1


def test_errors_exit_nonzero(tmp_path, capsys):
    assert main(["dataset", "summary", str(tmp_path)]) == 1
    assert "manifest" in capsys.readouterr().err
    assert main(["dataset", "build", "--out", str(tmp_path / "x"), str(tmp_path / "missing_bag")]) == 1
    assert "does not exist" in capsys.readouterr().err

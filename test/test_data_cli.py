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


def test_gps_reference_option(tmp_path, capsys):
    """--gps-reference: three finite numbers, a real latitude/longitude; a bad one is a usage error (2)."""
    import pytest

    from beam_tracking_ros.data.cli import _preprocess, parse_gps_reference

    assert parse_gps_reference("-33.9,151.2,40") == (-33.9, 151.2, 40.0)
    for bad in ("1,2", "a,b,c", "nan,0,0", "91,0,0", "0,181,0"):
        with pytest.raises(SystemExit) as exc:
            main(["dataset", "build", "--out", str(tmp_path / "x"), "--gps-reference", bad, str(tmp_path / "b")])
        assert exc.value.code == 2
        assert "--gps-reference" in capsys.readouterr().err
    # the option reaches the preprocessing config with or without a --preprocess file
    assert _preprocess(None, gps_reference=(1.0, 2.0, 3.0)).gps_reference == (1.0, 2.0, 3.0)
    assert _preprocess(None) is None

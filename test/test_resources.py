"""One lookup for the package's shipped files: explicit root, installed share dir, then the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from beam_tracking_ros.data.bag import find_msg_dir
from beam_tracking_ros.resources import find_model_dir, find_resource, resource_roots


def test_shipped_files_are_found_by_name() -> None:
    assert (find_model_dir("student") / "model_card.json").is_file()
    assert find_resource("config/train/default_teacher.yaml").is_file()
    assert (find_msg_dir() / "BeamObservation.msg").is_file()


def test_an_explicit_root_comes_first_and_a_dir_without_its_marker_is_skipped(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAM_TRACKING_ROS_ROOT", str(tmp_path))
    assert resource_roots()[0] == tmp_path
    (tmp_path / "models" / "student").mkdir(parents=True)  # no card: not a model, the shipped one wins
    assert find_model_dir("student") != tmp_path / "models" / "student"
    (tmp_path / "models" / "student" / "model_card.json").write_text("{}")
    assert find_model_dir("student") == tmp_path / "models" / "student"


def test_a_missing_resource_names_every_place_looked_at(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BEAM_TRACKING_ROS_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no_such_model") as err:
        find_model_dir("no_such_model")
    assert str(tmp_path / "models" / "no_such_model") in str(err.value)
    with pytest.raises(ValueError, match="kind"):
        find_resource("msg", kind="socket")

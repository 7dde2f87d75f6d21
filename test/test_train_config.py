"""Training config validation: unknown keys, bad values and modality rules are rejected by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from beam_tracking_ros.train.cli import main_for
from beam_tracking_ros.train.config import (
    ConfigError,
    check_modalities,
    config_from_dict,
    config_to_dict,
    load_config,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config" / "train"


def base() -> dict:
    return {"name": "t", "data": {"synthetic": {"num_samples": 32}, "modalities": ["gps"]},
            "model": {"name": "toy-gru"}}


def test_valid_config_round_trips() -> None:
    cfg = config_from_dict(base())
    again = config_from_dict(config_to_dict(cfg))
    assert again == cfg
    assert cfg.train.focal_gamma == 2.0 and cfg.distill.method == "none"


@pytest.mark.parametrize(
    ("patch", "bad_key", "allowed_hint"),
    [
        ({"learning_rate": 1e-3}, "learning_rate", "allowed keys: name, role, data"),
        ({"train": {"learning_rate": 1e-3}}, "train.learning_rate", "lr"),
        ({"distill": {"temprature": 2.0}}, "distill.temprature", "temperature"),
        ({"distill": {"data_free": {"steps": 3}}}, "distill.data_free.steps", "generator_steps"),
        ({"data": {"synthetic": {"num_samples": 8}, "modalities": ["gps"], "splits": 1}}, "data.splits",
         "modalities"),
    ],
)
def test_unknown_keys_are_named_with_the_allowed_ones(patch: dict, bad_key: str, allowed_hint: str) -> None:
    raw = base()
    for k, v in patch.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) and isinstance(raw.get(k), dict) else v
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert bad_key in str(err.value)
    assert allowed_hint in str(err.value)


@pytest.mark.parametrize(
    ("section", "values", "needle"),
    [
        ("train", {"epochs": 0}, "train.epochs"),
        ("train", {"lr": -1.0}, "train.lr"),
        ("train", {"batch_size": "many"}, "train.batch_size"),
        ("train", {"scheduler": "step"}, "train.scheduler"),
        ("train", {"device": "tpu"}, "train.device"),
        ("distill", {"method": "kd-start"}, "distill.method"),
        ("distill", {"distances": ["manhattan"]}, "distill.distances[0]"),
        ("distill", {"curvature": 0.0}, "distill.curvature"),
        ("distill", {"alpha": 1.5}, "distill.alpha"),
        ("distill", {"data_free": {"adversarial_weight": 0.1}}, "distill.data_free.adversarial_weight"),
        ("distill", {"data_free": {"generator_every": -1}}, "distill.data_free.generator_every"),
        ("distill", {"data_free": {"generator_every": 5, "metadata_source": "batchnorm"}},
         "distill.data_free.generator_every"),
        ("data", {"modalities": ["sonar"]}, "data.modalities[0]"),
        ("data", {"modalities": []}, "data.modalities"),
    ],
)
def test_bad_values_name_the_parameter(section: str, values: dict, needle: str) -> None:
    raw = base()
    raw[section] = {**raw.get(section, {}), **values}
    with pytest.raises(ConfigError, match=__import__("re").escape(needle)):
        config_from_dict(raw)


def test_yaml_numbers_without_a_dot_are_accepted() -> None:
    raw = base()
    raw["train"] = {"lr": "1e-3"}  # YAML 1.1 reads 1e-3 as a string
    assert config_from_dict(raw).train.lr == pytest.approx(1e-3)


def test_modality_rules_between_teacher_student_and_data() -> None:
    check_modalities(["radar_points"], ["camera", "radar_points"], ["camera", "radar_points", "gps"], "rkd-both")
    with pytest.raises(ConfigError, match=r"student needs .*gps.* lacks"):
        check_modalities(["gps"], ["camera", "radar_points"], ["camera", "radar_points"], "kd-end")
    with pytest.raises(ConfigError, match="teacher needs"):
        check_modalities(["radar_points"], ["camera", "radar_points"], ["radar_points"], "kl")
    with pytest.raises(ConfigError, match="single-modality teacher"):
        check_modalities(["lidar_feat"], ["lidar_feat", "gps"], None, "data-free")
    with pytest.raises(ConfigError, match="exactly the teacher's modality"):
        check_modalities(["gps"], ["lidar_feat"], None, "data-free")


def test_shipped_configs_are_valid() -> None:
    files = sorted(CONFIG_DIR.glob("*.yaml"))
    names = {f.name for f in files}
    assert {"default_teacher.yaml", "default_student.yaml", "crkd_paper.yaml", "ma_paper.yaml",
            "dfkd_paper.yaml"} <= names
    for f in files:
        load_config(f)


def test_overrides_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(base()))
    assert load_config(p, ["train.epochs=3"]).train.epochs == 3
    with pytest.raises(ConfigError, match=r"train\.epoch"):
        load_config(p, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    p.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_cli_exits_2_with_one_line_for_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = base()
    raw["train"] = {"epocs": 2}
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(raw))
    code = main_for(["train", "--config", str(p), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.epocs" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()

"""The inference loader stands apart from training: the live tracker loads models without importing train/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ros_testing import requires_ros

from beam_tracking_ros.inference import CardError, CheckpointError, load_model

REPO = Path(__file__).resolve().parents[1]
STUDENT = REPO / "models" / "student"
TEACHER = REPO / "models" / "teacher"

LOADED = """
import sys
{imports}
from beam_tracking_ros.inference import load_model
load_model({student!r}, backend="onnx")
load_model({teacher!r}, backend="torch")
print(sorted(m for m in sys.modules if m.startswith("beam_tracking_ros.train") or m.startswith("beam_tracking_ros.kd")))
"""


def _modules_after(imports: str) -> list[str]:
    code = LOADED.format(imports=imports, student=str(STUDENT), teacher=str(TEACHER))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_loading_the_shipped_models_imports_no_training_code() -> None:
    assert _modules_after("") == []


@requires_ros
def test_the_tracker_node_imports_no_training_code() -> None:
    # torch itself imports torch.distributed; what matters is that none of the trainer, its DataLoader
    # set-up or the distillation losses come with the live node
    assert _modules_after("import beam_tracking_ros.ros.beam_tracker_node") == []


def test_a_card_naming_an_unknown_architecture_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(STUDENT, d)
    card = json.loads((d / "model_card.json").read_text())
    card["architecture"]["name"] = "resnet-9000"
    (d / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(CardError, match="resnet-9000"):
        load_model(d, backend="torch")
    card["architecture"]["name"] = "student-radar-mlp"
    card["architecture"]["kwargs"]["hiden"] = 3
    (d / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(CardError, match="hiden"):
        load_model(d, backend="torch")


def _tampered(tmp_path: Path, src: Path, **changes) -> Path:
    d = tmp_path / src.name
    shutil.copytree(src, d)
    card = json.loads((d / "model_card.json").read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            card[section][field] = value
        else:
            card[key] = value
    (d / "model_card.json").write_text(json.dumps(card))
    return d


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_card_that_disagrees_with_its_model_is_refused_at_load(tmp_path: Path, backend: str) -> None:
    """A card with P=4 for a model of window 8, or 64 beams for a 152-output model, was accepted and then
    failed on every frame (ONNX INVALID_ARGUMENT, 0 predictions)."""
    card = json.loads((STUDENT / "model_card.json").read_text())
    shapes = {m: [4, *s[1:]] for m, s in card["input_shapes"].items()}
    with pytest.raises(CardError, match=r"input"):
        load_model(_tampered(tmp_path / "p", STUDENT, P=4, input_shapes=shapes), backend=backend)
    with pytest.raises(CardError, match=r"codebook has 152 patterns"):
        load_model(_tampered(tmp_path / "c", STUDENT, num_beams=64), backend=backend)
    with pytest.raises(CardError, match=r"num_beams = 64|\(H \+ 1"):
        load_model(_tampered(tmp_path / "b", STUDENT, num_beams=64, codebook__size=64), backend=backend)


def test_card_files_stay_inside_the_model_directory_and_a_missing_onnx_is_said(tmp_path: Path, caplog) -> None:
    with pytest.raises(CardError, match="outside the model directory"):
        load_model(_tampered(tmp_path / "o", STUDENT, files__onnx="../../../etc/model.onnx"))
    with pytest.raises(CardError, match="outside the model directory"):
        load_model(_tampered(tmp_path / "w", STUDENT, files__weights="/tmp/model.pt"), backend="torch")
    d = _tampered(tmp_path / "m", STUDENT)
    (d / "model.onnx").unlink()
    with pytest.raises(CheckpointError, match=r"backend 'onnx' requested but model\.onnx is missing"):
        load_model(d, backend="onnx")
    with caplog.at_level("WARNING", logger="beam_tracking_ros.inference"):
        predictor, _ = load_model(d)  # auto: PyTorch, and the log says why
    assert predictor.backend == "torch" and "model.onnx but it is missing" in caplog.text


def test_evaluate_accepts_an_exported_model_directory(tmp_path: Path) -> None:
    """`beam-tracking evaluate models/<name>` refused exported directories (it wanted a training run)."""
    from beam_tracking_ros.train.api import evaluate_run, export_run, fit
    from beam_tracking_ros.train.config import config_from_dict

    cfg = config_from_dict({
        "name": "toy", "role": "teacher",
        "data": {"synthetic": {"num_samples": 32, "num_beams": 8, "P": 4, "H": 2}, "modalities": ["gps"]},
        "model": {"name": "toy-gru", "kwargs": {"hidden": 8}}, "train": {"epochs": 1, "batch_size": 16},
    })
    fit(cfg, tmp_path / "run", progress=False, log=lambda _m: None)
    export_run(tmp_path / "run", tmp_path / "exported")
    from_run, from_export = evaluate_run(tmp_path / "run"), evaluate_run(tmp_path / "exported")
    assert from_export["ampr"] == pytest.approx(from_run["ampr"]) and from_export["num_samples"] > 0
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == ["model.onnx", "model.pt", "model_card.json"]

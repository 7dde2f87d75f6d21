"""Export: ONNX matches PyTorch, the card has its fields, load_model gives one API for both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from beam_tracking_ros.inference import load_model
from beam_tracking_ros.models.card import REQUIRED_FIELDS
from beam_tracking_ros.models.checkpoint import CheckpointError
from beam_tracking_ros.train.api import fit
from beam_tracking_ros.train.cli import main_for
from beam_tracking_ros.train.config import config_from_dict
from beam_tracking_ros.train.export import export_run


def _cfg(model: dict[str, Any], modalities: list[str], role: str = "student") -> Any:
    return config_from_dict({
        "name": "m", "role": role,
        "data": {"synthetic": {"num_samples": 32, "num_beams": 8, "P": 4, "H": 2}, "modalities": modalities},
        "model": model, "train": {"epochs": 1, "batch_size": 16, "device": "cpu"},
    })


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, model, mods in (
        ("toy", {"name": "toy-gru", "kwargs": {"hidden": 8}}, ["gps", "lidar_feat"]),
        ("radar_mlp", {"name": "student-radar-mlp"}, ["radar_points"]),
    ):
        fit(_cfg(model, mods), root / name, progress=False, log=lambda _m: None)
        out[name] = root / name
    return out


@pytest.mark.parametrize("name", ["toy", "radar_mlp"])
def test_onnx_matches_torch_and_card_is_complete(runs: dict[str, Path], tmp_path: Path, name: str) -> None:
    out = tmp_path / f"student_{name}"
    card = export_run(runs[name], out)
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.pt", "model_card.json"]
    on_disk = json.loads((out / "model_card.json").read_text())
    assert on_disk == json.loads(json.dumps(card))
    assert all(f in on_disk for f in REQUIRED_FIELDS)
    assert on_disk["P"] == 4 and on_disk["H"] == 2 and on_disk["codebook"]["size"] == 8
    assert on_disk["parameters"] > 0 and on_disk["flops"] > 0
    assert "test" in on_disk["metrics"] and "atop1" in on_disk["metrics"]["test"]
    graph = onnx.load(str(out / "model.onnx"))
    assert graph.opset_import[0].version >= 17
    assert [i.name for i in graph.graph.input] == on_disk["modalities"]
    assert graph.graph.output[0].name == "logits"
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    torch_pred, _ = load_model(out, backend="torch")
    onnx_pred, _ = load_model(out, backend="onnx")
    auto_pred, _ = load_model(out)
    assert (torch_pred.backend, onnx_pred.backend, auto_pred.backend) == ("torch", "onnx", "onnx")
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        x = {m: rng.standard_normal((batch, *s)).astype(np.float32) for m, s in onnx_pred.input_shapes.items()}
        a, b = torch_pred.predict(x), onnx_pred.predict(x)
        assert a.shape == (batch, 3, 8)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_predict_rejects_wrong_inputs(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m"
    export_run(runs["toy"], out)
    pred, _ = load_model(out, backend="onnx")
    with pytest.raises(ValueError, match="missing modality"):
        pred.predict({"gps": np.zeros((1, 4, 3), np.float32)})
    with pytest.raises(ValueError, match=r"inputs\['gps'\]: expected shape"):
        pred.predict({"gps": np.zeros((1, 5, 3), np.float32), "lidar_feat": np.zeros((1, 4, 32), np.float32)})


def test_load_model_refuses_tampered_weights(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m"
    export_run(runs["toy"], out)
    data = (out / "model.pt").read_bytes()
    (out / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_model(out, backend="torch")


def test_cli_evaluate_and_export(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_for(["evaluate", str(runs["toy"]), "--split", "val", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["split"] == "val" and len(res["top1"]) == 3
    out = tmp_path / "exported"
    assert main_for(["export", str(runs["toy"]), "--out", str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    assert main_for(["export", str(runs["toy"]), "--out", str(out)]) == 2  # exists, no --overwrite
    assert "not empty" in capsys.readouterr().err
    assert main_for(["evaluate", str(tmp_path / "nothing")]) == 1
    assert "no such directory" in capsys.readouterr().err

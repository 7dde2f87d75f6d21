"""The inference loader stands apart from training: the live tracker loads models without importing train/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ros_testing import requires_ros

from beam_tracking_ros.inference import CardError, load_model

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

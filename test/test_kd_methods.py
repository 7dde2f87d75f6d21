"""The distillation-method registry is the one list: the config, the loss and the docs agree with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from beam_tracking_ros.kd import losses
from beam_tracking_ros.kd.methods import DATA_FREE, DISTILLATION_METHODS, LOSS_METHODS, RELATION_DISTANCES
from beam_tracking_ros.train.config import ConfigError, config_from_dict

CONCEPTS = Path(__file__).resolve().parents[1] / "docs" / "concepts.md"


def _student(method: str, distances: list[str] | None = None) -> dict:
    distill = {"method": method, "teacher": "runs/t"} if method != "none" else {"method": method}
    if distances is not None:
        distill["distances"] = distances
    return {"name": "s", "role": "student", "data": {"synthetic": {"num_samples": 8}, "modalities": ["gps"]},
            "model": {"name": "toy-gru"}, "distill": distill}


@pytest.mark.parametrize("method", list(DISTILLATION_METHODS))
def test_every_method_is_accepted_by_the_config_and_documented(method: str) -> None:
    assert config_from_dict(_student(method)).distill.method == method
    assert f"| `{method}` |" in CONCEPTS.read_text(encoding="utf-8")


def test_the_loss_implements_every_method_but_the_data_free_procedure() -> None:
    assert set(LOSS_METHODS) == set(DISTILLATION_METHODS) - {DATA_FREE}
    for method in LOSS_METHODS:
        losses.DistillationLoss(method, student_dims={"mid": 4, "end": 4}, teacher_dims={"mid": 8, "end": 8})
    with pytest.raises(ValueError, match="unknown distillation method"):
        losses.DistillationLoss(DATA_FREE)


def test_relational_distances_have_one_name_everywhere() -> None:
    cfg = config_from_dict(_student("rkd-end", list(RELATION_DISTANCES)))
    assert tuple(cfg.distill.distances) == RELATION_DISTANCES
    losses.DistillationLoss("rkd-end", rkd_distances=RELATION_DISTANCES)
    with pytest.raises(ConfigError, match="hyperbolic"):
        config_from_dict(_student("rkd-end", ["hyperbolic"]))
    documented = re.findall(r"distances `(\w+)`, `(\w+)`, `(\w+)`", CONCEPTS.read_text(encoding="utf-8"))
    assert documented and tuple(documented[0]) == RELATION_DISTANCES

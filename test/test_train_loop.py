"""Training loop: determinism, resume == uninterrupted, NaN stop naming the step, every KD method runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from beam_tracking_ros.models.checkpoint import safe_load
from beam_tracking_ros.train.api import fit
from beam_tracking_ros.train.cli import main_for
from beam_tracking_ros.train.config import ConfigError, config_from_dict
from beam_tracking_ros.train.synthetic import SyntheticBeamDataset
from beam_tracking_ros.train.trainer import DistEnv, TrainingError, make_loader


def tiny(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "tiny", "role": "teacher",
        "data": {"synthetic": {"num_samples": 64, "num_beams": 8, "P": 4, "H": 2}, "modalities": ["gps", "lidar_feat"]},
        "model": {"name": "toy-gru", "kwargs": {"hidden": 16, "dropout": 0.2}},
        "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "seed": 7, "device": "cpu"},
    }
    for section, values in over.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return raw


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_gives_identical_weights_and_other_seed_differs(tmp_path: Path) -> None:
    r1 = fit(config_from_dict(tiny()), tmp_path / "a", progress=False, log=lambda _m: None)
    r2 = fit(config_from_dict(tiny()), tmp_path / "b", progress=False, log=lambda _m: None)
    r3 = fit(config_from_dict(tiny(train={"seed": 8})), tmp_path / "c", progress=False, log=lambda _m: None)
    assert _equal(r1.state_dict, r2.state_dict)
    assert r1.metrics["test"] == r2.metrics["test"]
    assert not _equal(r1.state_dict, r3.state_dict)
    card = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert card["train"]["seed"] == 7
    assert (tmp_path / "a" / "model.pt").is_file() and (tmp_path / "a" / "metadata.pt").is_file()


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    full = fit(config_from_dict(tiny()), tmp_path / "full", progress=False, log=lambda _m: None)
    part = fit(config_from_dict(tiny()), tmp_path / "part", progress=False, stop_after_epochs=1,
               log=lambda _m: None)
    assert part.epochs == 1 and not part.card  # "interrupted" after epoch 1
    assert not (tmp_path / "part" / "model.json").exists()
    with pytest.raises(ConfigError, match="already holds a training run"):
        fit(config_from_dict(tiny()), tmp_path / "part", progress=False, log=lambda _m: None)
    with pytest.raises(ConfigError, match=r"differs from the checkpoint's at train\.lr"):
        fit(config_from_dict(tiny(train={"lr": 1e-2})), tmp_path / "part", resume=True, progress=False,
            log=lambda _m: None)
    resumed = fit(config_from_dict(tiny()), tmp_path / "part", resume=True, progress=False, log=lambda _m: None)
    assert resumed.epochs == 2
    assert _equal(full.state_dict, resumed.state_dict)
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in resumed.history]
    assert full.metrics["test"] == resumed.metrics["test"]


def test_nan_loss_stops_with_the_epoch_and_step(tmp_path: Path) -> None:
    raw = tiny(data={"synthetic": {"num_samples": 64, "num_beams": 8, "P": 4, "H": 2, "nan_index": 37}})
    cfg = config_from_dict(raw)
    # Where must the NaN sample surface? Same loader the trainer uses for epoch 0.
    ds = SyntheticBeamDataset(raw["data"]["synthetic"], "train", ["gps", "lidar_feat"])
    loader = make_loader(ds, cfg.train.batch_size, True, cfg.train.seed, 0, DistEnv())
    expected = next(i for i, b in enumerate(loader, start=1) if torch.isnan(b["gps"]).any())
    with pytest.raises(TrainingError) as err:
        fit(cfg, tmp_path / "nan", progress=False, log=lambda _m: None)
    m = re.search(r"non-finite loss \(nan\) at epoch 1, step (\d+)", str(err.value))
    assert m, str(err.value)
    assert int(m.group(1)) == expected
    assert not (tmp_path / "nan" / "model.pt").exists()


def test_cli_nan_exit_code_1_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tiny(data={"synthetic": {"num_samples": 32, "num_beams": 8, "P": 4, "H": 2, "nan_index": 0}})
    p = tmp_path / "nan.yaml"
    p.write_text(yaml.safe_dump(raw))
    code = main_for(["train", "--config", str(p), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("beam-tracking train: error: non-finite loss (nan) at epoch 1, step ")
    assert not any("Traceback" in line for line in err)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher") / "run"
    fit(config_from_dict(tiny()), out, progress=False, log=lambda _m: None)
    return out


@pytest.mark.parametrize("method", ["kd-end", "kd-mid", "kd-both", "rkd-end", "rkd-mid", "rkd-both", "kl",
                                    "logit-mse"])
def test_every_distillation_method_trains_a_cross_modal_student(teacher_run: Path, tmp_path: Path,
                                                                  method: str) -> None:
    raw = tiny(name="student", role="student", data={"modalities": ["gps"]},
               model={"name": "toy-gru", "kwargs": {"hidden": 8}},
               train={"epochs": 1}, distill={"method": method, "distances": ["euclidean", "poincare"]})
    res = fit(config_from_dict(raw), tmp_path / method, teacher_dir=teacher_run, progress=False,
              log=lambda _m: None)
    assert res.card["distill"]["method"] == method
    assert res.card["model"]["modalities"] == ["gps"]
    assert 0.0 <= res.metrics["test"]["atop1"] <= 1.0


def test_cached_teacher_outputs_train_the_same_student_as_the_live_teacher(teacher_run: Path,
                                                                           tmp_path: Path) -> None:
    # the cache must line up sample by sample with the shuffled batches, or the student would learn
    # from another sample's teacher: the same weights as with the teacher run live on every batch
    raw = tiny(name="student", role="student", data={"modalities": ["gps"]},
               model={"name": "toy-gru", "kwargs": {"hidden": 8}}, train={"epochs": 2},
               distill={"method": "rkd-both"})
    logs: list[str] = []
    cached = fit(config_from_dict(raw), tmp_path / "cached", teacher_dir=teacher_run, progress=False,
                 log=logs.append)
    # computed here, or reused from an earlier test's student of this teacher and data
    assert any(m.startswith("teacher outputs") for m in logs)
    raw["distill"]["cache_teacher"] = False
    live = fit(config_from_dict(raw), tmp_path / "live", teacher_dir=teacher_run, progress=False,
               log=lambda _m: None)
    assert cached.state_dict.keys() == live.state_dict.keys()
    for k in cached.state_dict:
        torch.testing.assert_close(cached.state_dict[k], live.state_dict[k], rtol=1e-4, atol=1e-5)
    # a second student of the same teacher and data takes the first one's outputs, with the same result
    raw["distill"]["cache_teacher"] = True
    logs.clear()
    again = fit(config_from_dict(raw), tmp_path / "again", teacher_dir=teacher_run, progress=False,
                log=logs.append)
    assert any("reused" in m for m in logs)
    assert _equal(again.state_dict, cached.state_dict)


def test_teacher_cache_is_in_index_order_and_bounded(teacher_run: Path) -> None:
    from beam_tracking_ros.train.trainer import load_run, model_outputs, teacher_cache

    teacher, _card = load_run(teacher_run)
    ds = SyntheticBeamDataset(config_from_dict(tiny()).data.synthetic, "train", ["gps", "lidar_feat"])
    cache = teacher_cache(teacher, ds, ["gps", "lidar_feat"], torch.device("cpu"), batch_size=5)
    assert cache is not None and set(cache) >= {"logits", "mid", "end"}
    assert cache["logits"].shape[0] == len(ds)
    for i in (0, 3, len(ds) - 1):
        one = {m: ds[i][m][None].float() for m in ("gps", "lidar_feat")}
        with torch.no_grad():
            out = model_outputs(teacher(one))
        torch.testing.assert_close(cache["logits"][i], out["logits"][0], rtol=1e-5, atol=1e-5)
    said: list[str] = []
    assert teacher_cache(teacher, ds, ["gps", "lidar_feat"], torch.device("cpu"), 5, limit_bytes=64,
                         log=said.append) is None
    assert "runs on every step" in said[0]


def test_student_needing_a_modality_the_teacher_data_lacks_is_rejected(teacher_run: Path, tmp_path: Path) -> None:
    raw = tiny(role="student", data={"modalities": ["radar_points"]}, distill={"method": "kl"})
    raw["data"]["path"] = str(tmp_path / "nowhere")
    del raw["data"]["synthetic"]
    with pytest.raises(Exception, match=r"nowhere|dataset"):
        fit(config_from_dict(raw), tmp_path / "s", teacher_dir=teacher_run, progress=False, log=lambda _m: None)
    # different horizon than the teacher -> rejected by name
    raw = tiny(role="student", distill={"method": "kl"},
               data={"synthetic": {"num_samples": 64, "num_beams": 8, "P": 4, "H": 3}})
    with pytest.raises(ConfigError, match=r"\(P, H, beams\)"):
        fit(config_from_dict(raw), tmp_path / "s2", teacher_dir=teacher_run, progress=False, log=lambda _m: None)


@pytest.mark.slow
def test_data_free_student_never_reads_training_data(tmp_path: Path) -> None:
    teacher_raw = tiny(data={"modalities": ["lidar_feat"]}, train={"epochs": 2})
    fit(config_from_dict(teacher_raw), tmp_path / "t", progress=False, log=lambda _m: None)
    raw = tiny(role="student", data={"modalities": ["lidar_feat"]},
               model={"name": "toy-gru", "kwargs": {"hidden": 8}},
               distill={"method": "data-free", "temperature": 5.0,
                        "data_free": {"generator_steps": 10, "student_steps": 10, "batch_size": 8, "noise_dim": 16,
                                      "input_weight": 1.0, "step_weight": 1.0,
                                      "generator_every": 3, "adversarial_weight": 0.3}})
    stored = safe_load(tmp_path / "t" / "metadata.pt", "metadata")
    assert {"input_mean.lidar_feat", "step_var.lidar_feat"} <= set(stored)  # the input statistics
    seen: list[str] = []
    orig = SyntheticBeamDataset.__init__

    def spy(self: SyntheticBeamDataset, spec: Any, split: str, modalities: Any) -> None:
        seen.append(split)
        orig(self, spec, split, modalities)

    SyntheticBeamDataset.__init__ = spy  # type: ignore[method-assign]
    try:
        res = fit(config_from_dict(raw), tmp_path / "df", teacher_dir=tmp_path / "t", progress=False,
                  log=lambda _m: None)
    finally:
        SyntheticBeamDataset.__init__ = orig  # type: ignore[method-assign]
    assert "train" not in seen and "test" in seen
    assert res.card["distill"]["method"] == "data-free"
    assert (tmp_path / "df" / "generator.pt").is_file()


def test_head_bias_prior_starts_every_step_at_the_label_prior() -> None:
    """``train.head_bias: prior``: a model's softmax on a zero feature is the (add-one smoothed) training label
    histogram at every horizon step, so a small model need not spend its first steps learning the prior."""
    from beam_tracking_ros.train.trainer import build_model, init_head_bias

    model = build_model("student-ma", {"num_beams": 8, "horizon": 2})
    hist = [10, 0, 5, 1, 0, 0, 4]  # the store's histogram ends at the highest beam seen (here 6 of 0..7)
    init_head_bias(model, {"label_histogram": {"train": hist}})
    hist = [*hist, 0]
    expected = (torch.tensor(hist, dtype=torch.float64) + 1) / (sum(hist) + 8)
    logits = model.head(torch.zeros(1, model.end_dim))[0]
    assert logits.shape == (3, 8)
    assert torch.allclose(torch.softmax(logits.double(), -1), expected.expand(3, 8), atol=1e-6)
    with pytest.raises(ConfigError, match="histogram"):
        init_head_bias(model, {})
    with pytest.raises(ConfigError, match=r"train\.head_bias"):
        config_from_dict(tiny(train={"head_bias": "uniform"}))

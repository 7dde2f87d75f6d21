"""Data-free distillation runs (Zakeri et al. Algorithm 1) on top of the kd package.

Why separate from the main loop: DF-KD never reads the training data. It takes the teacher run's
weights and its stored metadata (``metadata.pt``: mean/variance of the teacher's end features, and the
range of its inputs, both saved when the teacher finished training), trains a generator by knowledge
inversion, then trains the student on generated inputs only. Real data is read only afterwards, to
evaluate the student on the validation and test splits, exactly like every other run.

The feature-based methods (KD-*/RKD-*/KL/logit-MSE) run in :func:`beam_tracking_ros.train.trainer.fit_supervised`;
:func:`beam_tracking_ros.train.api.fit` picks one of the two.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models.checkpoint import CheckpointError, safe_load, save_tensors, write_json
from .config import ConfigError, RunConfig, check_modalities
from .trainer import (
    DataInfo,
    DistEnv,
    FitResult,
    TrainingError,
    build_model,
    check_model_modalities,
    dataset_hash,
    dist_env,
    evaluate_model,
    format_metrics,
    load_run,
    make_loader,
    make_run_card,
    open_dataset,
    resolve_device,
    resolve_model_kwargs,
    seed_everything,
)

__all__ = ["fit_data_free"]


def fit_data_free(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    teacher_dir: str | Path | None = None,
    progress: bool = True,
    command: str | None = None,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Knowledge inversion (generator) then student training on synthetic inputs; writes a run dir."""
    from tqdm import tqdm

    from ..kd.data_free import (
        Generator,
        InversionLoss,
        TeacherMetadata,
        train_generator,
        train_student_data_free,
    )

    env = dist_env()
    if env.distributed:
        raise ConfigError("distill.method 'data-free': multi-process (torchrun) training is not supported; "
                          "run it in one process")
    out = Path(out_dir)
    if (out / "model.json").exists():
        raise ConfigError(f"--out {str(out)!r} already holds a training run; choose another directory")

    def _log(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    log = log or _log
    t0 = time.time()
    device = resolve_device(cfg.train.device, env)
    teacher_dir = teacher_dir or cfg.distill.teacher
    if not teacher_dir:
        raise ConfigError("distill.teacher: data-free KD needs a teacher run (--teacher DIR)")
    teacher, tcard = load_run(teacher_dir, device)
    tm = tcard["model"]
    check_modalities(cfg.data.modalities, tm["modalities"], None, "data-free")
    meta_info = tcard.get("data_free_metadata")
    if not meta_info:
        raise CheckpointError(f"teacher run {str(teacher_dir)!r} has no stored metadata (metadata.pt); "
                              f"data-free KD needs a teacher trained by `beam-tracking train`")
    metadata = TeacherMetadata.from_state_dict(safe_load(Path(teacher_dir) / meta_info["file"], "teacher metadata"))
    modality = tm["modalities"][0]
    f = cfg.distill.data_free
    if (f.input_weight > 0 or f.step_weight > 0) and not metadata.has_inputs(modality):
        raise CheckpointError(f"teacher run {str(teacher_dir)!r}: its metadata.pt has no input statistics of "
                              f"{modality!r} (trained before they were stored); retrain the teacher or set "
                              f"distill.data_free.input_weight and step_weight to 0")
    shape = tm["input_shapes"][modality]
    lo, hi = meta_info["input_range"][modality]
    if not hi > lo:
        hi = lo + 1.0

    seed_everything(cfg.train.seed, cfg.train.deterministic)
    info = DataInfo(input_shapes={modality: list(shape)}, window=tm["window"], horizon=tm["horizon"],
                    num_beams=tm["num_beams"], source=f"generated from teacher {teacher_dir}",
                    dataset_hash=dataset_hash(cfg.data), meta=dict(tcard.get("dataset", {})))
    kwargs = resolve_model_kwargs(cfg.model.name, cfg.model.kwargs, info, [modality])
    torch.manual_seed(cfg.train.seed)
    student = build_model(cfg.model.name, kwargs).to(device)
    check_model_modalities(student, cfg.model.name, [modality])
    generator = Generator(modality, shape, noise_dim=f.noise_dim, hidden=f.hidden, output_range=(lo, hi)).to(device)

    bar = tqdm(total=f.generator_steps + f.student_steps, desc="data-free KD", disable=not progress,
               leave=False, dynamic_ncols=True, file=sys.stderr)

    def g_cb(step: int, parts: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix(stage="generator", loss=f"{parts['total']:.4f}", meta=f"{parts['metadata']:.4f}")

    def s_cb(step: int, value: float) -> None:
        bar.update(1)
        bar.set_postfix(stage="student", loss=f"{value:.4f}")

    # One objective for the inversion and the adversarial generator steps (the same terms and weights).
    # Its own checks cannot fail here: the config validated the source and weights, and the input
    # statistics were checked above with a message that says what to do.
    objective = InversionLoss(metadata, modality, generator.out_shape[0], alpha=f.act_weight,
                              beta=f.ent_weight, source=f.metadata_source, entropy_mode=f.entropy_mode,
                              input_weight=f.input_weight, step_weight=f.step_weight)

    try:
        g_hist = train_generator(generator, teacher, metadata, steps=f.generator_steps, batch_size=f.batch_size,
                                 lr=f.lr, seed=cfg.train.seed, callback=g_cb, objective=objective)
        s_hist = train_student_data_free(student, teacher, generator, steps=f.student_steps,
                                         batch_size=f.batch_size, lr=f.lr, loss=f.loss,
                                         temperature=cfg.distill.temperature, seed=cfg.train.seed + 1,
                                         callback=s_cb, generator_every=f.generator_every,
                                         adversarial_weight=f.adversarial_weight,
                                         generator_objective=objective if f.generator_every else None)
    except FloatingPointError as exc:
        raise TrainingError(f"data-free KD: {exc}: training stopped") from None
    finally:
        bar.close()
    log(f"data-free KD: generator loss {g_hist[-1]['total']:.4f}, student loss {s_hist[-1]:.4f}")

    # Evaluation on real data only after training (the student never saw it).
    metrics: dict[str, Any] = {}
    for key, split in (("val", cfg.data.val_split), ("test", cfg.data.test_split)):
        ds = open_dataset(cfg.data, split, [modality])
        if len(ds) == 0:  # type: ignore[arg-type]
            continue
        sample = ds[0]
        if list(sample[modality].shape) != list(shape):
            raise ConfigError(f"data.modalities: {modality!r} has shape {list(sample[modality].shape)} in the "
                              f"evaluation data but {list(shape)} in the teacher's")
        loader = make_loader(ds, cfg.train.batch_size, False, 0, 0, DistEnv())
        metrics[key] = evaluate_model(student, loader, [modality], device, cfg.train.focal_alpha,
                                      cfg.train.focal_gamma)
        log(f"{key}: {format_metrics(metrics[key])}")
    history = [{"stage": "generator", "final": g_hist[-1]}, {"stage": "student", "final_loss": s_hist[-1]}]
    card = make_run_card(cfg, kwargs, info, [modality], student, metrics, history, {}, command,
                         teacher_dir=str(teacher_dir), teacher_card=tcard, train_time_s=time.time() - t0,
                         world_size=1)
    card["dataset"]["training_data"] = "none (data-free: generated from the teacher's metadata)"
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in student.state_dict().items()}
    save_tensors(state, out / "model.pt")
    save_tensors(generator.state_dict(), out / "generator.pt")
    write_json(card, out / "model.json")
    log(f"model written to {out / 'model.pt'} (card {out / 'model.json'})")
    return FitResult(str(out), 1, history, metrics, state, card)


def freeze(model: nn.Module) -> nn.Module:
    """Teacher weights never change during distillation."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()

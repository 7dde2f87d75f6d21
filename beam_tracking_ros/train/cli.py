"""``beam-tracking train | distill | evaluate | export``: the training command-line tools.

Examples::

    beam-tracking train --config config/train/default_teacher.yaml --out runs/teacher
    beam-tracking distill --config config/train/default_student.yaml --teacher runs/teacher --out runs/student
    beam-tracking evaluate runs/student --split test
    beam-tracking export runs/student --out models/student_radar_mlp
    torchrun --nproc_per_node 2 -m beam_tracking_ros.cli train --config ... --out ...   # DDP

Exit codes: 0 success; 2 bad configuration or usage (unknown keys, mismatched modalities, an --out that
already holds a run); 1 runtime failure (non-finite loss, corrupt/unsafe checkpoint, export mismatch).
Expected errors print one line ``beam-tracking <cmd>: error: ...`` and no traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main_for", "register"]

USAGE_ERROR = 2
RUNTIME_ERROR = 1


def _common_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML training config (see config/train/)")
    p.add_argument("--out", required=True, help="run directory to write (checkpoints, model.pt, model.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", help="override train.device (auto, cpu, cuda, cuda:N)")
    p.add_argument("--seed", type=int, help="override train.seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (epoch summaries still printed)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the train, distill, evaluate and export subcommands to the top-level parser."""
    p = subparsers.add_parser("train", help="train a model (a teacher, or a student without KD)",
                              description="Train a model with the focal loss over the horizon.")
    _common_train_args(p)
    p.set_defaults(func=lambda a: _guard("train", _cmd_train, a))

    p = subparsers.add_parser("distill", help="distil a student from a trained teacher",
                              description="Distil a student: kd-end|kd-mid|kd-both|rkd-end|rkd-mid|rkd-both|kl|"
                                          "logit-mse|data-free.")
    _common_train_args(p)
    p.add_argument("--teacher", help="teacher run directory (overrides distill.teacher)")
    p.add_argument("--method", help="override distill.method")
    p.set_defaults(func=lambda a: _guard("distill", _cmd_distill, a))

    p = subparsers.add_parser("evaluate", help="evaluate a run on a dataset split",
                              description="Top-1/3/5 per step and ATop-k, DBA/ADBA, MPR, mean RSS, power loss.")
    p.add_argument("run", help="run directory (from train/distill)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--data", help="evaluate on another dataset (same preprocessing), e.g. for domain shift")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=lambda a: _guard("evaluate", _cmd_evaluate, a))

    p = subparsers.add_parser("export", help="export a run to models/<name>/ (model.pt, model.onnx, card)",
                              description="Write model.pt, model.onnx (checked against PyTorch with ONNX Runtime) "
                                          "and model_card.json.")
    p.add_argument("run", help="run directory (from train/distill)")
    p.add_argument("--out", help="output directory (default models/<run name>)")
    p.add_argument("--name", help="model name in the card (default: the output directory's name)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--no-onnx", action="store_true", help="only the PyTorch state dict and the card")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.set_defaults(func=lambda a: _guard("export", _cmd_export, a))


def _guard(cmd: str, fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand; expected failures become one error line and an exit code."""
    from ..data.store import DatasetError
    from ..models.card import CardError
    from ..models.checkpoint import CheckpointError
    from .config import ConfigError
    from .trainer import TrainingError

    def fail(code: int, msg: str) -> int:
        print(f"beam-tracking {cmd}: error: {msg}", file=sys.stderr)
        return code

    try:
        return fn(args)
    except (ConfigError, CardError, FileExistsError) as exc:
        return fail(USAGE_ERROR, str(exc))
    except (TrainingError, CheckpointError, DatasetError) as exc:
        return fail(RUNTIME_ERROR, str(exc))
    except KeyboardInterrupt:
        hint = "; continue with --resume" if cmd in ("train", "distill") else ""
        return fail(130, f"interrupted{hint}")
    except (ValueError, RuntimeError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return fail(RUNTIME_ERROR, f"{type(exc).__name__}: {first}")


def _load(args: argparse.Namespace, extra: list[str]) -> Any:
    from .config import load_config

    overrides = list(extra) + list(args.overrides)
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    return load_config(args.config, overrides)


def _command(cmd: str, args: argparse.Namespace) -> str:
    parts = ["beam-tracking", cmd, "--config", args.config, "--out", args.out]
    if getattr(args, "teacher", None):
        parts += ["--teacher", args.teacher]
    if getattr(args, "method", None):
        parts += ["--method", args.method]
    for o in args.overrides:
        parts += ["--set", o]
    if args.device:
        parts += ["--device", args.device]
    if args.seed is not None:
        parts += ["--seed", str(args.seed)]
    return shlex.join(parts)


def _finish(result: Any, out: str) -> int:
    from .trainer import dist_env, format_metrics

    if not dist_env().is_main:
        return 0
    if not result.card:
        print(f"stopped early; continue with --resume (run {out})")
        return 0
    test = result.metrics.get("test")
    if test:
        print(f"test: {format_metrics(test)}")
    print(f"run written to {out} (weights {Path(out) / 'model.pt'})")
    print(f"next: beam-tracking evaluate {out} --split test | beam-tracking export {out} --out models/<name>")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .api import fit

    cfg = _load(args, [])
    result = fit(cfg, args.out, resume=args.resume, progress=not args.no_progress, command=_command("train", args))
    return _finish(result, args.out)


def _cmd_distill(args: argparse.Namespace) -> int:
    from .api import fit
    from .config import ConfigError

    extra = [f"distill.method={args.method}"] if args.method else []
    cfg = _load(args, extra)
    if cfg.distill.method == "none":
        raise ConfigError("distill.method is 'none': choose a method (--method kd-end ...) or use "
                          "`beam-tracking train`")
    teacher = args.teacher or cfg.distill.teacher
    if not teacher:
        raise ConfigError("distill: no teacher; pass --teacher RUN_DIR or set distill.teacher")
    result = fit(cfg, args.out, teacher_dir=teacher, resume=args.resume, progress=not args.no_progress,
                 command=_command("distill", args))
    return _finish(result, args.out)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..models.checkpoint import write_json
    from .trainer import evaluate_run, format_metrics

    res = evaluate_run(args.run, args.split, data_path=args.data, batch_size=args.batch_size, device=args.device)
    if args.data is None and (Path(args.run) / "model.json").is_file():  # a run, not an exported model dir
        write_json(res, Path(args.run) / f"metrics_{args.split}.json")
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{args.run} on {args.split} ({res['num_samples']} samples): {format_metrics(res)}")
    steps = len(res["top1"])
    header = "step  " + "  ".join(f"Top-{k}" for k in (1, 3, 5) if f"top{k}" in res) + "   DBA    MPR"
    print(header)
    for s in range(steps):
        cells = [f"{res[f'top{k}'][s]:.3f}" for k in (1, 3, 5) if f"top{k}" in res]
        mpr = f"{res['mpr'][s]:.3f}" if "mpr" in res else "  -  "
        print(f"t+{s:<3} " + "  ".join(f"{c:>5}" for c in cells) + f"  {res['dba'][s]:.3f}  {mpr}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_run

    run = Path(args.run)
    out = Path(args.out) if args.out else Path("models") / run.name
    card = export_run(run, out, name=args.name, opset=args.opset, onnx=not args.no_onnx, overwrite=args.overwrite)
    files = ", ".join(f for f in ("model.pt", "model.onnx" if card["onnx"] else None, "model_card.json") if f)
    print(f"exported {card['name']} ({card['role']}, {card['parameters']} parameters, {card['flops']} FLOPs per "
          f"prediction) to {out}: {files}")
    if card["onnx"]:
        print(f"ONNX opset {card['onnx']['opset']}, max |ONNX - PyTorch| = {card['onnx']['max_abs_diff']:.2e}")
    return 0


def main_for(argv: list[str]) -> int:
    """Run one of these subcommands without the top-level CLI (tests, scripts)."""
    parser = argparse.ArgumentParser(prog="beam-tracking")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))

"""Offline trainer: bags or a dataset -> teacher -> distilled student -> evaluated, exported models.

    ros2 run beam_tracking_ros trainer --ros-args -p bags:="['bags/run1']" -p epochs:=4
    ros2 run beam_tracking_ros trainer                          # the configs' own generated dataset
    python -m beam_tracking_ros.ros.trainer_node --bags bags/run1 --epochs 4      # same, without ROS

One pipeline, three ways in: :func:`run_pipeline` (a plain function), the argparse CLI and the ROS node
(``--ros-args`` parameters). Each step calls the function behind the matching command-line tool
(``data.bag.build_from_bags``, ``train.api.fit`` / ``evaluate_run`` / ``export_run``), so the trainer
does what a user typing ``beam-tracking dataset build | train | distill | evaluate | export`` would, with
the same errors and exit codes (2 for a configuration, 1 for a failure while running).

The dataset: with ``bags`` it is built from them (data/bag.py: the live node's synchronization and
preprocessing) into ``dataset`` -- or reused when ``dataset`` already holds a complete one and
``rebuild`` is false; with only ``dataset`` that one is used; with neither, the teacher config's
``data.generate`` spec simulates it (``data.path``, cached by the spec's hash). Both configs are
pointed at the same dataset (the student is distilled on the teacher's data).

Why a node at all: parameters and ``ros2 run`` are how ROS users drive the package; the node only reads
its parameters and exits, because training needs no graph and minutes of blocking in a spinning node
would only hide it from ``ros2 node list`` hygiene.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

DEFAULT_TEACHER = "config/train/default_teacher.yaml"
DEFAULT_STUDENT = "config/train/default_student.yaml"


class PipelineError(RuntimeError):
    """A step of the pipeline failed; ``code`` is that step's exit code (2 usage/config, 1 runtime)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class TrainerOptions:
    """What the trainer does; the CLI flags and the node's parameters map onto these fields 1:1."""

    bags: list[str] = field(default_factory=list)
    dataset: str = ""
    teacher_config: str = DEFAULT_TEACHER
    student_config: str = DEFAULT_STUDENT
    models_dir: str = "models"
    runs_dir: str = ""
    method: str = ""
    epochs: int = 0
    device: str = ""
    P: int = 8
    H: int = 3
    gps_reference: str = ""
    site_lanes: int = 2
    rebuild: bool = False
    recover: bool = False
    overwrite: bool = False

    def validate(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0 (0 = the configs' own), got {self.epochs}")
        if not 0 <= self.site_lanes <= 5:
            raise ValueError(f"site_lanes must be 0 (none) or lanes per direction 1..5, got {self.site_lanes}")
        if self.P < 1 or self.H < 0:
            raise ValueError(f"P must be >= 1 and H >= 0, got P={self.P}, H={self.H}")
        if self.gps_reference:
            import argparse

            from beam_tracking_ros.data.cli import parse_gps_reference

            try:
                parse_gps_reference(self.gps_reference)
            except argparse.ArgumentTypeError as exc:
                raise ValueError(f"gps_reference: {exc}") from exc


def resolve_config(path: str) -> Path:
    """``path`` as given, else under the package's roots (configs ship in its share dir; see resources.py)."""
    from beam_tracking_ros.resources import find_resource

    try:
        return find_resource(path)
    except FileNotFoundError as exc:
        raise ValueError(f"config file: {exc}") from None


def find_bags(paths: Sequence[str]) -> list[str]:
    """Bag directories / .mcap files of ``paths``; a directory of bags expands to the bags inside it."""
    out: list[str] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise ValueError(f"bags: {p} does not exist")
        if p.is_file() or (p / "metadata.yaml").is_file() or any(p.glob("*.mcap")) or any(p.glob("*.db3")):
            out.append(str(p))
            continue
        inner = sorted(str(c) for c in p.iterdir() if c.is_dir() and ((c / "metadata.yaml").is_file()
                                                                      or any(c.glob("*.mcap"))))
        if not inner:
            raise ValueError(f"bags: {p} is neither a rosbag2 nor a directory of rosbag2s")
        out += inner
    return out


def _step(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one step; its expected failures become :class:`PipelineError` with the CLI's exit codes."""
    from beam_tracking_ros.data.store import DatasetError
    from beam_tracking_ros.models.card import CardError
    from beam_tracking_ros.models.checkpoint import CheckpointError
    from beam_tracking_ros.train.config import ConfigError
    from beam_tracking_ros.train.trainer import TrainingError

    print(f"\n== {name}", flush=True)
    try:
        return fn(*args, **kwargs)
    except (ConfigError, CardError, FileExistsError) as exc:
        raise PipelineError(f"{name}: {exc}", 2) from None
    except (TrainingError, CheckpointError, DatasetError, ValueError, RuntimeError, OSError) as exc:
        raise PipelineError(f"{name}: {type(exc).__name__}: {exc}", 1) from None


def run_pipeline(opts: TrainerOptions) -> dict[str, Path]:
    """Build or reuse the dataset, train the teacher, distill the student, evaluate and export both.

    Returns {'teacher': models dir, 'student': models dir}. Raises ValueError for bad options (before
    anything is trained) and :class:`PipelineError` when a step fails.
    """
    from beam_tracking_ros.train.config import load_config

    opts.validate()
    bags = find_bags(opts.bags) if opts.bags else []
    dataset = opts.dataset
    if bags and not dataset:
        dataset = str(Path("data") / Path(opts.bags[0]).expanduser().resolve().name)
    if dataset and not bags:
        from beam_tracking_ros.data.store import is_complete

        if not is_complete(dataset):
            raise ValueError(f"dataset: {dataset} is not a complete dataset (no manifest.json); "
                             "give bags to build it, or build it with `beam-tracking dataset build|generate`")
    teacher_cfg_path, student_cfg_path = resolve_config(opts.teacher_config), resolve_config(opts.student_config)
    data: list[str] = []
    if dataset:
        data = ["data.path=" + str(Path(dataset).expanduser()), "data.generate=null"]
    common = [f"train.epochs={opts.epochs}"] if opts.epochs else []
    common += [f"train.device={opts.device}"] if opts.device else []
    teacher_cfg = load_config(teacher_cfg_path, data + common)
    student_cfg = load_config(student_cfg_path, data + common + ([f"distill.method={opts.method}"] if opts.method
                                                                else []))
    if student_cfg.distill.method == "none":
        raise ValueError(f"{student_cfg_path}: distill.method is 'none'; the student needs a distillation method")
    models = Path(opts.models_dir).expanduser()
    out = {"teacher": models / teacher_cfg.name, "student": models / student_cfg.name}
    for role, d in out.items():  # fail now, not after an hour of training
        if d.exists() and not opts.overwrite:
            raise ValueError(f"models_dir: {d} ({role}) exists already; set overwrite or choose another models_dir")
    runs = Path(opts.runs_dir or Path("runs") / datetime.now().strftime("trainer-%Y%m%d-%H%M%S")).expanduser()
    teacher_run, student_run = runs / teacher_cfg.name, runs / student_cfg.name

    # 1. the dataset
    if bags:
        from beam_tracking_ros.data.bag import build_from_bags
        from beam_tracking_ros.data.generate import bag_site_overrides
        from beam_tracking_ros.data.preprocess import PreprocessConfig
        from beam_tracking_ros.data.store import format_summary, is_complete, summary

        if is_complete(dataset) and not opts.rebuild:
            print(f"reusing the dataset in {dataset} (set rebuild to build it again from {len(bags)} bag(s))")
        else:
            from beam_tracking_ros.data.cli import parse_gps_reference

            ref = parse_gps_reference(opts.gps_reference) if opts.gps_reference else None
            site = bag_site_overrides(opts.site_lanes or None, horizon=opts.H, gps_reference=ref)
            _step(f"dataset {dataset} from {len(bags)} bag(s)", build_from_bags, dataset, bags, P=opts.P, H=opts.H,
                  cfg=PreprocessConfig.from_dict(site) if site else None, recover=True if opts.recover else None)
            print(format_summary(summary(dataset)))
    # (a dataset without bags is used as it is; neither: `fit` generates the configs' data.generate dataset)

    from beam_tracking_ros.models.checkpoint import write_json
    from beam_tracking_ros.train.api import evaluate_run, export_run, fit
    from beam_tracking_ros.train.trainer import format_metrics

    # 2. teacher, 3. student
    _step(f"teacher {teacher_cfg.name} -> {teacher_run}", fit, teacher_cfg, teacher_run, progress=False,
          command=f"trainer (teacher {teacher_cfg_path})")
    _step(f"student {student_cfg.name} ({student_cfg.distill.method}) -> {student_run}", fit, student_cfg,
          student_run, teacher_dir=teacher_run, progress=False, command=f"trainer (student {student_cfg_path})")
    # 4. evaluate on the test split, 5. export with the model cards
    for role, run in (("teacher", teacher_run), ("student", student_run)):
        res = _step(f"evaluate {run} on the test split", evaluate_run, run, "test")
        write_json(res, run / "metrics_test.json")
        print(f"{run} on test ({res['num_samples']} samples): {format_metrics(res)}")
        _step(f"export {run} -> {out[role]}", export_run, run, out[role], overwrite=opts.overwrite)

    print("\nmodels:")
    for role, d in out.items():
        print(f"  {role:<8} {d.resolve()}")
    print("run the tracker with the student (built-in simulator, or CARLA when a server answers):")
    print(f"  ros2 launch beam_tracking_ros carla_bridge.launch.py model:={out['student'].resolve()}")
    return out


# ----------------------------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------------------------
_HELP = {
    "bags": "rosbag2 directories (or directories of them) to build the dataset from",
    "dataset": "dataset directory: written from the bags (default data/<first bag's name>), or an existing "
               "dataset to train on",
    "teacher_config": "teacher training config (YAML)",
    "student_config": "student distillation config (YAML)",
    "models_dir": "where models/<name>/ are exported",
    "runs_dir": "training runs directory (default runs/trainer-<date-time>)",
    "method": "distillation method overriding the student config (kd-end ... rkd-both, data-free)",
    "epochs": "epochs for both models; 0 = the configs' own",
    "device": "training device overriding the configs (cpu, cuda, auto)",
    "P": "observation window of a dataset built from bags (past frames)",
    "H": "future labels of a dataset built from bags",
    "gps_reference": "LAT,LON,ALT of the RSU for a dataset built from bags that lack its GNSS topic",
    "site_lanes": "bags from the built-in scenario with this many lanes: its site gives the beam-space features "
                  "the default configs read (0 = none: a real RSU, with configs that do not read them)",
    "rebuild": "rebuild the dataset from the bags even if a complete one exists",
    "recover": "read bags whose recorder was killed (no metadata.yaml)",
    "overwrite": "replace existing models/<name>/ directories",
}


def _parse_cli(argv: Sequence[str]) -> TrainerOptions:
    d = TrainerOptions()
    p = argparse.ArgumentParser(prog="trainer", description=__doc__.split("\n\n")[0])
    p.add_argument("--bags", nargs="+", default=[], help=_HELP["bags"])
    for name in ("dataset", "teacher_config", "student_config", "models_dir", "runs_dir", "method", "device",
                 "gps_reference"):
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=getattr(d, name), help=_HELP[name])
    for name in ("epochs", "P", "H", "site_lanes"):
        p.add_argument("--" + name, dest=name, type=int, default=getattr(d, name), help=_HELP[name])
    for name in ("rebuild", "recover", "overwrite"):
        p.add_argument("--" + name, dest=name, action="store_true", help=_HELP[name])
    a = p.parse_args(list(argv))
    return TrainerOptions(**vars(a))


def _options_from_ros(argv: Sequence[str]) -> TrainerOptions:
    """Declare the options as described node parameters, read them, and leave ROS again."""
    import rclpy
    from rclpy.node import Node

    from .params import declare

    rclpy.init(args=list(argv))
    try:
        node = Node("trainer")
        d = TrainerOptions()
        values: dict[str, Any] = {}
        for name, desc in _HELP.items():
            default = getattr(d, name)
            if name == "bags":  # an empty list has no ROS type: a typed parameter without default
                from rcl_interfaces.msg import ParameterDescriptor
                from rclpy.exceptions import ParameterUninitializedException
                from rclpy.parameter import Parameter

                node.declare_parameter(name, Parameter.Type.STRING_ARRAY, ParameterDescriptor(description=desc))
                try:
                    values[name] = [str(b) for b in node.get_parameter(name).value if str(b)]
                except ParameterUninitializedException:
                    values[name] = []
            else:
                values[name] = declare(node, name, default, desc)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    return TrainerOptions(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """``ros2 run beam_tracking_ros trainer [--ros-args -p ...]`` or the plain CLI flags."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = _options_from_ros(["trainer", *argv]) if "--ros-args" in argv else _parse_cli(argv)
        run_pipeline(opts)
    except PipelineError as exc:
        print(f"trainer: {exc}", file=sys.stderr)
        return exc.code
    except ValueError as exc:
        print(f"trainer: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trainer: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

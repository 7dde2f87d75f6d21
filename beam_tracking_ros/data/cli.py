"""`beam-tracking dataset generate|build|summary|import-deepsense`: the dataset tools of the CLI.

Registered by the top-level ``beam_tracking_ros/cli.py`` through :func:`register`. Heavy imports
(simulator, rosbags) happen inside the handlers so ``beam-tracking --help`` stays fast.
Exit codes: 0 success, 1 bad data (corrupt bag, missing files, incomplete dataset), 2 bad usage.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from ..modalities import SENSORS, SOURCES

MODALITIES = SOURCES  # the vocabulary: modalities.py (radio: the beam history, simulated from the labels)


def _modalities(text: str) -> tuple[str, ...]:
    mods = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in mods if m not in MODALITIES]
    if bad or not mods:
        raise argparse.ArgumentTypeError(f"unknown modalities {bad or text!r}; choose from {','.join(MODALITIES)}")
    return mods


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(x) for x in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--splits: expected three numbers like 0.8,0.1,0.1, got {text!r}") from exc
    if len(vals) != 3 or min(vals) < 0 or sum(vals) <= 0:
        raise argparse.ArgumentTypeError(f"--splits: expected three non-negative numbers, got {text!r}")
    return vals  # type: ignore[return-value]


def parse_gps_reference(text: str) -> tuple[float, float, float]:
    """'LAT,LON,ALT' (degrees, degrees, metres) -> a tuple, refusing what cannot be a position."""
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: expected LAT,LON,ALT (three finite numbers)")
    if not -90.0 <= vals[0] <= 90.0 or not -180.0 <= vals[1] <= 180.0:
        raise argparse.ArgumentTypeError(f"{text!r}: latitude must be in [-90, 90], longitude in [-180, 180]")
    return (vals[0], vals[1], vals[2])


def _preprocess(path: str | None, **overrides: Any) -> Any:
    """PreprocessConfig from a YAML file (unknown keys rejected by name) and ``overrides``, or None for
    the default (neither given)."""
    from .preprocess import PreprocessConfig

    if path is None:
        return PreprocessConfig.from_dict(overrides) if overrides else None
    import yaml

    with open(path, encoding="utf-8") as fh:
        values = yaml.safe_load(fh) or {}
    if not isinstance(values, dict):
        raise ValueError(f"--preprocess {path}: expected a mapping of PreprocessConfig fields")
    values = values.get("preprocess", values)
    return PreprocessConfig.from_dict({**values, **overrides})


def _common(p: argparse.ArgumentParser, default_mods: str = "camera,radar,lidar,gnss") -> None:
    p.add_argument("--out", required=True, help="dataset directory to write")
    p.add_argument("--modalities", type=_modalities, default=_modalities(default_mods),
                   help=f"comma-separated subset of {','.join(MODALITIES)} (default {default_mods})")
    p.add_argument("--P", type=int, default=8, help="observation window: past frames per sample (default 8)")
    p.add_argument("--H", type=int, default=3, help="future labels per sample: beams t..t+H (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episode -> split assignment")
    p.add_argument("--splits", type=_fractions, default=(0.8, 0.1, 0.1), help="train,val,test episode fractions")
    p.add_argument("--chunk-size", type=int, default=256, help="samples per on-disk chunk")
    p.add_argument("--preprocess", default=None, help="YAML file of PreprocessConfig fields (default: built-in)")


def register(subparsers: Any) -> None:
    """Add the ``dataset`` command group to the top-level parser's subparsers."""
    ds = subparsers.add_parser("dataset", help="generate, build, summarise and import datasets",
                               description="Datasets for training: chunked on-disk format streamed from disk.")
    sub = ds.add_subparsers(dest="dataset_command", metavar="ACTION")
    ds.set_defaults(func=lambda args: (ds.print_help(), 2)[1])

    g = sub.add_parser("generate", help="simulate episodes with the built-in simulator and build a dataset")
    _common(g)
    g.add_argument("--lanes", type=int, nargs="+", default=[2], help="lanes per direction; several = scenarios "
                   "taken in turn (e.g. --lanes 2 3)")
    g.add_argument("--episodes", type=int, default=10)
    g.add_argument("--frames", type=int, default=200, help="frames per episode (10 Hz)")
    g.add_argument("--weather", default="day", help="day|night|rain|fog")
    g.add_argument("--label-mode", default="sum_rss", help="single|sum_rss")
    g.add_argument("--force", action="store_true", help="rebuild even if a dataset of the same config exists")
    g.set_defaults(func=_generate)

    r = sub.add_parser("reindex", help="rewrite a killed recorder's or damaged bag as a finalized one "
                       "(metadata.yaml, MCAP summary, CRCs) that ros2 bag and rosbags open")
    r.add_argument("bag", help="the bag directory or its .mcap file")
    r.add_argument("--out", default=None, help="where the new bag goes (default: <bag>_reindexed)")
    r.set_defaults(func=_reindex)

    b = sub.add_parser("build", help="build a dataset from rosbag2 bags (MCAP or sqlite3)")
    _common(b)
    b.add_argument("bags", nargs="+", help="bag directories (or .mcap files)")
    b.add_argument("--slop", type=float, default=0.05, help="approximate-time synchronizer slop in seconds")
    b.add_argument("--queue-size", type=int, default=30, help="synchronizer queue size per topic")
    b.add_argument("--max-gap", type=float, default=1.0, help="a larger time gap restarts the window (s)")
    b.add_argument("--recover", action="store_true",
                   help="salvage truncated/corrupt MCAP bags by streaming their records")
    b.add_argument("--topic", action="append", default=[], metavar="MODALITY=TOPIC",
                   help="override a topic (camera, radar, lidar, gnss, beam, rsu_gnss), repeatable")
    b.add_argument("--site-lanes", type=int, default=None, choices=[1, 2, 3, 4, 5],
                   help="the bags come from the built-in scenario with this many lanes per direction: use its "
                        "site (RSU pose, LiDAR mount, road, codebook) for the beam-space features lidar_beams/"
                        "radar_beams, its ground cut and road-fitted BEV, as generated datasets do (the default "
                        "teacher and student read them); default: none of these")
    b.add_argument("--site-label-mode", default="sum_rss", choices=["sum_rss", "single"],
                   help="label mode the site's beam-space features reduce to (default sum_rss)")
    b.add_argument("--gps-reference", type=parse_gps_reference, default=None, metavar="LAT,LON,ALT",
                   help="the RSU antenna's position, origin of the GPS feature (default: the first fix on "
                        "the RSU's GNSS topic in the bags); a negative latitude needs the = form, "
                        "--gps-reference=-33.9,151.2,40")
    b.set_defaults(func=_build)

    s = sub.add_parser("summary", help="print a dataset's statistics and label histogram")
    s.add_argument("root", help="dataset directory")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s.set_defaults(func=_summary)

    d = sub.add_parser("import-deepsense", help="import a DeepSense 6G scenario folder")
    _common(d, default_mods="radar,lidar,gnss")
    d.add_argument("folder", help="scenario folder holding scenarioX.csv and unit1/, unit2/")
    d.add_argument("--radar-angle-bins", type=int, default=None,
                   help="angle/Doppler FFT size of the radar maps (default: from the cubes, 64 or their chirps)")
    d.set_defaults(func=_import_deepsense)

    site = subparsers.add_parser(
        "site", help="site files of the geometry baseline (model:=geometry on a real RSU)",
        description="A site file says where the RSU's array, LiDAR and road are and which codebook it sweeps; "
                    "the beam tracker reads it with geometry_site:=FILE.")
    ssub = site.add_subparsers(dest="site_command", metavar="ACTION")
    site.set_defaults(func=lambda args: (site.print_help(), 2)[1])
    e = ssub.add_parser("export", help="print the site file of a built-in scene (a template to edit)")
    e.add_argument("--lanes", type=int, default=2, help="lanes per direction (default 2)")
    e.add_argument("--label-mode", choices=("sum_rss", "single"), default="sum_rss")
    e.add_argument("--walls", choices=("street", "none"), default="street",
                   help="the street's building line (default) or no facades")
    e.set_defaults(func=_site_export)
    c = ssub.add_parser("check", help="validate a site file and summarise it")
    c.add_argument("file")
    c.set_defaults(func=_site_check)


def _run(fn: Any, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        fn(args)
    except (ValueError, OSError) as exc:
        print(f"beam-tracking dataset: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_summary(root: str | Path, as_json: bool = False) -> None:
    from .store import format_summary, summary

    stats = summary(root)
    print(json.dumps(stats, indent=2) if as_json else format_summary(stats))


def _generate(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> None:
        from .generate import generate_dataset, scenario

        scenarios = [scenario(lanes, weather=a.weather, label_mode=a.label_mode) for lanes in a.lanes]
        root = generate_dataset(a.out, scenarios, episodes=a.episodes, frames_per_episode=a.frames, seed=a.seed,
                                P=a.P, H=a.H, cfg=_preprocess(a.preprocess), modalities=a.modalities,
                                fractions=a.splits, chunk_size=a.chunk_size, force=a.force, progress=True)
        _print_summary(root)

    return _run(go, args)


def _build(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> None:
        from .bag import build_from_bags

        topics = {}
        for item in a.topic:
            key, sep, topic = item.partition("=")
            if not sep or key not in (*SENSORS, "beam", "rsu_gnss"):
                raise ValueError(f"--topic {item!r}: expected MODALITY=TOPIC with MODALITY in "
                                 f"{(*SENSORS, 'beam', 'rsu_gnss')}")
            topics[key] = topic
        from .generate import bag_site_overrides

        ref = bag_site_overrides(a.site_lanes, a.site_label_mode, a.H, a.gps_reference)
        build_from_bags(a.out, a.bags, modalities=a.modalities, topics=topics, P=a.P, H=a.H,
                        cfg=_preprocess(a.preprocess, **ref), slop=a.slop, queue_size=a.queue_size,
                        fractions=a.splits, seed=a.seed, chunk_size=a.chunk_size, max_gap=a.max_gap,
                        recover=True if a.recover else None)
        _print_summary(a.out)

    return _run(go, args)


def _site_export(args: argparse.Namespace) -> int:
    from ..sim import SimConfig
    from .geometry_baseline import GeometrySite

    try:
        site = GeometrySite.from_sim_config(SimConfig(lanes=args.lanes, label_mode=args.label_mode), walls=args.walls)
    except ValueError as exc:
        print(f"beam-tracking site: error: {exc}", file=sys.stderr)
        return 2
    print(f"# Geometry-baseline site of the built-in {args.lanes}-lane scene ({args.label_mode}); world frame:\n"
          "# right-handed, metres, z up, yaw counter-clockwise from +x. Edit it to a surveyed RSU.")
    print(site.to_yaml(), end="")
    return 0


def _site_check(args: argparse.Namespace) -> int:
    from ..channel import ChannelModel
    from .geometry_baseline import GeometrySite

    try:
        site = GeometrySite.from_yaml(args.file)
        n = ChannelModel(site.channel).n_beams
    except ValueError as exc:
        print(f"beam-tracking site: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.file}: ok: array at {tuple(round(v, 2) for v in site.rsu.position)} facing "
          f"{math.degrees(site.rsu.yaw):.1f} deg, {n} beams, road y {site.road_y}, "
          f"{0 if site.walls is None else len(site.walls)} wall(s), label mode {site.label_mode}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    return _run(lambda a: _print_summary(a.root, a.json), args)


def _reindex(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> None:
        from .bag import reindex_bag

        out, n = reindex_bag(a.bag, a.out)
        print(f"reindexed {a.bag}: {n} messages written to {out} (metadata.yaml, MCAP summary, CRCs)")

    return _run(go, args)


def _import_deepsense(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> None:
        from .deepsense import import_deepsense

        meta = import_deepsense(a.folder, a.out, modalities=a.modalities, P=a.P, H=a.H,
                                cfg=_preprocess(a.preprocess), fractions=a.splits, seed=a.seed,
                                chunk_size=a.chunk_size, radar_angle_bins=a.radar_angle_bins)
        imp = meta.get("import", {})
        print(f"imported {meta.get('rows')} rows: {imp.get('repaired_power_rows', 0)} power file(s) repaired "
              f"(non-finite beams set to the row's minimum), {imp.get('unlabelled_rows', 0)} unlabelled (no finite "
              f"power), {imp.get('disagreeing_rows', 0)} released unit1_beam(s) disagreeing with the power argmax, "
              f"{imp.get('rows_without_time_stamp', 0)} without a readable time stamp; powers are "
              f"{meta.get('powers_unit')}")
        _print_summary(a.out)

    return _run(go, args)

"""Benchmark: the references every model row should be read against, on a dataset's test frames.

    python bench/ceiling.py                                  # 2- and 3-lane, sum-RSS and single target
    python bench/ceiling.py --lanes 2 --label-mode sum_rss   # one scene
    python bench/ceiling.py --dataset data/bench/2lane       # an existing dataset (any source)

Rows (``beam_tracking_ros.references``; the metrics are ``beam_tracking_ros.metrics``', like a model's
evaluation): the label prior (training-split beam frequencies), the geometry ceiling stored with the
dataset (true boxes through the channel geometry without fading, shadowing or noise) and the non-learned
LiDAR geometry baseline (``model:=geometry`` in the live tracker), each for the current step and averaged
over the horizon t..t+H.

Without ``--dataset`` a small dataset per scene is generated once under ``--data-root`` (cached by
configuration: ``beam_tracking_ros.data.generate.generate_dataset``), GNSS only (the references read the
labels, and the baseline simulates its LiDAR clouds again from the stored episode seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def dataset_for(lanes: int, label_mode: str, episodes: int, frames: int, data_root: Path, seed: int = 0) -> Path:
    """The cached small dataset of one scene (camera and radar off: they do not change labels or LiDAR)."""
    from beam_tracking_ros.data.generate import generate_dataset, scenario
    from beam_tracking_ros.sim import CameraConfig, RadarConfig

    sc = scenario(lanes, label_mode=label_mode, camera=CameraConfig(enabled=False), radar=RadarConfig(enabled=False))
    return generate_dataset(data_root / f"{lanes}lane_{label_mode}", [sc], episodes=episodes,
                            frames_per_episode=frames, seed=seed, P=4, H=3, modalities=("gnss",))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lanes", type=int, nargs="+", default=[2, 3], choices=[1, 2, 3, 4, 5])
    ap.add_argument("--label-mode", nargs="+", default=["sum_rss", "single"], choices=["sum_rss", "single"])
    ap.add_argument("--episodes", type=int, default=40, help="episodes per generated dataset (default 40: 4 test)")
    ap.add_argument("--frames", type=int, default=200, help="frames per episode (default 200)")
    ap.add_argument("--data-root", type=Path, default=ROOT / "data" / "ceiling", help="dataset cache")
    ap.add_argument("--dataset", type=Path, nargs="+", help="score these existing datasets instead")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--no-geometry", action="store_true", help="skip the LiDAR baseline (it re-simulates)")
    ap.add_argument("--walls", default="street", choices=["street", "scene", "none"],
                    help="the baseline's buildings: the street's building line (a site map, default), the "
                         "scene's own buildings (known only to the simulator), or none (LoS + ground)")
    ap.add_argument("--json", type=Path, help="also write the metrics here")
    a = ap.parse_args(argv)
    from beam_tracking_ros.references import format_references, reference_metrics

    if a.dataset:
        todo = [(str(p), p) for p in a.dataset]
    else:
        todo = []
        for lanes in a.lanes:
            for mode in a.label_mode:
                t0 = time.time()
                root = dataset_for(lanes, mode, a.episodes, a.frames, a.data_root)
                print(f"dataset {root} ready ({time.time() - t0:.0f} s)", flush=True)
                todo.append((f"{lanes}-lane {mode}", root))
    results = {}
    for name, root in todo:
        t0 = time.time()
        m = reference_metrics(root, a.split, geometry=not a.no_geometry, walls=a.walls)
        from beam_tracking_ros.data.store import DatasetReader

        n = DatasetReader(root, verify=False).count(a.split)
        print(f"\n{format_references(m, f'{name}: {a.split} split, {n} samples ({time.time() - t0:.0f} s)')}",
              flush=True)
        results[name] = m
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: how much the radar's mounting and resolution bound a radar-only model.

    python bench/radar_config.py                  # every variant below, 2-lane sum-RSS, 8 x 150 frames (~2 min)
    python bench/radar_config.py --variants default automotive

Each variant is a ``RadarConfig`` of the built-in simulator. For each, a small dataset is generated
(radar and GNSS only, cached by configuration under ``--data-root``) and the radar's beam-space feature
(``radar_beams``: moving detections through the RSU's own array, codebook and channel geometry, no
learning) is scored as a prediction on all its frames, beside the label prior of the same frames.

Why: the radar-only student starts as this feature and learns a small correction on top (the KD table's
radar rows sit within ~0.02 of it), so the feature's MPR is about the most a radar-only model reaches with
that radar; it is what to look at before choosing or mounting one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# name -> RadarConfig overrides; "default" is today's RadarConfig()
VARIANTS: dict[str, dict[str, Any]] = {
    "automotive": {"horizontal_fov_deg": 120.0, "vertical_fov_deg": 30.0, "pitch_deg": -8.0,
                   "points_per_vehicle": 8.0},  # the simulator's radar before generator v7
    "automotive_3x_points": {"horizontal_fov_deg": 120.0, "vertical_fov_deg": 30.0, "pitch_deg": -8.0,
                             "points_per_vehicle": 24.0},
    "automotive_150deg": {"horizontal_fov_deg": 150.0, "vertical_fov_deg": 30.0, "pitch_deg": -8.0,
                          "points_per_vehicle": 8.0},
    "pitch15_40deg_3x": {"horizontal_fov_deg": 120.0, "vertical_fov_deg": 40.0, "pitch_deg": -15.0,
                         "points_per_vehicle": 24.0},
    "default": {},
    "default_6x_points": {"points_per_vehicle": 48.0},
}


def score(name: str, overrides: dict[str, Any], data_root: Path, episodes: int, frames: int) -> dict[str, Any]:
    """Generate (or reuse) the variant's dataset and score its radar feature and the label prior."""
    from beam_tracking_ros.data.generate import generate_dataset, scenario
    from beam_tracking_ros.data.store import DatasetReader
    from beam_tracking_ros.metrics import evaluate_predictions
    from beam_tracking_ros.references import label_prior_scores
    from beam_tracking_ros.sim import CameraConfig, RadarConfig

    sc = scenario(2, camera=CameraConfig(enabled=False), radar=RadarConfig(**overrides))
    t0 = time.time()
    root = generate_dataset(data_root / name, [sc], episodes=episodes, frames_per_episode=frames, seed=7, P=4,
                            H=3, modalities=("radar", "gnss"), fractions=(0.5, 0.25, 0.25))
    reader = DatasetReader(root, verify=False)
    splits = ("train", "val", "test")
    labels = np.concatenate([reader.column(s, "beams") for s in splits])
    powers = np.concatenate([reader.column(s, "powers_dbm") for s in splits])
    feature = np.concatenate([reader.column(s, "radar_beams")[:, -1] for s in splits])  # newest frame
    prior = np.concatenate([label_prior_scores(reader, s) for s in splits])
    return {"name": name, "overrides": overrides, "seconds": time.time() - t0,
            "radar_beams": evaluate_predictions(feature, labels, powers), "prior": evaluate_predictions(prior, labels,
                                                                                                         powers)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--data-root", type=Path, default=ROOT / "data" / "bench" / "radar_config")
    a = ap.parse_args(argv)
    print(f"{'variant':22s} {'MPR t..t+3':>10s} {'MPR t':>6s} {'MPR t+3':>7s} {'ATop-5':>6s} {'loss dB':>7s} | "
          f"prior MPR  overrides of RadarConfig()")
    for name in a.variants:
        r = score(name, VARIANTS[name], a.data_root, a.episodes, a.frames)
        m, p = r["radar_beams"], r["prior"]
        print(f"{name:22s} {m['ampr']:10.3f} {m['mpr'][0]:6.3f} {m['mpr'][-1]:7.3f} {m['atop5']:6.3f} "
              f"{m['mean_power_loss_db']:7.2f} | {p['ampr']:9.3f}  {r['overrides'] or '(none)'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

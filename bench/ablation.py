"""Benchmark: which change to the default teacher bought how much (issue "predictions that approach
what the sensors allow"), on one dataset's test split, beside the label prior and the geometry ceiling.

    python bench/ablation.py                          # the default 2-lane sum-RSS dataset (data/default)
    python bench/ablation.py --steps 1500 --seeds 0 1 2
    python bench/ablation.py --only bev-grid teacher  # some rows
    python bench/ablation.py --dataset data/single    # the single-target scene

Every row is the same transformer teacher (``MultimodalTeacher``) trained for the same number of
steps (batch 64, AdamW, cosine schedule) and scored by ``metrics.evaluate_predictions`` over the
horizon t..t+H; the rows change one thing at a time:

=================  =====================================================================================
row                what it reads / how it learns
=================  =====================================================================================
radar+gps focal    the old default: radar HPS set + GPS, CRKD's focal loss on the argmax label
radar+gps power    the same inputs, power soft targets (the label's per-beam powers, T = 1 dB)
bev-mean           LiDAR BEV (newest frame), CNN with global average pooling (the papers' encoders)
bev-grid           the same CNN keeping a 4 x 4 grid + CoordConv (where the vehicles are)
bev+radar+gps      the fusion of the three, grid CNN on the newest 2 BEV frames
teacher focal      the default teacher (+ lidar_beams, the beam-space LiDAR feature) with focal loss
teacher            the default teacher (config/train/default_teacher.yaml) with power soft targets
=================  =====================================================================================

The data are read into memory once (the newest frames each row needs), so a row costs its steps only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TEACHER = {"d_model": 64, "cnn_width": 16, "heads": 4, "layers": 1, "dropout": 0.1}
GRID = {"grid": 4, "coords": True}
# name: (inputs, model kwargs, task loss)
ROWS: dict[str, tuple[tuple[str, ...], dict[str, Any], str]] = {
    "radar+gps focal": (("radar_points", "gps"), {}, "focal"),
    "radar+gps power": (("radar_points", "gps"), {}, "power"),
    "bev-mean": (("lidar_bev",), {"image_frames": 1}, "power"),
    "bev-grid": (("lidar_bev",), {**GRID, "image_frames": 1}, "power"),
    "bev+radar+gps": (("lidar_bev", "radar_points", "gps"), {**GRID, "image_frames": 2}, "power"),
    "teacher focal": (("lidar_beams", "lidar_bev", "radar_points", "gps"), {**GRID, "image_frames": 2}, "focal"),
    "teacher": (("lidar_beams", "lidar_bev", "radar_points", "gps"), {**GRID, "image_frames": 2}, "power"),
}


def load_split(reader: Any, split: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
    cols: dict[str, list[np.ndarray]] = {}
    for chunk in reader.iter_chunks(split, keys=[*keys, "beams", "powers_dbm"]):
        for k, v in chunk.items():
            cols.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in cols.items()}


def train_row(data: dict[str, dict[str, np.ndarray]], inputs: Sequence[str], kwargs: dict[str, Any], loss: str,
              steps: int, seed: int, window: int) -> tuple[dict[str, Any], float, int]:
    import torch
    from torch import nn

    from beam_tracking_ros.kd.losses import focal_loss, power_target_loss
    from beam_tracking_ros.metrics import evaluate_predictions
    from beam_tracking_ros.models import build_model, count_parameters

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tr, te = data["train"], data["test"]
    beams = int(tr["powers_dbm"].shape[-1])
    model = build_model("teacher", modalities=tuple(inputs), num_beams=beams, window=window,
                        horizon=int(tr["beams"].shape[1]) - 1, **TEACHER, **kwargs)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    n = len(tr["beams"])
    t0 = time.time()
    for _ in range(steps):
        idx = rng.integers(0, n, 64)
        out = model({k: torch.from_numpy(tr[k][idx]) for k in inputs})["logits"]
        if loss == "power":
            value = power_target_loss(out, torch.from_numpy(tr["powers_dbm"][idx]), 1.0)
        else:
            value = focal_loss(out, torch.from_numpy(tr["beams"][idx]), 1.0, 2.0)
        opt.zero_grad()
        value.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
    model.eval()
    logits = []
    with torch.no_grad():
        for i in range(0, len(te["beams"]), 256):
            logits.append(model({k: torch.from_numpy(te[k][i:i + 256]) for k in inputs})["logits"].numpy())
    m = evaluate_predictions(np.concatenate(logits), te["beams"], te["powers_dbm"])
    return m, time.time() - t0, count_parameters(model)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=ROOT / "data" / "default",
                    help="a dataset with lidar_beams (default data/default, made by `make models` or the "
                         "default teacher's config)")
    ap.add_argument("--steps", type=int, default=1500, help="training steps per row (default 1500)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--only", nargs="+", choices=list(ROWS), help="rows to run (default all)")
    ap.add_argument("--no-geometry", action="store_true",
                    help="skip the non-learned LiDAR geometry baseline reference (it re-simulates the test episodes)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args(argv)
    import torch

    from beam_tracking_ros.data.store import DatasetReader
    from beam_tracking_ros.references import format_references, reference_metrics

    torch.set_num_threads(2)
    rows = a.only or list(ROWS)
    reader = DatasetReader(a.dataset)
    keys = sorted({k for r in rows for k in ROWS[r][0]})
    missing = [k for k in keys if k not in reader.keys]
    if missing:
        ap.error(f"{a.dataset} lacks {missing}: build it with the default teacher's config "
                 "(beam-tracking train --config config/train/default_teacher.yaml) or `make models`")
    window = int(reader.meta["P"])
    data = {s: load_split(reader, s, keys) for s in ("train", "test")}
    refs = reference_metrics(a.dataset, "test", geometry=not a.no_geometry)
    print(format_references(refs, title=f"{a.dataset} (test, {len(data['test']['beams'])} samples)"))
    results: dict[str, Any] = {"dataset": str(a.dataset), "steps": a.steps, "seeds": a.seeds, "rows": {},
                               "references": refs}
    print(f"\n{'row':18s} {'params':>8s} {'ATop-1':>7s} {'ATop-5':>7s} {'MPR':>6s} {'+-':>6s} {'loss dB':>8s}"
          f" {'MPR t..t+3':>24s} {'s/seed':>7s}")
    for name in rows:
        inputs, kwargs, loss = ROWS[name]
        runs = [train_row(data, inputs, kwargs, loss, a.steps, seed, window) for seed in a.seeds]
        mpr = np.array([m["ampr"] for m, _, _ in runs])
        per_step = np.mean([m["mpr"] for m, _, _ in runs], axis=0)
        results["rows"][name] = {"inputs": list(inputs), "kwargs": kwargs, "loss": loss,
                                 "metrics": [m for m, _, _ in runs], "parameters": runs[0][2]}
        print(f"{name:18s} {runs[0][2]:8d} {np.mean([m['atop1'] for m, _, _ in runs]):7.3f} "
              f"{np.mean([m['atop5'] for m, _, _ in runs]):7.3f} {mpr.mean():6.3f} {mpr.std():6.3f} "
              f"{np.mean([m['mean_power_loss_db'] for m, _, _ in runs]):8.2f} "
              f"{' '.join(f'{v:.3f}' for v in per_step):>24s} {np.mean([t for _, t, _ in runs]):7.0f}", flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

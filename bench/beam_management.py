"""Benchmark: beam management with predictions -- overhead against realized power loss.

    python bench/beam_management.py                     # shipped student and teacher, data/default test split
    python bench/beam_management.py --png docs/beam_management.png --json bm.json
    python bench/beam_management.py --quick             # a small fresh dataset, student and prior only (CI smoke)

For every predictor (the shipped radar student and multimodal teacher, the non-learned LiDAR geometry
baseline, the label prior) and every sweep rule (top-k for k = 1..16, and the adaptive rule: the smallest
k whose predicted probability reaches a target), ``beam_tracking_ros.beam_management`` runs frame by frame
over each test episode: it measures the candidates, serves the best measured one, detects beam failure
(the best measured power 10 dB under the last good frame) and then sweeps the whole codebook in the same
frame. Measurements are the dataset's own per-beam powers of each frame (the channel model's, with its
measurement noise), so the exhaustive sweep is the optimum by definition (0 dB). Per rule:

* overhead: beams measured per frame / codebook size (exhaustive = 100 %; "saved" = 100 % - overhead);
* realized power loss: mean over frames of (best power - served power), dB;
* outage: frames served more than 3 dB below the optimum;
* full sweeps: fallbacks (no/stale prediction, beam failure) per 100 frames;
* p99 ms: the manager's decision time (prediction in -> sweep request out), 99th percentile.

Predictions are each model's current-step output for the frame (the tracker predicts t..t+H from the
window ending at t; the sweep of frame t uses step 0). A model that reads the beam history
(``beam_history``, issue 16) runs in a closed loop: each frame's input holds what *this manager* measured
in the frames before (its own candidates' powers), not the dataset's simulated sweeps -- as live.
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

OUTAGE_DB = 3.0
KS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)
TARGETS = (0.6, 0.7, 0.8, 0.9, 0.95)


def model_probabilities(model_dir: Path, reader: Any, split: str) -> np.ndarray:
    """(N, B) step-0 probabilities of a trained/exported model on the split (softmax of its logits)."""
    import torch

    from beam_tracking_ros.beam_management import scores_to_probabilities
    from beam_tracking_ros.train.trainer import load_run, model_outputs

    model, card = load_run(model_dir)
    mods = list(card["model"]["modalities"])
    n = reader.count(split)
    cols = {m: reader.column(split, m) for m in mods}
    out = []
    with torch.no_grad():
        for i in range(0, n, 256):
            batch = {m: torch.as_tensor(np.asarray(c[i:i + 256], dtype=np.float32)) for m, c in cols.items()}
            out.append(model_outputs(model(batch))["logits"][:, 0].float().numpy())
    return scores_to_probabilities(np.concatenate(out))


def history_predictors(model_dir: Path, reader: Any, split: str, episodes: list[np.ndarray]) -> list[Any] | None:
    """For a model reading ``beam_history``: per episode a ``probs(t, sweeps)`` for ``run_episode`` that
    rebuilds the window's history from the manager's own sweeps (None for any other model)."""
    import torch

    from beam_tracking_ros.beam_management import scores_to_probabilities
    from beam_tracking_ros.data.beam_history import beam_history_feature
    from beam_tracking_ros.train.trainer import load_run, model_outputs

    model, card = load_run(model_dir)
    mods = list(card["model"]["modalities"])
    if "beam_history" not in mods:
        return None
    cols = {m: reader.column(split, m) for m in mods}

    def for_episode(rows: np.ndarray) -> Any:
        def probs(t: int, sweeps: list[Any]) -> np.ndarray:
            batch = {m: torch.as_tensor(np.asarray(cols[m][rows[t]:rows[t] + 1], dtype=np.float32)) for m in mods}
            hist = batch["beam_history"]
            window, n_beams = hist.shape[1], hist.shape[-1]
            for j in range(window):  # window frame j is frame t - (P - 1) + j: its history is the sweep before it
                src = t - window + j
                if 0 <= src < len(sweeps):  # earlier frames were not managed here: the stored sweep stays
                    hist[0, j] = torch.from_numpy(beam_history_feature(sweeps[src], n_beams))
            with torch.no_grad():
                logits = model_outputs(model(batch))["logits"][0, 0].float().numpy()
            return scores_to_probabilities(logits)

        return probs

    return [for_episode(rows) for rows in episodes]


def episodes_of(reader: Any, split: str) -> list[np.ndarray]:
    """Row indices of each episode of the split, in frame order."""
    ep, st = reader.column(split, "episode"), reader.column(split, "stamp")
    return [rows[np.argsort(st[rows])] for rows in (np.flatnonzero(ep == e) for e in np.unique(ep))]


def evaluate(probs: np.ndarray | list[Any], powers: np.ndarray, stamps: np.ndarray, episodes: list[np.ndarray],
             policy: Any) -> dict[str, float]:
    """The manager over every episode with one rule; the figures of the module docstring. ``probs``: (N, B)
    predictions, or one closed-loop ``probs(t, sweeps)`` per episode (:func:`history_predictors`)."""
    from beam_tracking_ros.beam_management import run_episode

    measured, loss, decision, fallbacks, frames = [], [], [], 0, 0
    for e, rows in enumerate(episodes):
        res = run_episode(probs[e] if isinstance(probs, list) else probs[rows], powers[rows], policy, stamps[rows])
        measured.append(res["measured"])
        loss.append(res["loss_db"])
        decision.append(res["decision_ms"])
        c = res["counts"]
        fallbacks += sum(v for k, v in c.items() if k.startswith("fallback_"))
        frames += rows.size
    m, l_db = np.concatenate(measured), np.concatenate(loss)
    b = powers.shape[-1]
    return {"overhead": float(m.mean() / b), "beams_per_frame": float(m.mean()),
            "loss_db": float(l_db.mean()), "outage": float((l_db > OUTAGE_DB).mean()),
            "full_sweeps_per_100": 100.0 * fallbacks / frames,
            "decision_ms_p99": float(np.percentile(np.concatenate(decision), 99))}


def run(dataset: Path, models: dict[str, Path], split: str, geometry: bool, ks: Sequence[int],
        targets: Sequence[float]) -> dict[str, Any]:
    from beam_tracking_ros.beam_management import SweepPolicy, scores_to_probabilities
    from beam_tracking_ros.data.geometry_baseline import power_shares
    from beam_tracking_ros.data.store import DatasetReader
    from beam_tracking_ros.references import geometry_scores, label_prior_scores

    reader = DatasetReader(dataset, verify=False)
    powers = np.asarray(reader.column(split, "powers_dbm")[:, 0], dtype=np.float64)
    stamps = np.asarray(reader.column(split, "stamp"), dtype=np.float64)
    episodes = episodes_of(reader, split)
    predictors: dict[str, np.ndarray | list[Any]] = {}
    for name, d in models.items():
        loop = history_predictors(d, reader, split, episodes)
        predictors[name] = loop if loop is not None else model_probabilities(d, reader, split)
    if geometry:
        geo = geometry_scores(reader, split)
        if geo is not None:
            predictors["geometry baseline (LiDAR)"] = power_shares(geo[:, 0])
    predictors["label prior"] = scores_to_probabilities(label_prior_scores(reader, split)[:, 0])
    rows: list[dict[str, Any]] = []
    b = powers.shape[-1]
    rows.append({"predictor": "exhaustive sweep", "rule": f"all {b}", "overhead": 1.0, "beams_per_frame": float(b),
                 "loss_db": 0.0, "outage": 0.0, "full_sweeps_per_100": 100.0})
    for name, p in predictors.items():
        rows.append({"predictor": name, "rule": f"default ({SweepPolicy().label})", "default": True,
                     **evaluate(p, powers, stamps, episodes, SweepPolicy())})
        for k in ks:
            rows.append({"predictor": name, "rule": f"top-{k}", "k": k,
                         **evaluate(p, powers, stamps, episodes, SweepPolicy(k=k))})
        for t in targets:
            rows.append({"predictor": name, "rule": f"adaptive p>={t:g}", "target": t,
                         **evaluate(p, powers, stamps, episodes, SweepPolicy(k=0, target_probability=t))})
    return {"dataset": str(dataset), "split": split, "frames": int(powers.shape[0]), "codebook_size": b,
            "episodes": len(episodes), "rows": rows}


def table(result: dict[str, Any]) -> str:
    lines = [f"Beam management on {result['dataset']} ({result['split']}: {result['episodes']} episodes, "
             f"{result['frames']} frames, {result['codebook_size']} beams)",
             f"{'predictor':<28} {'rule':<26} {'beams/frame':>11} {'saved':>7} {'loss dB':>8} {'outage':>7} "
             f"{'full/100':>8} {'p99 ms':>7}"]
    for r in result["rows"]:
        lines.append(f"{r['predictor']:<28} {r['rule']:<26} {r['beams_per_frame']:>11.2f} "
                     f"{100 * (1 - r['overhead']):>6.1f}% {r['loss_db']:>8.2f} {100 * r['outage']:>6.1f}% "
                     f"{r['full_sweeps_per_100']:>8.1f} {r.get('decision_ms_p99', float('nan')):>7.3f}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Overhead vs realized power loss, one curve per predictor over k, adaptive rules as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = [n for n in dict.fromkeys(r["predictor"] for r in result["rows"]) if n != "exhaustive sweep"]
    for name in names:
        rk = [r for r in result["rows"] if r["predictor"] == name and "k" in r]
        ra = [r for r in result["rows"] if r["predictor"] == name and "target" in r]
        line, = ax.plot([100 * r["overhead"] for r in rk], [r["loss_db"] for r in rk], "-o", ms=3, label=name)
        ax.plot([100 * r["overhead"] for r in ra], [r["loss_db"] for r in ra], "*", ms=9, color=line.get_color())
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axvline(5.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("overhead: beams measured per frame / codebook size (%)")
    ax.set_ylabel("realized power loss vs optimum (dB)")
    ax.set_title("Prediction-aided beam sweeping (lines: top-k, stars: adaptive)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=ROOT / "data" / "default",
                    help="dataset with the models' inputs (default data/default, built by `make models` or here "
                         "from config/train/default_teacher.yaml when missing)")
    ap.add_argument("--models", nargs="*", default=["models/student", "models/teacher"],
                    help="model directories (exported or runs), default the shipped student and teacher")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--no-geometry", action="store_true", help="skip the LiDAR geometry baseline (it re-simulates)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: a small fresh dataset (data/bench_quick/bm), the student and the prior")
    ap.add_argument("--png", type=Path, help="write the overhead vs power loss plot here")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    dataset, models, ks, targets = a.dataset, a.models, KS, TARGETS
    if a.quick:
        from beam_tracking_ros.data.generate import generate_dataset, scenario

        dataset = generate_dataset(ROOT / "data" / "bench_quick" / "bm", [scenario(2)], episodes=6,
                                   frames_per_episode=60, seed=0, P=8, H=3, modalities=("radar", "gnss"))
        models, ks, targets, a.no_geometry = [], (1, 4, 16), (0.9,), True
    elif not (dataset / "meta.json").exists() and dataset == ROOT / "data" / "default":
        import yaml

        from beam_tracking_ros.train.config import config_from_dict
        from beam_tracking_ros.train.trainer import _ensure_dataset

        raw = yaml.safe_load((ROOT / "config" / "train" / "default_teacher.yaml").read_text())
        raw["data"]["path"] = str(dataset)
        _ensure_dataset(config_from_dict(raw, "default_teacher").data, progress=True)
    names = {Path(m).name: ROOT / m if not Path(m).is_absolute() else Path(m) for m in models}
    result = run(dataset, names, a.split, not a.no_geometry, ks, targets)
    result["run_time_s"] = time.perf_counter() - t0
    print(table(result))
    print(f"\n({result['run_time_s']:.0f} s; outage = frames more than {OUTAGE_DB:g} dB below the optimum)")
    if a.png:
        plot(result, a.png)
        print(f"plot: {a.png}")
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

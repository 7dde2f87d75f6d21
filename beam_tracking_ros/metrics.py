"""Beam-prediction metrics of the three papers, vectorized over samples, horizon steps and beams.

Why one module: the trainer, the benchmark and the live node must score predictions the same way,
so every metric is defined once here, on plain arrays.

Conventions
-----------
* ``scores``: model outputs (logits or probabilities; only their order matters) shaped ``(N, C)`` for a
  single step or ``(N, S, C)`` for ``S = H + 1`` horizon steps (current beam and H future beams).
* ``labels``: optimal beam indices ``(N,)`` or ``(N, S)``.
* ``powers_dbm``: received power per codebook beam ``(N, C)`` or ``(N, S, C)``.
* numpy arrays and torch tensors are both accepted (torch is converted with ``.detach().cpu()``).

Metrics
-------
* **Top-k** (CRKD eq. 16, Ma et al.): fraction of samples whose optimal beam is among the k highest scores;
  per horizon step, and **ATop-k** = mean over horizon steps (Ma et al.).
* **DBA** (distance-based accuracy, DeepSense 6G challenge, used by Ma et al.):
  ``Y_k = 1 - mean_i min_{j<=k} min(|pred_{i,j} - true_i| / delta, 1)`` with ``delta = 5`` and
  ``DBA = mean(Y_1, ..., Y_K)`` with ``K = 3``; **ADBA** = mean of DBA over horizon steps.
* **MPR** (mean percentile rank, CRKD eqs. 18-20): ``rank(y_hat) = 1 + #{beams with higher power}``,
  ``Percentile = (B - rank + 1) / B``, MPR = mean percentile (1.0 = the best beam was always chosen).
* **Mean RSS** (CRKD eq. 17): the received power of the predicted beam, averaged over samples (in dBm,
  the unit CRKD's tables report).
* **Power loss** (dB): ``max_b P_b - P_{y_hat}``, the gap to the optimal beam, averaged over samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "adba_score",
    "atopk_accuracy",
    "dba_score",
    "evaluate_predictions",
    "mean_percentile_rank",
    "mean_rss",
    "percentile_rank",
    "power_loss_db",
    "predicted_beams",
    "to_numpy",
    "topk_accuracy",
]


def to_numpy(x: Any, name: str = "input") -> np.ndarray:
    """Return ``x`` as a numpy array (torch tensors are detached and moved to the CPU)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name}: cannot convert to an array ({exc})") from exc
    return arr


def _scores_labels(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Normalise to ``scores (N, S, C)`` float and ``labels (N, S)`` int, validating shapes."""
    s = to_numpy(scores, "scores").astype(np.float64, copy=False)
    y = to_numpy(labels, "labels")
    if s.ndim == 2:
        s = s[:, None, :]
    if y.ndim == 1:
        y = y[:, None]
    if s.ndim != 3:
        raise ValueError(f"scores: expected shape (N, C) or (N, S, C), got {s.shape}")
    if y.shape != s.shape[:2]:
        raise ValueError(f"labels: shape {y.shape} does not match scores {s.shape[:2]} (N, S)")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("labels: must be integer beam indices")
        y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= s.shape[2]):
        raise ValueError(f"labels: beam indices must lie in [0, {s.shape[2]}), got [{y.min()}, {y.max()}]")
    if s.shape[0] == 0:
        raise ValueError("scores: empty batch (N = 0)")
    return s, y.astype(np.int64, copy=False)


def _ranked(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first, ``(N, S, k)``; stable so ties favour lower index."""
    if k < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    k = min(k, scores.shape[-1])
    order = np.argsort(-scores, axis=-1, kind="stable")
    return order[..., :k]


def topk_accuracy(scores: Any, labels: Any, k: int = 1) -> np.ndarray:
    """Top-k accuracy per horizon step, shape ``(S,)`` (``S = 1`` for single-step inputs)."""
    s, y = _scores_labels(scores, labels)
    top = _ranked(s, k)
    hit = (top == y[..., None]).any(axis=-1)
    return hit.mean(axis=0)


def atopk_accuracy(scores: Any, labels: Any, k: int = 1) -> float:
    """ATop-k (Ma et al.): Top-k accuracy averaged over the horizon steps."""
    return float(topk_accuracy(scores, labels, k).mean())


def dba_score(scores: Any, labels: Any, delta: float = 5.0, max_k: int = 3) -> np.ndarray:
    """DBA per horizon step, shape ``(S,)``.

    ``Y_k = 1 - mean_i min_{j<=k} min(|pred_{i,j} - true_i| / delta, 1)``, ``DBA = mean_k Y_k`` for
    ``k = 1..max_k``, where ``pred_{i,j}`` is the j-th highest-scored beam. Beam index distance is the
    DeepSense challenge's proxy for angular distance on a uniformly spaced codebook.
    """
    if delta <= 0:
        raise ValueError(f"delta: must be > 0, got {delta}")
    s, y = _scores_labels(scores, labels)
    top = _ranked(s, max_k)  # (N, S, K)
    dist = np.minimum(np.abs(top - y[..., None]) / float(delta), 1.0)
    best_so_far = np.minimum.accumulate(dist, axis=-1)  # min over j <= k
    y_k = 1.0 - best_so_far.mean(axis=0)  # (S, K)
    if y_k.shape[-1] < max_k:  # fewer beams than max_k: Y_k stays at its last value
        pad = np.repeat(y_k[..., -1:], max_k - y_k.shape[-1], axis=-1)
        y_k = np.concatenate([y_k, pad], axis=-1)
    return y_k.mean(axis=-1)


def adba_score(scores: Any, labels: Any, delta: float = 5.0, max_k: int = 3) -> float:
    """ADBA (Ma et al.): DBA averaged over the horizon steps."""
    return float(dba_score(scores, labels, delta, max_k).mean())


def _pred_powers(pred: Any, powers_dbm: Any) -> tuple[np.ndarray, np.ndarray]:
    """Normalise predicted indices to ``(N, S)`` and powers to ``(N, S, B)``."""
    p = to_numpy(powers_dbm, "powers_dbm").astype(np.float64, copy=False)
    yhat = to_numpy(pred, "pred")
    if p.ndim == 2:
        p = p[:, None, :]
    if yhat.ndim == 1:
        yhat = yhat[:, None]
    if p.ndim != 3 or yhat.shape != p.shape[:2]:
        raise ValueError(f"pred {yhat.shape} and powers_dbm {p.shape} must be (N[,S]) and (N[,S],B)")
    if not np.all(np.isfinite(p)):
        raise ValueError("powers_dbm: contains NaN or inf")
    yhat = yhat.astype(np.int64)
    if yhat.size and (yhat.min() < 0 or yhat.max() >= p.shape[-1]):
        raise ValueError(f"pred: beam indices must lie in [0, {p.shape[-1]})")
    return yhat, p


def predicted_beams(scores: Any) -> np.ndarray:
    """Arg-max beam per sample (and horizon step) of a score array."""
    s = to_numpy(scores, "scores")
    return np.argmax(s, axis=-1)


def percentile_rank(pred: Any, powers_dbm: Any) -> np.ndarray:
    """CRKD percentile of each predicted beam, ``(N, S)``.

    ``rank = 1 + #{b : P_b > P_pred}`` (ties share the better rank, so choosing any of several equally
    optimal beams scores 1.0) and ``Percentile = (B - rank + 1) / B``.
    """
    yhat, p = _pred_powers(pred, powers_dbm)
    chosen = np.take_along_axis(p, yhat[..., None], axis=-1)
    rank = 1 + (p > chosen).sum(axis=-1)
    n_beams = p.shape[-1]
    return (n_beams - rank + 1) / n_beams


def mean_percentile_rank(pred: Any, powers_dbm: Any) -> np.ndarray:
    """MPR per horizon step, ``(S,)``."""
    return percentile_rank(pred, powers_dbm).mean(axis=0)


def mean_rss(pred: Any, powers_dbm: Any) -> np.ndarray:
    """Mean RSS (dBm) of the predicted beams per horizon step, ``(S,)`` (CRKD eq. 17 averages dBm)."""
    yhat, p = _pred_powers(pred, powers_dbm)
    return np.take_along_axis(p, yhat[..., None], axis=-1)[..., 0].mean(axis=0)


def power_loss_db(pred: Any, powers_dbm: Any) -> np.ndarray:
    """Mean power loss (dB) of the predicted vs the optimal beam per horizon step, ``(S,)`` (>= 0)."""
    yhat, p = _pred_powers(pred, powers_dbm)
    chosen = np.take_along_axis(p, yhat[..., None], axis=-1)[..., 0]
    return (p.max(axis=-1) - chosen).mean(axis=0)


def evaluate_predictions(
    scores: Any,
    labels: Any,
    powers_dbm: Any | None = None,
    ks: tuple[int, ...] = (1, 3, 5),
    delta: float = 5.0,
) -> dict[str, Any]:
    """All metrics in one dict: per-step lists (``top{k}``, ``dba``, ``mpr``...) and horizon means.

    Keys: ``top{k}`` and ``atop{k}``, ``dba`` and ``adba``; with powers also ``mpr``/``ampr``,
    ``rss_dbm``/``mean_rss_dbm`` and ``power_loss_db``/``mean_power_loss_db``.
    """
    out: dict[str, Any] = {}
    for k in ks:
        per = topk_accuracy(scores, labels, k)
        out[f"top{k}"] = per.tolist()
        out[f"atop{k}"] = float(per.mean())
    dba = dba_score(scores, labels, delta)
    out["dba"] = dba.tolist()
    out["adba"] = float(dba.mean())
    if powers_dbm is not None:
        pred = predicted_beams(scores)
        mpr = mean_percentile_rank(pred, powers_dbm)
        rss = mean_rss(pred, powers_dbm)
        loss = power_loss_db(pred, powers_dbm)
        out.update(
            mpr=mpr.tolist(), ampr=float(mpr.mean()), rss_dbm=rss.tolist(), mean_rss_dbm=float(rss.mean()),
            power_loss_db=loss.tolist(), mean_power_loss_db=float(loss.mean()),
        )
    return out

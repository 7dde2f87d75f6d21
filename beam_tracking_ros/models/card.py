"""The model card (``model_card.json``) of an exported model: what it reads, how good and costly it is.

Why a card: the live tracker must know, without guessing, which modalities a model reads, with which
preprocessing, window P, horizon H and codebook, and a user must see how good and how costly it is and
how it was made. The card is plain JSON (never code), written next to ``model.pt`` and ``model.onnx``.

Fields (all always present; ``null`` where unknown)::

    format, version          "beam_tracking_ros.model_card", 1
    name, role               model name; "teacher" | "student"
    architecture             {name (registry), class, kwargs (exact constructor arguments)}
    config                   the full training config (train/config.py schema)
    modalities               input keys, in the ONNX input order
    input_shapes             per modality, one sample: [P, ...]
    preprocess               data/preprocess.py PreprocessConfig of the dataset (dict)
    P, H                     observation window, future horizon (outputs H + 1 steps)
    window_policy            {period_s, max_gap_s} of the training data: the live tracker thins faster input
                             to period_s, cuts windows where the dataset builder did, and spaces the horizon
                             steps period_s apart (absent in cards exported before it existed)
    codebook                 {id, size}
    num_beams                C, the classifier width
    inputs, window, horizon, codebook_id, codebook_size   flat aliases of the above (read by the tracker)
    metrics                  {test: {...}, val: {...}} from metrics.py (Top-k per step, ATop-k, DBA, ADBA,
                             MPR, mean RSS, power loss)
    parameters               trainable parameter count
    flops                    FLOPs of one prediction (batch 1), counted by models.registry.count_flops
    distill                  {method, teacher, teacher_name}
    training_command         the command line that trained it
    dataset_hash             sha256 of the dataset manifest + meta
    date                     export date (UTC, ISO 8601); trained: training date
    package_version, torch_version
    files                    {weights: "model.pt", onnx: "model.onnx" | null}
    onnx                     {opset, inputs, output, dynamic_batch, max_abs_diff, onnxruntime_version} | null
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CARD_FORMAT", "REQUIRED_FIELDS", "CardError", "make_model_card", "validate_card"]

CARD_FORMAT = "beam_tracking_ros.model_card"
CARD_VERSION = 1
REQUIRED_FIELDS: tuple[str, ...] = (
    "format", "version", "name", "role", "architecture", "config", "modalities", "input_shapes", "preprocess",
    "P", "H", "codebook", "metrics", "parameters", "flops", "distill", "training_command", "dataset_hash",
    "date", "package_version", "files",
)


class CardError(ValueError):
    """A model card that is missing fields or inconsistent."""


def make_model_card(
    run_card: Mapping[str, Any], *, name: str, parameters: int, flops: int, onnx_info: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The exported card from a run's ``model.json`` plus the export-time counts."""
    m = run_card["model"]
    ds = run_card.get("dataset", {})
    card = {
        "format": CARD_FORMAT, "version": CARD_VERSION,
        "name": name, "role": run_card.get("role"),
        "architecture": {"name": m["name"], "class": m.get("class"), "kwargs": m["kwargs"]},
        "config": run_card.get("config"),
        "modalities": list(m["modalities"]),
        "input_shapes": {k: list(v) for k, v in m["input_shapes"].items()},
        "preprocess": ds.get("preprocess"),
        "P": m["window"], "H": m["horizon"],
        # the frame period and window-continuity rule of the training data (data/window.py ContinuityPolicy)
        "window_policy": ds.get("window_policy"),
        "codebook": {"id": ds.get("codebook_id"), "size": ds.get("codebook_size") or m["num_beams"]},
        "num_beams": m["num_beams"],
        # flat aliases read by the live tracker (ros/beam_tracker_node.py, tracking.py)
        "inputs": list(m["modalities"]), "window": m["window"], "horizon": m["horizon"],
        "codebook_id": ds.get("codebook_id"), "codebook_size": ds.get("codebook_size") or m["num_beams"],
        "metrics": run_card.get("metrics", {}),
        "parameters": int(parameters), "flops": int(flops),
        "feature_dims": m.get("feature_dims"),
        "distill": run_card.get("distill"),
        "training_command": run_card.get("command"),
        "dataset_hash": ds.get("hash"),
        "dataset": {k: ds.get(k) for k in ("source", "label_mode", "scenario", "training_data", "label_prior_beam")
                    if k in ds},
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "trained": run_card.get("created"),
        "package_version": run_card.get("package_version"),
        "torch_version": run_card.get("torch_version"),
        "files": {"weights": "model.pt", "onnx": "model.onnx" if onnx_info else None},
        "onnx": dict(onnx_info) if onnx_info else None,
    }
    validate_card(card)
    return card


def validate_card(card: Any, where: str = "model card") -> dict[str, Any]:
    """Check the fields a loader relies on; returns the card."""
    if not isinstance(card, Mapping):
        raise CardError(f"{where}: expected a JSON object")
    if card.get("format") != CARD_FORMAT:
        raise CardError(f"{where}: not a {CARD_FORMAT} (format={card.get('format')!r})")
    missing = [f for f in REQUIRED_FIELDS if f not in card]
    if missing:
        raise CardError(f"{where}: missing fields {', '.join(missing)}")
    if card["role"] not in ("teacher", "student"):
        raise CardError(f"{where}: role must be 'teacher' or 'student', got {card['role']!r}")
    mods: Sequence[str] = card["modalities"]
    if not mods or any(m not in card["input_shapes"] for m in mods):
        raise CardError(f"{where}: every modality needs an input shape ({list(mods)} vs "
                        f"{list(card['input_shapes'])})")
    for m in mods:
        if int(card["input_shapes"][m][0]) != int(card["P"]):
            raise CardError(f"{where}: input {m!r} has window {card['input_shapes'][m][0]} but P = {card['P']}")
    return dict(card)

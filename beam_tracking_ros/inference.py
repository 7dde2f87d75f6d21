"""Load an exported model for inference: one predictor API over PyTorch and ONNX Runtime.

Why apart from training: the live tracker loads a model on an RSU and must not pull in the trainer
(DataLoader, ``torch.distributed``, the distillation losses). This module depends on ``models/`` only
(the registry to rebuild the architecture, the card, the safe checkpoint reader); ``train/export.py``
writes what it reads. Layout of an exported model::

    models/<name>/
      model.pt          state dict (tensors only; loaded with weights_only=True)
      model.onnx        opset >= 17, inputs named per modality (B, P, ...), dynamic batch,
                        output ``logits`` (B, H+1, C)
      model_card.json   see models/card.py

:func:`load_model` returns a predictor with one API for both backends::

    predictor, card = load_model("models/student_radar_mlp", backend="onnx")
    logits = predictor.predict({"radar_points": window})   # window (1, P, ...) -> logits (1, H+1, C)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .models.card import CardError, validate_card
from .models.checkpoint import CheckpointError, load_state_dict_checked, read_json, safe_load
from .models.registry import model_factory

__all__ = ["CardError", "CheckpointError", "OnnxPredictor", "TorchPredictor", "build_from_card",
           "check_against_card", "load_model"]

LOG = logging.getLogger(__name__)


def ort_session(path: Path, threads: int = 1) -> Any:
    """CPU session tuned for small models: one intra-op thread, no busy-wait spinning between calls."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise CheckpointError(f"ONNX model {str(path)!r}: cannot be loaded ({str(exc).splitlines()[0]})") from None


class _Predictor:
    """Common input checking: ``inputs[m]`` is ``(B, P, ...)`` (or ``(P, ...)``, batch 1 added)."""

    backend = "none"

    def __init__(self, card: Mapping[str, Any]) -> None:
        self.card = dict(card)
        self.modalities: tuple[str, ...] = tuple(card["modalities"])
        self.input_shapes = {m: tuple(int(s) for s in card["input_shapes"][m]) for m in self.modalities}
        self.P, self.H = int(card["P"]), int(card["H"])
        self.num_beams = int(card["num_beams"])

    def _arrays(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(inputs, Mapping):
            raise ValueError(f"inputs: expected a dict of modality arrays, got {type(inputs).__name__}")
        missing = [m for m in self.modalities if m not in inputs]
        if missing:
            raise ValueError(f"inputs: missing modality {missing} (the model reads {list(self.modalities)})")
        out = {}
        for m in self.modalities:
            a = np.asarray(inputs[m], dtype=np.float32)
            if a.shape == self.input_shapes[m]:
                a = a[None]
            if a.shape[1:] != self.input_shapes[m]:
                raise ValueError(f"inputs[{m!r}]: expected shape (B, {', '.join(map(str, self.input_shapes[m]))}), "
                                 f"got {a.shape}")
            out[m] = np.ascontiguousarray(a)
        batches = {a.shape[0] for a in out.values()}
        if len(batches) != 1:
            sizes = {m: a.shape[0] for m, a in out.items()}
            raise ValueError(f"inputs: modalities disagree on the batch size: {sizes}")
        return out

    def predict(self, inputs: Mapping[str, Any]) -> np.ndarray:
        """Logits ``(B, H+1, C)`` for a batch of observation windows."""
        raise NotImplementedError


class TorchPredictor(_Predictor):
    """PyTorch backend (CPU or CUDA), inference mode."""

    backend = "torch"

    def __init__(self, model: nn.Module, card: Mapping[str, Any], device: str = "cpu") -> None:
        super().__init__(card)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def predict(self, inputs: Mapping[str, Any]) -> np.ndarray:
        arrays = self._arrays(inputs)
        with torch.inference_mode():
            out = self.model({m: torch.from_numpy(a).to(self.device) for m, a in arrays.items()})
        logits = out["logits"] if isinstance(out, Mapping) else out
        return logits.float().cpu().numpy()


class OnnxPredictor(_Predictor):
    """ONNX Runtime CPU backend (one intra-op thread, no spinning: small models, low jitter)."""

    backend = "onnx"

    def __init__(self, path: Path, card: Mapping[str, Any], threads: int = 1) -> None:
        super().__init__(card)
        self.session = ort_session(path, threads)
        names = [i.name for i in self.session.get_inputs()]
        if sorted(names) != sorted(self.modalities):
            raise CardError(f"{path}: ONNX inputs {names} do not match the card's modalities {list(self.modalities)}")

    def predict(self, inputs: Mapping[str, Any]) -> np.ndarray:
        return self.session.run(["logits"], self._arrays(inputs))[0]


def _inside(d: Path, name: str, what: str) -> Path:
    """``d / name``, refused when it leaves the model directory (an absolute path, ``..``)."""
    path = (d / name).resolve()
    if not path.is_relative_to(d.resolve()):
        raise CardError(f"{d / 'model_card.json'}: files.{what} {name!r} points outside the model directory")
    return path


def _expected(card: Mapping[str, Any]) -> tuple[dict[str, tuple[int, ...]], tuple[int, int]]:
    """Per-modality input shape (P, ...) and output shape (H + 1, C) the card promises."""
    inputs = {m: tuple(int(v) for v in card["input_shapes"][m]) for m in card["modalities"]}
    return inputs, (int(card["H"]) + 1, int(card["num_beams"]))


def check_against_card(predictor: TorchPredictor | OnnxPredictor, card: Mapping[str, Any], where: str) -> None:
    """The model must take what the card says and answer (H + 1, C) with C the codebook's size: a card that
    disagrees would otherwise be accepted and then fail (or predict from misread inputs) on every frame."""
    size = (card.get("codebook") or {}).get("size")
    if size is not None and int(size) != int(card["num_beams"]):
        raise CardError(f"{where}: num_beams {card['num_beams']} but the codebook has {size} patterns")
    inputs, out = _expected(card)
    if isinstance(predictor, OnnxPredictor):
        for i in predictor.session.get_inputs():
            dims = tuple(i.shape[1:])
            if i.name in inputs and dims != inputs[i.name]:
                raise CardError(f"{where}: the ONNX input {i.name!r} is (batch, {', '.join(map(str, dims))}) but the "
                                f"card says (batch, {', '.join(map(str, inputs[i.name]))}) (P = {card['P']})")
        dims = tuple(predictor.session.get_outputs()[0].shape[1:])
        if dims != out:
            raise CardError(f"{where}: the ONNX output is (batch, {', '.join(map(str, dims))}) but the card says "
                            f"(batch, H + 1 = {out[0]}, num_beams = {out[1]})")
        return
    try:
        logits = predictor.predict({m: np.zeros((1, *shape), np.float32) for m, shape in inputs.items()})
    except Exception as exc:  # the network cannot take the card's shapes
        raise CardError(f"{where}: the model does not take the card's input shapes {inputs}: "
                        f"{str(exc).splitlines()[0]}") from None
    if tuple(logits.shape[1:]) != out:
        raise CardError(f"{where}: the model answers {tuple(logits.shape[1:])} per sample but the card says "
                        f"(H + 1 = {out[0]}, num_beams = {out[1]})")


def load_model(
    model_dir: str | Path, backend: str = "auto", device: str = "cpu", threads: int = 1,
) -> tuple[TorchPredictor | OnnxPredictor, dict[str, Any]]:
    """Load an exported model: ``(predictor, card)``; ``predictor.predict(inputs) -> logits (B, H+1, C)``.

    backend: 'torch', 'onnx', or 'auto' (ONNX when the card names an ONNX file that is there, else PyTorch,
    saying so in the log when the card named one that is missing). Nothing from the directory can execute
    code: the card is JSON, the weights go through the restricted unpickler, and an ONNX file is a graph of
    operators; the card's files must lie inside the directory, and the model is checked against the card
    (input shapes, window, output size, codebook) before it is returned.
    """
    d = Path(model_dir)
    if backend not in ("auto", "torch", "onnx"):
        raise ValueError(f"backend: expected 'auto', 'torch' or 'onnx', got {backend!r}")
    if not d.is_dir():
        raise CheckpointError(f"model {str(d)!r}: no such directory")
    where = str(d / "model_card.json")
    card = validate_card(read_json(d / "model_card.json", "model card"), where)
    onnx_name = card["files"].get("onnx")
    onnx_file = _inside(d, onnx_name, "onnx") if onnx_name else None
    weights = _inside(d, card["files"].get("weights") or "model.pt", "weights")
    if backend == "auto":
        backend = "onnx" if onnx_file is not None and onnx_file.is_file() else "torch"
        if onnx_file is not None and backend == "torch":
            LOG.warning("model %s: the card names %s but it is missing; backend auto uses the PyTorch weights",
                        d, onnx_name)
    if backend == "onnx":
        if onnx_file is None or not onnx_file.is_file():
            raise CheckpointError(f"model {str(d)!r}: backend 'onnx' requested but "
                                  f"{onnx_name or 'no ONNX file'} is {'missing' if onnx_name else 'in the card'}")
        predictor: TorchPredictor | OnnxPredictor = OnnxPredictor(onnx_file, card, threads)
    else:
        predictor = TorchPredictor(build_from_card(card, weights, where), card, device)
    check_against_card(predictor, card, where)
    return predictor, card


def build_from_card(card: Mapping[str, Any], weights: Path, where: str) -> nn.Module:
    """The card's architecture with its weights (restricted unpickler, keys and shapes checked)."""
    arch = card["architecture"]
    try:
        factory, _ = model_factory(arch["name"])
        model = factory(**dict(arch["kwargs"]))
    except (TypeError, ValueError) as exc:
        raise CardError(f"{where}: architecture {arch['name']!r} cannot be built ({exc})") from None
    state = safe_load(weights, "model weights")
    load_state_dict_checked(model, state, f"model weights {str(weights)!r}")
    return model.eval()

"""Export a trained run to ``models/<name>/`` (weights, ONNX, model card) and load it back for inference.

Why both formats: the PyTorch state dict reproduces and fine-tunes the model exactly; ONNX Runtime runs a
small student on the RSU's CPU with a fraction of PyTorch's per-call overhead. The card says which
modalities, preprocessing, P, H and codebook the model expects, so the live tracker can refuse a model
that does not match its sensors.

Layout of an exported model::

    models/<name>/
      model.pt          state dict (tensors only; loaded with weights_only=True)
      model.onnx        opset >= 17, inputs named per modality (B, P, ...), dynamic batch,
                        output ``logits`` (B, H+1, C)
      model_card.json   see card.py

:func:`load_model` returns a predictor with one API for both backends::

    predictor, card = load_model("models/student_radar_mlp", backend="onnx")
    logits = predictor.predict({"radar_points": window})   # window (1, P, ...) -> logits (1, H+1, C)
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .card import CardError, count_flops, make_model_card, validate_card
from .checkpoint import CheckpointError, load_state_dict_checked, read_json, safe_load, save_tensors, write_json
from .trainer import build_model, count_parameters, load_run

__all__ = ["ExportError", "OnnxPredictor", "TorchPredictor", "export_run", "load_model"]

MIN_OPSET = 17


class ExportError(RuntimeError):
    """Export failed (ONNX conversion, or ONNX Runtime disagreeing with PyTorch)."""


class _LogitsOnly(nn.Module):
    """Positional inputs in the card's modality order -> logits, the graph ONNX gets."""

    def __init__(self, model: nn.Module, modalities: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.modalities = tuple(modalities)

    def forward(self, *xs: Tensor) -> Tensor:
        out = self.model(dict(zip(self.modalities, xs, strict=True)))
        return out["logits"] if isinstance(out, Mapping) else out


def _example(card_model: Mapping[str, Any], batch: int, seed: int = 0) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.rand(batch, *card_model["input_shapes"][m], generator=g) for m in card_model["modalities"]}


def export_run(
    run_dir: str | Path, out_dir: str | Path, name: str | None = None, opset: int = MIN_OPSET,
    onnx: bool = True, atol: float = 1e-4, overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``out_dir`` (model.pt, model.onnx, model_card.json) from a run; returns the card.

    The ONNX graph is checked with onnx.checker and run with ONNX Runtime on random inputs at two batch
    sizes; the largest absolute difference to PyTorch goes into the card, and more than ``atol``
    (relative to the logits' scale) is an :class:`ExportError`.
    """
    if opset < MIN_OPSET:
        raise ValueError(f"opset: must be >= {MIN_OPSET}, got {opset}")
    model, run_card = load_run(run_dir, "cpu")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"--out {str(out)!r} is not empty (pass --overwrite to replace it)")
        shutil.rmtree(out)
    name = name or out.name
    m = run_card["model"]
    example1 = _example(m, 1)
    flops = count_flops(model, example1)
    params = count_parameters(model)
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        save_tensors({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
        onnx_info = _export_onnx(model, m, tmp / "model.onnx", opset, atol) if onnx else None
        card = make_model_card(run_card, name=name, parameters=params, flops=flops, onnx_info=onnx_info)
        write_json(card, tmp / "model_card.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)  # the directory appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return card


def _export_onnx(model: nn.Module, m: Mapping[str, Any], path: Path, opset: int, atol: float) -> dict[str, Any]:
    import warnings

    import onnx
    import onnxruntime as ort

    mods = list(m["modalities"])
    wrapper = _LogitsOnly(model, mods).eval()
    ex = _example(m, 2)
    dyn = {k: {0: "batch"} for k in mods}
    dyn["logits"] = {0: "batch"}
    try:
        # Grad mode stays on while tracing: with it off, nn.TransformerEncoderLayer takes its fused
        # "fast path" kernel, which has no ONNX export.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, tuple(ex[k] for k in mods), str(path), input_names=mods, output_names=["logits"],
                dynamic_axes=dyn, opset_version=opset, dynamo=False, do_constant_folding=True,
            )
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise ExportError(f"ONNX export of {m['name']!r} failed: {str(exc).splitlines()[0]}") from None
    sess = _ort_session(path, threads=1)
    max_diff = 0.0
    for batch in (1, 3):
        x = _example(m, batch, seed=batch)
        with torch.no_grad():
            ref = wrapper(*(x[k] for k in mods)).numpy()
        got = sess.run(["logits"], {k: x[k].numpy() for k in mods})[0]
        if got.shape != ref.shape:
            raise ExportError(f"ONNX output shape {got.shape} differs from PyTorch {ref.shape} at batch {batch}")
        diff = float(np.max(np.abs(got - ref)))
        scale = max(1.0, float(np.max(np.abs(ref))))
        if diff > atol * scale:
            raise ExportError(f"ONNX Runtime disagrees with PyTorch: max |diff| {diff:.3g} > {atol * scale:.3g} "
                              f"(batch {batch})")
        max_diff = max(max_diff, diff)
    return {"opset": opset, "inputs": {k: ["batch", *m["input_shapes"][k]] for k in mods},
            "output": {"logits": ["batch", m["horizon"] + 1, m["num_beams"]]}, "dynamic_batch": True,
            "max_abs_diff": max_diff, "onnxruntime_version": ort.__version__, "onnx_version": onnx.__version__}


def _ort_session(path: Path, threads: int = 1) -> Any:
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


# --------------------------------------------------------------------------------------------------
# Loading for inference
# --------------------------------------------------------------------------------------------------
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
        self.session = _ort_session(path, threads)
        names = [i.name for i in self.session.get_inputs()]
        if sorted(names) != sorted(self.modalities):
            raise CardError(f"{path}: ONNX inputs {names} do not match the card's modalities {list(self.modalities)}")

    def predict(self, inputs: Mapping[str, Any]) -> np.ndarray:
        return self.session.run(["logits"], self._arrays(inputs))[0]


def load_model(
    model_dir: str | Path, backend: str = "auto", device: str = "cpu", threads: int = 1,
) -> tuple[TorchPredictor | OnnxPredictor, dict[str, Any]]:
    """Load an exported model: ``(predictor, card)``; ``predictor.predict(inputs) -> logits (B, H+1, C)``.

    backend: 'torch', 'onnx', or 'auto' (ONNX when ``model.onnx`` exists, else PyTorch). Nothing from the
    directory can execute code: the card is JSON, the weights go through the restricted unpickler, and
    an ONNX file is a graph of operators.
    """
    d = Path(model_dir)
    if backend not in ("auto", "torch", "onnx"):
        raise ValueError(f"backend: expected 'auto', 'torch' or 'onnx', got {backend!r}")
    if not d.is_dir():
        raise CheckpointError(f"model {str(d)!r}: no such directory")
    card = validate_card(read_json(d / "model_card.json", "model card"), str(d / "model_card.json"))
    onnx_file = d / (card["files"].get("onnx") or "model.onnx")
    if backend == "auto":
        backend = "onnx" if onnx_file.is_file() else "torch"
    if backend == "onnx":
        if not onnx_file.is_file():
            raise CheckpointError(f"model {str(d)!r}: backend 'onnx' requested but {onnx_file.name} is missing")
        return OnnxPredictor(onnx_file, card, threads), card
    arch = card["architecture"]
    model = build_model(arch["name"], arch["kwargs"])
    state = safe_load(d / card["files"].get("weights", "model.pt"), "model weights")
    load_state_dict_checked(model, state, f"model weights {str(d / 'model.pt')!r}")
    return TorchPredictor(model, card, device), card

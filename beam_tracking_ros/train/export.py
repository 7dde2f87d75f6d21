"""Export a trained run to ``models/<name>/`` (weights, ONNX, model card); ``inference.py`` loads it.

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

The loader (``beam_tracking_ros.inference.load_model``) lives apart so that the live tracker imports no
training code.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..inference import ort_session
from ..models.card import make_model_card
from ..models.checkpoint import save_tensors, write_json
from ..models.registry import count_flops, count_parameters
from .trainer import load_run

__all__ = ["ExportError", "export_run"]

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
    sess = ort_session(path, threads=1)
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

"""Safe checkpoints: tensors through ``torch.load(weights_only=True)``, everything else in JSON sidecars.

Why: a ``.pt`` file is a pickle, and unpickling can run arbitrary code. Models are downloaded and copied
onto training machines and RSUs, so a checkpoint must never be able to execute anything. Here:

* tensor files hold only state dicts (tensors, numbers, strings, lists, dicts) and are read with the
  restricted unpickler of ``torch.load(weights_only=True)``; a file that references any other global
  (a class, a function such as ``os.system``) is **refused** with :class:`UnsafeCheckpointError` before
  anything from it is called;
* configuration and metadata live in a ``.json`` sidecar next to it (plain data by construction);
* a truncated or corrupted file is a :class:`CheckpointError` that says so, not a deep traceback;
* :func:`load_state_dict_checked` compares a state dict with the model and lists the missing and
  unexpected keys and the shape mismatches before loading anything.
"""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io.files import atomic_write_bytes, atomic_write_json

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "load_state_dict_checked",
    "read_json",
    "safe_load",
    "save_tensors",
    "write_json",
]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, corrupted, truncated, or not fitting the model."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that would execute code or build arbitrary objects when unpickled."""


def save_tensors(obj: Mapping[str, Any], path: str | Path) -> None:
    """``torch.save`` of plain containers of tensors, atomically; refuses to *write* arbitrary objects.

    Writing is checked too, so that every file this package produces is loadable with weights_only.
    """
    import io

    buf = io.BytesIO()
    torch.save(dict(obj), buf)
    raw = buf.getvalue()
    try:
        torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refusing to save objects that a safe load would reject ({exc})") from None
    atomic_write_bytes(Path(path), raw)


_SAFE_GLOBAL_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset")


def _pickle_globals(p: Path) -> list[str]:
    """Names of the globals a pickle references, found by *reading* opcodes (nothing is executed).

    Only used to make the refusal message say what the file would have imported (e.g. ``posix.system``).
    """
    import pickletools

    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                name = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                data = zf.read(name) if name else b""
        else:
            data = p.read_bytes()
        found: list[str] = []
        strings: list[str] = []
        for op, arg, _pos in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(str(arg))
            elif op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
        return list(dict.fromkeys(g for g in found if not g.startswith(_SAFE_GLOBAL_PREFIXES)))
    except Exception:  # a damaged stream: the loader's own message is enough
        return []


def _unsafe_detail(message: str, p: Path) -> str:
    """What the file references beyond tensors, e.g. 'posix.system'."""
    names = _pickle_globals(p)
    if names:
        return "references " + ", ".join(names[:5])
    for line in message.splitlines():
        line = line.strip()
        if "unsupported GLOBAL" in line or "Unsupported" in line or "Trying to" in line:
            return line.rstrip(".")
    return "objects the safe unpickler does not allow"


def safe_load(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """Load a tensor file with the restricted unpickler; clear errors for unsafe/corrupt/missing files."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{what} {str(p)!r}: no such file")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{what} {str(p)!r}: file is empty (corrupted or truncated)")
    try:
        with warnings.catch_warnings():  # protocol warnings of hand-made pickles: the error below says more
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "Weights only load failed" in msg or "Unsupported" in msg or "unsupported" in msg:
            raise UnsafeCheckpointError(
                f"refusing to load {what} {str(p)!r}: it contains code/objects beyond tensors and plain "
                f"containers ({_unsafe_detail(msg, p)}); loading it could execute code from the file"
            ) from None
        raise CheckpointError(f"{what} {str(p)!r}: corrupted or truncated ({msg.splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{what} {str(p)!r}: corrupted or truncated ({first})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} {str(p)!r}: expected a dict of tensors, got {type(obj).__name__}")
    return obj


def write_json(obj: Any, path: str | Path) -> None:
    """Atomically write a JSON sidecar (sorted keys, readable)."""
    atomic_write_json(path, obj)


def read_json(path: str | Path, what: str = "metadata") -> dict[str, Any]:
    """Read a JSON sidecar with clear errors."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{what} {str(p)!r}: no such file")
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{what} {str(p)!r}: not valid JSON, corrupted or truncated ({exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} {str(p)!r}: expected a JSON object")
    return obj


def _listing(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def load_state_dict_checked(model: nn.Module, state: Mapping[str, Any], what: str = "checkpoint") -> None:
    """Load ``state`` into ``model`` only if it fits exactly; otherwise say which tensors do not."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{what}: expected a state dict, got {type(state).__name__}")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} (checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)})"
        for k in own
        if k in state and isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    not_tensor = [k for k in own if k in state and not isinstance(state[k], torch.Tensor)]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {_listing(mismatched)}")
    if not_tensor:
        problems.append(f"not tensors: {_listing(not_tensor)}")
    if problems:
        raise CheckpointError(f"{what} does not fit the model {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(dict(state), strict=True)

"""Safe checkpoint loading: code in a pickle is refused (and never runs), corruption and misfits are named."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from beam_tracking_ros.models.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    load_state_dict_checked,
    safe_load,
    save_tensors,
)


class _RunsCode:
    """Unpickling this would call os.system: the attack a downloaded model could carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_torch_checkpoint_with_code_is_refused_and_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.ones(3), "payload": _RunsCode(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        safe_load(path)
    msg = str(err.value)
    assert "refusing to load" in msg and "code/objects" in msg and "system" in msg
    assert not marker.exists()


def test_plain_pickle_with_code_is_refused_and_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned2"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"model": _RunsCode(marker)}, fh)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        safe_load(path)
    assert not marker.exists()


def test_truncated_and_garbage_files_are_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    save_tensors({"w": torch.randn(64, 64)}, good)
    assert safe_load(good)["w"].shape == (64, 64)
    data = good.read_bytes()
    for i, cut in enumerate((len(data) // 2, len(data) - 40, 10)):
        bad = tmp_path / f"trunc{i}.pt"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="corrupted or truncated"):
            safe_load(bad)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        safe_load(empty)
    with pytest.raises(CheckpointError, match="no such file"):
        safe_load(tmp_path / "missing.pt")


def test_state_dict_that_does_not_fit_lists_what(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["0.weight"] = torch.zeros(8, 5)  # shape mismatch
    del state["2.bias"]  # missing
    state["3.weight"] = torch.zeros(1)  # unexpected
    before = model[0].weight.detach().clone()
    with pytest.raises(CheckpointError) as err:
        load_state_dict_checked(model, state, "ckpt")
    msg = str(err.value)
    assert "missing keys: 2.bias" in msg
    assert "unexpected keys: 3.weight" in msg
    assert "0.weight (checkpoint (8, 5) vs model (8, 4))" in msg
    assert torch.equal(model[0].weight, before)  # nothing half-loaded


def test_save_refuses_objects_a_safe_load_would_reject(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="refusing to save"):
        save_tensors({"module": nn.Linear(2, 2)}, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()

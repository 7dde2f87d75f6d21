"""Two-process DistributedDataParallel training on CPU (gloo) through torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent('''
    import hashlib, json, os, sys
    import torch
    from beam_tracking_ros.train.config import config_from_dict
    from beam_tracking_ros.train.api import fit
    torch.set_num_threads(1)
    out = sys.argv[1]
    cfg = config_from_dict({
        "name": "ddp", "role": "teacher",
        "data": {"synthetic": {"num_samples": 64, "num_beams": 8, "P": 4, "H": 2}, "modalities": ["gps"]},
        "model": {"name": "toy-gru", "kwargs": {"hidden": 8}},
        "train": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "seed": 3, "device": "cpu"},
    })
    res = fit(cfg, out + "/run", progress=False, log=lambda m: None)
    h = hashlib.sha256()
    for k in sorted(res.state_dict):
        h.update(k.encode()); h.update(res.state_dict[k].numpy().tobytes())
    rank = int(os.environ["RANK"])
    with open(f"{out}/rank{rank}.json", "w") as fh:
        json.dump({"rank": rank, "world": int(os.environ["WORLD_SIZE"]), "hash": h.hexdigest(),
                   "steps": res.history[-1]["global_step"], "val": res.history[-1]["val"]["atop1"],
                   "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None}, fh)
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_gloo_train_the_same_model(tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(script), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == 2
    # DistributedSampler gives each rank half the 64 samples: 32 / 8 = 4 steps per epoch, 2 epochs.
    assert r0["steps"] == r1["steps"] == 8
    assert r0["hash"] == r1["hash"]  # gradients were averaged: identical weights on both ranks
    assert r0["val"] == r1["val"]
    # Only rank 0 wrote: one log line per epoch, not two.
    lines = (tmp_path / "run" / "log.jsonl").read_text().strip().splitlines()
    assert len(lines) == 2
    assert (tmp_path / "run" / "model.pt").is_file()

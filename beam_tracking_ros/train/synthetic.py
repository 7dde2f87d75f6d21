"""In-memory synthetic beam-tracking data, for tests and smoke runs of the trainer (its model: models/toy.py).

Why: the trainer's own behaviour (determinism, resume, NaN stop, DDP, export) must be testable in
seconds without the simulator, and a smoke config must run on a machine without a dataset. The data
is *learnable*: every modality observes the same moving vehicle (its azimuth sweeps across the
codebook), and the optimal beam of each horizon step is the beam pointing at the vehicle's future
azimuth, so a model that extrapolates the motion scores well above chance.

Samples follow the dataset store contract: modality arrays ``(P, ...)`` float32, ``beams`` int64
``(H+1,)``, ``powers_dbm`` float32 ``(H+1, B)``, ``stamp`` float64, ``episode`` int64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..models.toy import ToyBeamModel

__all__ = ["SYNTHETIC_SHAPES", "SyntheticBeamDataset", "ToyBeamModel", "synthetic_arrays"]

#: per-frame shapes of each synthetic modality (after the leading P axis)
SYNTHETIC_SHAPES: dict[str, tuple[int, ...]] = {
    "gps": (3,),
    "radar_points": (16, 6),
    "lidar_feat": (32,),
    "camera": (3, 16, 16),
    "camera_gray": (1, 16, 16),
    "camera_motion": (1, 16, 16),
    "radar_maps": (2, 16, 16),
    "lidar_bev": (3, 16, 16),
}
_SPLIT_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_003}
_ALLOWED = ("num_samples", "P", "H", "num_beams", "seed", "noise", "episode_length", "nan_index")


def synthetic_arrays(
    n: int, modalities: Sequence[str], P: int = 8, H: int = 3, num_beams: int = 16, seed: int = 0,
    noise: float = 0.05, episode_length: int = 50,
) -> dict[str, np.ndarray]:
    """``n`` samples as stacked arrays (vectorized over samples, frames and beams)."""
    rng = np.random.default_rng(seed)
    T = P + H
    az0 = rng.uniform(-1.2, 1.2, n)
    omega = rng.uniform(-0.12, 0.12, n)
    dist = rng.uniform(10.0, 60.0, n)
    t = np.arange(T) - (P - 1)  # t = 0 is the newest observed frame
    az = np.clip(az0[:, None] + omega[:, None] * t[None, :], -1.45, 1.45)  # (n, T)
    centers = np.linspace(-1.45, 1.45, num_beams)
    width = centers[1] - centers[0] if num_beams > 1 else 1.0
    gain = -np.minimum(((az[..., None] - centers) / width) ** 2 * 3.0, 40.0)  # (n, T, B) beam pattern, dB
    powers = (-70.0 - 20.0 * np.log10(dist)[:, None, None] + gain).astype(np.float32)
    future = powers[:, P - 1:]  # (n, H+1, B): current frame and H future frames
    out: dict[str, np.ndarray] = {
        "beams": future.argmax(-1).astype(np.int64),
        "powers_dbm": future,
        "stamp": (np.arange(n) * 0.1).astype(np.float64),
        "episode": (np.arange(n) // max(1, episode_length)).astype(np.int64),
    }
    obs = az[:, :P]  # (n, P)
    for m in modalities:
        if m == "gps":
            x = np.stack([np.cos(obs) * dist[:, None] / 60, np.sin(obs) * dist[:, None] / 60,
                          np.zeros_like(obs)], -1)
        elif m == "radar_points":
            k = SYNTHETIC_SHAPES["radar_points"][0]
            jitter = rng.normal(0.0, 0.05, (n, P, k))
            a = obs[..., None] + jitter
            r = dist[:, None, None] + rng.normal(0.0, 1.0, (n, P, k))
            x = np.stack([r * np.cos(a) / 60, r * np.sin(a) / 60, np.zeros_like(a),
                          np.broadcast_to(omega[:, None, None], a.shape), r / 60, np.ones_like(a)], -1)
        elif m == "lidar_feat":
            bins = np.linspace(-1.5, 1.5, SYNTHETIC_SHAPES["lidar_feat"][0])
            x = np.exp(-((obs[..., None] - bins) / 0.1) ** 2)
        elif m in ("camera", "camera_gray", "camera_motion", "radar_maps", "lidar_bev"):
            c, h, w = SYNTHETIC_SHAPES[m]
            cols = np.linspace(-1.5, 1.5, w)
            rows = np.linspace(0.0, 1.0, h)
            blob_x = np.exp(-((obs[..., None] - cols) / 0.15) ** 2)  # (n, P, w)
            blob_y = np.exp(-((rows - 0.5) / 0.2) ** 2)  # (h,)
            img = blob_y[None, None, :, None] * blob_x[:, :, None, :]  # (n, P, h, w)
            x = np.repeat(img[:, :, None], c, axis=2)
        else:
            raise ValueError(f"modalities: unknown modality {m!r}")
        x = x + rng.normal(0.0, noise, x.shape)
        out[m] = x.astype(np.float32)
    return out


class SyntheticBeamDataset(torch.utils.data.Dataset):
    """torch Dataset of synthetic samples (dicts of tensors, like the store's ``BeamDataset``)."""

    def __init__(self, spec: Mapping[str, Any], split: str, modalities: Sequence[str]) -> None:
        unknown = [k for k in spec if k not in _ALLOWED]
        if unknown:
            raise ValueError(f"data.synthetic: unknown keys {unknown}; allowed: {', '.join(_ALLOWED)}")
        if split not in _SPLIT_OFFSET:
            raise ValueError(f"split: expected one of {tuple(_SPLIT_OFFSET)}, got {split!r}")
        n = int(spec.get("num_samples", 256))
        if split != "train":
            n = max(16, n // 4)
        self.P = int(spec.get("P", 8))
        self.H = int(spec.get("H", 3))
        self.num_beams = int(spec.get("num_beams", 16))
        if n < 1 or self.P < 1 or self.H < 0 or self.num_beams < 2:
            raise ValueError(f"data.synthetic: need num_samples >= 1, P >= 1, H >= 0, num_beams >= 2: {spec}")
        self.modalities = list(modalities)
        self.arrays = synthetic_arrays(
            n, self.modalities, self.P, self.H, self.num_beams,
            seed=int(spec.get("seed", 0)) + _SPLIT_OFFSET[split], noise=float(spec.get("noise", 0.05)),
            episode_length=int(spec.get("episode_length", 50)),
        )
        nan_index = spec.get("nan_index")
        if nan_index is not None and split == "train":
            # Fault injection (tests of the NaN stop): one training sample whose inputs are NaN.
            for m in self.modalities:
                self.arrays[m][int(nan_index)] = np.nan
        self.meta = {"P": self.P, "H": self.H, "codebook_size": self.num_beams,
                     "codebook_id": f"synthetic-{self.num_beams}", "source": "synthetic", "spec": dict(spec)}

    def __len__(self) -> int:
        return len(self.arrays["beams"])

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {k: torch.as_tensor(v[index]) for k, v in self.arrays.items()}

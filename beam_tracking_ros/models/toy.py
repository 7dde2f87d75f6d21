"""``toy-gru``: a tiny per-frame encoder + GRU model over any inputs, the trainer's test model.

Why in ``models/`` and not next to the synthetic data: an exported toy run is a model like any other,
and the inference loader (``inference.py``) must rebuild it from its card without importing training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

__all__ = ["TOY_NAMES", "ToyBeamModel"]

#: the names a run config may give this model
TOY_NAMES: tuple[str, ...] = ("toy-gru", "toy")


class ToyBeamModel(nn.Module):
    """A small per-frame encoder + GRU + per-step head; the trainer's test model.

    Output dict like the package's models: ``logits (B, H+1, C)``, ``mid (B, hidden)`` (GRU state) and
    ``end (B, hidden)`` (features before the head).
    """

    def __init__(
        self, input_shapes: Mapping[str, Sequence[int]], num_beams: int, horizon: int, hidden: int = 32,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.modalities = tuple(input_shapes)
        self.num_beams = int(num_beams)
        self.horizon = int(horizon)
        self.encoders = nn.ModuleDict({
            m: nn.Sequential(nn.Flatten(2), nn.Linear(math.prod(tuple(s)[1:]), hidden), nn.ReLU())
            for m, s in input_shapes.items()
        })
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.end = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, (self.horizon + 1) * self.num_beams)

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        feats = sum(self.encoders[m](inputs[m].float()) for m in self.modalities)  # (B, P, hidden)
        _, h = self.gru(feats)
        mid = h[-1]
        end = self.end(mid)
        logits = self.head(end).reshape(-1, self.horizon + 1, self.num_beams)
        return {"logits": logits, "mid": mid, "end": end}

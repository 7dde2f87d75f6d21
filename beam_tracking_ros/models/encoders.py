"""Per-modality encoders shared by the teachers and students.

Why per-frame encoders: every model sees a window ``(B, P, ...)``; encoders run on the ``B * P`` frames in
one batched call and return ``(B, P, d)`` so the temporal part (Transformer or GRU) stays modality-agnostic.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ConvEncoder", "GPSEncoder", "PointEncoder", "VectorEncoder", "depthwise_separable_conv"]


def _conv_block(cin: int, cout: int, separable: bool, stride: int = 1) -> nn.Sequential:
    if separable:
        return depthwise_separable_conv(cin, cout)
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def depthwise_separable_conv(cin: int, cout: int) -> nn.Sequential:
    """MobileNet's DS-Conv (Ma et al.'s student): 3x3 depthwise then 1x1 pointwise, each with BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ConvEncoder(nn.Module):
    """Small CNN for image-like frames (camera, motion masks, radar maps, LiDAR BEV) -> ``(B, P, out_dim)``.

    ``depth`` conv blocks, each followed by 2x2 max pooling, then global average pooling and a linear layer;
    ``separable=True`` swaps standard convolutions for depthwise-separable ones (Ma et al.'s student).
    The first block is always a standard convolution (a depthwise conv on 1-3 channels learns little) with
    stride ``stem_stride``: a strided stem quarters the FLOPs on 64x64 inputs, keeping CPU training fast.
    """

    def __init__(
        self,
        in_channels: int,
        width: int = 16,
        depth: int = 3,
        out_dim: int = 64,
        separable: bool = False,
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(depth):
            cout = width * (2**i)
            stride = stem_stride if i == 0 else 1
            layers += [_conv_block(c, cout, separable and i > 0, stride), nn.MaxPool2d(2, ceil_mode=True)]
            c = cout
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(c, out_dim)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        b, p = x.shape[:2]
        y = self.features(x.reshape(b * p, *x.shape[2:]))
        y = y.mean(dim=(2, 3))
        return torch.relu(self.proj(y)).reshape(b, p, self.out_dim)


class PointEncoder(nn.Module):
    """PointNet-style encoder for the HPS radar set ``(B, P, N, F)`` (last feature = valid flag).

    A shared per-point MLP followed by a max over the valid points (padding never wins the max), so the
    encoding does not depend on the point order.
    """

    def __init__(self, in_features: int = 6, width: int = 64, out_dim: int = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_features, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, width),
            nn.ReLU(inplace=True),
        )
        self.proj = nn.Linear(width, out_dim)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        valid = x[..., -1:] > 0.5
        h = self.mlp(x)
        h = torch.where(valid, h, torch.zeros_like(h))  # features are >= 0 (ReLU): zeros never beat a point
        return torch.relu(self.proj(h.amax(dim=-2)))


class VectorEncoder(nn.Module):
    """MLP for per-frame vectors ``(B, P, D)`` (LiDAR range profile)."""

    def __init__(self, in_features: int, width: int = 64, out_dim: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, out_dim),
            nn.ReLU(inplace=True),
        )
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class GPSEncoder(VectorEncoder):
    """MLP for the normalised RSU-relative position ``(B, P, 3)`` (CRKD: GPS through FC layers)."""

    def __init__(self, in_features: int = 3, width: int = 32, out_dim: int = 64) -> None:
        super().__init__(in_features, width, out_dim)

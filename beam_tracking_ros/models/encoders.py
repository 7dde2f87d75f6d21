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


def _pool_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(n_out, n_in)`` averaging weights of adaptive average pooling along one axis (cell i averages
    inputs ``floor(i n_in / n_out) .. ceil((i + 1) n_in / n_out)``, as ``nn.AdaptiveAvgPool2d``).

    Why a matrix: ``adaptive_avg_pool2d`` has no ONNX export when the batch axis is dynamic; two small
    constant matmuls export everywhere and cost nothing.
    """
    m = torch.zeros(n_out, n_in, dtype=dtype, device=device)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


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

    ``depth`` conv blocks, each followed by 2x2 max pooling, then pooling and a linear layer;
    ``separable=True`` swaps standard convolutions for depthwise-separable ones (Ma et al.'s student).
    The first block is always a standard convolution (a depthwise conv on 1-3 channels learns little) with
    stride ``stem_stride``: a strided stem quarters the FLOPs on 64x64 inputs, keeping CPU training fast.

    ``grid``: 0 = global average pooling (translation-invariant: the encoding says *what* is in the frame
    but not *where*); ``g > 0`` = adaptive average pooling to ``g x g`` cells, flattened, so the linear
    layer sees where each feature fired. Why it matters here: the optimal beam is a function of where the
    vehicles are relative to the RSU; a globally pooled BEV or range-angle map throws exactly that away.
    ``coords``: append two normalised coordinate channels to the input (CoordConv, Liu et al. 2018), so
    even the first filters can respond to absolute position.
    """

    def __init__(
        self,
        in_channels: int,
        width: int = 16,
        depth: int = 3,
        out_dim: int = 64,
        separable: bool = False,
        stem_stride: int = 2,
        grid: int = 0,
        coords: bool = False,
    ) -> None:
        super().__init__()
        if grid < 0:
            raise ValueError(f"grid: must be >= 0, got {grid}")
        self.grid, self.coords = int(grid), bool(coords)
        layers: list[nn.Module] = []
        c = in_channels + (2 if coords else 0)
        for i in range(depth):
            cout = width * (2**i)
            stride = stem_stride if i == 0 else 1
            layers += [_conv_block(c, cout, separable and i > 0, stride), nn.MaxPool2d(2, ceil_mode=True)]
            c = cout
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(c * max(self.grid, 1) ** 2, out_dim)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        b, p = x.shape[:2]
        x = x.reshape(b * p, *x.shape[2:])
        if self.coords:
            h, w = x.shape[-2:]
            yy = torch.linspace(-1.0, 1.0, h, dtype=x.dtype, device=x.device)[:, None].expand(h, w)
            xx = torch.linspace(-1.0, 1.0, w, dtype=x.dtype, device=x.device)[None, :].expand(h, w)
            x = torch.cat([x, torch.stack([yy, xx]).expand(x.shape[0], 2, h, w)], dim=1)
        y = self.features(x)
        if self.grid:
            h, w = (int(n) for n in y.shape[-2:])
            ph, pw = (_pool_matrix(n, self.grid, y.dtype, y.device) for n in (h, w))
            y = torch.einsum("nchw,gh,kw->ncgk", y, ph, pw).flatten(1)
        else:
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
    """MLP for per-frame vectors ``(B, P, D)`` (LiDAR range profile); ``flatten`` takes ``(B, P, ...)``."""

    def __init__(self, in_features: int, width: int = 64, out_dim: int = 64, flatten: bool = False) -> None:
        super().__init__()
        self.flatten = flatten
        self.net = nn.Sequential(
            nn.Linear(in_features, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, out_dim),
            nn.ReLU(inplace=True),
        )
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(2) if self.flatten else x)


class GPSEncoder(VectorEncoder):
    """MLP for the normalised RSU-relative position ``(B, P, 3)`` (CRKD: GPS through FC layers)."""

    def __init__(self, in_features: int = 3, width: int = 32, out_dim: int = 64) -> None:
        super().__init__(in_features, width, out_dim)

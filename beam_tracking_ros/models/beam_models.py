"""The teacher and student models of the three papers, all with one interface.

``forward(batch)`` takes a dict of modality tensors shaped ``(B, P, ...)`` (keys from
``beam_tracking_ros.data.preprocess.output_shapes``) and returns a dict:

* ``logits`` ``(B, H + 1, num_beams)``: current beam and H future beams;
* ``mid``    ``(B, d_mid)``: intermediate features (KD-mid / RKD-mid, CRKD "after the encoder");
* ``end``    ``(B, d_end)``: the features right before the prediction heads (KD-end / RKD-end, and the
  "hidden state of the last layer" whose statistics are the data-free KD metadata).

Default sizes are small (train in minutes on 2 CPU cores); the paper-scale settings are named configs in
``registry.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from ..modalities import INPUT_SENSOR
from .encoders import ConvEncoder, GPSEncoder, PointEncoder, VectorEncoder

__all__ = ["LidarGRU", "MaStudent", "MultimodalTeacher", "RadarMLPStudent"]

IMAGE_CHANNELS = {"camera": 3, "camera_motion": 1, "camera_gray": 1, "radar_maps": 2, "lidar_bev": 3}
# beam-space features: each one a model reads is added to its logits by a learned skip; the first one a
# config lists takes the primary skip (single-target teachers list the fix first: it is the target's own)
BEAM_FEATURES = ("gps_beams", "lidar_beams", "radar_beams")
KNOWN_MODALITIES = tuple(INPUT_SENSOR)  # every model input of the vocabulary (modalities.py)


def _check_batch(batch: Mapping[str, Tensor], modalities: Sequence[str], window: int) -> None:
    for m in modalities:
        if m not in batch:
            raise ValueError(f"batch: missing modality {m!r} (model needs {tuple(modalities)})")
        if batch[m].dim() < 3 or batch[m].shape[1] != window:
            raise ValueError(f"batch[{m!r}]: expected (B, P={window}, ...), got {tuple(batch[m].shape)}")


class _Heads(nn.Module):
    """One linear classifier per horizon step (current + H future beams).

    ``residual=True`` starts them at zero: a model whose logits also get the beam-space feature (``beam_skip``)
    then starts as exactly that geometry and learns only the correction, instead of first drowning a
    0.95-MPR prior in the noise of randomly initialised heads.
    """

    def __init__(self, d: int, steps: int, num_beams: int, residual: bool = False) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(d, num_beams) for _ in range(steps))
        if residual:
            for h in self.heads:
                nn.init.zeros_(h.weight)
                nn.init.zeros_(h.bias)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([h(x) for h in self.heads], dim=1)


def _newest_beams(batch: Mapping[str, Tensor], key: str, horizon: int, num_beams: int) -> Tensor:
    """The newest frame of a beam-space feature, ``(B, H + 1, C)``: the geometry now and ahead, which the
    models add to their logits; its shape must be the logits' (``PreprocessConfig.geometry_horizon`` = H)."""
    beams = batch[key][:, -1]
    if tuple(beams.shape[1:]) != (horizon + 1, num_beams):
        raise ValueError(f"batch[{key!r}]: newest frame {tuple(beams.shape[1:])}, model predicts "
                         f"{(horizon + 1, num_beams)} (PreprocessConfig.geometry_horizon must be H)")
    return beams


def _newest_history(history: Tensor, num_beams: int) -> Tensor:
    """The newest frame of ``beam_history`` ``(B, 2, C)``, checked against the model's codebook."""
    newest = history[:, -1]
    if newest.dim() != 3 or newest.shape[1] != 2 or newest.shape[2] != num_beams:
        raise ValueError(f"batch['beam_history']: newest frame {tuple(newest.shape[1:])}, model predicts "
                         f"{num_beams} beams (expected (2, {num_beams}))")
    return newest


class _HistorySkip(nn.Module):
    """The beam history (``beam_history``: the previous frame's sweep, data/beam_history.py) added to the
    logits: per horizon step a learned weight on the measured relative power (row 0, -4 where not
    measured) and one on the mask (row 1). Zero at the start: the model first predicts as without it and
    learns how far last frame's measurements carry, step by step -- a beam measured strong 100 ms ago is
    likely strong now, less so three steps ahead."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, steps))

    def forward(self, logits: Tensor, newest: Tensor) -> Tensor:
        """``newest``: the window's newest history frame, ``(B, 2, C)`` (:func:`_newest_history`)."""
        return (logits + self.weight[0][None, :, None] * newest[:, None, 0]
                + self.weight[1][None, :, None] * newest[:, None, 1])


def _make_encoder(m: str, d: int, width: int, separable: bool, cfg: Mapping[str, int]) -> nn.Module:
    if m in IMAGE_CHANNELS:
        return ConvEncoder(IMAGE_CHANNELS[m], width=width, depth=3, out_dim=d, separable=separable,
                           grid=int(cfg.get("grid", 0)), coords=bool(cfg.get("coords", False)))
    if m == "radar_points":
        return PointEncoder(cfg.get("point_features", 6), width=4 * width, out_dim=d)
    if m == "lidar_feat":
        return VectorEncoder(cfg.get("lidar_feature_dim", 64), width=4 * width, out_dim=d)
    if m in BEAM_FEATURES:
        return VectorEncoder(cfg["beam_steps"] * cfg["num_beams"], width=4 * width, out_dim=d, flatten=True)
    if m == "gps":
        return GPSEncoder(3, width=2 * width, out_dim=d)
    if m == "beam_history":
        return VectorEncoder(2 * cfg["num_beams"], width=4 * width, out_dim=d, flatten=True)
    raise ValueError(f"modalities: unknown modality {m!r}; choose from {KNOWN_MODALITIES}")


class MultimodalTeacher(nn.Module):
    """Multimodal teacher: per-modality encoders, a fusion stage, and a head per horizon step.

    ``fusion='transformer'`` (CRKD): every modality's per-frame embedding is a token (plus learned modality
    and time embeddings); a Transformer encoder attends over all ``M * P`` tokens; ``end`` is the mean token.
    ``fusion='gru-mha'`` (Ma et al.): per-frame modality features are concatenated, fused by an MLP to
    ``d_model``, passed through a ``gru_layers``-layer GRU, then multi-head self-attention over the GRU
    outputs; ``end`` is the attended output of the newest step.
    ``mid`` is the time-averaged encoder output (before fusion), concatenated over modalities.

    ``grid`` / ``coords``: how the image encoders keep *where* things are (see ``ConvEncoder``); 0 / False
    is the papers' global pooling. ``image_frames``: how many of the newest frames the image-like
    modalities (BEV, maps, camera) are encoded for (None = all P); the CNNs dominate the cost, while the
    motion they would add over P frames is also in the cheap radar (Doppler) and GPS tokens. Transformer
    fusion only (its tokens need not line up in time; the GRU's per-frame concatenation does).

    With ``lidar_beams`` among the inputs (the beam-space LiDAR feature: each pattern's power predicted by
    the site's channel geometry for the detected vehicles, dB / 10 relative to the best), the newest frame's
    feature is also added to every horizon step's logits with a learned scale per step (``beam_skip``,
    initialised to 10: logits in dB, the scale of the power soft targets). The network then learns the
    correction -- motion over the horizon, fading, missed or merged detections -- instead of rediscovering
    152 array patterns from the BEV. The first beam-space feature listed in ``modalities`` takes that
    skip; further ones (``radar_beams``, ``gps_beams``: the radar's and the GNSS fix's geometry) get their
    own scales (``extra_skip``, from 1), which is how fusion covers the frames one sensor gets wrong (the
    LiDAR's vehicles right under the mast: there the radar and the fix still point the right way).
    """

    def __init__(
        self,
        modalities: Sequence[str] = ("camera", "radar_points", "lidar_bev", "gps"),
        fusion: str = "transformer",
        num_beams: int = 64,
        horizon: int = 3,
        window: int = 8,
        d_model: int = 128,
        cnn_width: int = 16,
        heads: int = 4,
        layers: int = 2,
        gru_layers: int = 2,
        dropout: float = 0.1,
        point_features: int = 6,
        lidar_feature_dim: int = 64,
        grid: int = 0,
        coords: bool = False,
        image_frames: int | None = None,
    ) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("modalities: the teacher needs at least one modality")
        if image_frames is not None and not 1 <= image_frames <= window:
            raise ValueError(f"image_frames: must be in [1, window={window}] or None, got {image_frames}")
        if image_frames is not None and image_frames < window and fusion != "transformer":
            raise ValueError("image_frames < window needs fusion='transformer'")
        self.image_frames = window if image_frames is None else int(image_frames)
        if fusion not in ("transformer", "gru-mha"):
            raise ValueError(f"fusion: expected 'transformer' or 'gru-mha', got {fusion!r}")
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.modalities = tuple(modalities)
        self.fusion = fusion
        self.num_beams, self.horizon, self.window = num_beams, horizon, window
        cfg = {"point_features": point_features, "lidar_feature_dim": lidar_feature_dim, "grid": grid,
               "coords": coords, "num_beams": num_beams,
               "beam_steps": horizon + 1}
        self.encoders = nn.ModuleDict(
            {m: _make_encoder(m, d_model, cnn_width, False, cfg) for m in self.modalities}
        )
        n_mod = len(self.modalities)
        if fusion == "transformer":
            self.modality_embed = nn.Parameter(torch.zeros(n_mod, d_model))
            self.time_embed = nn.Parameter(torch.zeros(window, d_model))
            nn.init.normal_(self.modality_embed, std=0.02)
            nn.init.normal_(self.time_embed, std=0.02)
            layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout, batch_first=True)
            self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        else:
            self.fuse = nn.Sequential(nn.Linear(n_mod * d_model, d_model), nn.ReLU(inplace=True))
            self.gru = nn.GRU(
                d_model,
                d_model,
                num_layers=gru_layers,
                batch_first=True,
                dropout=dropout if gru_layers > 1 else 0.0,
            )
            self.mha = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
            self.norm = nn.LayerNorm(d_model)
        # the beam-space features added to the logits: the first one listed in ``modalities`` starts at
        # scale 10 (the model starts as that geometry), every further one at 1 (a tenth of it), so fusion
        # starts from the best sensor and learns how much the others add where it fails
        listed = [k for k in self.modalities if k in BEAM_FEATURES]
        self.skip_key = listed[0] if listed else None
        self.extra_skip_keys = tuple(listed[1:])
        self.head = _Heads(d_model, horizon + 1, num_beams, residual=self.skip_key is not None)
        self.beam_skip = nn.Parameter(torch.full((horizon + 1,), 10.0)) if self.skip_key else None
        self.extra_skip = (nn.Parameter(torch.full((len(self.extra_skip_keys), horizon + 1), 1.0))
                           if self.extra_skip_keys else None)
        self.history_skip = _HistorySkip(horizon + 1) if "beam_history" in self.modalities else None
        self.mid_dim = n_mod * d_model
        self.end_dim = d_model

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        _check_batch(batch, self.modalities, self.window)
        k = self.image_frames
        feats = [self.encoders[m](batch[m][:, -k:] if m in IMAGE_CHANNELS else batch[m])
                 for m in self.modalities]  # each (B, P or k, d)
        mid = torch.cat([f.mean(1) for f in feats], dim=-1)
        if self.fusion == "transformer":
            tok = torch.cat([f + self.modality_embed[i] + self.time_embed[-f.shape[1]:]
                             for i, f in enumerate(feats)], dim=1)  # (B, sum of frames, d)
            tok = self.transformer(tok)
            end = tok.mean(1)
        else:
            x = self.fuse(torch.cat(feats, dim=-1))
            seq, _ = self.gru(x)
            att, _ = self.mha(seq, seq, seq, need_weights=False)
            end = self.norm(seq + att)[:, -1]
        logits = self.head(end)
        if self.beam_skip is not None:
            beams = _newest_beams(batch, self.skip_key, self.horizon, self.num_beams)
            logits = logits + self.beam_skip[None, :, None] * beams
        for i, key in enumerate(self.extra_skip_keys):
            beams = _newest_beams(batch, key, self.horizon, self.num_beams)
            logits = logits + self.extra_skip[i][None, :, None] * beams
        if self.history_skip is not None:
            logits = self.history_skip(logits, _newest_history(batch["beam_history"], self.num_beams))
        return {"logits": logits, "mid": mid, "end": end}


class RadarMLPStudent(nn.Module):
    """CRKD's radar-only student: a 6-layer fully connected ReLU MLP over the flattened HPS radar window.

    ``mid`` is the output of layer ``mid_layer`` (3 by default), ``end`` the output of the last layer.
    ``beam_features=True`` also reads ``radar_beams`` (the beam-space feature of the radar's own
    detections, see ``preprocess.radar_beam_features``): its newest frame joins the MLP's input and, as in
    the teacher, is added to the logits with a learned scale per horizon step (still radar only).
    ``dropout`` (after every hidden layer, training only) is off by default; the flattened window has
    thousands of inputs and a few thousand training samples, so the MLP memorises without it.
    ``frames``: how many of the window's newest radar frames the MLP reads (None: all). The first layer
    holds nearly all of the MLP's weights (frames x points x features x hidden), so this is what sizes a
    student to CRKD's 10 % of its teacher: each detection carries its radial velocity, so one frame
    already tells where the vehicles are and how fast they approach.
    ``history=True`` also reads ``beam_history`` (the RSU's measurements of the previous frame's sweep,
    issue 16): its newest frame joins the MLP's input and reaches the logits through a learned skip. Not
    a sensor, so the student stays radar-only in what it *sees*; its card lists the input.
    """

    def __init__(
        self,
        num_beams: int = 64,
        horizon: int = 3,
        window: int = 8,
        num_points: int = 64,
        point_features: int = 6,
        hidden: int = 32,
        num_layers: int = 6,
        mid_layer: int = 3,
        dropout: float = 0.0,
        beam_features: bool = False,
        frames: int | None = None,
        history: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {dropout}")
        if frames is not None and not 1 <= frames <= window:
            raise ValueError(f"frames: must be in [1, window={window}] or None, got {frames}")
        self.frames = window if frames is None else int(frames)
        self.beam_features = bool(beam_features)
        if num_layers < 1 or not 1 <= mid_layer <= num_layers:
            got = f"{mid_layer}/{num_layers}"
            raise ValueError(f"num_layers/mid_layer: need 1 <= mid_layer <= num_layers, got {got}")
        self.history = bool(history)
        self.modalities = (("radar_points", "radar_beams") if self.beam_features else ("radar_points",)) + (
            ("beam_history",) if self.history else ())
        self.num_beams, self.horizon, self.window = num_beams, horizon, window
        self.in_dim = self.frames * num_points * point_features
        self.beam_dim = (horizon + 1) * num_beams if self.beam_features else 0
        self.history_dim = 2 * num_beams if self.history else 0
        dims = [self.in_dim + self.beam_dim + self.history_dim] + [hidden] * num_layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.mid_layer = mid_layer
        self.drop = nn.Dropout(dropout)
        self.head = _Heads(hidden, horizon + 1, num_beams, residual=self.beam_features)
        self.beam_skip = nn.Parameter(torch.full((horizon + 1,), 10.0)) if self.beam_features else None
        self.history_skip = _HistorySkip(horizon + 1) if self.history else None
        self.mid_dim = self.end_dim = hidden

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        _check_batch(batch, self.modalities, self.window)
        x = batch["radar_points"][:, -self.frames:].flatten(1)
        if x.shape[1] != self.in_dim:
            got = x.shape[1]
            raise ValueError(f"batch['radar_points']: flattens to {got} values, model expects {self.in_dim}")
        beams = None
        if self.beam_features:
            beams = _newest_beams(batch, "radar_beams", self.horizon, self.num_beams)
            x = torch.cat([x, beams.flatten(1)], dim=1)
        history = _newest_history(batch["beam_history"], self.num_beams) if self.history else None
        if history is not None:
            x = torch.cat([x, history.flatten(1)], dim=1)
        mid = x
        for i, layer in enumerate(self.layers, start=1):
            x = torch.relu(layer(x))
            if i == self.mid_layer:
                mid = x
            if i < len(self.layers):
                x = self.drop(x)
        logits = self.head(x)
        if beams is not None:
            logits = logits + self.beam_skip[None, :, None] * beams
        if history is not None:
            logits = self.history_skip(logits, history)
        return {"logits": logits, "mid": mid, "end": x}


class MaStudent(nn.Module):
    """Ma et al.'s student: depthwise-separable CNN embeddings for camera and radar, a single-layer GRU and
    multi-head attention, a head per horizon step. Defaults read the motion masks and radar maps."""

    def __init__(
        self,
        modalities: Sequence[str] = ("camera_motion", "radar_maps"),
        num_beams: int = 64,
        horizon: int = 3,
        window: int = 8,
        d_model: int = 32,
        cnn_width: int = 8,
        heads: int = 2,
        grid: int = 0,
    ) -> None:
        super().__init__()
        for m in modalities:
            if m not in IMAGE_CHANNELS:
                allowed = tuple(IMAGE_CHANNELS)
                raise ValueError(f"modalities: MaStudent takes image-like modalities {allowed}, got {m!r}")
        self.modalities = tuple(modalities)
        self.num_beams, self.horizon, self.window = num_beams, horizon, window
        self.encoders = nn.ModuleDict(
            {
                m: ConvEncoder(IMAGE_CHANNELS[m], cnn_width, 3, d_model, separable=True, grid=grid)
                for m in self.modalities
            }
        )
        self.fuse = nn.Sequential(nn.Linear(len(self.modalities) * d_model, d_model), nn.ReLU(inplace=True))
        self.gru = nn.GRU(d_model, d_model, num_layers=1, batch_first=True)
        self.mha = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm = nn.LayerNorm(d_model)
        self.head = _Heads(d_model, horizon + 1, num_beams)
        self.mid_dim = len(self.modalities) * d_model
        self.end_dim = d_model

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        _check_batch(batch, self.modalities, self.window)
        feats = [self.encoders[m](batch[m]) for m in self.modalities]
        mid = torch.cat([f.mean(1) for f in feats], dim=-1)
        seq, _ = self.gru(self.fuse(torch.cat(feats, dim=-1)))
        att, _ = self.mha(seq, seq, seq, need_weights=False)
        end = self.norm(seq + att)[:, -1]
        return {"logits": self.head(end), "mid": mid, "end": end}


class LidarGRU(nn.Module):
    """Jiang et al.'s LiDAR beam-tracking GRU: Zakeri et al.'s teacher (hidden 128) and student (hidden 32).

    The window of P LiDAR feature vectors is followed by H zero frames (Zakeri et al.: "zero-padding is
    applied with length V"), the GRU runs over all P + H steps and a shared linear classifier reads the
    outputs of the last H + 1 steps. ``end`` is the GRU's final hidden state (the metadata features),
    ``mid`` the mean output over the observed frames.

    The feature vectors pass a per-bin ``BatchNorm1d`` first (its running statistics are the training
    set's, saved with the weights and exported to ONNX). Why: ``lidar_feat`` bins sit at very different
    levels (the static scene) and vary by a few hundredths; unnormalised, a hidden-32 GRU stayed at the
    label prior (train loss flat over 4000 steps) and a hidden-128 one needed ~2000 steps to start.
    The zero padding is appended after normalisation, so "no frame" is the mean frame.
    """

    def __init__(
        self,
        num_beams: int = 64,
        horizon: int = 3,
        window: int = 8,
        feature_dim: int = 64,
        hidden: int = 128,
        num_layers: int = 1,
    ) -> None:
        super().__init__()
        self.modalities = ("lidar_feat",)
        self.num_beams, self.horizon, self.window = num_beams, horizon, window
        self.feature_dim = feature_dim
        self.norm = nn.BatchNorm1d(feature_dim)
        self.gru = nn.GRU(feature_dim, hidden, num_layers=num_layers, batch_first=True)
        self.classifier = nn.Linear(hidden, num_beams)
        self.mid_dim = self.end_dim = hidden

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        _check_batch(batch, self.modalities, self.window)
        x = batch["lidar_feat"]
        if x.shape[-1] != self.feature_dim:
            got = x.shape[-1]
            raise ValueError(f"batch['lidar_feat']: feature size {got}, model expects {self.feature_dim}")
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)  # (B, P, D): statistics per bin over B * P frames
        pad = x.new_zeros(x.shape[0], self.horizon, x.shape[-1])
        seq, h = self.gru(torch.cat([x, pad], dim=1))
        logits = self.classifier(seq[:, -(self.horizon + 1) :])
        return {"logits": logits, "mid": seq[:, : self.window].mean(1), "end": h[-1]}

"""Per-modality preprocessing of raw CARLA-format sensor arrays into fixed-shape float32 model inputs.

Why pure functions on numpy arrays: the live tracker node and the offline dataset builder must produce
bit-identical inputs for the same frame (architecture.md: "one path for data"), so both call
:func:`preprocess_frame` with the same :class:`PreprocessConfig`; nothing here knows about ROS or files.

Raw formats (CONTEXT.md): camera ``(H, W, 4) uint8`` BGRA; radar ``(N, 4) float32`` [velocity, azimuth,
altitude, depth]; LiDAR ``(N, 4) float32`` [x, y, z, intensity] (sensor frame, x forward, y right, z up);
GNSS ``(3,)`` [lat deg, lon deg, alt m] (or ``(K, 3)``, row 0 being the target vehicle).

Outputs of :func:`preprocess_frame` (default config shapes in brackets):

* ``camera``       ``(3, Hc, Wc)`` RGB, area-resized, normalised with mean/std      [3, 64, 64]
* ``camera_gray``  ``(1, Hc, Wc)`` grey level in [0, 1] for the motion masks      [1, 64, 64]
* ``radar_points`` ``(N, 6)`` HPS detections, one slot per azimuth sector [x, y, z, v, depth, valid] [64, 6]
* ``radar_maps``   ``(2, R, K)`` range-angle and range-Doppler maps of moving detections [2, 32, 32]
* ``lidar_bev``    ``(3, G, G)`` BEV occupancy, max height, log density              [3, 64, 64]
* ``lidar_feat``   ``(D,)`` angular range profile (Jiang et al. style, see below)    [64]
* ``lidar_beams``  ``(G + 1, B)`` beam-space LiDAR feature: the per-pattern power the site's channel geometry
  predicts for the vehicles detected in the cloud, now and ``G`` steps ahead, relative to the best pattern,
  /10 dB (only when ``geometry_lanes`` names the site; see :func:`lidar_beam_features`)  [4, 152]
* ``radar_beams``  ``(G + 1, B)`` the same beam-space feature from the moving radar detections  [4, 152]
* ``gps_beams``    ``(G + 1, B)`` the same beam-space feature for the vehicle at the GNSS fix (single-target
  labels: the fix is the target's own)                                         [4, 152]
* ``gps``          ``(3,)`` east, north, up relative to the RSU, divided by a scale  [3]

Window-level: :func:`motion_masks` turns a ``(P, 1, H, W)`` grey sequence into the binary frame-difference
masks of Ma et al.; :func:`radar_cube_maps` gives their range-angle / range-Doppler maps for FMCW radar cubes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from ..modalities import SENSOR_INPUTS, SOURCES, WINDOW_INPUTS
from .beam_history import SweepRecord, beam_history_feature
from .errors import PreprocessError

__all__ = [
    "GNSS_FRAMES",
    "MODALITY_KEYS",
    "BeamFeatureTracks",
    "PreprocessConfig",
    "PreprocessError",
    "estimate_lidar_background",
    "gps_beam_features",
    "gps_to_local",
    "gps_to_site",
    "highest_point_sampling",
    "lidar_beam_features",
    "lidar_bev",
    "lidar_range_profile",
    "motion_masks",
    "output_shapes",
    "preprocess_camera",
    "preprocess_frame",
    "preprocess_gps",
    "radar_beam_features",
    "radar_cube_maps",
    "radar_detection_maps",
    "radar_points",
    "resize_area",
    "sector_point_sampling",
]

RADAR_SAMPLING = ("sector", "height")
EARTH_RADIUS_M = 6_378_137.0  # WGS-84 equatorial radius; the local tangent-plane approximation below uses it


@dataclass(frozen=True)
class PreprocessConfig:
    """Every preprocessing constant, so training and the live node share one definition.

    Defaults are small so models train in minutes on a 2-core CPU; paper-scale inputs (e.g. 224x224
    images, 256 radar points) are just other values.
    """

    # camera
    image_size: tuple[int, int] = (64, 64)  # (height, width) after resizing
    camera_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # RGB, ImageNet statistics
    camera_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    motion_threshold: float = 0.05  # grey-level difference (in [0, 1]) that marks a pixel as moving
    # radar (point detections)
    radar_points: int = 64  # fixed set size after highest-point sampling
    radar_max_range: float = 100.0  # m, normalisation and map extent
    radar_max_velocity: float = 30.0  # m/s, normalisation and Doppler-map extent
    radar_fov_deg: float = 120.0  # full horizontal field of view of the maps and HPS sectors
    # the radar's mount on the site (radar_beams undoes it to put detections in the LiDAR's frame): pitch in
    # degrees (negative = down) and height in m; None = the built-in RadarConfig's. A built-in scenario's
    # config names its own radar (scenario_preprocess), so a dataset of another radar is not read as if
    # it had the default's pitch (every detection would move: MPR of the feature 0.81 -> 0.74)
    radar_pitch_deg: float | None = None
    radar_mount_height: float | None = None
    # HPS variant: 'sector' = per azimuth sector the strongest (nearest) moving detection, slot = sector;
    # 'height' = the literal reading, the N detections with the greatest z, highest first.
    radar_sampling: str = "sector"
    radar_min_speed: float = 0.5  # m/s; |radial velocity| below this is static clutter (the RSU is static)
    radar_range_bins: int = 32
    radar_angle_bins: int = 32  # angle bins of the range-angle map and Doppler bins of the range-Doppler map
    # LiDAR
    bev_x_range: tuple[float, float] = (0.0, 80.0)  # m, forward extent of the grid
    bev_y_range: tuple[float, float] = (-40.0, 40.0)  # m, lateral extent
    bev_resolution: float = 1.25  # m per cell -> 64 x 64 by default
    lidar_z_range: tuple[float, float] = (-8.0, 4.0)  # m; points outside are dropped, height normalised in it
    lidar_min_z: float | None = None  # drop ground returns below this z (sensor frame); None keeps all
    lidar_feature_bins: int = 64  # D of the fixed-length LiDAR feature vector
    lidar_feature_fov_deg: float = 180.0
    lidar_max_range: float = 80.0
    # beam-space LiDAR feature (lidar_beams): the built-in scenario whose RSU site (pose, LiDAR mount, road
    # band, array and codebook) maps detections to patterns; None = not computed
    geometry_lanes: int | None = None
    geometry_label_mode: str = "sum_rss"
    geometry_horizon: int = 3  # G: steps ahead the feature extrapolates (the models' H)
    geometry_speed_mps: float = 13.9  # speed prior along each lane's direction (50 km/h, the urban limit)
    # GPS
    gps_reference: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RSU lat deg, lon deg, alt m
    gps_scale: float = 100.0  # m -> unit
    # how fixes map to the site's frame: "carla" for fixes projected as CARLA 0.9.16 does (the built-in
    # simulator, the CARLA bridge, carla-ros-bridge): north is -y of the package's world frame; "enu" for
    # fixes of the real world (DeepSense, a real RSU): east, north, up. See :data:`GNSS_FRAMES`.
    gnss_frame: str = "carla"
    # measurements fed back (data/beam_history.py): the codebook size of ``beam_history``; 0 = the site's
    # (geometry_lanes), the only one a built-in scene has
    history_beams: int = 0
    # failure policy
    allow_empty: bool = False  # an empty radar/LiDAR cloud yields zero arrays instead of an error

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ValueError(f"PreprocessConfig.{name}: {why}")

        if len(self.image_size) != 2 or min(self.image_size) < 1:
            bad("image_size", f"need (height, width) >= 1, got {self.image_size}")
        if any(s <= 0 for s in self.camera_std):
            bad("camera_std", "must be > 0")
        if self.geometry_lanes is not None and not 1 <= int(self.geometry_lanes) <= 5:
            bad("geometry_lanes", f"must be None or lanes per direction in [1, 5], got {self.geometry_lanes}")
        if int(self.geometry_horizon) < 0 or not self.geometry_speed_mps >= 0:
            bad("geometry_horizon", "geometry_horizon and geometry_speed_mps must be >= 0")
        if self.geometry_label_mode not in ("single", "sum_rss"):
            bad("geometry_label_mode", f"expected 'single' or 'sum_rss', got {self.geometry_label_mode!r}")
        if self.gnss_frame not in GNSS_FRAMES:
            bad("gnss_frame", f"expected one of {sorted(GNSS_FRAMES)}, got {self.gnss_frame!r}")
        if self.radar_sampling not in RADAR_SAMPLING:
            bad("radar_sampling", f"expected one of {RADAR_SAMPLING}, got {self.radar_sampling!r}")
        if self.radar_pitch_deg is not None and not -90.0 <= self.radar_pitch_deg <= 90.0:
            bad("radar_pitch_deg", f"must be None or in [-90, 90] degrees, got {self.radar_pitch_deg}")
        if self.radar_mount_height is not None and not self.radar_mount_height > 0:
            bad("radar_mount_height", f"must be None or > 0 m, got {self.radar_mount_height}")
        if not self.radar_min_speed >= 0:
            bad("radar_min_speed", f"must be >= 0, got {self.radar_min_speed}")
        if int(self.history_beams) < 0:
            bad("history_beams", f"must be >= 0 (0: the site's codebook), got {self.history_beams}")
        for name in ("radar_points", "radar_range_bins", "radar_angle_bins", "lidar_feature_bins"):
            if int(getattr(self, name)) < 1:
                bad(name, f"must be >= 1, got {getattr(self, name)}")
        positive = ("radar_max_range", "radar_max_velocity", "bev_resolution", "lidar_max_range", "gps_scale")
        for name in positive:
            if not getattr(self, name) > 0:
                bad(name, f"must be > 0, got {getattr(self, name)}")
        for name in ("radar_fov_deg", "lidar_feature_fov_deg"):
            if not 0 < getattr(self, name) <= 360:
                bad(name, f"must be in (0, 360], got {getattr(self, name)}")
        for name in ("bev_x_range", "bev_y_range", "lidar_z_range"):
            lo, hi = getattr(self, name)
            if not hi > lo:
                bad(name, f"need lo < hi, got {(lo, hi)}")

    @property
    def bev_shape(self) -> tuple[int, int]:
        nx = math.ceil((self.bev_x_range[1] - self.bev_x_range[0]) / self.bev_resolution - 1e-9)
        ny = math.ceil((self.bev_y_range[1] - self.bev_y_range[0]) / self.bev_resolution - 1e-9)
        return nx, ny

    @property
    def num_history_beams(self) -> int:
        """The codebook size of ``beam_history``: ``history_beams``, else the site's (0 without either)."""
        if self.history_beams:
            return int(self.history_beams)
        return _geometry_baseline(self).n_beams if self.geometry_lanes is not None else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PreprocessConfig:
        """Build from a (YAML) mapping, rejecting unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"PreprocessConfig: unknown keys {unknown}")
        conv = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**conv)


#: sensor -> the per-frame inputs preprocess_frame can return for it (the vocabulary: modalities.py)
MODALITY_KEYS: dict[str, tuple[str, ...]] = {
    sensor: tuple(k for k in keys if k not in WINDOW_INPUTS) for sensor, keys in SENSOR_INPUTS.items()}


def output_shapes(cfg: PreprocessConfig) -> dict[str, tuple[int, ...]]:
    """Per-frame output shape of every key :func:`preprocess_frame` can return."""
    h, w = cfg.image_size
    gx, gy = cfg.bev_shape
    beams = (cfg.geometry_horizon + 1, _geometry_baseline(cfg).n_beams if cfg.geometry_lanes is not None else 0)
    return {
        "camera": (3, h, w),
        "camera_gray": (1, h, w),
        "camera_motion": (1, h, w),
        "radar_points": (cfg.radar_points, 6),
        "radar_maps": (2, cfg.radar_range_bins, cfg.radar_angle_bins),
        "lidar_bev": (3, gx, gy),
        "lidar_feat": (cfg.lidar_feature_bins,),
        "gps": (3,),
        **dict.fromkeys(("radar_beams", "lidar_beams", "gps_beams"), beams),
        "beam_history": (2, cfg.num_history_beams),
    }


# --------------------------------------------------------------------------------------------------
# camera
# --------------------------------------------------------------------------------------------------
def _bin_starts(n_in: int, n_out: int) -> np.ndarray:
    return np.floor(np.arange(n_out) * n_in / n_out).astype(np.intp)


def resize_area(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W, C)`` to ``size = (h, w)``: box (area) averaging when shrinking, nearest when growing.

    Vectorized with ``np.add.reduceat`` over bin starts, so no OpenCV dependency is needed.
    """
    h_out, w_out = size
    h_in, w_in = img.shape[:2]
    x = img.astype(np.float32, copy=False)
    for axis, n_in, n_out in ((0, h_in, h_out), (1, w_in, w_out)):
        if n_out == n_in:
            continue
        if n_out < n_in:
            starts = _bin_starts(n_in, n_out)
            counts = np.diff(np.append(starts, n_in)).astype(np.float32)
            x = np.add.reduceat(x, starts, axis=axis)
            shape = [1] * x.ndim
            shape[axis] = n_out
            x = x / counts.reshape(shape)
        else:
            idx = np.minimum((np.arange(n_out) * n_in / n_out).astype(np.intp), n_in - 1)
            x = np.take(x, idx, axis=axis)
    return x


def preprocess_camera(image: np.ndarray, cfg: PreprocessConfig) -> dict[str, np.ndarray]:
    """BGRA uint8 -> normalised RGB ``(3, h, w)`` and grey ``(1, h, w)`` in [0, 1]."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (3, 4):
        got = getattr(image, "shape", type(image))
        raise PreprocessError("camera", f"expected (H, W, 4) BGRA array, got {got}")
    if image.dtype != np.uint8:
        raise PreprocessError("camera", f"expected uint8 pixels, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise PreprocessError("camera", "empty image")
    rgb = image[..., 2::-1]  # BGR(A) -> RGB, a view
    small = resize_area(rgb, cfg.image_size) / np.float32(255.0)  # (h, w, 3) in [0, 1]
    gray = small @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma
    mean = np.asarray(cfg.camera_mean, dtype=np.float32)
    std = np.asarray(cfg.camera_std, dtype=np.float32)
    norm = ((small - mean) / std).transpose(2, 0, 1)
    return {
        "camera": np.ascontiguousarray(norm, dtype=np.float32),
        "camera_gray": gray[None].astype(np.float32),
    }


def motion_masks(gray_seq: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Ma et al.'s frame-difference motion masks: ``1[|g_t - g_{t-1}| > threshold]``, ``(P, 1, H, W)``.

    Adjacent-frame subtraction suppresses the static background and leaves the moving vehicles. The first
    frame has no predecessor in the window; it gets the mask of the second (so a window of P frames still
    gives P masks without inventing motion); a single frame gets zeros.
    """
    g = np.asarray(gray_seq, dtype=np.float32)
    if g.ndim < 3:
        raise PreprocessError("camera", f"motion_masks: expected (P, ..., H, W) grey frames, got {g.shape}")
    if g.shape[0] < 2:
        return np.zeros_like(g)
    diff = (np.abs(np.diff(g, axis=0)) > threshold).astype(np.float32)
    return np.concatenate([diff[:1], diff], axis=0)


# --------------------------------------------------------------------------------------------------
# radar
# --------------------------------------------------------------------------------------------------
def _finite_cloud(points: Any, modality: str, cfg: PreprocessConfig) -> tuple[np.ndarray, int]:
    """Validate an ``(N, 4)`` float cloud, drop non-finite rows; returns (clean points, dropped count)."""
    if not isinstance(points, np.ndarray):
        raise PreprocessError(modality, f"expected a numpy array, got {type(points).__name__}")
    if points.ndim != 2 or points.shape[1] != 4:
        raise PreprocessError(modality, f"expected shape (N, 4), got {points.shape}")
    if not np.issubdtype(points.dtype, np.floating):
        raise PreprocessError(modality, f"expected float points, got {points.dtype}")
    finite = np.isfinite(points).all(axis=1)
    dropped = int(points.shape[0] - finite.sum())
    clean = points[finite] if dropped else points
    if clean.shape[0] == 0 and not cfg.allow_empty:
        why = "empty cloud" if points.shape[0] == 0 else f"all {points.shape[0]} points are NaN/inf"
        raise PreprocessError(modality, why)
    return clean.astype(np.float32, copy=False), dropped


def _radar_xyz(det: np.ndarray) -> np.ndarray:
    """CARLA RadarDetection (velocity, azimuth, altitude, depth) -> sensor-frame x, y, z."""
    az, alt, depth = det[:, 1], det[:, 2], det[:, 3]
    ca = np.cos(alt)
    return np.stack([depth * ca * np.cos(az), depth * ca * np.sin(az), depth * np.sin(alt)], axis=1)


def highest_point_sampling(points: np.ndarray, heights: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CRKD's highest point sampling (HPS): keep the ``n`` points with the largest height, highest first.

    CRKD only says HPS "downsamples radar point clouds to a fixed size"; we read "highest" literally as the
    greatest z (height above the sensor), ties broken by input order. With fewer than ``n`` points the set
    is zero-padded. Returns ``(sampled (n, F), valid (n,) bool)``.
    """
    order = np.argsort(-heights, kind="stable")[:n]
    out = np.zeros((n, points.shape[1]), dtype=np.float32)
    out[: order.size] = points[order]
    valid = np.zeros(n, dtype=bool)
    valid[: order.size] = True
    return out, valid


def sector_point_sampling(
    points: np.ndarray, azimuth: np.ndarray, priority: np.ndarray, n: int, half_fov: float
) -> tuple[np.ndarray, np.ndarray]:
    """HPS over azimuth sectors: split the field of view into ``n`` equal sectors and keep, per sector, the
    point with the highest ``priority``; slot ``i`` always holds sector ``i`` (empty sectors are zeros).

    Why sectors: a set ordered by height (or arbitrarily) puts a different object in each input slot from one
    frame to the next, so an MLP over the flattened set (CRKD's student) must learn every permutation from
    ~2k samples and does not generalise. A slot per azimuth sector gives the MLP a fixed spatial layout (the
    beam codebook is itself indexed by azimuth), while staying a fixed-size set of real detections.
    ``priority`` = ``-inf`` excludes a point. Returns ``(sampled (n, F), valid (n,) bool)``.
    """
    sector = np.clip(((azimuth + half_fov) / (2 * half_fov) * n).astype(np.intp), 0, n - 1)
    ok = np.isfinite(priority) & (np.abs(azimuth) <= half_fov)
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((-priority[idx], sector[idx]))]  # by sector, best first within a sector
    first = np.ones(order.size, dtype=bool)
    first[1:] = sector[order[1:]] != sector[order[:-1]]
    keep = order[first]
    out = np.zeros((n, points.shape[1]), dtype=np.float32)
    out[sector[keep]] = points[keep]
    valid = np.zeros(n, dtype=bool)
    valid[sector[keep]] = True
    return out, valid


def radar_points(detections: np.ndarray, cfg: PreprocessConfig) -> tuple[np.ndarray, int]:
    """Detections -> ``(N, 6)`` [x, y, z, velocity, depth, valid] after HPS, normalised; (array, dropped).

    CRKD only says HPS "downsamples radar point clouds to a fixed size". With ``radar_sampling='sector'``
    (default) static clutter is dropped first (``|v| < radar_min_speed``: the RSU does not move, so walls,
    poles and ground have zero Doppler; the vehicles that decide the beam move), then
    :func:`sector_point_sampling` keeps per azimuth sector the nearest detection, the highest-power return
    (radar power falls as range^-4; CARLA detections carry no power, so range stands in for it).
    ``'height'`` is the literal reading (:func:`highest_point_sampling` by z, no clutter filter); it keeps
    facade clutter and far points (z grows with range under the radar's downward pitch) and drops the near
    vehicles, which is why radar-only models trained on it stayed at chance.
    """
    det, dropped = _finite_cloud(detections, "radar", cfg)
    xyz = _radar_xyz(det)
    feats = np.concatenate(
        [xyz / cfg.radar_max_range, det[:, :1] / cfg.radar_max_velocity, det[:, 3:4] / cfg.radar_max_range],
        axis=1,
    ).astype(np.float32)
    if cfg.radar_sampling == "height":
        sampled, valid = highest_point_sampling(feats, xyz[:, 2], cfg.radar_points)
    else:
        moving = np.abs(det[:, 0]) >= cfg.radar_min_speed
        priority = np.where(moving, -det[:, 3], -np.inf)
        half_fov = math.radians(cfg.radar_fov_deg) / 2
        sampled, valid = sector_point_sampling(feats, det[:, 1], priority, cfg.radar_points, half_fov)
    return np.concatenate([sampled, valid[:, None].astype(np.float32)], axis=1), dropped


def _hist2d(a: np.ndarray, b: np.ndarray, na: int, nb: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Counts (or weight sums) of integer bin indices ``a < na``, ``b < nb`` already clipped, ``(na, nb)``."""
    flat = a * nb + b
    return np.bincount(flat, weights=weights, minlength=na * nb).reshape(na, nb).astype(np.float32)


def radar_detection_maps(detections: np.ndarray, cfg: PreprocessConfig) -> tuple[np.ndarray, int]:
    """Range-angle and range-Doppler maps ``(2, R, K)`` built from point detections (log-count, in [0, 1]).

    The point-radar analogue of Ma et al.'s FFT maps: the same two views (where are reflectors, and how do
    they move), so the Ma et al. models run unchanged on CARLA-style radars that output detections.
    Detections slower than ``radar_min_speed`` are dropped first, the detection-level counterpart of the
    static clutter removal of :func:`radar_cube_maps` (otherwise clutter fills the map as densely as cars).
    """
    det, dropped = _finite_cloud(detections, "radar", cfg)
    r_bins, k_bins = cfg.radar_range_bins, cfg.radar_angle_bins
    half_fov = math.radians(cfg.radar_fov_deg) / 2
    keep = (det[:, 3] >= 0) & (det[:, 3] < cfg.radar_max_range) & (np.abs(det[:, 1]) <= half_fov)
    keep &= np.abs(det[:, 0]) >= cfg.radar_min_speed
    d = det[keep]
    r = np.minimum((d[:, 3] / cfg.radar_max_range * r_bins).astype(np.intp), r_bins - 1)
    a = np.clip(((d[:, 1] + half_fov) / (2 * half_fov) * k_bins).astype(np.intp), 0, k_bins - 1)
    v = np.clip(((d[:, 0] / cfg.radar_max_velocity + 1) / 2 * k_bins).astype(np.intp), 0, k_bins - 1)
    maps = np.stack([_hist2d(r, a, r_bins, k_bins), _hist2d(r, v, r_bins, k_bins)])
    maps = np.log1p(maps)
    peak = maps.reshape(2, -1).max(axis=1)
    maps /= np.where(peak > 0, peak, 1.0)[:, None, None]
    return maps.astype(np.float32), dropped


def radar_cube_maps(
    cube: np.ndarray, n_angle: int = 64, n_doppler: int | None = None, remove_static: bool = True
) -> np.ndarray:
    """Ma et al.'s FFT maps of an FMCW radar cube ``(samples, chirps, antennas)`` complex.

    * range FFT over fast-time samples, angle FFT (zero-padded to ``n_angle``) over receive antennas,
      Doppler FFT (zero-padded to ``n_doppler``) over chirps; the latter two are ``fftshift``-ed;
    * range-angle map = ``sum_chirps |FFT_range,angle|``;
      range-Doppler map = ``sum_antennas |FFT_range,doppler|``;
    * ``remove_static`` subtracts the per-sample mean over chirps first (static clutter removal);
    * both maps are log-compressed and scaled to [0, 1]; returned stacked as ``(2, samples, n_angle)``
      (``n_doppler`` defaults to ``n_angle`` so both maps share one shape).
    """
    x = np.asarray(cube)
    if x.ndim != 3 or not np.iscomplexobj(x):
        got = f"{x.dtype} {x.shape}"
        raise PreprocessError("radar", f"radar cube must be complex (samples, chirps, antennas), got {got}")
    if not np.all(np.isfinite(x)):
        raise PreprocessError("radar", "radar cube contains NaN/inf")
    n_doppler = n_angle if n_doppler is None else n_doppler
    if n_angle < x.shape[2] or n_doppler < x.shape[1]:
        got = f"{n_angle}/{n_doppler}"
        raise PreprocessError("radar", f"n_angle/n_doppler must be >= antennas/chirps, got {got}")
    if remove_static:
        x = x - x.mean(axis=1, keepdims=True)
    rng = np.fft.fft(x, axis=0)
    ra = np.abs(np.fft.fftshift(np.fft.fft(rng, n=n_angle, axis=2), axes=2)).sum(axis=1)
    rd = np.abs(np.fft.fftshift(np.fft.fft(rng, n=n_doppler, axis=1), axes=1)).sum(axis=2)
    out = []
    for m in (ra, rd):
        m = np.log1p(m)
        lo, hi = m.min(), m.max()
        out.append((m - lo) / (hi - lo) if hi > lo else np.zeros_like(m))
    if n_doppler != n_angle:
        return np.concatenate(out, axis=1).astype(np.float32)  # (samples, n_angle + n_doppler)
    return np.stack(out).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# LiDAR
# --------------------------------------------------------------------------------------------------
def _lidar_points(points: np.ndarray, cfg: PreprocessConfig) -> tuple[np.ndarray, int]:
    pts, dropped = _finite_cloud(points, "lidar", cfg)
    z = pts[:, 2]
    keep = (z >= cfg.lidar_z_range[0]) & (z < cfg.lidar_z_range[1])
    if cfg.lidar_min_z is not None:
        keep &= z >= cfg.lidar_min_z
    return pts[keep], dropped


def lidar_bev(points: np.ndarray, cfg: PreprocessConfig) -> tuple[np.ndarray, int]:
    """CRKD's bird's-eye view: ``(3, Gx, Gy)`` = occupancy, max height (normalised), log point density.

    Ground returns are filtered with ``cfg.lidar_min_z`` (CRKD: "filtering out ground reflections").
    """
    pts, dropped = _lidar_points(points, cfg)
    gx, gy = cfg.bev_shape
    ix = np.floor((pts[:, 0] - cfg.bev_x_range[0]) / cfg.bev_resolution).astype(np.intp)
    iy = np.floor((pts[:, 1] - cfg.bev_y_range[0]) / cfg.bev_resolution).astype(np.intp)
    inside = (ix >= 0) & (ix < gx) & (iy >= 0) & (iy < gy)
    ix, iy, z = ix[inside], iy[inside], pts[inside, 2]
    flat = ix * gy + iy
    count = np.bincount(flat, minlength=gx * gy).astype(np.float32)
    z_lo, z_hi = cfg.lidar_z_range
    height = np.zeros(gx * gy, dtype=np.float32)
    np.maximum.at(height, flat, ((z - z_lo) / (z_hi - z_lo)).astype(np.float32))
    density = np.log1p(count) / np.float32(math.log1p(64.0))  # 64 points per cell -> 1
    bev = np.stack([(count > 0).astype(np.float32), height, np.minimum(density, 1.0)])
    return bev.reshape(3, gx, gy), dropped


def _range_profile(pts: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Minimum horizontal range per azimuth bin (``lidar_max_range`` where a bin saw nothing)."""
    d = cfg.lidar_feature_bins
    half = math.radians(cfg.lidar_feature_fov_deg) / 2
    rng = np.hypot(pts[:, 0], pts[:, 1])
    az = np.arctan2(pts[:, 1], pts[:, 0])
    keep = (np.abs(az) <= half) & (rng < cfg.lidar_max_range)
    b = np.clip(((az[keep] + half) / (2 * half) * d).astype(np.intp), 0, d - 1)
    prof = np.full(d, cfg.lidar_max_range, dtype=np.float32)
    np.minimum.at(prof, b, rng[keep].astype(np.float32))
    return prof


def estimate_lidar_background(clouds: list[np.ndarray], cfg: PreprocessConfig) -> np.ndarray:
    """Static-background range profile: per azimuth bin, the median over frames of the nearest return."""
    if not clouds:
        raise PreprocessError("lidar", "estimate_lidar_background needs at least one cloud")
    profiles = np.stack([_range_profile(_lidar_points(c, cfg)[0], cfg) for c in clouds])
    return np.median(profiles, axis=0).astype(np.float32)


def lidar_range_profile(
    points: np.ndarray, cfg: PreprocessConfig, background: np.ndarray | None = None, margin: float = 1.0
) -> tuple[np.ndarray, int]:
    """Fixed-length LiDAR feature vector ``(D,)`` used by the data-free KD paper (input of Jiang et al.).

    Zakeri et al. only state that each LiDAR frame becomes "a fixed-length feature of size D" following
    Jiang et al. (2023). Our closest faithful reading of Jiang et al.'s preprocessing: keep the points of
    the region of interest, remove the static background, and describe the scene by the nearest return per
    azimuth bin. Concretely: ``D`` azimuth bins over ``lidar_feature_fov_deg``; per bin the minimum
    horizontal range ``r``; encoded as ``1 - r / lidar_max_range`` (0 = nothing, near objects -> 1). With a
    ``background`` profile (:func:`estimate_lidar_background`), bins whose return is not at least
    ``margin`` metres nearer than the background are zeroed, leaving only the moving objects.
    """
    pts, dropped = _lidar_points(points, cfg)
    prof = _range_profile(pts, cfg)
    if background is not None:
        bg = np.asarray(background, dtype=np.float32)
        if bg.shape != prof.shape:
            raise PreprocessError("lidar", f"background profile must have shape {prof.shape}, got {bg.shape}")
        prof = np.where(prof < bg - margin, prof, cfg.lidar_max_range)
    return (1.0 - prof / cfg.lidar_max_range).astype(np.float32), dropped


DOPPLER_MIN_COS = 0.5  # a radial speed is a road speed only within 60 deg of the road's direction
_BASELINES: dict[tuple[int, str, int, float, str], Any] = {}
BEAM_FEATURE_FLOOR_DB = 60.0  # patterns this far below the best are all "nothing there"


def _geometry_baseline(cfg: PreprocessConfig, sensor: str = "lidar") -> Any:
    """The geometry baseline of the site ``cfg`` names (built once per site: the codebook costs ~0.1 s).

    For radar, a vehicle is a handful of detections scattered over its radar-facing faces: one detection
    makes a cluster, and cells are 1.5 m along the road (a car's side stays one vehicle) by 0.75 m across
    (adjacent lanes stay apart). With the LiDAR's 0.5 m cells a car's 3-8 returns made up to three
    phantom cars: the radar feature alone scored MPR 0.79, with these cells 0.83 (2-lane sum-RSS, 4 x 150
    frames; the LiDAR cloud cut to the radar's field of view scores 0.91, which bounds radar-only models)."""
    from ..sim import SimConfig
    from .geometry_baseline import GeometryBaseline, GeometrySite

    key = (int(cfg.geometry_lanes), cfg.geometry_label_mode, int(cfg.geometry_horizon),
           float(cfg.geometry_speed_mps), sensor)
    if key not in _BASELINES:
        site = GeometrySite.from_sim_config(SimConfig(lanes=key[0], label_mode=key[1]))
        _BASELINES[key] = GeometryBaseline(site, horizon=key[2], initial_speed_mps=key[3],
                                           min_points=1 if sensor == "radar" else 3,
                                           cell_m=(1.5, 0.75) if sensor == "radar" else 0.5)
    return _BASELINES[key]


class BeamFeatureTracks:
    """The vehicle tracks behind the beam-space features of one stream (velocities for the horizon rows).

    Why state: one cloud shows where the vehicles are but not how fast they go; with tracks, rows 1..G
    of ``lidar_beams``/``radar_beams`` move each vehicle at its own estimated speed instead of a prior
    (2-lane sum-RSS: t+3 MPR of the beam feature alone ~0.87 -> ~0.94). The tracks are part of the data
    path's continuity: whoever owns the observation window resets them exactly where the window restarts
    (the dataset builder on a gap / dropped or unlabelled frame, the live tracker on a clock jump), so a
    frame gets the same feature offline and live.
    """

    def __init__(self) -> None:
        self._by_sensor: dict[str, Any] = {}
        # (stamp, world xy) of the target's recent fixes, newest last (at most GPS_FIT_FIXES)
        self.gps_fixes: list[tuple[float, np.ndarray]] = []

    def baseline(self, cfg: PreprocessConfig, sensor: str) -> Any:
        if sensor not in self._by_sensor:
            import copy

            self._by_sensor[sensor] = copy.deepcopy(_geometry_baseline(cfg, sensor))
            self._by_sensor[sensor].reset()
        return self._by_sensor[sensor]

    def reset(self) -> None:
        for b in self._by_sensor.values():
            b.reset()
        self.gps_fixes = []


def _relative_db(powers_dbm: np.ndarray) -> np.ndarray:
    """Per row ``(P_b - max_b P_b) / 10`` clipped to ``[-BEAM_FEATURE_FLOOR_DB / 10, 0]``: the features' scale."""
    p = np.asarray(powers_dbm, dtype=np.float64)
    rel = (p - p.max(axis=-1, keepdims=True)) / 10.0
    return np.clip(rel, -BEAM_FEATURE_FLOOR_DB / 10.0, 0.0).astype(np.float32)


def _beam_features(cfg: PreprocessConfig, sensor: str, cloud: np.ndarray, tracks: BeamFeatureTracks | None,
                   stamp: float | None, along_speed: np.ndarray | None = None) -> np.ndarray:
    """The geometry baseline's scores of ``cloud`` as features: the stream's tracked baseline, or (no
    ``tracks``) the shared one reset first (one frame, no tracks); all zeros when nothing was detected."""
    if tracks is None:
        base = _geometry_baseline(cfg, sensor)
        base.reset()
        est = base.predict(cloud, None, along_speed)
    else:
        est = tracks.baseline(cfg, sensor).predict(cloud, stamp, along_speed)
    return np.zeros(est.scores.shape, np.float32) if est.degraded else _relative_db(est.scores)


def radar_beam_features(detections: np.ndarray, cfg: PreprocessConfig, tracks: BeamFeatureTracks | None = None,
                        stamp: float | None = None) -> np.ndarray:
    """:func:`lidar_beam_features` from the radar: moving detections (``|v| >= radar_min_speed``) become
    points in the LiDAR's frame (the radar's pitch and mount height of the built-in site undone), then the
    same detection, channel geometry and extrapolation. Radar-only models (CRKD's student) get the geometry
    of what the radar sees -- only its field of view, and a few detections per vehicle. Each detection's
    Doppler gives its vehicle's speed along the road (radial speed / cosine between the line of sight and
    the road; not where the two are near perpendicular), which moves the horizon rows instead of a speed
    tracked from positions (2-lane sum-RSS, 4 x 150 frames: t+3 MPR of the feature alone 0.74 -> 0.80)."""
    if cfg.geometry_lanes is None:
        raise PreprocessError("radar", "radar_beams needs PreprocessConfig.geometry_lanes (the RSU site)")
    from ..sim import SimConfig

    det, _ = _finite_cloud(detections, "radar", cfg)
    det = det[np.abs(det[:, 0]) >= cfg.radar_min_speed].astype(np.float64)
    sim = SimConfig(lanes=int(cfg.geometry_lanes))
    pitch = sim.radar.pitch_deg if cfg.radar_pitch_deg is None else cfg.radar_pitch_deg
    height = sim.radar.mount_height if cfg.radar_mount_height is None else cfg.radar_mount_height
    p = math.radians(pitch)
    az, alt, d = det[:, 1], det[:, 2], det[:, 3]
    lx, lz = d * np.cos(alt) * np.cos(az), d * np.sin(alt)  # sensor frame: forward, up
    right = d * np.cos(alt) * np.sin(az)  # CARLA azimuth is right-positive
    cloud = np.stack([lx * math.cos(p) - lz * math.sin(p), right,
                      lx * math.sin(p) + lz * math.cos(p) + height - sim.lidar.mount_height,
                      np.zeros_like(d)], axis=1)
    # the line of sight from the radar (world frame) against the road's direction
    from .geometry_baseline import lidar_to_world

    site = _geometry_baseline(cfg, "radar").site
    los = lidar_to_world(cloud[:, :3], site.lidar_origin, site.lidar_yaw)
    los[:, 2] -= height
    los[:, :2] -= np.asarray(site.lidar_origin[:2])
    axis = np.array([math.cos(site.road_axis_yaw), math.sin(site.road_axis_yaw)])
    cos = (los[:, :2] @ axis) / np.maximum(np.linalg.norm(los, axis=1), 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        along_speed = np.where(np.abs(cos) >= DOPPLER_MIN_COS, det[:, 0] / cos, np.nan)
    return _beam_features(cfg, "radar", cloud, tracks, stamp, along_speed)


def lidar_beam_features(points: np.ndarray, cfg: PreprocessConfig, tracks: BeamFeatureTracks | None = None,
                        stamp: float | None = None) -> np.ndarray:
    """Beam-space LiDAR feature ``(G + 1, B)``: what the RSU's own channel geometry says each pattern would
    receive from the vehicles detected in this cloud, as ``(P_b - max_b P_b) / 10`` dB in ``[-6, 0]``,
    now (row 0) and ``G = geometry_horizon`` frames ahead, each vehicle moved along its lane's direction
    at ``geometry_speed_mps`` -- or, with ``tracks`` (:class:`BeamFeatureTracks`) and the frame's ``stamp``,
    at the speed its track measured over the previous frames.

    Why: the label is a function of where the vehicles are *through the array's patterns*; a CNN on a
    BEV has to learn 152 multi-lobe patterns from a few thousand frames, which is where the learned
    models stalled (MPR ~0.86-0.88). The geometry baseline (``geometry_baseline``) does that mapping with the
    site's own array and codebook; the model learns what it misses (fading, detection errors). All zeros =
    nothing detected.
    Needs ``cfg.geometry_lanes`` (the built-in site; a real RSU needs its own ``GeometrySite``).
    """
    if cfg.geometry_lanes is None:
        raise PreprocessError("lidar", "lidar_beams needs PreprocessConfig.geometry_lanes (the RSU site)")
    return _beam_features(cfg, "lidar", points, tracks, stamp)


GPS_FIT_FIXES = 8  # fixes in the line fit of gps_beams' position and speed (0.8 s at 10 Hz)


def _gps_track(tracks: BeamFeatureTracks, stamp: float, xy: np.ndarray, axis: np.ndarray, prior_speed: float,
               typical_speed: float) -> tuple[np.ndarray, float]:
    """The target's position now and speed along the road from a least-squares line through its last
    :data:`GPS_FIT_FIXES` fixes (this one included).

    Why a fit: with 0.3 m of noise per fix, the speed between two fixes 0.1 s apart is off by ~4 m/s and
    the t+3 row by ~1.3 m; the line through 8 fixes has ~0.5 m/s of speed error and a smoothed position
    (2-lane single target, 4 episodes: the feature's t+3 Top-5 0.65 -> 0.67, MPR 0.930 -> 0.936). The history starts
    again on a gap of over 1 s or a jump no vehicle makes (the label's target changed)."""
    fixes = tracks.gps_fixes
    if fixes:
        t0, p0 = fixes[-1]
        dt = stamp - t0
        if not 0.0 < dt <= 1.0 or float(np.linalg.norm(xy - p0)) > 2.0 * typical_speed * dt + 3.0:
            fixes.clear()
    fixes.append((stamp, xy.copy()))
    del fixes[:-GPS_FIT_FIXES]
    if len(fixes) < 2:
        return xy, prior_speed
    t = np.array([f[0] for f in fixes]) - stamp
    p = np.stack([f[1] for f in fixes])
    tc = t - t.mean()
    slope = (tc @ (p - p.mean(axis=0))) / float(tc @ tc)  # (2,) m/s
    speed = float(slope @ axis)
    if abs(speed) > 2 * typical_speed:  # not a vehicle's speed: keep the prior, the fix as measured
        return xy, prior_speed
    if len(fixes) < 3:
        return xy, speed
    return p.mean(axis=0) - t.mean() * slope, speed  # the line's value now


def gps_beam_features(gnss: np.ndarray, cfg: PreprocessConfig, tracks: BeamFeatureTracks | None = None,
                      stamp: float | None = None) -> np.ndarray:
    """:func:`lidar_beam_features` for the one vehicle at the GNSS fix: a car-sized box whose roof is at
    the fix (position relative to the RSU's own fix, ``gps_reference``), through the site's channel
    geometry, now and ``geometry_horizon`` steps ahead -- moved along its lane's direction at the speed
    measured between this fix and the previous one (with ``tracks``), else at ``geometry_speed_mps``.

    Why: with single-target labels the fix the vehicle reports *is* the label's target, the vehicle a
    detector cannot tell from its neighbours (position-aided beam prediction, DeepSense's GPS task). Other
    vehicles are not known here, so blockage by them is not modelled.
    """
    if cfg.geometry_lanes is None:
        raise PreprocessError("gnss", "gps_beams needs PreprocessConfig.geometry_lanes (the RSU site)")
    from ..channel import VehicleBoxes, label_powers
    from .geometry_baseline import _single_thread_blas

    local = preprocess_gps(gnss, cfg) * cfg.gps_scale  # the fix from the RSU antenna in the site frame (m)
    base = _geometry_baseline(cfg)
    site = base.site
    rsu = np.asarray(site.rsu.position, dtype=np.float64)
    xy = rsu[:2] + local[:2]
    roof = max(float(rsu[2] + local[2]), 1.0)
    axis = np.array([math.cos(site.road_axis_yaw), math.sin(site.road_axis_yaw)])
    across = float(xy @ np.array([-axis[1], axis[0]]))
    direction = 1.0 if across < 0 else -1.0  # right-hand traffic: the lanes right of the axis drive along it
    speed = cfg.geometry_speed_mps * direction
    if tracks is not None and stamp is not None:
        xy, speed = _gps_track(tracks, float(stamp), xy, axis, speed, cfg.geometry_speed_mps)
    steps = np.arange(cfg.geometry_horizon + 1) * site.dt
    centers = np.zeros((steps.size, 3))
    centers[:, :2] = xy + (speed * steps)[:, None] * axis
    centers[:, 2] = roof / 2
    powers = np.zeros((steps.size, base.n_beams))
    with _single_thread_blas():  # as the baseline's own channel calls: BLAS threads cost more than they give
        for h in range(steps.size):  # one vehicle per call: no blockage between a vehicle and its future self
            box = VehicleBoxes(centers[h:h + 1], np.array([[4.5, 1.8, roof]]), np.array([site.road_axis_yaw]))
            res = base.channel.compute(site.rsu, box, site.walls, rng=None, shadow_db=np.zeros(1))
            powers[h] = label_powers(res.powers_dbm, "single", 0)
    return _relative_db(powers)


# --------------------------------------------------------------------------------------------------
# GPS
# --------------------------------------------------------------------------------------------------
def gps_to_local(lat_lon_alt: np.ndarray, reference: tuple[float, float, float]) -> np.ndarray:
    """Latitude/longitude/altitude -> east, north, up metres from ``reference`` (local tangent plane).

    The equirectangular approximation errs by < 1 mm per 100 m near the reference, far below GPS noise.
    Works on ``(..., 3)`` arrays.
    """
    g = np.asarray(lat_lon_alt, dtype=np.float64)
    lat0, lon0, alt0 = reference
    east = np.radians(g[..., 1] - lon0) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    north = np.radians(g[..., 0] - lat0) * EARTH_RADIUS_M
    return np.stack([east, north, g[..., 2] - alt0], axis=-1)


#: The sign of north along the site frame's y for each source of fixes. CARLA 0.9.16 projects +y of its
#: left-handed map frame to north, and the package's right-handed world frame is CARLA's with y negated,
#: so in a CARLA-made scene an offset (east, north) lies at world (east, -north) (sim.carla_format).
GNSS_FRAMES: dict[str, float] = {"carla": -1.0, "enu": 1.0}


def gps_to_site(lat_lon_alt: np.ndarray, reference: tuple[float, float, float], gnss_frame: str) -> np.ndarray:
    """The position a fix means relative to ``reference`` in the frame the site's geometry (RSU pose,
    lanes) is given in: x east, y the site's y, z up, metres.

    "enu": :func:`gps_to_local`. "carla": CARLA's own inverse projection around the reference
    (:func:`..sim.carla_format.gnss_to_location`, exact where the tangent plane is off by CARLA's scale
    factor 0.9996, 4 cm per 100 m), then y negated into the package's world frame.
    """
    if gnss_frame not in GNSS_FRAMES:
        raise ValueError(f"gnss_frame: expected one of {sorted(GNSS_FRAMES)}, got {gnss_frame!r}")
    if gnss_frame == "enu":
        return gps_to_local(lat_lon_alt, reference)
    from ..sim.carla_format import gnss_to_location

    lat0, lon0, alt0 = reference
    site = gnss_to_location(np.asarray(lat_lon_alt, dtype=np.float64), lat0, lon0, alt0)
    site[..., 1] *= GNSS_FRAMES[gnss_frame]
    return site


#: Fixes of one RSU differ by receiver noise, not by this much (m); a larger offset is another site.
SITE_TOLERANCE_M = 5.0


def site_offset_m(fix: Sequence[float] | np.ndarray, reference: Sequence[float]) -> float:
    """Distance in metres between an RSU's GNSS ``fix`` and a GPS ``reference`` (both lat, lon, alt).

    Why: the GPS feature is the target's position relative to ``reference``; a model whose reference is
    another site's RSU sees every position shifted by this offset, so the dataset builder refuses to mix
    sites and the tracker warns when the RSU it runs on is not the one its model was trained for.
    """
    ref = tuple(float(v) for v in reference)
    return float(np.linalg.norm(gps_to_local(np.asarray(fix, dtype=np.float64), ref)))


def preprocess_gps(gnss: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """GNSS ``(3,)`` or ``(K, 3)`` (row 0 = target) -> ``(3,)`` position relative to the RSU / gps_scale,
    in the site's frame (``cfg.gnss_frame``), so the feature means the same for every source of fixes."""
    g = np.asarray(gnss)
    if g.ndim == 2 and g.shape[0] >= 1 and g.shape[1] == 3:
        g = g[0]
    if g.shape != (3,) or not np.issubdtype(g.dtype, np.number):
        raise PreprocessError("gnss", f"expected (3,) [lat, lon, alt], got {g.dtype} {g.shape}")
    if not np.all(np.isfinite(g)):
        raise PreprocessError("gnss", "NaN/inf fix")
    if abs(g[0]) > 90 or abs(g[1]) > 180:
        raise PreprocessError("gnss", f"latitude/longitude out of range: {g[:2]}")
    return (gps_to_site(g, cfg.gps_reference, cfg.gnss_frame) / cfg.gps_scale).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# one frame
# --------------------------------------------------------------------------------------------------
def _get(frame: Any, name: str) -> Any:
    if isinstance(frame, Mapping):
        return frame.get(name)
    return getattr(frame, name, None)


def preprocess_frame(
    frame: Any,
    cfg: PreprocessConfig | None = None,
    modalities: tuple[str, ...] | None = None,
    return_stats: bool = False,
    lidar_background: np.ndarray | None = None,
    beam_tracks: BeamFeatureTracks | None = None,
    stamp: float | None = None,
    outputs: Sequence[str] | None = None,
) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], dict[str, int]]:
    """Preprocess one synchronized frame (a ``SensorFrame`` or a mapping with the same field names).

    ``modalities`` picks among 'camera', 'radar', 'lidar', 'gnss' and 'radio' (the previous frame's beam
    sweep, a :class:`~.beam_history.SweepRecord`; default: those present in the frame);
    a requested modality that is missing raises :class:`PreprocessError`. With ``return_stats`` also
    returns how many NaN/inf points were dropped per cloud (``{'radar_dropped': n, 'lidar_dropped': m}``).
    ``beam_tracks``: the stream's :class:`BeamFeatureTracks` for the beam-space features (None: stateless),
    with the frame's ``stamp`` (default: the frame's own ``stamp`` field). ``outputs``: the keys a model
    reads (None: all, as a dataset stores them); the beam-space features (a few ms each) are computed only
    when wanted -- the live tracker passes its model's inputs.
    """

    stamp = stamp if stamp is not None else _get(frame, "stamp")
    cfg = cfg or PreprocessConfig()

    def beams_wanted(key: str) -> bool:
        return cfg.geometry_lanes is not None and (outputs is None or key in outputs)

    present = tuple(m for m in SOURCES if _get(frame, m) is not None)
    wanted = present if modalities is None else tuple(modalities)
    out: dict[str, np.ndarray] = {}
    stats: dict[str, int] = {}
    for m in wanted:
        if m not in MODALITY_KEYS:
            raise ValueError(f"modalities: unknown modality {m!r}; choose from {tuple(MODALITY_KEYS)}")
        raw = _get(frame, m)
        if raw is None:
            raise PreprocessError(m, "missing from the frame")
        if m == "camera":
            out.update(preprocess_camera(raw, cfg))
        elif m == "radar":
            out["radar_points"], stats["radar_dropped"] = radar_points(raw, cfg)
            out["radar_maps"], _ = radar_detection_maps(raw, cfg)
            if beams_wanted("radar_beams"):
                out["radar_beams"] = radar_beam_features(raw, cfg, beam_tracks, stamp)
        elif m == "lidar":
            out["lidar_bev"], stats["lidar_dropped"] = lidar_bev(raw, cfg)
            out["lidar_feat"], _ = lidar_range_profile(raw, cfg, lidar_background)
            if beams_wanted("lidar_beams"):
                out["lidar_beams"] = lidar_beam_features(raw, cfg, beam_tracks, stamp)
        elif m == "radio":
            if not isinstance(raw, SweepRecord):
                raise PreprocessError(m, f"expected a SweepRecord, got {type(raw).__name__}")
            n = cfg.num_history_beams
            if n < 1:
                raise ValueError("PreprocessConfig.history_beams: needed for beam_history (no site codebook)")
            try:
                out["beam_history"] = beam_history_feature(raw, n)
            except ValueError as exc:
                raise PreprocessError(m, str(exc)) from exc
        else:
            out["gps"] = preprocess_gps(raw, cfg)
            if beams_wanted("gps_beams"):
                out["gps_beams"] = gps_beam_features(raw, cfg, beam_tracks, stamp)
    return (out, stats) if return_stats else out

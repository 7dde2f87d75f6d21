"""A non-learned sensor baseline: vehicles from the LiDAR cloud -> the RSU's own channel geometry -> beams.

Why it exists: a learned beam predictor is only worth its training if it beats something honest that
needs no training. This one reads the newest LiDAR cloud only and

1. moves the points into the world frame (CARLA sensor frame: left-handed, x forward, y right, z up;
   the mount pose comes from the site);
2. drops the ground (a height cut ``min_z`` above the road) and the static background (everything
   outside the road's band: facades, sidewalks, poles), and non-finite points;
3. clusters what is left on a ground grid (cells ``cell_m``, along x across the road, connected
   components over a small neighbourhood that bridges the gaps between a far vehicle's sparse returns;
   vectorised numpy, no per-point loop);
4. turns each cluster into a box: extent of its points, grown to a minimum car size *away from the
   sensor* (the LiDAR sees a vehicle's near faces), yaw along the road, height from its highest point;
5. runs the package's own :class:`~beam_tracking_ros.channel.ChannelModel` on those boxes with
   ``combine='incoherent'``, ``rng=None`` and zero shadowing (the geometry ceiling's channel, fed
   with detected instead of true boxes) and reduces the per-vehicle powers like the label does:
   sum-RSS over the detected vehicles within ``label_range_m`` and in front of the array, or, for
   single-target labels, one tracked vehicle (the nearest, kept while it stays in range);
6. for the horizon steps t+1..t+H, moves every tracked box with a constant-velocity estimate
   (nearest-neighbour association with the previous frame, smoothed velocity along the road).

The scores it returns are the predicted per-beam powers (dBm): argmax = predicted beam, the order =
Top-k. The tracker's "probabilities" are each beam's share of the predicted linear power.

Site knowledge: the RSU pose, the LiDAR mount, the road band and the codebook come from a
:class:`GeometrySite`. :meth:`GeometrySite.from_sim_config` takes them from the built-in scenario
(``SimConfig``: lanes, lane width, RSU position and heading, LiDAR mount height, channel config); a
real deployment must build its own ``GeometrySite`` from its surveyed RSU pose, sensor extrinsics,
road geometry and array/codebook. Of the buildings, the built-in site has the street's building line
(``walls='street'``: one facade per side at the scenario's building line, which a deployed RSU knows from
its map); the single buildings change with the scene's seed and are left out. The facades matter for
single-target labels (reflections take over when the target's line of sight turns away from the
array's best lobes: the GPS feature's Top-5 0.71 -> 0.93), hardly for sum-RSS (MPR +0.001).
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from ..channel import (
    ChannelConfig,
    ChannelModel,
    RsuPose,
    VehicleBoxes,
    Walls,
    label_powers,
    sum_rss_dbm,
)
from ..channel.labels import LABEL_MODES
from .errors import PreprocessError

MODEL_NAME = "geometry"
#: Grid neighbourhood of the clustering, in cells (x along the road, y across; 0.5 m cells): bridges
#: ~2 m gaps along a lane (a car 30 m away shows its end face and its roof 2 m apart: the LiDAR's rows are
#: 2 deg apart) but not the ~1.7 m between cars in adjacent lanes; cars in one lane keep more than 2 m
#: (IDM jam distance) apart when moving.
_NEIGHBOURS = [(dx, dy) for dx in range(0, 5) for dy in (-1, 0, 1) if (dx, dy) > (0, 0)]
_LN10_10 = np.log(10.0) / 10.0


class GeometryInputError(PreprocessError):
    """A cloud the baseline cannot read (wrong shape or type, none at all); the message starts with
    'lidar:'. A ``PreprocessError`` (a ValueError), so the tracker node counts it as a malformed LiDAR
    frame instead of crashing, as it does for the learned models' preprocessing."""

    def __init__(self, message: str) -> None:
        super().__init__("lidar", message)


SITE_WALLS = ("street", "scene", "none")  # GeometrySite.from_sim_config(walls=...)


@dataclass(frozen=True)
class GeometrySite:
    """What the baseline must know about the RSU it runs on (world frame: right-handed, metres, z up).

    rsu: the mmWave array's pose; lidar_origin (3,) / lidar_yaw: the LiDAR's mount; road_y: the world-y
    band the lanes occupy (min, max), the only place vehicles are looked for; road_axis_yaw: the road's
    direction (box yaw); channel: array, codebook and link budget of the RSU; walls: reflecting
    facades or None; label_mode / label_range_m: which vehicles the beam serves (as the labels);
    dt: frame period (s) between horizon steps; right_hand_traffic: vehicles on the road axis's right
    (across < 0) drive along it, the others against it (None: no direction prior).
    """

    rsu: RsuPose
    lidar_origin: tuple[float, float, float]
    lidar_yaw: float
    road_y: tuple[float, float]
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    road_axis_yaw: float = 0.0
    walls: Walls | None = None
    label_mode: str = "sum_rss"
    label_range_m: float = 80.0
    dt: float = 0.1
    right_hand_traffic: bool | None = True

    def __post_init__(self) -> None:
        if self.label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode: unknown {self.label_mode!r}, expected one of {LABEL_MODES}")
        if not self.road_y[0] < self.road_y[1]:
            raise ValueError(f"road_y must be (min, max) with min < max, got {self.road_y}")
        if not self.dt > 0 or not self.label_range_m > 0:
            raise ValueError("dt and label_range_m must be positive")

    @classmethod
    def from_sim_config(cls, config: Any = None, *, walls: str = "street", **overrides: Any) -> GeometrySite:
        """The site of a built-in scenario (``SimConfig``; default ``SimConfig()``): RSU pose, LiDAR mount,
        road band and channel exactly as the simulator builds them. ``walls``: ``'street'`` (default) the
        building line on both sides (``sim.scene.street_walls``: what a site survey knows, the same for
        every seed), ``'scene'`` the scenario's own buildings (they depend on its seed: only the
        simulator knows them), ``'none'`` line of sight and ground only."""
        from ..sim import SimConfig
        from ..sim.scene import build_scene, street_walls

        if walls not in SITE_WALLS:
            raise ValueError(f"walls: unknown {walls!r}, expected one of {SITE_WALLS}")
        cfg = config if config is not None else SimConfig()
        scene = build_scene(cfg, np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(7)[0]))
        rsu = scene.rsu
        kw: dict[str, Any] = dict(
            rsu=rsu,
            lidar_origin=(float(rsu.position[0]), float(rsu.position[1]), float(cfg.lidar.mount_height)),
            lidar_yaw=float(rsu.yaw),
            road_y=(-scene.half_road, scene.half_road),
            channel=cfg.channel,
            walls={"street": street_walls(cfg), "scene": scene.walls, "none": None}[walls],
            label_mode=cfg.label_mode,
            label_range_m=float(cfg.label_range_m),
            dt=float(cfg.dt),
        )
        kw.update(overrides)
        return cls(**kw)

    # ---- site files: a real RSU's survey ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The site as plain data (the layout of a site file, :meth:`from_dict`); angles in degrees."""
        import dataclasses

        walls = self.walls
        return {
            "rsu": {"position": [float(v) for v in self.rsu.position], "yaw_deg": float(np.degrees(self.rsu.yaw))},
            "lidar": {"origin": [float(v) for v in self.lidar_origin], "yaw_deg": float(np.degrees(self.lidar_yaw))},
            "road": {"y_min": float(self.road_y[0]), "y_max": float(self.road_y[1]),
                     "axis_yaw_deg": float(np.degrees(self.road_axis_yaw)),
                     "right_hand_traffic": self.right_hand_traffic},
            "channel": dataclasses.asdict(self.channel),
            "walls": [] if walls is None else [
                {"p0": [float(v) for v in walls.p0[k]], "p1": [float(v) for v in walls.p1[k]],
                 "height": float(walls.height[k]), "loss_db": float(walls.loss_db[k])} for k in range(len(walls))],
            "label_mode": self.label_mode,
            "label_range_m": float(self.label_range_m),
            "dt": float(self.dt),
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "site") -> GeometrySite:
        """A site from plain data (:meth:`to_dict`'s layout), e.g. a real RSU's survey in a YAML file.

        Why strict: a misspelt key would silently leave a default (the built-in scene's RSU pose, say) in
        place and point every beam the wrong way, so unknown or missing keys and bad values are errors that
        name the key (``source`` prefixes the message: the file's path).
        """
        from ..channel import ArrayConfig, CodebookConfig

        def fail(key: str, why: str) -> ValueError:
            return ValueError(f"{source}: {key}: {why}")

        def table(d: Any, key: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, Any]:
            if not isinstance(d, dict):
                raise fail(key, f"expected a mapping, got {type(d).__name__}")
            unknown = sorted(set(d) - set(required) - set(optional))
            if unknown:
                raise fail(key, f"unknown key(s) {unknown}; known {sorted([*required, *optional])}")
            missing = [k for k in required if k not in d]
            if missing:
                raise fail(key, f"missing key(s) {missing}")
            return d

        def number(v: Any, key: str) -> float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise fail(key, f"expected a finite number, got {v!r}")
            return float(v)

        def vector(v: Any, n: int, key: str) -> tuple[float, ...]:
            if not isinstance(v, (list, tuple)) or len(v) != n:
                raise fail(key, f"expected a list of {n} numbers, got {v!r}")
            return tuple(number(x, f"{key}[{i}]") for i, x in enumerate(v))

        d = table(data, "site", ("rsu", "lidar", "road"), ("channel", "walls", "label_mode", "label_range_m", "dt"))
        rsu = table(d["rsu"], "rsu", ("position", "yaw_deg"))
        lidar = table(d["lidar"], "lidar", ("origin", "yaw_deg"))
        road = table(d["road"], "road", ("y_min", "y_max"), ("axis_yaw_deg", "right_hand_traffic"))
        rht = road.get("right_hand_traffic", True)
        if rht is not None and not isinstance(rht, bool):
            raise fail("road.right_hand_traffic", f"expected true, false or null, got {rht!r}")
        ch = dict(table(d.get("channel", {}), "channel", (), [f.name for f in fields(ChannelConfig)]))
        try:
            if "array" in ch:
                ch["array"] = ArrayConfig(**table(ch["array"], "channel.array", (),
                                                  [f.name for f in fields(ArrayConfig)]))
            if "codebook" in ch:
                ch["codebook"] = CodebookConfig(**table(ch["codebook"], "channel.codebook", (),
                                                        [f.name for f in fields(CodebookConfig)]))
            channel = ChannelConfig(**ch)
        except (TypeError, ValueError) as exc:
            raise fail("channel", str(exc)) from exc
        wall_rows = d.get("walls") or []
        if not isinstance(wall_rows, list):
            raise fail("walls", f"expected a list of walls, got {type(wall_rows).__name__}")
        walls = None
        if wall_rows:
            rows = [table(w, f"walls[{i}]", ("p0", "p1", "height"), ("loss_db",)) for i, w in enumerate(wall_rows)]
            try:
                walls = Walls(np.array([vector(w["p0"], 2, f"walls[{i}].p0") for i, w in enumerate(rows)]),
                              np.array([vector(w["p1"], 2, f"walls[{i}].p1") for i, w in enumerate(rows)]),
                              np.array([number(w["height"], f"walls[{i}].height") for i, w in enumerate(rows)]),
                              np.array([number(w.get("loss_db", 8.0), f"walls[{i}].loss_db")
                                        for i, w in enumerate(rows)]))
            except ValueError as exc:
                raise fail("walls", str(exc)) from exc
        try:
            return cls(
                rsu=RsuPose(vector(rsu["position"], 3, "rsu.position"),  # type: ignore[arg-type]
                            float(np.radians(number(rsu["yaw_deg"], "rsu.yaw_deg")))),
                lidar_origin=vector(lidar["origin"], 3, "lidar.origin"),  # type: ignore[arg-type]
                lidar_yaw=float(np.radians(number(lidar["yaw_deg"], "lidar.yaw_deg"))),
                road_y=(number(road["y_min"], "road.y_min"), number(road["y_max"], "road.y_max")),
                channel=channel,
                road_axis_yaw=float(np.radians(number(road.get("axis_yaw_deg", 0.0), "road.axis_yaw_deg"))),
                walls=walls,
                label_mode=str(d.get("label_mode", "sum_rss")),
                label_range_m=number(d.get("label_range_m", 80.0), "label_range_m"),
                dt=number(d.get("dt", 0.1), "dt"),
                right_hand_traffic=rht,
            )
        except ValueError as exc:
            if str(exc).startswith(source):
                raise
            raise fail("site", str(exc)) from exc

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> GeometrySite:
        """A site file (YAML, :meth:`to_dict`'s layout under a top-level ``site:`` key); see
        ``config/sites/builtin_2lane.yaml``. Errors name the file and the key."""
        import yaml

        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except OSError as exc:
            raise ValueError(f"site file {os.fspath(path)!r} cannot be read: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise ValueError(f"site file {os.fspath(path)!r} is not valid YAML: {exc}") from exc
        if not isinstance(doc, dict) or "site" not in doc:
            raise ValueError(f"site file {os.fspath(path)!r}: expected a mapping with a top-level 'site:' key")
        return cls.from_dict(doc["site"], source=f"site file {os.fspath(path)!r}")

    def to_yaml(self) -> str:
        """The site file text of this site (``site:`` + :meth:`to_dict`)."""
        import yaml

        return yaml.safe_dump({"site": self.to_dict()}, sort_keys=False, default_flow_style=None)


@dataclass
class Detections:
    """Vehicles found in one cloud: boxes (world frame) and the number of points behind each."""

    boxes: VehicleBoxes
    points: np.ndarray  # (V,) int
    dropped_nonfinite: int = 0
    speed: np.ndarray | None = None  # (V,) measured speed along the road axis (m/s; NaN: not measured)


@dataclass
class GeometryEstimate:
    """One frame's prediction: ``scores`` (H + 1, B) predicted label powers (dBm; argmax = beam) and
    ``degraded`` (no vehicle to serve was detected: the scores are flat, the beam is a guess)."""

    scores: np.ndarray
    degraded: bool
    vehicles: int
    dropped_nonfinite: int = 0


def _blas_lib() -> Any:
    """numpy's bundled OpenBLAS, for its thread-local thread count (None where not found)."""
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
            fn = lib.openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
        return fn
    return None


_SET_LOCAL_THREADS = _blas_lib()


@contextmanager
def _single_thread_blas() -> Any:
    """Run numpy's small matrix products on this thread only.

    Why: the channel model's products are tiny (tens of paths x 64 elements x 152 beams); on a busy
    2-core machine (simulator, tracker and evaluator side by side) OpenBLAS's worker threads waiting for
    a core made one call 15 ms instead of 0.5 ms. Thread-local, so nothing else in the process changes.
    """
    if _SET_LOCAL_THREADS is None:
        yield
        return
    old = _SET_LOCAL_THREADS(1)
    try:
        yield
    finally:
        _SET_LOCAL_THREADS(max(int(old), 1))


def lidar_to_world(points: np.ndarray, origin: Sequence[float], yaw: float) -> np.ndarray:
    """(N, >=3) CARLA-frame LiDAR points (x fwd, y right, z up) -> (N, 3) world points (y left)."""
    p = np.asarray(points, dtype=np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    x, y, z = p[:, 0], -p[:, 1], p[:, 2]
    return np.stack([origin[0] + c * x - s * y, origin[1] + s * x + c * y, origin[2] + z], axis=1)


def _components(keys: np.ndarray, stride: int) -> np.ndarray:
    """Connected components of occupied grid cells (sorted unique keys ``ix * stride + iy``) over
    ``_NEIGHBOURS``: a label per cell (min-label propagation with pointer jumping, all vectorised)."""
    n = keys.size
    lab = np.arange(n)
    us, vs = [], []
    for dx, dy in _NEIGHBOURS:
        nb = keys + dx * stride + dy
        j = np.searchsorted(keys, nb)
        ok = j < n
        ok[ok] = keys[j[ok]] == nb[ok]
        us.append(np.nonzero(ok)[0])
        vs.append(j[ok])
    u, v = np.concatenate(us), np.concatenate(vs)
    if u.size == 0:
        return lab
    while True:
        new = lab.copy()
        np.minimum.at(new, u, lab[v])
        np.minimum.at(new, v, lab[u])
        new = new[new]
        new = new[new]
        if np.array_equal(new, lab):
            return lab
        lab = new


class GeometryBaseline:
    """The per-frame baseline (see the module docstring); ``predict(cloud) -> GeometryEstimate``.

    Holds a small state (the previous frame's vehicles, their velocities, the single-mode target), so
    one instance serves one stream; :meth:`reset` forgets it (a new episode, a clock jump).
    """

    def __init__(self, site: GeometrySite, horizon: int = 3, *, min_z: float = 0.3, max_z: float = 4.5,
                 road_margin_m: float = 0.3, cell_m: float | tuple[float, float] = 0.5, min_points: int = 3,
                 min_size: tuple[float, float, float] = (4.2, 1.8, 1.4), velocity_smoothing: float = 0.5,
                 max_speed_mps: float = 25.0, max_coast: int | None = None,
                 initial_speed_mps: float = 10.0) -> None:
        if int(horizon) < 0:
            raise ValueError(f"horizon must be >= 0, got {horizon}")
        cells = np.broadcast_to(np.asarray(cell_m, dtype=np.float64), (2,))
        if not (cells > 0).all() or int(min_points) < 1:
            raise ValueError(f"cell_m must be > 0 (one size, or (along, across) the road) and min_points >= 1, "
                             f"got {cell_m}, {min_points}")
        self.site = site
        self.horizon = int(horizon)
        self.min_z, self.max_z = float(min_z), float(max_z)
        self.road_margin_m = float(road_margin_m)
        # (along, across) the road: a radar's few returns spread over a car's 4-5 m side need long cells
        # to stay one vehicle, while lanes 3.5 m apart must stay apart (see preprocess._geometry_baseline)
        self.cell_m = (float(cells[0]), float(cells[1]))
        self.min_points = int(min_points)
        self.min_size = np.asarray(min_size, dtype=np.float64)
        self.alpha = float(velocity_smoothing)
        self.max_speed = float(max_speed_mps)
        # Coasting keeps a single-mode target through the mast's blind zone (2-lane single-target test MPR
        # 0.77 -> 0.87 on seeds 200-201); for sum-RSS the coasted ghosts cost more than they gave
        # (MPR 0.937 -> 0.917), so it is off there by default.
        self.initial_speed = float(initial_speed_mps)
        self.max_coast = int(max_coast if max_coast is not None else (15 if site.label_mode == "single" else 0))
        self.channel = ChannelModel(replace(site.channel, combine="incoherent"))
        self.n_beams = self.channel.n_beams
        self._origin = np.asarray(site.lidar_origin, dtype=np.float64)
        self._axis = np.array([np.cos(site.road_axis_yaw), np.sin(site.road_axis_yaw)])
        self.reset()

    def reset(self) -> None:
        """Forget the tracks (positions, velocities, ids) and the single-mode target."""
        self._prev_xy = np.zeros((0, 2))
        self._prev_v = np.zeros(0)
        self._prev_id = np.zeros(0, dtype=np.int64)
        self._prev_age = np.zeros(0, dtype=np.int64)
        self._prev_miss = np.zeros(0, dtype=np.int64)
        self._prev_seen_xy = np.zeros((0, 2))
        self._prev_size = np.zeros((0, 3))
        self._prev_stamp: float | None = None
        self._next_id = 0
        self._target: int | None = None

    # ---- detection ---------------------------------------------------------------------------------
    def detect(self, cloud: np.ndarray, along_speed: np.ndarray | None = None) -> Detections:
        """Vehicles of one LiDAR cloud ((N, 3+) CARLA sensor frame) as world-frame boxes. ``along_speed``
        (N,): each point's measured speed along the road (a radar's Doppler; NaN where not measurable);
        a vehicle's speed is the mean over its points."""
        pts = np.asarray(cloud)
        if pts.ndim != 2 or pts.shape[1] < 3 or not np.issubdtype(pts.dtype, np.number):
            raise GeometryInputError(
                f"expected an (N, 4) float cloud [x, y, z, intensity], got {pts.shape} {pts.dtype}")
        if along_speed is not None and np.shape(along_speed) != (pts.shape[0],):
            raise GeometryInputError(f"along_speed: expected ({pts.shape[0]},), got {np.shape(along_speed)}")
        finite = np.isfinite(pts[:, :3]).all(axis=1)
        dropped = int(pts.shape[0] - finite.sum())
        w = lidar_to_world(pts[finite], self._origin, self.site.lidar_yaw)
        along = w[:, :2] @ self._axis
        across = w[:, :2] @ np.array([-self._axis[1], self._axis[0]])
        lo, hi = self.site.road_y
        m = self.road_margin_m
        keep = (w[:, 2] >= self.min_z) & (w[:, 2] <= self.max_z) & (across >= lo - m) & (across <= hi + m)
        rsu_along = np.asarray(self.site.rsu.position[:2]) @ self._axis
        keep &= np.abs(along - rsu_along) <= self.site.label_range_m + 10.0
        along, across, z = along[keep], across[keep], w[keep, 2]
        if along.size == 0:
            return Detections(VehicleBoxes(np.zeros((0, 3)), np.ones((0, 3)), np.zeros(0)), np.zeros(0, int), dropped,
                              None if along_speed is None else np.zeros(0))
        ix = np.floor(along / self.cell_m[0]).astype(np.int64)
        iy = np.floor(across / self.cell_m[1]).astype(np.int64)
        ix -= ix.min() - 2
        iy -= iy.min() - 2
        stride = int(iy.max()) + 4
        keys, cell_of = np.unique(ix * stride + iy, return_inverse=True)
        comp = _components(keys, stride)[cell_of]
        _, cl, counts = np.unique(comp, return_inverse=True, return_counts=True)
        k = counts.size
        xmin = np.full(k, np.inf)
        xmax = np.full(k, -np.inf)
        ymin = np.full(k, np.inf)
        ymax = np.full(k, -np.inf)
        zmax = np.zeros(k)
        np.minimum.at(xmin, cl, along)
        np.maximum.at(xmax, cl, along)
        np.minimum.at(ymin, cl, across)
        np.maximum.at(ymax, cl, across)
        np.maximum.at(zmax, cl, z)
        ok = counts >= self.min_points
        speed = None
        if along_speed is not None:
            v = np.asarray(along_speed, dtype=np.float64)[finite][keep]
            known = np.isfinite(v)
            total, n_known = np.zeros(k), np.zeros(k)
            np.add.at(total, cl[known], v[known])
            np.add.at(n_known, cl[known], 1.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                speed = np.where(n_known > 0, total / n_known, np.nan)[ok]
        xmin, xmax, ymin, ymax, zmax, counts = (a[ok] for a in (xmin, xmax, ymin, ymax, zmax, counts))
        # grow each box to a minimum vehicle size away from the sensor: its near faces are what was seen
        sx = np.asarray(self._origin[:2]) @ self._axis
        sy = np.asarray(self._origin[:2]) @ np.array([-self._axis[1], self._axis[0]])
        length = np.maximum(xmax - xmin, self.min_size[0])
        width = np.maximum(ymax - ymin, self.min_size[1])
        height = np.maximum(zmax, self.min_size[2])
        beyond_x = 0.5 * (xmin + xmax) >= sx
        cx = np.where(beyond_x, xmin + length / 2, xmax - length / 2)
        beyond_y = 0.5 * (ymin + ymax) >= sy
        cy = np.where(beyond_y, ymin + width / 2, ymax - width / 2)
        centre_xy = cx[:, None] * self._axis + cy[:, None] * np.array([-self._axis[1], self._axis[0]])
        center = np.c_[centre_xy, height / 2]
        size = np.c_[length, width, height]
        yaw = np.full(len(cx), self.site.road_axis_yaw)
        return Detections(VehicleBoxes(center, size, yaw), counts.astype(int), dropped, speed)

    # ---- tracking ----------------------------------------------------------------------------------
    def _track(self, boxes: VehicleBoxes, stamp: float | None,
               speed: np.ndarray | None = None) -> tuple[VehicleBoxes, np.ndarray, np.ndarray]:
        """Associate the boxes with the previous frame's tracks (nearest along the road, same lane, one to
        one) and coast the tracks not seen this frame for up to ``max_coast`` frames at their predicted
        positions (the mast's blind zone right below the LiDAR, a vehicle hidden behind a truck).
        Returns (boxes incl. coasted ones, track ids, velocities along the road in m/s)."""
        xy = boxes.center[:, :2]
        n = len(boxes)
        ids = np.full(n, -1, dtype=np.int64)
        across_axis = np.array([-self._axis[1], self._axis[0]])
        # a new track's velocity: the lane's direction at a typical urban speed (site knowledge), until measured
        direction = self._lane_direction(xy @ across_axis)
        vel = direction * self.initial_speed
        age = np.ones(n, dtype=np.int64)
        dt = None if self._prev_stamp is None or stamp is None else stamp - self._prev_stamp
        if dt is None and self._prev_stamp is None and stamp is None and self._prev_xy.shape[0]:
            dt = self.site.dt  # no stamps: consecutive frames
        m = self._prev_xy.shape[0]
        used_prev = np.zeros(m, bool)
        if dt is not None and 0 < dt <= 5 * self.site.dt and m:
            pred = self._prev_xy + dt * self._prev_v[:, None] * self._axis
            if n:
                d = xy[:, None, :] - pred[None, :, :]
                d_along, d_across = d @ self._axis, d @ across_axis
                gate = (np.abs(d_across) < 1.5) & (np.abs(d_along) < 2.0 + 0.25 * self.max_speed * dt
                                                   + 1.5 * self._prev_miss[None, :])
                cost = np.where(gate, np.abs(d_along) + np.abs(d_across), np.inf)
                for flat in np.argsort(cost, axis=None)[: int(np.isfinite(cost).sum())]:  # greedy, cheapest first
                    i, j = divmod(int(flat), m)
                    if ids[i] >= 0 or used_prev[j]:
                        continue
                    ids[i] = self._prev_id[j]
                    used_prev[j] = True
                    span = dt * (1 + self._prev_miss[j])
                    meas = float(((xy[i] - self._prev_seen_xy[j]) @ self._axis) / span)
                    meas = float(self._lane_speed(meas, direction[i]))
                    # a track's first measured velocity is taken as is; later ones are smoothed
                    a = self.alpha if self._prev_age[j] > 1 or direction[i] != 0 else 0.0
                    vel[i] = a * self._prev_v[j] + (1 - a) * meas
                    age[i] = self._prev_age[j] + 1
            # the single-mode target is coasted for as long as it is predicted in range: the label keeps it
            # until it leaves, even where the LiDAR has long lost it (its range ends where the label's does)
            keep = (self._prev_miss < self.max_coast) | ((self._prev_id == self._target) & (self.max_coast > 0))
            coast = ~used_prev & keep & (self._prev_age > 1)
            coast &= np.linalg.norm(pred - np.asarray(self.site.rsu.position[:2]), axis=1) <= self.site.label_range_m
            if n and coast.any():  # a coasted track overlapping a detection is that detection under a new id
                d = pred[None, :, :] - xy[:, None, :]
                reach = 0.5 * (boxes.size[:, None, 0] + self._prev_size[None, :, 0]) + 1.0
                overlap = (np.abs(d @ across_axis) < 1.5) & (np.abs(d @ self._axis) < reach)
                coast &= ~overlap.any(axis=0)
        else:
            coast = np.zeros(m, bool)
            pred = self._prev_xy
        if speed is not None and n:  # a measured speed (Doppler) beats one from positions 0.1 s apart
            vel = np.where(np.isfinite(speed), self._lane_speed(speed, direction), vel)
        new = ids < 0
        ids[new] = self._next_id + np.arange(int(new.sum()))
        self._next_id += int(new.sum())
        # state: detected tracks (seen now) + coasted tracks (seen before, predicted now)
        c = np.nonzero(coast)[0]
        all_xy = np.concatenate([xy, pred[c]])
        all_size = np.concatenate([boxes.size, self._prev_size[c]])
        all_v = np.concatenate([vel, self._prev_v[c]])
        all_ids = np.concatenate([ids, self._prev_id[c]])
        self._prev_seen_xy = np.concatenate([xy, self._prev_seen_xy[c]])
        self._prev_miss = np.concatenate([np.zeros(n, np.int64), self._prev_miss[c] + 1])
        self._prev_age = np.concatenate([age, self._prev_age[c]])
        self._prev_xy, self._prev_v, self._prev_id, self._prev_size = all_xy, all_v, all_ids, all_size
        self._prev_stamp = stamp
        center = np.c_[all_xy, all_size[:, 2] / 2]
        out = VehicleBoxes(center, all_size, np.full(len(all_xy), self.site.road_axis_yaw))
        return out, all_ids, all_v

    def _lane_speed(self, speed: Any, direction: Any) -> np.ndarray:
        """A measured speed along the road made plausible: vehicles do not reverse, so in a lane with a
        direction (+-1) it is clipped to [0, max] along it; without one (0) to [-max, max]."""
        v = np.clip(speed, -self.max_speed, self.max_speed)
        return np.where(direction != 0, direction * np.clip(direction * v, 0.0, self.max_speed), v)

    def _lane_direction(self, across: np.ndarray) -> np.ndarray:
        """+1 / -1: the direction along the road axis vehicles drive at these offsets; 0 without a prior."""
        if self.site.right_hand_traffic is None:
            return np.zeros(len(across))
        sign = 1.0 if self.site.right_hand_traffic else -1.0
        return np.where(across < 0, sign, -sign)

    # ---- prediction --------------------------------------------------------------------------------
    def predict(self, cloud: np.ndarray, stamp: float | None = None,
                along_speed: np.ndarray | None = None) -> GeometryEstimate:
        """Scores (H + 1, B) for the frame whose LiDAR cloud is ``cloud`` (see the module docstring);
        ``along_speed`` as in :meth:`detect` (measured speeds replace the tracked ones)."""
        det = self.detect(cloud, along_speed)
        boxes, ids, vel = self._track(det.boxes, stamp, det.speed)
        site = self.site
        scores = np.zeros((self.horizon + 1, self.n_beams), np.float32)
        served_any = False
        rsu_xy = np.asarray(site.rsu.position[:2], dtype=np.float64)
        target: int | None = None
        if site.label_mode == "single" and len(boxes):
            dist0 = np.linalg.norm(boxes.center[:, :2] - rsu_xy, axis=1)
            # in front of the array (the label's path_valid[:, 0]): the array frame's x > 0
            ahead = (boxes.center[:, :2] - rsu_xy) @ np.array([np.cos(site.rsu.yaw), np.sin(site.rsu.yaw)]) > 0
            target = self._target_row(ids, dist0, (dist0 <= site.label_range_m) & ahead)
        with _single_thread_blas():
            for h in range(self.horizon + 1):
                if len(boxes) == 0:
                    break
                center = boxes.center.copy()
                center[:, :2] += (h * site.dt * vel)[:, None] * self._axis
                moved = VehicleBoxes(center, boxes.size, boxes.yaw)
                res = self.channel.compute(site.rsu, moved, site.walls, rng=None, shadow_db=np.zeros(len(moved)))
                dist = np.linalg.norm(center[:, :2] - rsu_xy, axis=1)
                inr = (dist <= site.label_range_m) & res.path_valid[:, 0]
                if not inr.any():
                    continue
                if site.label_mode == "single":
                    if target is None or not inr[target]:
                        continue
                    scores[h] = label_powers(res.powers_dbm, "single", target)
                else:
                    scores[h] = sum_rss_dbm(res.powers_dbm[inr], axis=0)
                served_any = True
        # a step nobody is served at (everyone left the range) repeats the nearest served step
        empty = ~np.any(scores != 0, axis=1)
        if served_any and empty.any():
            good = np.nonzero(~empty)[0]
            for h in np.nonzero(empty)[0]:
                scores[h] = scores[good[np.argmin(np.abs(good - h))]]
        return GeometryEstimate(scores, degraded=not served_any, vehicles=len(boxes),
                                dropped_nonfinite=det.dropped_nonfinite)

    def _target_row(self, ids: np.ndarray, dist: np.ndarray, inr: np.ndarray) -> int | None:
        """Single-target labels keep one vehicle until it leaves the range (sim/simulator.py): keep the
        target's track (coasted through blind spots) while it is in range, else take the nearest."""
        if self._target is not None:
            rows = np.nonzero((ids == self._target) & inr)[0]
            if rows.size:
                return int(rows[0])
        if not inr.any():
            self._target = None
            return None
        row = int(np.argmin(np.where(inr, dist, np.inf)))
        self._target = int(ids[row])
        return row


def power_shares(scores: np.ndarray) -> np.ndarray:
    """Each beam's share of the predicted linear power, per row (a softmax of dBm * ln(10) / 10)."""
    z = np.asarray(scores, dtype=np.float64) * _LN10_10
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


__all__ = [
    "MODEL_NAME",
    "Detections",
    "GeometryBaseline",
    "GeometryEstimate",
    "GeometryInputError",
    "GeometrySite",
    "lidar_to_world",
    "power_shares",
]

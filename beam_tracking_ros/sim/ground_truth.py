"""The ground truth, once for the built-in simulator and the CARLA bridge: who is served, the beam label,
correlated shadowing, and the vehicles' GNSS fixes.

Why one module: the simulator and the bridge must label a scene by the same rule, or a model trained on
one is scored against a different truth on the other (and a recorded CARLA bag would build a dataset
that disagrees with the simulator's). Everything here is plain numpy over arrays of vehicles (centres,
ids, speeds), so each caller feeds it from its own world: the simulator's traffic, CARLA's actors.

* **Served vehicles**: within ``label_range_m`` of the RSU (horizontal distance) and in front of the
  array (the LoS direction valid).
* **Label** (:func:`choose_label`): 'single' keeps its target while it is served and otherwise takes the
  nearest served vehicle (the beam-tracking papers' one user); 'sum_rss' sums every served vehicle's
  power per pattern (CRKD), reports the LoS blockage of the vehicle dominating the optimal beam, and
  names the nearest served vehicle as the one whose GNSS is published -- chosen from geometry alone,
  because the vehicle dominating the optimal beam would leak the label into the model's input.
* **Shadowing** (:class:`ShadowingProcess`): per vehicle and path, log-normal, AR(1) in travelled distance
  (Gudmundson model, decorrelation ``SHADOW_DCORR`` m), so labels do not flicker from frame to frame.
* **GNSS** (:func:`roof_gnss`): the roof centre through CARLA's geo-projection, with Gaussian noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..channel import ChannelResult, label_powers, optimal_beam
from .carla_format import location_to_gnss, world_to_carla
from .config import LABEL_MODES
from .types import BeamLabel

__all__ = ["SHADOW_DCORR", "ShadowingProcess", "choose_label", "roof_gnss", "served_vehicles"]

SHADOW_DCORR = 10.0  # m: shadowing decorrelation distance


class ShadowingProcess:
    """Per-vehicle, per-path shadowing (dB), keyed by vehicle id: vehicles may appear and vanish in any order.

    Each :meth:`update` draws, in this order, the values of the vehicles it has not seen (i.i.d. N(0, sigma))
    and the innovations of the ones it has (``x <- rho x + sqrt(1 - rho^2) e``, ``rho = exp(-|v| dt / d_corr)``),
    so a seed gives the same stream wherever the process runs.
    """

    def __init__(self, sigma_db: float, n_paths: int, rng: np.random.Generator) -> None:
        self.sigma = float(sigma_db)
        self.n_paths = int(n_paths)
        self.rng = rng
        self.ids = np.zeros(0, np.int64)
        self.values = np.zeros((0, self.n_paths))

    def update(self, ids: np.ndarray, speed: np.ndarray, dt: float) -> np.ndarray:
        """(V, L) shadowing for the vehicles ``ids`` (with their speeds, m/s) ``dt`` seconds later."""
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(self.ids, kind="stable")
        pos = np.searchsorted(self.ids[order], ids)
        pos_c = np.minimum(pos, max(self.ids.size - 1, 0))
        known = (self.ids[order][pos_c] == ids) if self.ids.size else np.zeros(ids.size, bool)
        out = np.empty((ids.size, self.n_paths))
        out[~known] = self.rng.normal(0.0, self.sigma, (int((~known).sum()), self.n_paths))
        innov = self.rng.normal(0.0, self.sigma, (int(known.sum()), self.n_paths))
        rho = np.exp(-np.abs(np.asarray(speed, dtype=np.float64)[known]) * dt / SHADOW_DCORR)[:, None]
        out[known] = rho * self.values[order[pos_c[known]]] + np.sqrt(1.0 - rho**2) * innov
        self.ids, self.values = ids.copy(), out
        return out


def served_vehicles(result: ChannelResult, centers: np.ndarray, rsu_xy: Sequence[float], label_range_m: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(served mask, horizontal distance to the RSU) of every vehicle."""
    d = np.linalg.norm(np.asarray(centers)[:, :2] - np.asarray(rsu_xy, dtype=np.float64)[:2], axis=1)
    return (d <= label_range_m) & result.path_valid[:, 0], d


def choose_label(result: ChannelResult, ids: np.ndarray, centers: np.ndarray, rsu_xy: Sequence[float],
                 mode: str, label_range_m: float, prev_target: int | None,
                 ceiling: Callable[[], np.ndarray] | None = None,
                 ) -> tuple[BeamLabel | None, int | None, int | None]:
    """The label by the rule above: ``(label, row, target_id)``; ``row`` is the vehicle whose GNSS is
    published, ``target_id`` the single-target mode's target (None for sum-RSS). None when nobody is
    served. ``ceiling`` gives the (V, B) per-vehicle powers of the geometry ceiling, only called when a
    label is made (the simulator's reference; the bridge has none)."""
    if mode not in LABEL_MODES:
        raise ValueError(f"label_mode: unknown {mode!r}, expected one of {LABEL_MODES}")
    ids = np.asarray(ids)
    served, d = served_vehicles(result, centers, rsu_xy, label_range_m)
    if not served.any():
        return None, None, None
    if mode == "single":
        rows = np.nonzero(ids == prev_target)[0] if prev_target is not None else np.zeros(0, int)
        row = int(rows[0]) if rows.size and served[rows[0]] else int(np.argmin(np.where(served, d, np.inf)))
        p = label_powers(result.powers_dbm, "single", row)
        ceil = None if ceiling is None else label_powers(ceiling(), "single", row)
        label = BeamLabel(p, int(optimal_beam(p)), [int(ids[row])], bool(result.los_blocked[row]), "single", ceil)
        return label, row, int(ids[row])
    rows = np.nonzero(served)[0]
    p = label_powers(result.powers_dbm[rows], "sum_rss")
    best = int(optimal_beam(p))
    dom = int(rows[np.argmax(result.powers_dbm[rows, best])])
    ceil = None if ceiling is None else label_powers(ceiling()[rows], "sum_rss")
    label = BeamLabel(p, best, [int(i) for i in ids[rows]], bool(result.los_blocked[dom]), "sum_rss", ceil)
    return label, int(rows[np.argmin(d[rows])]), None


#: Where fixes come from: ``(lat0, lon0, alt0)`` of the map's geoReference (CARLA 0.9.16's projection,
#: :func:`.carla_format.location_to_gnss`), or the map's own projection as a function of (N, 3) CARLA
#: locations -> (N, 3) [lat, lon, alt] (the CARLA bridge passes ``Map.transform_to_geolocation``).
GeoReference = tuple[float, float, float] | Callable[[np.ndarray], np.ndarray]


def project_gnss(carla_locations: np.ndarray, geo_ref: GeoReference) -> np.ndarray:
    """(N, 3) CARLA-frame locations -> (N, 3) [lat, lon, alt] by ``geo_ref`` (see :data:`GeoReference`)."""
    locs = np.asarray(carla_locations, dtype=np.float64).reshape(-1, 3)
    if callable(geo_ref):
        out = np.asarray(geo_ref(locs), dtype=np.float64).reshape(-1, 3)
        if out.shape != locs.shape:
            raise ValueError(f"geo_ref: the projection returned {out.shape} for {locs.shape} locations")
        return out
    return location_to_gnss(locs, *geo_ref)


def roof_gnss(centers_world: np.ndarray, heights: np.ndarray, geo_ref: GeoReference,
              rng: np.random.Generator | None = None, noise_std_m: float = 0.0) -> np.ndarray:
    """(V, 3) [lat, lon, alt] of the roof centres (box centres in the right-handed world frame, ``heights``
    the boxes' heights), projected as CARLA's GNSS sensor does (``geo_ref``, :data:`GeoReference`);
    with Gaussian noise of ``noise_std_m`` per axis, drawn in the world frame."""
    pos = np.array(centers_world, dtype=np.float64, copy=True).reshape(-1, 3)
    pos[:, 2] += np.asarray(heights, dtype=np.float64).reshape(-1) / 2
    if rng is not None and noise_std_m > 0:
        pos += rng.normal(0.0, noise_std_m, pos.shape)
    return project_gnss(world_to_carla(pos), geo_ref)

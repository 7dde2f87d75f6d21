"""Beam codebooks: single steering beams plus multi-beam patterns (CRKD's 152 patterns).

CRKD (Park et al. 2025) uses "152 distinct beam patterns ... single-beam and multi-beam
configurations of up to three beams", each spanning 180 deg azimuth and 70 deg elevation. The paper
does not list the patterns, so this module states its own construction, which yields exactly 152
for the default 64-element (4 x 16) array:

* **single beams**: ``n_az`` steering (DFT-like, oversampled) beams at the centres of ``n_az``
  equal bins of u = sin(azimuth) over ``az_span_deg`` (uniform in sin, as DFT beams are), times
  ``n_el`` elevations at the centres of ``n_el`` bins over ``el_span_deg`` around
  ``el_center_deg`` (default 32 x 1 = 32 beams, 0.0625 apart in sin(az), i.e. 2x oversampled for
  16 columns);
* **multi-beam patterns**: every unordered combination of 2 and of 3 directions taken from a
  coarser grid of ``multi_grid`` azimuths (bin centres in sin(az) over the same span, at
  ``el_center_deg``);
  the weight vector is the sum of the member steering vectors, normalised to unit norm. Default
  ``multi_grid = 9`` (0.22 apart in sin(az)): C(9,2) + C(9,3) = 36 + 84 = 120 patterns.

  Total: 32 + 36 + 84 = **152**. Patterns are ordered single beams first (azimuth-major within each
  elevation row from right to left), then pairs, then triples, each in lexicographic order of
  their coarse-grid indices.

Why a coarser grid for multi-beams: two beams closer than a beamwidth merge into one broadened
beam; 0.22 spacing in sin(az) keeps the lobes of a 16-column array (null-to-null 0.125) distinct,
which is what a multi-beam pattern is for (serving vehicles in separated directions).

"Larger than the array supports": a codebook that samples azimuth (elevation) more than 4x finer
than the array's resolution ``n_cols`` (``n_rows``) has near-identical neighbouring beams, and
multi-beam lobes closer than the array resolution merge; both are rejected with a ValueError.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from .array import ArrayConfig, direction_from_angles, steering_from_direction

MAX_OVERSAMPLING = 4


@dataclass(frozen=True)
class CodebookConfig:
    """Codebook layout; see the module docstring for the construction."""

    n_az: int = 32
    n_el: int = 1
    az_span_deg: float = 180.0
    el_span_deg: float = 70.0
    el_center_deg: float = -20.0
    multi_grid: int = 9
    max_beams: int = 3

    def __post_init__(self) -> None:
        for name in ("n_az", "n_el"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0.0 < self.az_span_deg <= 360.0:
            raise ValueError(f"az_span_deg must be in (0, 360], got {self.az_span_deg}")
        if not 0.0 <= self.el_span_deg <= 180.0:
            raise ValueError(f"el_span_deg must be in [0, 180], got {self.el_span_deg}")
        if self.max_beams not in (1, 2, 3):
            raise ValueError(f"max_beams must be 1, 2 or 3, got {self.max_beams!r}")
        if self.max_beams > 1 and (not isinstance(self.multi_grid, (int, np.integer))
                                   or self.multi_grid < self.max_beams):
            raise ValueError(
                f"multi_grid must be an integer >= max_beams ({self.max_beams}), got {self.multi_grid!r}"
            )

    @property
    def size(self) -> int:
        n = self.n_az * self.n_el
        for k in range(2, self.max_beams + 1):
            n += len(list(combinations(range(self.multi_grid), k)))
        return n


def _bin_centres(n: int, span: float, centre: float = 0.0) -> np.ndarray:
    return centre - span / 2.0 + (np.arange(n) + 0.5) * span / n


def _az_grid(n: int, span_deg: float) -> np.ndarray:
    """Azimuths (rad) at the centres of n equal bins in u = sin(az) over the span: DFT beams are
    uniform in sin(az), which keeps neighbouring beams equally distinct near endfire too."""
    umax = np.sin(np.radians(min(span_deg, 180.0) / 2.0))
    return np.arcsin(_bin_centres(n, 2.0 * umax))


@dataclass
class Codebook:
    """Beam weights ``weights`` (B, N) complex64, unit-norm rows, and per-beam metadata.

    members: (B, 3) int, indices into ``directions`` of the (up to 3) member beams, -1 padded.
    directions: (D, 2) float (az, el) in radians of all member directions (single beams first,
    then the coarse multi-beam grid).
    n_beams_per_pattern: (B,) 1, 2 or 3.
    """

    array: ArrayConfig
    config: CodebookConfig
    weights: np.ndarray = field(repr=False)
    members: np.ndarray = field(repr=False)
    directions: np.ndarray = field(repr=False)
    n_beams_per_pattern: np.ndarray = field(repr=False)

    @property
    def size(self) -> int:
        return int(self.weights.shape[0])

    def pattern_azimuths_deg(self) -> list[list[float]]:
        """Member azimuths (deg) of each pattern, for plots, markers and docs."""
        az = np.degrees(self.directions[:, 0])
        return [[float(az[m]) for m in row if m >= 0] for row in self.members]


def check_codebook_fits(array: ArrayConfig, config: CodebookConfig) -> None:
    """Raise ValueError (naming the parameter) if ``config`` asks more than ``array`` resolves."""
    if config.n_az > MAX_OVERSAMPLING * array.n_cols:
        raise ValueError(
            f"n_az={config.n_az}: codebook larger than the array supports "
            f"(at most {MAX_OVERSAMPLING} x n_cols = {MAX_OVERSAMPLING * array.n_cols} azimuth beams)"
        )
    if config.n_el > MAX_OVERSAMPLING * array.n_rows:
        raise ValueError(
            f"n_el={config.n_el}: codebook larger than the array supports "
            f"(at most {MAX_OVERSAMPLING} x n_rows = {MAX_OVERSAMPLING * array.n_rows} elevation beams)"
        )
    if config.max_beams > 1 and config.multi_grid > array.n_cols:
        raise ValueError(
            f"multi_grid={config.multi_grid}: multi-beam grid finer than the array resolves "
            f"(at most n_cols = {array.n_cols} directions)"
        )


def build_codebook(array: ArrayConfig | None = None, config: CodebookConfig | None = None) -> Codebook:
    """Build the codebook (see the module docstring). Raises ValueError if the array cannot
    support it."""
    array = array or ArrayConfig()
    config = config or CodebookConfig()
    check_codebook_fits(array, config)
    az = _az_grid(config.n_az, config.az_span_deg)
    el = np.radians(_bin_centres(config.n_el, config.el_span_deg, config.el_center_deg))
    if config.n_el == 1:
        el = np.radians(np.array([config.el_center_deg]))
    ee, aa = np.meshgrid(el, az, indexing="ij")
    single_dirs = np.stack([aa.ravel(), ee.ravel()], axis=1)
    n_single = single_dirs.shape[0]
    members_list = [np.stack([np.arange(n_single), -np.ones(n_single, int), -np.ones(n_single, int)], 1)]
    dirs = [single_dirs]
    if config.max_beams > 1:
        caz = _az_grid(config.multi_grid, config.az_span_deg)
        dirs.append(np.stack([caz, np.full_like(caz, np.radians(config.el_center_deg))], axis=1))
        for k in range(2, config.max_beams + 1):
            combos = np.array(list(combinations(range(config.multi_grid), k)), dtype=int) + n_single
            pad = -np.ones((combos.shape[0], 3 - k), dtype=int)
            members_list.append(np.concatenate([combos, pad], axis=1))
    directions = np.concatenate(dirs, axis=0)
    members = np.concatenate(members_list, axis=0)
    steer = steering_from_direction(array, direction_from_angles(directions[:, 0], directions[:, 1]))
    # Sum of member steering vectors (padding index -1 -> zero vector), then unit norm.
    steer_pad = np.concatenate([steer, np.zeros((1, array.n_antennas), np.complex64)], axis=0)
    w = steer_pad[members].sum(axis=1)  # -1 indexes the appended zero row
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    return Codebook(
        array=array,
        config=config,
        weights=w.astype(np.complex64),
        members=members,
        directions=directions,
        n_beams_per_pattern=(members >= 0).sum(axis=1),
    )

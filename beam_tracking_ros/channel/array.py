"""Base-station antenna arrays (ULA / URA) and their steering vectors.

Conventions (shared by the whole channel package):

* The array lies in its local y-z plane and looks along its local +x axis (boresight). Local y is
  to the left of boresight, local z is up (right-handed). A ULA is a single row along local y.
* A direction is given either as (azimuth, elevation) in radians -- azimuth positive to the left of
  boresight, elevation positive upwards -- or directly as a unit vector in the local frame.
* Element spacing is half a wavelength, so the phase of element (row r, column c) towards unit
  direction u is ``pi * ((c - c0) * u_y + (r - r0) * u_z)``. Elements are flattened row-major:
  index ``n = r * n_cols + c``.
* Steering vectors have unit-modulus entries (not normalised), so that a unit-norm beam weight
  ``w`` pointing exactly at a path yields ``|w^H a|^2 = N``: the full array gain.

Why separable: for a URA the steering vector is the Kronecker product of a row and a column
factor; computing the two small factors and multiplying them costs O(N_r + N_c) exponentials per
direction instead of O(N_r * N_c).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPEED_OF_LIGHT = 299_792_458.0
SUPPORTED_CARRIERS_GHZ = (28.0, 60.0)
ARRAY_KINDS = ("ula", "ura")


@dataclass(frozen=True)
class ArrayConfig:
    """Antenna array of the base station / RSU.

    kind: 'ula' (one row of ``n_cols`` elements) or 'ura' (``n_rows`` x ``n_cols``).
    carrier_ghz: 28 or 60 (the two mmWave bands the papers use).
    The default 4 x 16 URA has the 64 elements of the CRKD setup: 16 columns resolve azimuth
    (the road), 4 rows give a broad elevation beam that covers near and far vehicles.
    """

    kind: str = "ura"
    n_rows: int = 4
    n_cols: int = 16
    carrier_ghz: float = 28.0

    def __post_init__(self) -> None:
        if self.kind not in ARRAY_KINDS:
            raise ValueError(f"array kind: unknown {self.kind!r}, expected one of {ARRAY_KINDS}")
        if not isinstance(self.n_cols, (int, np.integer)) or self.n_cols <= 0:
            raise ValueError(f"n_cols (antennas per row) must be a positive integer, got {self.n_cols!r}")
        if not isinstance(self.n_rows, (int, np.integer)) or self.n_rows <= 0:
            raise ValueError(f"n_rows (antenna rows) must be a positive integer, got {self.n_rows!r}")
        if self.kind == "ula" and self.n_rows != 1:
            # A ULA has one row by definition; normalise silently would hide a config mistake.
            raise ValueError(f"n_rows must be 1 for a 'ula' array, got {self.n_rows}")
        if float(self.carrier_ghz) not in SUPPORTED_CARRIERS_GHZ:
            raise ValueError(
                f"carrier_ghz: unsupported carrier {self.carrier_ghz!r}, "
                f"expected one of {SUPPORTED_CARRIERS_GHZ}"
            )

    @property
    def n_antennas(self) -> int:
        return int(self.n_rows * self.n_cols)

    @property
    def wavelength(self) -> float:
        """Carrier wavelength in metres."""
        return SPEED_OF_LIGHT / (self.carrier_ghz * 1e9)

    @property
    def spacing(self) -> float:
        """Element spacing (half a wavelength) in metres."""
        return self.wavelength / 2.0

    @classmethod
    def ula(cls, n: int = 64, carrier_ghz: float = 28.0) -> ArrayConfig:
        return cls(kind="ula", n_rows=1, n_cols=n, carrier_ghz=carrier_ghz)

    @classmethod
    def ura(cls, n_rows: int = 4, n_cols: int = 16, carrier_ghz: float = 28.0) -> ArrayConfig:
        return cls(kind="ura", n_rows=n_rows, n_cols=n_cols, carrier_ghz=carrier_ghz)


def direction_from_angles(az: np.ndarray, el: np.ndarray) -> np.ndarray:
    """Unit vectors (..., 3) in the array frame for azimuth/elevation (radians)."""
    az = np.asarray(az, dtype=np.float64)
    el = np.asarray(el, dtype=np.float64)
    ce = np.cos(el)
    return np.stack(np.broadcast_arrays(ce * np.cos(az), ce * np.sin(az), np.sin(el)), axis=-1)


def steering_from_direction(array: ArrayConfig, u: np.ndarray) -> np.ndarray:
    """Steering vectors (..., N) complex64 for local unit directions u (..., 3).

    Only u_y and u_z matter for a planar array in the y-z plane (half-wavelength spacing).
    """
    u = np.asarray(u)
    c = np.arange(array.n_cols, dtype=np.float64) - (array.n_cols - 1) / 2.0
    r = np.arange(array.n_rows, dtype=np.float64) - (array.n_rows - 1) / 2.0
    col = np.exp(1j * np.pi * u[..., 1:2] * c).astype(np.complex64)  # (..., Nc)
    if array.n_rows == 1:
        return col
    row = np.exp(1j * np.pi * u[..., 2:3] * r).astype(np.complex64)  # (..., Nr)
    out = row[..., :, None] * col[..., None, :]
    return out.reshape(*u.shape[:-1], array.n_antennas)


def steering_vector(array: ArrayConfig, az: np.ndarray, el: np.ndarray | float = 0.0) -> np.ndarray:
    """Steering vectors (..., N) complex64 for azimuth/elevation angles in radians."""
    return steering_from_direction(array, direction_from_angles(az, el))

"""Import a public DeepSense 6G scenario into the dataset store.

Layout of a scenario folder (as distributed, e.g. ``scenario9/``)::

    scenarioX.csv            one row per sample; columns used here:
        index                 sample index (1-based, not necessarily contiguous)
        seq_index             sequence (pass-by) id -> our episode
        time_stamp / time_stamp[UTC]   clock of day, e.g. ['11-46-34.349'] or 'HH:MM:SS-microseconds' (optional;
                              index * 0.1 s otherwise)
        unit1_rgb             ./unit1/camera_data/image_<i>.jpg      (camera, BS side)
        unit1_radar           ./unit1/radar_data/radar_data_<i>.npy  complex cube (Rx antennas, samples, chirps)
        unit1_lidar           ./unit1/lidar_data/lidar_data_<i>.ply  (ASCII or binary PLY x y z intensity)
        unit1_loc             ./unit1/GPS_data/gps_location.txt      base-station lat/lon (same for all rows)
        unit2_loc             ./unit2/GPS_data/gps_location_<i>.txt  vehicle lat/lon per sample
        unit1_pwr_60ghz       ./unit1/mmWave_data/mmWave_power_<i>.txt  64 received powers (linear), one per line
        unit1_beam            released optimal beam, 1-based (checked against argmax of the powers)

Mapping: sequences -> episodes; each sample -> a frame; labels: ``powers_dbm`` = 10 log10 of the 64
linear powers (relative dB: the dataset is not calibrated to dBm, whatever the store's key says), NaN beams
set to the row's minimum so they never become the optimum (the row is counted as repaired), a row without
any finite positive power is unlabelled (no sample ends or spans it), ``beams`` = argmax (the released
1-based ``unit1_beam`` minus one agrees with it on clean rows; disagreements are counted). The counts are
logged, printed by the CLI and stored in meta (``import``). GPS: the vehicle's lat/lon relative to the
base station (``unit1_loc`` becomes ``gps_reference``). Radar cubes go through Ma et al.'s range-angle /
range-Doppler FFT maps (``preprocess.radar_cube_maps``) instead of the point-detection path, since the
sensor delivers raw cubes. JPEG decoding needs Pillow; without it only non-camera modalities import.
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..modalities import SENSORS
from .builder import assign_splits, build_dataset
from .preprocess import PreprocessConfig, PreprocessError, preprocess_frame, radar_cube_maps

LOG = logging.getLogger(__name__)

MODALITY_COLUMNS = {"camera": "unit1_rgb", "radar": "unit1_radar", "lidar": "unit1_lidar", "gnss": "unit2_loc"}
REQUIRED_COLUMNS = ("index", "seq_index", "unit1_pwr_60ghz")
N_BEAMS = 64


class DeepSenseError(ValueError):
    """A DeepSense folder that does not have what the import needs (names the file or column)."""


@dataclasses.dataclass
class _Label:
    powers_dbm: np.ndarray
    optimal_beam: int
    los_blocked: bool = False
    mode: str = "single"


@dataclasses.dataclass
class _Row:
    """Lazy frame: files are read when the builder asks for them (one sample in memory at a time)."""

    stamp: float
    files: dict[str, Path]
    beam: _Label | None
    bs_loc: Path | None


def find_csv(folder: Path) -> Path:
    """The scenario CSV: ``scenarioX.csv`` (or the only .csv) in the folder."""
    if not folder.is_dir():
        raise DeepSenseError(f"DeepSense folder {folder} does not exist")
    cands = sorted(folder.glob("scenario*.csv")) or sorted(folder.glob("*.csv"))
    if not cands:
        raise DeepSenseError(f"{folder}: no scenario CSV (expected scenarioX.csv)")
    return min(cands, key=lambda p: len(p.name))


def read_text_floats(path: Path) -> np.ndarray:
    """Numbers of a DeepSense .txt file (one or more per line, whitespace or comma separated)."""
    text = path.read_text(encoding="utf-8").replace(",", " ")
    try:
        return np.array([float(t) for t in text.split()], dtype=np.float64)
    except ValueError as exc:
        raise DeepSenseError(f"{path}: not a list of numbers ({exc})") from exc


def read_ply(path: Path) -> np.ndarray:
    """PLY point cloud (ASCII or binary little/big endian) -> (N, 4) float32 [x, y, z, intensity]."""
    raw = path.read_bytes()
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise DeepSenseError(f"{path}: not a PLY file")
    header = raw[:end].decode("ascii", "replace").splitlines()
    body = raw[raw.index(b"\n", end) + 1:]
    fmt = next((ln.split()[1] for ln in header if ln.startswith("format")), "ascii")
    count, props, in_vertex = 0, [], False
    types = {"float": "f4", "float32": "f4", "double": "f8", "float64": "f8", "uchar": "u1", "uint8": "u1",
             "char": "i1", "int8": "i1", "ushort": "u2", "uint16": "u2", "short": "i2", "int16": "i2",
             "uint": "u4", "uint32": "u4", "int": "i4", "int32": "i4"}
    for ln in header:
        parts = ln.split()
        if parts[:1] == ["element"]:
            in_vertex = parts[1] == "vertex"
            if in_vertex:
                count = int(parts[2])
        elif parts[:1] == ["property"] and in_vertex:
            props.append((parts[-1], types.get(parts[1], "f4")))
    names = [p[0] for p in props]
    if not {"x", "y", "z"} <= set(names):
        raise DeepSenseError(f"{path}: PLY vertices lack x/y/z (have {names})")
    if fmt == "ascii":
        arr = np.loadtxt(body.decode("ascii").splitlines()[:count], ndmin=2) if count else np.zeros((0, len(names)))
        cols = {n: arr[:, i] for i, n in enumerate(names)}
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        dt = np.dtype([(n, order + t) for n, t in props])
        rec = np.frombuffer(body, dtype=dt, count=count)
        cols = {n: rec[n] for n in names}
    inten = next((cols[n] for n in ("intensity", "reflectivity", "i") if n in cols), np.zeros(count))
    return np.stack([cols["x"], cols["y"], cols["z"], inten], axis=1).astype(np.float32)


def read_jpeg_bgra(path: Path) -> np.ndarray:
    """JPEG -> (H, W, 4) uint8 BGRA (the core's camera format). Needs Pillow."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise DeepSenseError(
            "camera: decoding DeepSense .jpg images needs Pillow (pip install pillow), which is not "
            "installed; import without the camera modality or install it") from exc
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = rgb[..., ::-1]
    out[..., 3] = 255
    return out


_CLOCK = re.compile(r"(?<!\d)(\d{1,2})[:-](\d{2})[:-](\d{2})(?:[.-](\d+))?(?!\d)")


def _parse_time(value: str) -> float | None:
    """Seconds of the day of a DeepSense time stamp: ``['11-46-34.349']`` (the scenarios' form),
    ``11:46:34-349000``, with or without the brackets and quotes; None when there is none. A date in front
    (``2021-07-13 11:46:34``) is skipped: only an hour < 24 with minutes and seconds < 60 counts."""
    for m in _CLOCK.finditer(value or ""):
        h, mi, sec, frac = m.groups()
        if int(h) < 24 and int(mi) < 60 and int(sec) < 60:
            return int(h) * 3600 + int(mi) * 60 + int(sec) + (float(f"0.{frac}") if frac else 0.0)
    return None


def scan(folder: str | os.PathLike[str], modalities: Sequence[str]) -> tuple[dict[int, list[_Row]], dict[str, Any]]:
    """Read the CSV, check columns and files, and group rows by sequence (time-ordered)."""
    folder = Path(folder)
    csv_path = find_csv(folder)
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    bad = [m for m in modalities if m not in MODALITY_COLUMNS]
    if bad:
        raise ValueError(f"modalities: unknown {bad}; choose from {tuple(MODALITY_COLUMNS)}")
    need = list(REQUIRED_COLUMNS) + [MODALITY_COLUMNS[m] for m in modalities]
    if "gnss" in modalities:
        need.append("unit1_loc")
    missing_cols = [c for c in need if c not in columns]
    if missing_cols:
        raise DeepSenseError(f"{csv_path}: missing columns {missing_cols} (has {columns})")
    if not rows:
        raise DeepSenseError(f"{csv_path}: no rows")
    time_col = next((c for c in columns if c.startswith("time_stamp")), None)

    def resolve(rel: str, column: str, idx: str) -> Path:
        if not rel:
            raise DeepSenseError(f"{csv_path}: row index {idx}: empty {column}")
        return folder / rel.lstrip("./") if rel.startswith("./") else folder / rel

    missing: list[str] = []
    seqs: dict[int, list[tuple[int, _Row]]] = {}
    disagree, repaired, unlabelled, untimed = [], 0, 0, 0
    for r in rows:
        idx = r["index"]
        files = {m: resolve(r[MODALITY_COLUMNS[m]], MODALITY_COLUMNS[m], idx) for m in modalities}
        pwr = resolve(r["unit1_pwr_60ghz"], "unit1_pwr_60ghz", idx)
        bs = resolve(r["unit1_loc"], "unit1_loc", idx) if "gnss" in modalities else None
        for p in [*files.values(), pwr, *([bs] if bs else [])]:
            if not p.is_file():
                missing.append(str(p.relative_to(folder)))
        if missing:
            continue
        lin = read_text_floats(pwr)
        if lin.size != N_BEAMS:
            raise DeepSenseError(f"{pwr}: expected {N_BEAMS} beam powers, found {lin.size}")
        label, fixed = _label(lin)
        repaired += fixed
        unlabelled += label is None
        released = r.get("unit1_beam", "").strip()
        if label is not None and released not in ("", "nan") and int(float(released)) - 1 != label.optimal_beam:
            disagree.append(idx)
        t = _parse_time(r.get(time_col, "")) if time_col else None
        untimed += bool(time_col) and t is None
        stamp = t if t is not None else int(idx) * 0.1
        seqs.setdefault(int(float(r["seq_index"])), []).append((int(idx), _Row(stamp, files, label, bs)))
    if missing:
        raise DeepSenseError(f"{folder}: {len(missing)} referenced files missing, e.g. {missing[:5]}")
    out = {s: [row for _, row in sorted(v, key=lambda x: x[0])] for s, v in sorted(seqs.items())}
    for rows_ in out.values():  # clock-of-day stamps wrap at midnight: unwrap within a sequence
        for a, b in itertools.pairwise(rows_):
            if b.stamp + 43200 < a.stamp:
                b.stamp += 86400
    info = {"csv": str(csv_path), "rows": len(rows), "label_disagreements": len(disagree),
            "import": {"repaired_power_rows": repaired, "unlabelled_rows": unlabelled,
                       "disagreeing_rows": len(disagree), "disagreeing_indices": disagree[:20],
                       "rows_without_time_stamp": untimed, "time_column": time_col}}
    if repaired or unlabelled or disagree or untimed:
        LOG.warning("%s: %d power file(s) with non-finite beams repaired (set to the row's minimum), %d row(s) "
                    "unlabelled (no finite power), %d released unit1_beam(s) disagree with the power argmax%s, "
                    "%d time stamp(s) unreadable (index x 0.1 s used)", csv_path, repaired, unlabelled,
                    len(disagree), f" (indices {disagree[:5]})" if disagree else "", untimed)
    return out, info


def _label(lin: np.ndarray) -> tuple[_Label | None, bool]:
    """(label, repaired): None for a row without any finite positive power (unlabelled, not beam 0);
    repaired when some beams were non-finite or non-positive and were set to the row's minimum."""
    finite = np.isfinite(lin) & (lin > 0)
    if not finite.any():
        return None, False
    db = 10.0 * np.log10(np.where(finite, lin, 1.0))
    db = np.where(finite, db, db[finite].min()).astype(np.float32)
    return _Label(db, int(np.argmax(db))), not bool(finite.all())


def _radar_bins(first_cube: Path, requested: int | None) -> int:
    """The angle/Doppler FFT size for the cubes of this scenario (see :func:`import_deepsense`)."""
    try:
        shape = np.load(first_cube, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as exc:
        raise DeepSenseError(f"{first_cube}: not a readable .npy radar cube ({exc})") from exc
    if len(shape) != 3:
        raise DeepSenseError(f"{first_cube}: expected a (Rx antennas, samples, chirps) cube, got shape {shape}")
    antennas, _samples, chirps = shape
    need = max(antennas, chirps)
    if requested is None:
        return max(64, need)
    if requested < need:
        raise DeepSenseError(f"--radar-angle-bins {requested} is below the cube's {antennas} antennas / {chirps} "
                             f"chirps ({first_cube.name}: {shape}); pass --radar-angle-bins {max(64, need)} or "
                             "leave it out to take it from the cubes")
    return requested


def _features(cfg: PreprocessConfig, modalities: Sequence[str], n_angle: int):
    frame_mods = tuple(m for m in modalities if m != "radar")

    def features(row: _Row) -> dict[str, np.ndarray]:
        raw: dict[str, Any] = {"stamp": row.stamp}
        if "camera" in modalities:
            raw["camera"] = read_jpeg_bgra(row.files["camera"])
        if "lidar" in modalities:
            raw["lidar"] = read_ply(row.files["lidar"])
        if "gnss" in modalities:
            ll = read_text_floats(row.files["gnss"])
            if ll.size < 2:
                raise PreprocessError("gnss", f"{row.files['gnss']}: expected latitude and longitude")
            raw["gnss"] = np.array([ll[0], ll[1], 0.0])
        out = preprocess_frame(raw, cfg, frame_mods) if frame_mods else {}
        if "radar" in modalities:
            cube = np.load(row.files["radar"], allow_pickle=False)
            if cube.ndim != 3:
                raise PreprocessError("radar", f"{row.files['radar']}: expected a 3-D cube, got {cube.shape}")
            # DeepSense stores (Rx antennas, samples, chirps); radar_cube_maps wants (samples, chirps, antennas)
            out["radar_maps"] = radar_cube_maps(np.transpose(cube, (1, 2, 0)).astype(np.complex64), n_angle)
        return out

    return features


def import_deepsense(folder: str | os.PathLike[str], root: str | os.PathLike[str], *,
                     modalities: Sequence[str] = SENSORS, P: int = 8, H: int = 3,
                     cfg: PreprocessConfig | None = None, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                     seed: int = 0, chunk_size: int = 256, radar_angle_bins: int | None = None,
                     max_gap: float | None = 1.0) -> dict[str, Any]:
    """Import a DeepSense 6G scenario folder into a dataset at ``root`` (returns its meta).

    Everything referenced by the CSV is checked first (missing columns or files -> DeepSenseError naming
    them), so a partial download fails before anything is written. ``radar_angle_bins`` (the angle and
    Doppler FFT size of the radar maps) defaults to the first cube's layout: 64, or its chirp count when
    that is larger (scenario 9: 4 Rx x 256 samples x 128 chirps -> 128); a value below the cube's antennas
    or chirps is refused before anything is built.
    """
    if "camera" in modalities:
        try:
            import PIL  # noqa: F401
        except ImportError as exc:
            raise DeepSenseError("camera: decoding DeepSense .jpg images needs Pillow (pip install pillow); "
                                 "install it or import without the camera modality") from exc
    seqs, info = scan(folder, modalities)
    if "radar" in modalities:
        radar_angle_bins = _radar_bins(next(iter(seqs.values()))[0].files["radar"], radar_angle_bins)
        info["radar_angle_bins"] = radar_angle_bins
    if cfg is None:
        ref = (0.0, 0.0, 0.0)
        if "gnss" in modalities:
            first = next(iter(seqs.values()))[0]
            bs = read_text_floats(first.bs_loc)
            ref = (float(bs[0]), float(bs[1]), 0.0)
        cfg = PreprocessConfig(gps_reference=ref)
    # real-world fixes: east, north, up (a caller's config made for the simulator's scenes says "carla")
    cfg = dataclasses.replace(cfg, gnss_frame="enu")
    ids = list(seqs)
    splits = assign_splits(ids, fractions, seed)

    def episodes() -> Iterator[tuple[int, list[_Row]]]:
        yield from seqs.items()

    meta = {"source": "deepsense6g", "scenario": Path(folder).name, "codebook_id": "deepsense_60ghz_64",
            "powers_unit": "dB (10 log10 of the released linear powers, uncalibrated)", **info}
    return build_dataset(root, episodes(), P=P, H=H, cfg=cfg, modalities=modalities, splits=splits,
                         fractions=fractions, seed=seed, meta=meta, chunk_size=chunk_size, max_gap=max_gap,
                         features=_features(cfg, modalities, radar_angle_bins))

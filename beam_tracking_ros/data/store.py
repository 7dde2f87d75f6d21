"""Chunked on-disk dataset of beam-tracking samples that streams from disk, each frame stored once.

Why this shape: a training set of camera/LiDAR windows quickly outgrows memory, so every array of
every chunk is its own ``.npy`` file that the reader opens with ``np.load(mmap_mode='r')``; the OS pages
in only what a batch touches. Consecutive samples of an episode share P - 1 of their P window frames,
so storing each sample's ``(P, ...)`` windows would store every frame P times (format v1: ~1.1 MB per
default sample, ~20 GB for 20,000 samples). Format v2 stores the preprocessed *frames* once, plus per
sample only its labels and the position of its window among the chunk's frames; the reader slices the
window out of the memory-mapped frame arrays. Writing is crash-safe: the manifest is written *last*
through an atomic rename, so a build that was killed (or failed on a corrupt bag) leaves a directory
that the reader refuses instead of a half dataset that looks complete.

Layout of ``root`` (format version 2)::

    root/
      manifest.json            written last (atomic rename); its presence = the dataset is complete
      meta.json                preprocess config, P, H, codebook, modalities, label mode, scenario,
                               sample counts, label histograms (also written before the manifest)
      train/chunk_000000/frames/<key>.npy   per-frame input arrays, first axis = frames of the chunk
      train/chunk_000000/<key>.npy          per-sample arrays: labels, bookkeeping and frame_start
      train/chunk_000001/...
      val/...  test/...

A chunk is self-contained: the frames of every window of its samples are in the chunk, contiguous and
oldest first, so sample ``i``'s window is ``frames[k][frame_start[i] : frame_start[i] + P]`` (a slice of
one memory map, no gather across chunks). A run of frames that continues past a chunk boundary repeats
its last P - 1 frames in the next chunk (a few percent at chunk sizes of a few hundred).

Window-level keys that are not per-frame (``camera_motion``: Ma et al.'s motion masks computed on the
window from ``camera_gray``) are *derived*: the reader recomputes them with the live tracker's own
function and threshold (``preprocess.motion_masks``, as ``ObservationWindow.stack(motion_threshold=...)``
does), recorded in the manifest, so they are bit-identical to what the window produces.

Sample = dict of numpy arrays (the contract in the project notes): input keys as produced by
data/preprocess.py + data/window.py (e.g. 'camera', 'camera_gray', 'camera_motion', 'radar_points',
'radar_maps', 'lidar_bev', 'lidar_feat', 'gps'), each (P, ...) float32; labels 'beams' int64 (H+1,),
'powers_dbm' float32 (H+1, B), optionally 'los_blocked' bool (H+1,) and 'ceiling_powers_dbm' float32
(H+1, B) (the simulator's geometry ceiling, a reference); bookkeeping 'stamp' float64, 'episode' int64.
Every key that is not a label or bookkeeping key is an input key. Every sample of one dataset has the
same keys, dtypes and shapes.
"""
from __future__ import annotations

import json
import os
import shutil
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.files import atomic_write, atomic_write_json
from ..modalities import RAW_INPUTS, SENSOR_ALIASES, SENSOR_INPUTS

FORMAT = "beam_tracking_ros.dataset"
FORMAT_VERSION = 2  # v1: every sample stored its full (P, ...) windows; v2: frames stored once
MANIFEST = "manifest.json"
META = "meta.json"
SPLITS = ("train", "val", "test")
# Labels and references: never model inputs. ``ceiling_powers_dbm`` (H+1, B) float32 is optional: the
# built-in simulator's geometry ceiling (sim/simulator.py), a reference predictor for the benchmarks.
LABEL_KEYS = ("beams", "powers_dbm", "los_blocked", "ceiling_powers_dbm")
BOOKKEEPING_KEYS = ("stamp", "episode")
FRAME_DIR = "frames"
FRAME_START = "frame_start"  # per-sample int64: first window frame within the chunk's frames
# Window-level keys the reader derives from a stored per-frame key: key -> (source key, function name).
DERIVED_KEYS: dict[str, tuple[str, str]] = {"camera_motion": ("camera_gray", "motion_masks")}
# Sensor modality -> the input keys it produces (mirrors data/preprocess.MODALITY_KEYS plus the
# window-level motion masks); kept here so the store does not import preprocessing.
MODALITY_GROUPS: dict[str, tuple[str, ...]] = {
    **{s: keys + ((s,) if s in RAW_INPUTS else ()) for s, keys in SENSOR_INPUTS.items()},
    **{alias: SENSOR_INPUTS[s] for alias, s in SENSOR_ALIASES.items()},
}


def input_keys(keys: Sequence[str]) -> list[str]:
    """The model-input keys among ``keys`` (everything but labels and bookkeeping), in order."""
    return [k for k in keys if k not in LABEL_KEYS and k not in BOOKKEEPING_KEYS]


def resolve_modalities(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """Expand modality names ('camera', 'radar', 'lidar', 'gnss'/'gps') or exact input keys into the
    dataset's input keys; a name that matches nothing is a ValueError naming it and what exists."""
    avail = input_keys(available)
    out: list[str] = []
    missing = []
    for name in requested:
        if name in avail:
            hits = [name]
        else:
            hits = [k for k in MODALITY_GROUPS.get(name, ()) if k in avail]
        if not hits:
            missing.append(name)
        out.extend(h for h in hits if h not in out)
    if missing:
        raise ValueError(f"modalities {missing} are not in the dataset (its input keys: {avail})")
    return out


class DatasetError(ValueError):
    """A dataset directory that is missing, incomplete or inconsistent (a ValueError, for callers)."""


def _atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` so that readers see either the old file, nothing, or the whole new one."""
    atomic_write_json(path, obj, default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))


def derive(key: str, source_window: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Recompute the window-level key ``key`` from its source window ``(P, ...)`` with the live tracker's
    function (imported lazily: only datasets with derived keys need preprocessing)."""
    if key not in DERIVED_KEYS or spec.get("function") != DERIVED_KEYS[key][1]:
        raise DatasetError(f"derived key {key!r}: unknown recipe {dict(spec)}")
    from .preprocess import motion_masks

    return motion_masks(source_window, float(spec["threshold"]))


def _frame_array(value: Any) -> np.ndarray:
    """A frame value as the live window stores it: floating -> float32 (ObservationWindow._allocate)."""
    arr = np.asarray(value)
    if np.issubdtype(arr.dtype, np.floating) and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return arr


class _SplitBuffer:
    """Frames and samples of one split waiting to be written as a chunk.

    Frames have ids that increase by one per ``add_frame`` over the whole split; a sample refers to the
    id of the newest frame of its window. Frames that no buffered or future sample can reference are
    dropped as soon as that is known, so memory stays bounded by about one chunk of frames.
    """

    def __init__(self) -> None:
        self.frames: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self.samples: list[tuple[int, dict[str, np.ndarray]]] = []  # (last frame id, per-sample arrays)
        self.next_id = 0
        self.run_start = 0  # first frame id that a future window may start at
        self.last_end: int | None = None  # newest-frame id of the latest sample
        self.prev_window: dict[str, np.ndarray] | None = None  # inputs of the latest add() (dedupe)


class DatasetWriter:
    """Append frames and samples to a chunked dataset; ``close()`` makes it complete (manifest last).

    meta: free-form JSON-able description (preprocess config, P, H, codebook_size/codebook_id,
    modalities, label_mode, scenario ...); counts and label histograms are added on close.
    chunk_size: samples per chunk; a chunk is the unit the reader pages in, so it should be a few
    batches (a few hundred samples) -- large enough for sequential reads, small enough that shuffling
    by chunk still mixes well.
    window: P, the frames per sample window (default ``meta['P']``; ``add`` infers it from the sample).
    motion_threshold: threshold of the derived ``camera_motion`` key (default
    ``meta['preprocess']['motion_threshold']``); the reader recomputes the masks with it.

    Two ways to write:

    * frame level (what the builder does, no copies of windows): ``add_frame(split, inputs)`` per
      preprocessed frame, ``add_sample(split, labels, last_frame=id)`` per labelled window ending at
      frame ``id`` (the P frames ``id - P + 1 .. id`` must be one run), ``end_run(split)`` at a
      continuity break (new episode, gap, drop) so frames of the ended run can be released;
    * sample level, ``add(sample, split)`` with full ``(P, ...)`` windows (the v1 interface): a window
      whose first P - 1 frames equal the last P - 1 frames of the previous ``add`` of the split (byte
      for byte) continues that run, so sliding windows are still stored once per frame.

    An existing dataset at ``root`` is invalidated (its manifest removed) before anything is
    written, so a rebuild that fails half-way never leaves the old manifest pointing at new chunks.
    Use as a context manager: an exception leaves the directory without a manifest.
    """

    def __init__(self, root: str | os.PathLike[str], meta: Mapping[str, Any] | None = None,
                 chunk_size: int = 256, overwrite: bool = True, *, window: int | None = None,
                 motion_threshold: float | None = None) -> None:
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.root = Path(root)
        self.meta: dict[str, Any] = dict(meta or {})
        self.chunk_size = chunk_size
        P = window if window is not None else self.meta.get("P")
        if P is not None and (not isinstance(P, (int, np.integer)) or int(P) < 1):
            raise ValueError(f"window must be a positive integer P, got {P!r}")
        self.P: int | None = None if P is None else int(P)
        if motion_threshold is None:
            pre = self.meta.get("preprocess")
            motion_threshold = pre.get("motion_threshold") if isinstance(pre, Mapping) else None
        if motion_threshold is not None and not float(motion_threshold) >= 0:
            raise ValueError(f"motion_threshold must be >= 0, got {motion_threshold!r}")
        self.motion_threshold = None if motion_threshold is None else float(motion_threshold)
        if self.root.exists():
            if not self.root.is_dir():
                raise ValueError(f"root: {self.root} exists and is not a directory")
            if any(self.root.iterdir()):
                if not overwrite:
                    raise ValueError(f"root: {self.root} is not empty (pass overwrite=True to replace it)")
                # Manifest first: from here on the old dataset no longer counts as complete.
                (self.root / MANIFEST).unlink(missing_ok=True)
                for child in self.root.iterdir():
                    if child.is_dir():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        self.root.mkdir(parents=True, exist_ok=True)
        self._frame_schema: dict[str, tuple[str, tuple[int, ...]]] | None = None
        self._sample_schema: dict[str, tuple[str, tuple[int, ...]]] | None = None
        self._derived: dict[str, dict[str, Any]] = {}
        # derive camera_motion from camera_gray? frame API: whenever a threshold is known; add(): only
        # when the first sample carried camera_motion (the reader must return the keys that were written)
        self._want_derived = self.motion_threshold is not None
        self._buf = {s: _SplitBuffer() for s in SPLITS}
        self._chunks: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        self._hist: dict[str, np.ndarray] = {}
        self._episodes: dict[str, set[int]] = {s: set() for s in SPLITS}
        self._closed = False

    # -- frame-level writing -----------------------------------------------------------------------
    def _check_open(self, split: str) -> _SplitBuffer:
        if self._closed:
            raise ValueError("DatasetWriter is closed")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self._buf[split]

    def add_frame(self, split: str, inputs: Mapping[str, Any]) -> int:
        """Buffer one preprocessed frame (input key -> per-frame array) of ``split``; returns its id.

        Stored exactly as ``ObservationWindow`` holds frames: the first frame fixes the keys, shapes and
        dtypes (floating -> float32), later frames are cast to those dtypes; a key or shape mismatch is
        a ValueError naming the keys.
        """
        buf = self._check_open(split)
        if not inputs:
            raise ValueError("inputs: empty frame")
        arrays = {k: _frame_array(v) for k, v in inputs.items()}
        if self._frame_schema is not None:
            arrays = {k: a.astype(self._frame_schema[k][0], copy=False) if k in self._frame_schema else a
                      for k, a in arrays.items()}
        bad = [k for k in arrays if k in LABEL_KEYS or k in BOOKKEEPING_KEYS or k in DERIVED_KEYS]
        if bad:
            raise ValueError(f"inputs: {bad} are not per-frame input keys")
        schema = {k: (a.dtype.str, tuple(a.shape)) for k, a in arrays.items()}
        if self._frame_schema is None:
            for k, a in arrays.items():
                if a.dtype == object:
                    raise ValueError(f"inputs[{k!r}] has dtype object; only numeric/bool arrays are stored")
            self._frame_schema = schema
            if self._want_derived and self.motion_threshold is not None and "camera_gray" in schema:
                self._derived["camera_motion"] = {"source": "camera_gray", "function": "motion_masks",
                                                  "threshold": self.motion_threshold}
        elif schema != self._frame_schema:
            diff = sorted(set(schema.items()) ^ set(self._frame_schema.items()))
            raise ValueError(f"frame keys/dtypes/shapes differ from the first frame: {diff}")
        fid = buf.next_id
        buf.frames[fid] = arrays
        buf.next_id += 1
        buf.prev_window = None
        return fid

    def add_sample(self, split: str, labels: Mapping[str, Any], last_frame: int | None = None) -> None:
        """Buffer one sample of ``split``: its labels/bookkeeping (``beams``, ``stamp``, ``episode`` required;
        ``powers_dbm``, ``los_blocked`` ...) and the id of its window's newest frame (default: the newest
        frame added). Its window is frames ``last_frame - P + 1 .. last_frame`` of the current run."""
        buf = self._check_open(split)
        if self.P is None:
            raise ValueError("window: P is unknown; pass DatasetWriter(window=P) or meta={'P': P}")
        last = buf.next_id - 1 if last_frame is None else int(last_frame)
        if not buf.run_start + self.P - 1 <= last < buf.next_id:
            raise ValueError(
                f"last_frame: {last} does not end a window of P={self.P} frames of the current run "
                f"(frames {buf.run_start}..{buf.next_id - 1})")
        if buf.last_end is not None and last <= buf.last_end:
            raise ValueError(f"last_frame: samples must be added in time order ({last} after {buf.last_end})")
        arrays = {k: np.asarray(v) for k, v in labels.items()}
        for key in ("beams", "stamp", "episode"):
            if key not in arrays:
                raise ValueError(f"sample is missing required key {key!r} (has {sorted(arrays)})")
        extra = [k for k in arrays if k not in LABEL_KEYS and k not in BOOKKEEPING_KEYS]
        if extra:
            raise ValueError(f"labels: {extra} are input keys; add them per frame with add_frame")
        schema = {k: (a.dtype.str, tuple(a.shape)) for k, a in arrays.items()}
        if self._sample_schema is None:
            for k, a in arrays.items():
                if a.dtype == object:
                    raise ValueError(f"sample[{k!r}] has dtype object; only numeric/bool arrays are stored")
            self._sample_schema = schema
        elif schema != self._sample_schema:
            diff = sorted(set(schema.items()) ^ set(self._sample_schema.items()))
            raise ValueError(f"sample keys/dtypes/shapes differ from the first sample: {diff}")
        buf.samples.append((last, arrays))
        buf.last_end = last
        self._episodes[split].add(int(arrays["episode"]))
        if len(buf.samples) >= self.chunk_size:
            self._flush(split)
        self._prune(split)

    def end_run(self, split: str) -> None:
        """Continuity break in ``split``: no later window may include a frame added so far."""
        buf = self._check_open(split)
        # frames after the latest sample's window end were never referenced: release them now
        keep_to = -1 if buf.last_end is None else buf.last_end
        while buf.frames and next(reversed(buf.frames)) > keep_to:
            buf.frames.popitem(last=True)
        buf.run_start = buf.next_id
        buf.prev_window = None
        self._prune(split)

    def _prune(self, split: str) -> None:
        """Drop frames that neither a buffered sample nor any future sample can reference."""
        buf = self._buf[split]
        assert self.P is not None or not buf.samples
        lo = buf.run_start
        if buf.last_end is not None and self.P is not None:
            lo = max(lo, buf.last_end - self.P + 2)
        if buf.samples and self.P is not None:
            lo = min(lo, buf.samples[0][0] - self.P + 1)
        while buf.frames and next(iter(buf.frames)) < lo:
            buf.frames.popitem(last=False)

    # -- sample-level writing (v1 interface) -------------------------------------------------------
    def add(self, sample: Mapping[str, Any], split: str) -> None:
        """Buffer one sample with full ``(P, ...)`` input windows; a full buffer is written as a chunk.

        A derived key (``camera_motion``) must equal what the reader will recompute from ``camera_gray``
        with the writer's ``motion_threshold`` (byte for byte), else ValueError: the store never
        silently changes a sample.
        """
        buf = self._check_open(split)
        arrays = {k: np.asarray(v) for k, v in sample.items()}
        for key in ("beams", "stamp", "episode"):
            if key not in arrays:
                raise ValueError(f"sample is missing required key {key!r} (has {sorted(arrays)})")
        inputs = {k: _frame_array(arrays[k]) for k in input_keys(list(arrays)) if k not in DERIVED_KEYS}
        if not inputs:
            raise ValueError(f"sample has no input keys (has {sorted(arrays)})")
        lengths = {k: (a.shape[0] if a.ndim else None) for k, a in inputs.items()}
        if len(set(lengths.values())) != 1 or None in lengths.values():
            raise ValueError(f"sample input keys must all be (P, ...) windows of one P, got leading dims {lengths}")
        P = next(iter(lengths.values()))
        if self.P is None:
            self.P = int(P)
        elif P != self.P:
            raise ValueError(f"sample windows have P={P}, the dataset P={self.P}")
        for key in [k for k in arrays if k in DERIVED_KEYS]:
            self._check_derived(key, arrays[key], inputs)
        if self._frame_schema is None:
            self._want_derived = any(k in DERIVED_KEYS for k in arrays)
        elif {k for k in arrays if k in DERIVED_KEYS} != set(self._derived):
            raise ValueError(f"sample: derived keys {sorted(k for k in arrays if k in DERIVED_KEYS)} differ from "
                             f"the first sample's {sorted(self._derived)}")
        prev = buf.prev_window
        continues = (prev is not None and set(prev) == set(inputs) and P > 1
                     and all(prev[k].dtype == a.dtype and prev[k].shape == a.shape
                             and prev[k][1:].tobytes() == a[:-1].tobytes() for k, a in inputs.items()))
        if continues:
            new = [P - 1]
        else:
            self.end_run(split)
            new = list(range(P))
        for j in new:
            self.add_frame(split, {k: a[j] for k, a in inputs.items()})
        labels = {k: arrays[k] for k in arrays if k in LABEL_KEYS or k in BOOKKEEPING_KEYS}
        self.add_sample(split, labels)
        buf.prev_window = {k: np.ascontiguousarray(a) for k, a in inputs.items()}

    def _check_derived(self, key: str, value: np.ndarray, inputs: Mapping[str, np.ndarray]) -> None:
        source, _ = DERIVED_KEYS[key]
        if self.motion_threshold is None or source not in inputs:
            raise ValueError(f"sample[{key!r}] is derived from {source!r} at read time; it needs {source!r} "
                             f"in the sample and a motion_threshold (DatasetWriter(motion_threshold=...) or "
                             f"meta['preprocess']['motion_threshold'])")
        spec = {"source": source, "function": DERIVED_KEYS[key][1], "threshold": self.motion_threshold}
        ref = derive(key, inputs[source], spec)
        if value.dtype != ref.dtype or value.shape != ref.shape or value.tobytes() != ref.tobytes():
            raise ValueError(f"sample[{key!r}] differs from {DERIVED_KEYS[key][1]}({source!r}, "
                             f"threshold={self.motion_threshold}) that the reader would return")

    # -- chunks ------------------------------------------------------------------------------------
    def _flush(self, split: str) -> None:
        buf = self._buf[split]
        if not buf.samples:
            return
        assert self._frame_schema is not None and self._sample_schema is not None and self.P is not None
        lasts = np.array([last for last, _ in buf.samples], dtype=np.int64)
        starts = lasts - (self.P - 1)
        # Frames referenced by some window, in id order: a window of P consecutive ids is then P
        # consecutive rows, so the reader can slice it.
        ids = np.unique((starts[:, None] + np.arange(self.P)).ravel())
        index = len(self._chunks[split])
        name = f"chunk_{index:06d}"
        cdir = self.root / split / name
        (cdir / FRAME_DIR).mkdir(parents=True, exist_ok=True)
        for key, (dtype, shape) in self._frame_schema.items():
            out = np.empty((ids.size, *shape), dtype=np.dtype(dtype))
            for row, fid in enumerate(ids.tolist()):
                out[row] = buf.frames[fid][key]
            _save_npy(cdir / FRAME_DIR / f"{key}.npy", out)
        _save_npy(cdir / f"{FRAME_START}.npy", np.searchsorted(ids, starts).astype(np.int64))
        for key in self._sample_schema:
            _save_npy(cdir / f"{key}.npy", np.stack([s[key] for _, s in buf.samples]))
        beams = np.stack([s["beams"] for _, s in buf.samples]).reshape(len(buf.samples), -1)
        top = int(beams.max()) + 1 if beams.size else 0
        hist = self._hist.get(split, np.zeros(0, np.int64))
        if top > hist.size:
            hist = np.pad(hist, (0, top - hist.size))
        hist[: top] += np.bincount(beams[:, 0], minlength=top)
        self._hist[split] = hist
        self._chunks[split].append({"dir": f"{split}/{name}", "count": len(buf.samples), "frames": int(ids.size)})
        buf.samples = []

    def _sample_keys(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Keys, dtypes and shapes of the samples the reader returns (windows, derived, labels)."""
        assert self._frame_schema is not None and self._sample_schema is not None and self.P is not None
        keys = {k: (d, (self.P, *s)) for k, (d, s) in self._frame_schema.items()}
        for key, spec in self._derived.items():  # motion masks: float32, the source's per-frame shape
            keys[key] = (np.dtype(np.float32).str, (self.P, *self._frame_schema[spec["source"]][1]))
        keys.update(self._sample_schema)
        return keys

    def close(self) -> dict[str, Any]:
        """Write the remaining chunks, meta.json and, last, manifest.json. Returns the manifest."""
        if self._closed:
            raise ValueError("DatasetWriter is already closed")
        for split in SPLITS:
            self._flush(split)
        self._closed = True
        self._buf = {s: _SplitBuffer() for s in SPLITS}
        counts = {s: int(sum(c["count"] for c in self._chunks[s])) for s in SPLITS}
        if sum(counts.values()) == 0:
            raise DatasetError(f"no samples were written to {self.root}; refusing to mark it complete")
        assert self._frame_schema is not None and self._sample_schema is not None
        keys = self._sample_keys()
        meta = dict(self.meta)
        meta["counts"] = counts
        meta["episodes"] = {s: sorted(self._episodes[s]) for s in SPLITS}
        meta["label_histogram"] = {s: self._hist.get(s, np.zeros(0, np.int64)).tolist() for s in SPLITS}
        meta["keys"] = sorted(keys)
        _atomic_write_json(self.root / META, meta)
        self.meta = meta
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "chunk_size": self.chunk_size,
            "window": self.P,
            "keys": {k: {"dtype": d, "shape": list(s)} for k, (d, s) in keys.items()},
            "frame_keys": {k: {"dtype": d, "shape": list(s)} for k, (d, s) in self._frame_schema.items()},
            "sample_keys": {k: {"dtype": d, "shape": list(s)} for k, (d, s) in self._sample_schema.items()},
            "derived": self._derived,
            "splits": {s: {"count": counts[s], "frames": int(sum(c["frames"] for c in self._chunks[s])),
                           "chunks": self._chunks[s]} for s in SPLITS},
        }
        _atomic_write_json(self.root / MANIFEST, manifest)
        return manifest

    def abort(self) -> None:
        """Stop without completing: buffered frames and samples are dropped and no manifest is written."""
        self._closed = True
        self._buf = {s: _SplitBuffer() for s in SPLITS}

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


def is_complete(root: str | os.PathLike[str]) -> bool:
    """True when ``root`` holds a dataset of this format whose manifest was written (cheap check, used
    for caching; a dataset of an older format counts as incomplete, i.e. to be rebuilt)."""
    try:
        DatasetReader(root, verify=False)
    except DatasetError:
        return False
    return True


def _schema(entries: Mapping[str, Any]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    return {k: (np.dtype(v["dtype"]), tuple(int(x) for x in v["shape"])) for k, v in entries.items()}


class DatasetReader:
    """Read a complete dataset; refuses a directory without a valid manifest or of another format version.

    Chunks are opened lazily with ``np.load(mmap_mode='r')`` and kept in a small LRU cache of
    ``cache_chunks`` chunks, so random access costs a dictionary lookup instead of re-parsing .npy
    headers, while memory stays bounded by what the OS pages in.

    ``keys``: the keys of the samples ``get`` returns -> (dtype, shape), windows ``(P, ...)``;
    ``frame_keys`` / ``sample_keys``: what is stored per frame / per sample; ``derived``: window-level keys
    recomputed at read time; ``P``: the window length.
    """

    def __init__(self, root: str | os.PathLike[str], verify: bool = True, cache_chunks: int = 16) -> None:
        self.root = Path(root)
        mpath = self.root / MANIFEST
        if not self.root.is_dir():
            raise DatasetError(f"dataset root {self.root} does not exist or is not a directory")
        if not mpath.is_file():
            raise DatasetError(
                f"{self.root} has no {MANIFEST}: the dataset is incomplete (its build was interrupted or "
                f"failed) or this is not a dataset directory; rebuild it")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
            meta = json.loads((self.root / META).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{self.root}: unreadable {MANIFEST}/{META}: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
            raise DatasetError(f"{mpath}: not a {FORMAT} manifest (format={got!r})")
        if manifest.get("version") != FORMAT_VERSION:
            raise DatasetError(
                f"{self.root}: dataset format version {manifest.get('version')!r}, this reader reads version "
                f"{FORMAT_VERSION} (frames stored once, windows sliced at read time); rebuild the dataset "
                f"('beam-tracking dataset generate --force', 'dataset build' or 'dataset import-deepsense')")
        try:
            self.keys: dict[str, tuple[np.dtype, tuple[int, ...]]] = _schema(manifest["keys"])
            self.frame_keys = _schema(manifest["frame_keys"])
            self.sample_keys = _schema(manifest["sample_keys"])
            self.derived: dict[str, dict[str, Any]] = dict(manifest["derived"])
            self.P = int(manifest["window"])
            self._chunks = {s: list(manifest["splits"][s]["chunks"]) for s in SPLITS}
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{mpath}: malformed manifest ({exc!r})") from exc
        self.manifest = manifest
        self.meta: dict[str, Any] = meta
        self._offsets = {s: np.cumsum([0] + [int(c["count"]) for c in self._chunks[s]]) for s in SPLITS}
        self._cache: OrderedDict[tuple[str, int], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = \
            OrderedDict()
        self._cache_size = max(1, int(cache_chunks))
        if verify:
            self._verify()

    def _verify(self) -> None:
        """Every chunk file present with the declared count, dtype and shape, and every window inside its
        chunk's frames (reads headers and the small frame_start arrays only)."""
        missing = []
        for split in SPLITS:
            for chunk in self._chunks[split]:
                cdir = self.root / chunk["dir"]
                n, nf = int(chunk["count"]), int(chunk["frames"])
                files = [(cdir / FRAME_DIR / f"{k}.npy", dt, (nf, *sh)) for k, (dt, sh) in self.frame_keys.items()]
                files += [(cdir / f"{k}.npy", dt, (n, *sh)) for k, (dt, sh) in self.sample_keys.items()]
                files.append((cdir / f"{FRAME_START}.npy", np.dtype(np.int64), (n,)))
                for path, dtype, shape in files:
                    if not path.is_file():
                        missing.append(str(path.relative_to(self.root)))
                        continue
                    arr = np.load(path, mmap_mode="r", allow_pickle=False)
                    if arr.dtype != dtype or tuple(arr.shape) != shape:
                        raise DatasetError(f"{path}: expected {dtype} {shape}, found {arr.dtype} {arr.shape}")
                    if path.name == f"{FRAME_START}.npy" and n and (arr.min() < 0 or arr.max() + self.P > nf):
                        raise DatasetError(f"{path}: windows of P={self.P} outside the chunk's {nf} frames")
        if missing:
            raise DatasetError(f"{self.root}: chunk files missing: {missing[:5]}"
                               f"{' ...' if len(missing) > 5 else ''}")

    # -- access ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(sum(self.count(s) for s in SPLITS))

    def count(self, split: str) -> int:
        self._check_split(split)
        return int(self._offsets[split][-1])

    def num_chunks(self, split: str) -> int:
        self._check_split(split)
        return len(self._chunks[split])

    def chunk_bounds(self, split: str) -> np.ndarray:
        """Start offsets of the chunks of ``split`` plus the total (length num_chunks + 1)."""
        self._check_split(split)
        return self._offsets[split].copy()

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")

    def _open(self, split: str, index: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(per-frame arrays, per-sample arrays) of chunk ``index`` as read-only memory maps (cached)."""
        self._check_split(split)
        key = (split, int(index))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        if not 0 <= index < len(self._chunks[split]):
            raise IndexError(f"chunk {index} out of range for split {split!r} ({len(self._chunks[split])})")
        cdir = self.root / self._chunks[split][index]["dir"]
        frames = {k: np.load(cdir / FRAME_DIR / f"{k}.npy", mmap_mode="r", allow_pickle=False)
                  for k in self.frame_keys}
        samples = {k: np.load(cdir / f"{k}.npy", mmap_mode="r", allow_pickle=False)
                   for k in (*self.sample_keys, FRAME_START)}
        self._cache[key] = (frames, samples)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return frames, samples

    def chunk(self, split: str, index: int) -> dict[str, np.ndarray]:
        """The per-sample arrays of chunk ``index`` (labels, bookkeeping, ``frame_start``) as read-only
        memory maps; the frames are in :meth:`frames`."""
        return self._open(split, index)[1]

    def frames(self, split: str, index: int) -> dict[str, np.ndarray]:
        """The per-frame input arrays ``(n_frames, ...)`` of chunk ``index`` as read-only memory maps."""
        return self._open(split, index)[0]

    def locate(self, split: str, index: int) -> tuple[int, int]:
        """(chunk number, row within the chunk) of sample ``index`` of ``split``."""
        n = self.count(split)
        if not -n <= index < n:
            raise IndexError(f"sample {index} out of range for split {split!r} ({n} samples)")
        index %= n
        ci = int(np.searchsorted(self._offsets[split], index, side="right") - 1)
        return ci, index - int(self._offsets[split][ci])

    def _check_keys(self, keys: Sequence[str]) -> None:
        unknown = [k for k in keys if k not in self.keys]
        if unknown:
            raise KeyError(f"keys {unknown} are not in the dataset (its keys: {sorted(self.keys)})")

    def get(self, split: str, index: int, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Sample ``index`` of ``split`` as a dict of (copied, writable) numpy arrays: each input window
        is one slice of the chunk's memory-mapped frames, derived keys are recomputed from them."""
        keys = list(keys or self.keys)
        self._check_keys(keys)
        ci, row = self.locate(split, index)
        frames, samples = self._open(split, ci)
        lo = int(samples[FRAME_START][row])
        out: dict[str, np.ndarray] = {}
        windows: dict[str, np.ndarray] = {}

        def window(k: str) -> np.ndarray:
            if k not in windows:
                windows[k] = np.array(frames[k][lo: lo + self.P])
            return windows[k]

        for k in keys:
            if k in self.frame_keys:
                out[k] = window(k)
            elif k in self.derived:
                out[k] = derive(k, window(self.derived[k]["source"]), self.derived[k])
            else:
                out[k] = np.array(samples[k][row])
        return out

    def iter_chunks(self, split: str, keys: Sequence[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Chunks of ``split`` in order, restricted to ``keys``: sequential streaming. Per-sample keys are
        memory maps; input keys are the chunk's windows ``(n, P, ...)`` gathered into memory."""
        keys = list(keys or self.keys)
        self._check_keys(keys)
        for ci in range(self.num_chunks(split)):
            frames, samples = self._open(split, ci)
            rows = np.asarray(samples[FRAME_START])[:, None] + np.arange(self.P)
            out: dict[str, np.ndarray] = {}
            for k in keys:
                if k in self.frame_keys:
                    out[k] = frames[k][rows]
                elif k in self.derived:
                    src = frames[self.derived[k]["source"]][rows]
                    dt, shape = self.keys[k]
                    out[k] = np.empty((len(rows), *shape), dt)
                    for i, w in enumerate(src):  # per window: the masks depend on the window's frames
                        out[k][i] = derive(k, w, self.derived[k])
                else:
                    out[k] = samples[k]
            yield out

    def column(self, split: str, key: str) -> np.ndarray:
        """One (small) key of every sample of ``split`` concatenated in memory (labels, stamps)."""
        parts = [c[key] for c in self.iter_chunks(split, [key])]
        if not parts:
            dtype, shape = self.keys[key]
            return np.zeros((0, *shape), dtype)
        return np.concatenate(parts)

    def stored_bytes(self) -> int:
        """Bytes of the dataset's files on disk (the number the v2 layout exists to shrink)."""
        return int(sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()))


class BeamDataset:
    """torch ``Dataset`` over one split: items are dicts of tensors (torch imported lazily).

    modalities: keep only these inputs -- modality names ('camera', 'radar', 'lidar', 'gnss') or exact
    input keys ('radar_points', ...); labels and bookkeeping keys are always returned. Asking for a
    modality the dataset does not hold is an error naming it.
    An item's input windows are slices of the chunk's memory-mapped frames and ``camera_motion`` is
    recomputed from the ``camera_gray`` window (identical to ``ObservationWindow.stack``); asking only
    for ``camera_motion`` still reads ``camera_gray`` but does not return it.
    Random access goes through the reader's chunk cache; use ``ChunkShuffleSampler`` to shuffle
    chunk-by-chunk so that an epoch streams each chunk from disk once.
    """

    def __init__(self, root: str | os.PathLike[str], split: str,
                 modalities: Sequence[str] | None = None, cache_chunks: int = 8) -> None:
        self.reader = DatasetReader(root, verify=False, cache_chunks=cache_chunks)
        self.split = split
        self.reader.count(split)  # validates the split name
        all_inputs = input_keys(list(self.reader.keys))
        mods = all_inputs if modalities is None else resolve_modalities(modalities, all_inputs)
        self.input_keys = mods
        self.keys = mods + [k for k in self.reader.keys if k not in all_inputs]
        self.meta = self.reader.meta

    def __len__(self) -> int:
        return self.reader.count(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        sample = self.reader.get(self.split, int(index), self.keys)
        return {k: torch.from_numpy(v) if v.ndim else torch.tensor(v.item()) for k, v in sample.items()}

    def chunk_sampler(self, shuffle: bool = True, seed: int = 0) -> ChunkShuffleSampler:
        return ChunkShuffleSampler(self.reader.chunk_bounds(self.split), shuffle=shuffle, seed=seed)


class ChunkShuffleSampler:
    """Index sampler that shuffles chunk order and rows within each chunk, never across chunks.

    Why: a global random permutation over a memory-mapped dataset larger than RAM touches a random
    chunk per sample (page-cache thrashing); visiting whole chunks in random order keeps each chunk
    hot while the batches still mix chunks and rows. ``set_epoch`` reseeds like DistributedSampler.
    Works as a torch ``Sampler`` (it only needs ``__iter__``/``__len__``).
    """

    def __init__(self, bounds: np.ndarray, shuffle: bool = True, seed: int = 0) -> None:
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def __iter__(self) -> Iterator[int]:
        n_chunks = len(self.bounds) - 1
        if not self.shuffle:
            yield from range(int(self.bounds[-1]))
            return
        rng = np.random.default_rng((self.seed, self.epoch))
        for ci in rng.permutation(n_chunks):
            lo, hi = int(self.bounds[ci]), int(self.bounds[ci + 1])
            yield from (lo + rng.permutation(hi - lo)).tolist()


def summary(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Statistics of a complete dataset: counts per split, label histogram (optimal beam of the current
    frame, all splits), LoS-blocked fraction and the optimum change rate (fraction of samples whose
    optimal beam at the next frame differs from the current one) -- the numbers that show whether the
    task is trivial -- and the bytes on disk."""
    reader = DatasetReader(root, verify=False)
    counts = {s: reader.count(s) for s in SPLITS}
    beams = np.concatenate([reader.column(s, "beams").reshape(counts[s], -1) for s in SPLITS
                            if counts[s]])
    ncb = int(reader.meta.get("codebook_size") or (int(beams.max()) + 1 if beams.size else 0))
    hist = np.bincount(beams[:, 0], minlength=ncb) if beams.size else np.zeros(ncb, np.int64)
    nbytes = reader.stored_bytes()
    out: dict[str, Any] = {
        "root": str(reader.root),
        "counts": counts,
        "total": int(sum(counts.values())),
        "episodes": {s: len(reader.meta.get("episodes", {}).get(s, [])) for s in SPLITS},
        "P": reader.meta.get("P"),
        "H": reader.meta.get("H"),
        "codebook_size": ncb,
        "modalities": reader.meta.get("modalities"),
        "input_keys": input_keys(list(reader.keys)),
        "label_histogram": hist.tolist(),
        "distinct_beams": int(np.count_nonzero(hist)),
        "majority_beam_fraction": float(hist.max() / max(1, hist.sum())) if hist.size else 0.0,
        "optimum_change_rate": float(np.mean(beams[:, 1] != beams[:, 0])) if beams.shape[1] > 1 else None,
        "los_blocked_fraction": None,
        "format_version": FORMAT_VERSION,
        "stored_bytes": nbytes,
        "bytes_per_sample": nbytes / max(1, sum(counts.values())),
    }
    if "los_blocked" in reader.keys:
        blocked = np.concatenate([reader.column(s, "los_blocked").reshape(counts[s], -1)
                                  for s in SPLITS if counts[s]])
        out["los_blocked_fraction"] = float(np.mean(blocked[:, 0])) if blocked.size else 0.0
    return out


def format_summary(stats: Mapping[str, Any], width: int = 60) -> str:
    """Human-readable summary with a text bar chart of the label histogram."""
    lines = [f"dataset {stats['root']}",
             f"  samples: {stats['counts']} (total {stats['total']}), episodes: {stats['episodes']}",
             f"  P={stats['P']} H={stats['H']} codebook={stats['codebook_size']} "
             f"modalities={stats['modalities']}",
             f"  input keys: {stats['input_keys']}",
             f"  on disk: {stats['stored_bytes'] / 2**20:.1f} MiB ({stats['bytes_per_sample'] / 1024:.1f} KiB/sample)",
             f"  distinct optimal beams: {stats['distinct_beams']}, majority-beam fraction: "
             f"{stats['majority_beam_fraction']:.3f}"]
    if stats.get("optimum_change_rate") is not None:
        lines.append(f"  optimum change rate (t -> t+1): {stats['optimum_change_rate']:.3f}")
    if stats.get("los_blocked_fraction") is not None:
        lines.append(f"  LoS-blocked fraction: {stats['los_blocked_fraction']:.3f}")
    hist = np.asarray(stats["label_histogram"])
    if hist.size and hist.max() > 0:
        lines.append("  label histogram (beam: count):")
        scale = width / hist.max()
        for b in np.flatnonzero(hist):
            lines.append(f"    {b:4d} {int(hist[b]):7d} {'#' * max(1, int(hist[b] * scale))}")
    return "\n".join(lines)

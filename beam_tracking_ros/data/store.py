"""Chunked on-disk dataset of beam-tracking samples that streams from disk.

Why this shape: a training set of camera/LiDAR windows quickly outgrows memory, so every key of every
chunk is its own ``.npy`` file that the reader opens with ``np.load(mmap_mode='r')``; the OS pages in
only what a batch touches. Writing is crash-safe: the manifest is written *last* through an atomic
rename, so a build that was killed (or failed on a corrupt bag) leaves a directory that the reader
refuses instead of a half dataset that looks complete.

Layout of ``root``::

    root/
      manifest.json            written last (atomic rename); its presence = the dataset is complete
      meta.json                preprocess config, P, H, codebook, modalities, label mode, scenario,
                               sample counts, label histograms (also written before the manifest)
      train/chunk_000000/<key>.npy   one array per key, first axis = samples of that chunk
      train/chunk_000001/...
      val/...  test/...

Sample = dict of numpy arrays (the contract in the project notes): input keys as produced by
data/preprocess.py + data/window.py (e.g. 'camera', 'camera_gray', 'camera_motion', 'radar_points',
'radar_maps', 'lidar_bev', 'lidar_feat', 'gps'), each (P, ...) float32; labels 'beams' int64 (H+1,),
'powers_dbm' float32 (H+1, B); bookkeeping 'stamp' float64, 'episode' int64 and optionally
'los_blocked' bool (H+1,). Every key that is not a label or bookkeeping key is an input key. Every
sample of one dataset has the same keys, dtypes and shapes.
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

FORMAT = "beam_tracking_ros.dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
META = "meta.json"
SPLITS = ("train", "val", "test")
LABEL_KEYS = ("beams", "powers_dbm", "los_blocked")
BOOKKEEPING_KEYS = ("stamp", "episode")
# Sensor modality -> the input keys it produces (mirrors data/preprocess.MODALITY_KEYS plus the
# window-level motion masks); kept here so the store does not import preprocessing.
MODALITY_GROUPS: dict[str, tuple[str, ...]] = {
    "camera": ("camera", "camera_gray", "camera_motion"),
    "radar": ("radar_points", "radar_maps", "radar"),
    "lidar": ("lidar_bev", "lidar_feat", "lidar"),
    "gnss": ("gps",),
    "gps": ("gps",),
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
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    os.replace(tmp, path)


class DatasetWriter:
    """Append samples to a chunked dataset; ``close()`` makes it complete (manifest last).

    meta: free-form JSON-able description (preprocess config, P, H, codebook_size/codebook_id,
    modalities, label_mode, scenario ...); counts and label histograms are added on close.
    chunk_size: samples per chunk file; a chunk is the unit the reader pages in, so it should be a few
    batches (a few hundred samples) -- large enough for sequential reads, small enough that shuffling
    by chunk still mixes well.

    An existing dataset at ``root`` is invalidated (its manifest removed) before anything is
    written, so a rebuild that fails half-way never leaves the old manifest pointing at new chunks.
    Use as a context manager: an exception leaves the directory without a manifest.
    """

    def __init__(self, root: str | os.PathLike[str], meta: Mapping[str, Any] | None = None,
                 chunk_size: int = 256, overwrite: bool = True) -> None:
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.root = Path(root)
        self.meta: dict[str, Any] = dict(meta or {})
        self.chunk_size = chunk_size
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
        self._schema: dict[str, tuple[str, tuple[int, ...]]] | None = None
        self._buffers: dict[str, list[dict[str, np.ndarray]]] = {s: [] for s in SPLITS}
        self._chunks: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        self._hist: dict[str, np.ndarray] = {}
        self._episodes: dict[str, set[int]] = {s: set() for s in SPLITS}
        self._closed = False

    # -- writing -----------------------------------------------------------------------------------
    def add(self, sample: Mapping[str, Any], split: str) -> None:
        """Buffer one sample for ``split``; a full buffer is written out as a chunk."""
        if self._closed:
            raise ValueError("DatasetWriter is closed")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        arrays = {k: np.asarray(v) for k, v in sample.items()}
        for key in ("beams", "stamp", "episode"):
            if key not in arrays:
                raise ValueError(f"sample is missing required key {key!r} (has {sorted(arrays)})")
        schema = {k: (a.dtype.str, tuple(a.shape)) for k, a in arrays.items()}
        if self._schema is None:
            for k, a in arrays.items():
                if a.dtype == object:
                    raise ValueError(f"sample[{k!r}] has dtype object; only numeric/bool arrays are stored")
            self._schema = schema
        elif schema != self._schema:
            diff = sorted(set(schema.items()) ^ set(self._schema.items()))
            raise ValueError(f"sample keys/dtypes/shapes differ from the first sample: {diff}")
        self._buffers[split].append(arrays)
        self._episodes[split].add(int(arrays["episode"]))
        if len(self._buffers[split]) >= self.chunk_size:
            self._flush(split)

    def _flush(self, split: str) -> None:
        buf = self._buffers[split]
        if not buf:
            return
        assert self._schema is not None
        index = len(self._chunks[split])
        name = f"chunk_{index:06d}"
        cdir = self.root / split / name
        cdir.mkdir(parents=True, exist_ok=True)
        for key in self._schema:
            _save_npy(cdir / f"{key}.npy", np.stack([s[key] for s in buf]))
        beams = np.stack([s["beams"] for s in buf]).reshape(len(buf), -1)
        top = int(beams.max()) + 1 if beams.size else 0
        hist = self._hist.get(split, np.zeros(0, np.int64))
        if top > hist.size:
            hist = np.pad(hist, (0, top - hist.size))
        hist[: top] += np.bincount(beams[:, 0], minlength=top)
        self._hist[split] = hist
        self._chunks[split].append({"dir": f"{split}/{name}", "count": len(buf)})
        self._buffers[split] = []

    def close(self) -> dict[str, Any]:
        """Write the remaining chunks, meta.json and, last, manifest.json. Returns the manifest."""
        if self._closed:
            raise ValueError("DatasetWriter is already closed")
        for split in SPLITS:
            self._flush(split)
        self._closed = True
        counts = {s: int(sum(c["count"] for c in self._chunks[s])) for s in SPLITS}
        if sum(counts.values()) == 0:
            raise DatasetError(f"no samples were written to {self.root}; refusing to mark it complete")
        assert self._schema is not None
        meta = dict(self.meta)
        meta["counts"] = counts
        meta["episodes"] = {s: sorted(self._episodes[s]) for s in SPLITS}
        meta["label_histogram"] = {s: self._hist.get(s, np.zeros(0, np.int64)).tolist() for s in SPLITS}
        meta["keys"] = sorted(self._schema)
        _atomic_write_json(self.root / META, meta)
        self.meta = meta
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "chunk_size": self.chunk_size,
            "keys": {k: {"dtype": d, "shape": list(s)} for k, (d, s) in self._schema.items()},
            "splits": {s: {"count": counts[s], "chunks": self._chunks[s]} for s in SPLITS},
        }
        _atomic_write_json(self.root / MANIFEST, manifest)
        return manifest

    def abort(self) -> None:
        """Stop without completing: buffered samples are dropped and no manifest is written."""
        self._closed = True
        self._buffers = {s: [] for s in SPLITS}

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


def is_complete(root: str | os.PathLike[str]) -> bool:
    """True when ``root`` holds a dataset whose manifest was written (cheap check, used for caching)."""
    try:
        DatasetReader(root, verify=False)
    except DatasetError:
        return False
    return True


class DatasetReader:
    """Read a complete dataset; refuses a directory without a valid manifest.

    Chunks are opened lazily with ``np.load(mmap_mode='r')`` and kept in a small LRU cache of
    ``cache_chunks`` chunks, so random access costs a dictionary lookup instead of re-parsing .npy
    headers, while memory stays bounded by what the OS pages in.
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
        if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
            raise DatasetError(
                f"{mpath}: not a {FORMAT} v{FORMAT_VERSION} manifest "
                f"(format={manifest.get('format')!r}, version={manifest.get('version')!r})")
        try:
            self.keys: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
                k: (np.dtype(v["dtype"]), tuple(v["shape"])) for k, v in manifest["keys"].items()}
            self._chunks = {s: list(manifest["splits"][s]["chunks"]) for s in SPLITS}
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{mpath}: malformed manifest ({exc!r})") from exc
        self.manifest = manifest
        self.meta: dict[str, Any] = meta
        self._offsets = {s: np.cumsum([0] + [int(c["count"]) for c in self._chunks[s]]) for s in SPLITS}
        self._cache: OrderedDict[tuple[str, int], dict[str, np.ndarray]] = OrderedDict()
        self._cache_size = max(1, int(cache_chunks))
        if verify:
            self._verify()

    def _verify(self) -> None:
        """Every chunk file present with the declared count, dtype and shape (reads headers only)."""
        missing = []
        for split in SPLITS:
            for chunk in self._chunks[split]:
                for key, (dtype, shape) in self.keys.items():
                    path = self.root / chunk["dir"] / f"{key}.npy"
                    if not path.is_file():
                        missing.append(str(path.relative_to(self.root)))
                        continue
                    arr = np.load(path, mmap_mode="r", allow_pickle=False)
                    if arr.dtype != dtype or tuple(arr.shape) != (int(chunk["count"]), *shape):
                        raise DatasetError(f"{path}: expected {dtype} {(chunk['count'], *shape)}, "
                                           f"found {arr.dtype} {arr.shape}")
        if missing:
            raise DatasetError(f"{self.root}: chunk files missing: {missing[:5]}"
                               f"{' ...' if len(missing) > 5 else ''}")

    def _cache_put(self, key: tuple[str, int], value: dict[str, np.ndarray] | None) -> None:
        if value is not None:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

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

    def chunk(self, split: str, index: int) -> dict[str, np.ndarray]:
        """All keys of chunk ``index`` of ``split`` as read-only memory maps (cached)."""
        self._check_split(split)
        key = (split, int(index))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        if not 0 <= index < len(self._chunks[split]):
            raise IndexError(f"chunk {index} out of range for split {split!r} ({len(self._chunks[split])})")
        cdir = self.root / self._chunks[split][index]["dir"]
        arrays = {k: np.load(cdir / f"{k}.npy", mmap_mode="r", allow_pickle=False) for k in self.keys}
        self._cache_put(key, arrays)
        return arrays

    def locate(self, split: str, index: int) -> tuple[int, int]:
        """(chunk number, row within the chunk) of sample ``index`` of ``split``."""
        n = self.count(split)
        if not -n <= index < n:
            raise IndexError(f"sample {index} out of range for split {split!r} ({n} samples)")
        index %= n
        ci = int(np.searchsorted(self._offsets[split], index, side="right") - 1)
        return ci, index - int(self._offsets[split][ci])

    def get(self, split: str, index: int, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Sample ``index`` of ``split`` as a dict of (copied, writable) numpy arrays."""
        ci, row = self.locate(split, index)
        chunk = self.chunk(split, ci)
        return {k: np.array(chunk[k][row]) for k in (keys or self.keys)}

    def iter_chunks(self, split: str, keys: Sequence[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Chunks of ``split`` in order (memory maps restricted to ``keys``): sequential streaming."""
        for ci in range(self.num_chunks(split)):
            chunk = self.chunk(split, ci)
            yield {k: chunk[k] for k in (keys or self.keys)}

    def column(self, split: str, key: str) -> np.ndarray:
        """One (small) key of every sample of ``split`` concatenated in memory (labels, stamps)."""
        parts = [c[key] for c in self.iter_chunks(split, [key])]
        if not parts:
            dtype, shape = self.keys[key]
            return np.zeros((0, *shape), dtype)
        return np.concatenate(parts)


class BeamDataset:
    """torch ``Dataset`` over one split: items are dicts of tensors (torch imported lazily).

    modalities: keep only these inputs -- modality names ('camera', 'radar', 'lidar', 'gnss') or exact
    input keys ('radar_points', ...); labels and bookkeeping keys are always returned. Asking for a
    modality the dataset does not hold is an error naming it.
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
    task is trivial."""
    reader = DatasetReader(root, verify=False)
    counts = {s: reader.count(s) for s in SPLITS}
    beams = np.concatenate([reader.column(s, "beams").reshape(counts[s], -1) for s in SPLITS
                            if counts[s]])
    ncb = int(reader.meta.get("codebook_size") or (int(beams.max()) + 1 if beams.size else 0))
    hist = np.bincount(beams[:, 0], minlength=ncb) if beams.size else np.zeros(ncb, np.int64)
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

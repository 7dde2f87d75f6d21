"""Frames -> windowed, labelled samples -> the chunked store, through the live node's own code path.

Why it reuses ``ObservationWindow`` and ``preprocess_frame``: a frame must be preprocessed and windowed
at training time exactly as the live tracker does it (architecture.md), so the builder pushes each
synchronized frame through the same functions and only adds what the live node cannot know -- the
future labels. What reaches the disk is each preprocessed frame once plus, per sample, the reference
to its window (:meth:`EpisodeWindower.records`); the store slices the window back out at read time
and recomputes ``camera_motion`` with the window's own function, so a stored sample equals
``ObservationWindow.stack(motion_threshold=...)`` of the same frames byte for byte
(:meth:`EpisodeWindower.samples` is that reference, and the tests compare the two).

Sample at frame t of an episode (frames t-P+1 .. t observed): inputs = the window stacked oldest ->
newest, ``beams`` = optimal beams of frames t .. t+H, ``powers_dbm`` = per-beam powers of those frames
(kept for MPR / mean RSS / power loss), ``los_blocked`` of those frames, ``stamp`` = stamp of frame t,
and, for frames from the built-in simulator, ``ceiling_powers_dbm`` (H+1, B) = the geometry ceiling of
those frames (a reference, not an input; absent for bags of other sources and DeepSense).

Episodes go wholly to one split (assigned by a seeded permutation of the episode ids), so no window
or label of a test episode was ever seen in training. Within an episode, a time gap larger than
``max_gap`` s, a stamp going backwards (a looping bag), a frame without a beam label or a frame whose
required modality is missing/malformed breaks continuity: the window and pending samples restart, so
no sample spans the hole (the same reset the live node does on clock jumps).
"""
from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..modalities import SENSORS, SOURCES
from .beam_history import SweepRecord, SweepSimulator
from .preprocess import BeamFeatureTracks, PreprocessConfig, PreprocessError, preprocess_frame
from .store import SPLITS, DatasetWriter
from .window import ContinuityPolicy, ObservationWindow

LOG = logging.getLogger(__name__)

SENSOR_MODALITIES = SENSORS  # the vocabulary: modalities.py


def assign_splits(episode_ids: Sequence[int], fractions: Sequence[float] = (0.8, 0.1, 0.1),
                  seed: int = 0) -> dict[int, str]:
    """Seeded episode -> split assignment ('train'/'val'/'test').

    A permutation of the ids (not an independent coin per episode) so the split sizes are exact:
    ``round(f * n)`` episodes for val and test, at least one each when their fraction is positive and
    there are at least three episodes, the rest train.
    """
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative (train, val, test) weights, got {fractions}")
    ids = [int(e) for e in episode_ids]
    if len(set(ids)) != len(ids):
        raise ValueError("episode_ids must be unique")
    f = np.asarray(fractions, dtype=float) / float(sum(fractions))
    n = len(ids)
    # counts[0] = val, counts[1] = test
    counts = [max(1, round(frac * n)) if frac > 0 and n >= 3 else round(frac * n) for frac in f[1:]]
    while f[0] > 0 and n > 0 and counts[0] + counts[1] >= n:  # keep at least one training episode
        counts[0 if counts[0] >= counts[1] else 1] -= 1
    order = np.random.default_rng(seed).permutation(n)
    out: dict[int, str] = {}
    for rank, idx in enumerate(order):
        if rank < counts[1]:
            out[ids[idx]] = "test"
        elif rank < counts[1] + counts[0]:
            out[ids[idx]] = "val"
        else:
            out[ids[idx]] = "train"
    return out


@dataclass
class BuildStats:
    """What happened while building (returned and stored in meta.json)."""

    frames: int = 0
    samples: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    dropped_frames: int = 0  # a required modality was missing or malformed
    unlabelled_frames: int = 0
    resets: int = 0  # continuity breaks (gaps, stamps backwards, drops)
    drop_reasons: dict[str, int] = field(default_factory=dict)
    drop_examples: dict[str, str] = field(default_factory=dict)  # the first message per modality

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "samples": dict(self.samples), "dropped_frames": self.dropped_frames,
                "unlabelled_frames": self.unlabelled_frames, "resets": self.resets,
                "drop_reasons": dict(self.drop_reasons), "drop_examples": dict(self.drop_examples)}


def _label_of(frame: Any) -> Any:
    return frame.get("beam") if isinstance(frame, Mapping) else getattr(frame, "beam", None)


def _stamp_of(frame: Any) -> float:
    return float(frame["stamp"] if isinstance(frame, Mapping) else frame.stamp)


def _radio_of(frame: Any) -> Any:
    return frame.get("radio") if isinstance(frame, Mapping) else getattr(frame, "radio", None)


class _FrameWithRadio:
    """A frame plus the previous frame's sweep, without copying the frame (its arrays stay shared)."""

    def __init__(self, frame: Any, radio: SweepRecord) -> None:
        self._frame, self.radio = frame, radio

    def __getattr__(self, name: str) -> Any:
        return getattr(self._frame, name)


def _with_radio(frame: Any, radio: SweepRecord) -> Any:
    if isinstance(frame, Mapping):
        return {**frame, "radio": radio}
    return _FrameWithRadio(frame, radio)


class EpisodeWindower:
    """Turns one episode's frames into samples (a generator), using the live node's window.

    ``modalities``: sensor modalities to preprocess ('camera', 'radar', 'lidar', 'gnss'); ``P`` window
    size, ``H`` future labels. Sample inputs are exactly ``ObservationWindow.stack(motion_threshold=...)``
    of the frames pushed through ``preprocess_frame``; :meth:`records` gives the same episode as frames
    (each once) plus window references, which is what the store keeps.
    """

    def __init__(self, P: int, H: int, cfg: PreprocessConfig, modalities: Sequence[str],
                 max_gap: float | None = None, stats: BuildStats | None = None,
                 lidar_background: np.ndarray | None = None,
                 features: Callable[[Any], dict[str, np.ndarray]] | None = None,
                 policy: ContinuityPolicy | None = None) -> None:
        if int(P) < 1:
            raise ValueError(f"P must be >= 1, got {P}")
        if int(H) < 0:
            raise ValueError(f"H must be >= 0, got {H}")
        bad = [m for m in modalities if m not in SOURCES]
        if bad or not modalities:
            raise ValueError(f"modalities: unknown or empty {list(modalities)}; "
                             f"choose from {SOURCES}")
        if max_gap is not None and not max_gap > 0:
            raise ValueError(f"max_gap must be positive seconds or None, got {max_gap}")
        self.P, self.H, self.cfg = int(P), int(H), cfg
        self.modalities = tuple(modalities)
        # 'radio': the previous frame's beam sweep (data/beam_history.py), simulated from the labels where
        # the frames carry no measurement of their own; seeded per episode
        self.history = "radio" in self.modalities
        # the live tracker's rule (data/window.py); the period is measured from the frames (period_s)
        self.policy = policy or ContinuityPolicy(max_gap_s=max_gap)
        self.max_gap = self.policy.max_gap_s
        self._intervals: list[float] = []
        self.stats = stats or BuildStats()
        self.lidar_background = lidar_background
        self.motion = cfg.motion_threshold if "camera" in self.modalities else None
        # Per-frame features: the live node's preprocess_frame unless a source needs another front end
        # (DeepSense radar cubes); it must raise PreprocessError for a missing/malformed modality.
        # The beam-space features' vehicle tracks restart with the window (see BeamFeatureTracks).
        self.beam_tracks = BeamFeatureTracks()
        self.features = features or (lambda frame: preprocess_frame(
            frame, self.cfg, self.modalities, lidar_background=self.lidar_background,
            beam_tracks=self.beam_tracks))

    def records(self, frames: Iterable[Any], episode: int) -> Iterator[tuple[Any, ...]]:
        """The episode as a stream of store records, in time order (what the dataset writer consumes):

        * ``("frame", i, features, stamp)``: frame ``i`` (counting preprocessed frames) joins the window;
        * ``("sample", i, labels)``: the window ending at frame ``i`` (frames ``i - P + 1 .. i``) is a
          sample; ``labels`` holds ``beams``/``powers_dbm``/``los_blocked`` of frames i .. i + H,
          ``stamp`` of frame i and ``episode``;
        * ``("break",)``: continuity break (gap, stamp backwards, unlabelled or dropped frame); no later
          window includes an earlier frame.

        The same continuity rules as the live node: the window restarts where the live window would.
        """
        # frames t waiting for the labels of t .. t+H: (frame index, stamp of t, labels so far)
        pending: deque[tuple[int, float, list[Any]]] = deque()
        last_stamp: float | None = None
        run = 0  # frames in the current run
        index = -1

        sweeps = SweepSimulator(seed=int(episode)) if self.history else None
        last_sweep: SweepRecord | None = None  # the sweep of the previous frame of this run

        def restart() -> bool:
            nonlocal run, prev, last_sweep
            broke = bool(run or pending)
            if broke:
                self.stats.resets += 1
            run = 0
            prev = None
            pending.clear()
            self.beam_tracks.reset()
            last_sweep = None
            if sweeps is not None:
                sweeps.reset()
            return broke

        prev: float | None = None  # stamp of the previous frame of this run (for the measured period)

        for frame in frames:
            self.stats.frames += 1
            stamp = _stamp_of(frame)
            if not np.isfinite(stamp):
                raise ValueError(f"stamp: must be finite, got {stamp} (frame {self.stats.frames} of episode {episode})")
            if self.policy.breaks(last_stamp, stamp) and restart():
                yield ("break",)
            last_stamp = stamp
            label = _label_of(frame)
            if label is None:
                self.stats.unlabelled_frames += 1
                if restart():
                    yield ("break",)
                continue
            if sweeps is not None and _radio_of(frame) is None:
                frame = _with_radio(frame, last_sweep or SweepRecord.empty())
            try:
                feats = self.features(frame)
            except PreprocessError as exc:
                self.stats.dropped_frames += 1
                self.stats.drop_reasons[exc.modality] = self.stats.drop_reasons.get(exc.modality, 0) + 1
                self.stats.drop_examples.setdefault(exc.modality, str(exc))
                if restart():
                    yield ("break",)
                continue
            if sweeps is not None:
                last_sweep = sweeps.measure(np.asarray(label.powers_dbm), stamp)
            index += 1
            run += 1
            if prev is not None:
                self._intervals.append(stamp - prev)
            prev = stamp
            yield ("frame", index, feats, stamp)
            if run >= self.P:
                pending.append((index, stamp, []))
            for _, _, labs in pending:
                labs.append(label)
            while pending and len(pending[0][2]) == self.H + 1:
                t, t_stamp, labs = pending.popleft()
                yield ("sample", t, self._labels(t_stamp, labs, episode))

    def measured_policy(self) -> ContinuityPolicy:
        """The policy with the frame period measured so far (median spacing of consecutive frames of a
        run; None before two frames): what the dataset's meta and its models' cards carry."""
        period = float(np.median(self._intervals)) if self._intervals else self.policy.period_s
        return ContinuityPolicy(period_s=None if period is None else round(period, 6),
                                max_gap_s=self.policy.max_gap_s)

    def samples(self, frames: Iterable[Any], episode: int) -> Iterator[dict[str, np.ndarray]]:
        """Yield the samples of one episode in time order as full dicts: inputs =
        ``ObservationWindow.stack(motion_threshold=...)`` of the window ending at the sample's frame.

        The reference of what the store returns (the store keeps frames once and slices windows at
        read time); ``build_dataset`` writes :meth:`records` instead of these copies.
        """
        window = ObservationWindow(self.P, self.H)
        stacks: dict[int, dict[str, np.ndarray]] = {}
        for rec in self.records(frames, episode):
            if rec[0] == "break":
                window.reset()
                stacks.clear()
            elif rec[0] == "frame":
                _, i, feats, stamp = rec
                window.push(feats, stamp)
                if window.is_full:
                    stacks[i] = window.stack(motion_threshold=self.motion)
            else:
                _, i, labels = rec
                yield {**stacks.pop(i), **labels}

    @staticmethod
    def _labels(stamp: float, labs: list[Any], episode: int) -> dict[str, np.ndarray]:
        out = {
            "beams": np.array([int(x.optimal_beam) for x in labs], dtype=np.int64),
            "powers_dbm": np.stack([np.asarray(x.powers_dbm, dtype=np.float32) for x in labs]),
            "los_blocked": np.array([bool(getattr(x, "los_blocked", False)) for x in labs]),
            "stamp": np.float64(stamp),
            "episode": np.int64(episode),
        }
        # The simulator's geometry ceiling (sim/simulator.py), when every label of the sample has one:
        # a reference for the benchmarks, never a model input (store.LABEL_KEYS).
        ceilings = [getattr(x, "ceiling_powers_dbm", None) for x in labs]
        if all(c is not None for c in ceilings):
            out["ceiling_powers_dbm"] = np.stack([np.asarray(c, dtype=np.float32) for c in ceilings])
        return out


def build_dataset(
    root: str | os.PathLike[str],
    episodes: Iterable[tuple[int, Iterable[Any]]],
    *,
    P: int = 8,
    H: int = 3,
    cfg: PreprocessConfig | None = None,
    modalities: Sequence[str] = SENSOR_MODALITIES,
    splits: Mapping[int, str] | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    meta: Mapping[str, Any] | None = None,
    chunk_size: int = 256,
    max_gap: float | None = None,
    features: Callable[[Any], dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Build a complete dataset at ``root`` from ``(episode_id, frames)`` pairs; returns meta.json's dict.

    ``splits`` maps episode id -> split; without it ``episodes`` must be a sequence (ids known up front)
    and :func:`assign_splits` is used with ``fractions`` and ``seed``. Frames are ``SensorFrame``-like
    records (stamp, camera, radar, lidar, gnss, beam). Any exception leaves ``root`` without a manifest,
    so a failed build never looks complete.
    """
    cfg = cfg or PreprocessConfig()
    if splits is None:
        if not isinstance(episodes, Sequence):
            raise ValueError("splits: required when episodes is a one-shot iterable (ids not known up front)")
        splits = assign_splits([e for e, _ in episodes], fractions, seed)
    bad = {e: s for e, s in splits.items() if s not in SPLITS}
    if bad:
        raise ValueError(f"splits: unknown split names {bad}; use {SPLITS}")
    stats = BuildStats()
    windower = EpisodeWindower(P, H, cfg, modalities, max_gap=max_gap, stats=stats, features=features)
    info: dict[str, Any] = {"codebook_size": None, "label_mode": None}
    base_meta = {
        "P": int(P), "H": int(H), "modalities": list(modalities), "preprocess": cfg.to_dict(),
        "split_seed": int(seed), "split_fractions": list(fractions),
        "splits": {str(e): s for e, s in splits.items()}, **dict(meta or {}),
    }
    with DatasetWriter(root, base_meta, chunk_size=chunk_size, window=P,
                       motion_threshold=windower.motion) as writer:
        for episode, frames in episodes:
            if int(episode) not in splits:
                raise ValueError(f"splits: episode {episode} has no split assigned")
            split = splits[int(episode)]
            writer.end_run(split)
            ids: dict[int, int] = {}  # frame index in the episode -> writer frame id (last P + H frames)
            for rec in windower.records(_watch_labels(frames, info), int(episode)):
                if rec[0] == "frame":
                    ids[rec[1]] = writer.add_frame(split, rec[2])
                    ids.pop(rec[1] - P - H - 1, None)
                elif rec[0] == "sample":
                    writer.add_sample(split, rec[2], last_frame=ids[rec[1]])
                    stats.samples[split] += 1
                else:
                    writer.end_run(split)
                    ids.clear()
        if sum(stats.samples.values()) == 0:
            raise ValueError(
                f"no samples: {stats.frames} frames gave no complete window of P={P} frames with "
                f"H={H} future labels (frames dropped because a required modality was missing or "
                f"malformed: {stats.dropped_frames} {stats.drop_reasons}; unlabelled "
                f"{stats.unlabelled_frames}, continuity resets {stats.resets})"
                + "".join(f"; first {m} drop: {msg}" for m, msg in stats.drop_examples.items()))
        writer.meta.update(info_to_meta(info))
        writer.meta["build_stats"] = stats.to_dict()
        writer.meta["window_policy"] = windower.measured_policy().to_dict()
        writer.close()
    LOG.info("built %s: %s", root, stats.to_dict())
    return dict(writer.meta, build_stats=stats.to_dict())


def info_to_meta(info: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if v is not None and k not in ("_seen",)}


def _watch_labels(frames: Iterable[Any], info: dict[str, Any]) -> Iterable[Any]:
    """Pass frames through, recording the codebook size / label mode and rejecting a codebook change."""
    for frame in frames:
        label = _label_of(frame)
        if label is not None:
            size = int(np.asarray(label.powers_dbm).shape[-1])
            if info["codebook_size"] is None:
                info["codebook_size"] = size
                info["label_mode"] = getattr(label, "mode", None)
            elif size != info["codebook_size"]:
                raise ValueError(f"beam label: codebook size changed from {info['codebook_size']} to {size} "
                                 f"at stamp {_stamp_of(frame)}")
        yield frame


def split_counts_ok(counts: Mapping[str, int]) -> bool:
    """True when every split holds samples (callers warn otherwise: too few episodes)."""
    return all(counts.get(s, 0) > 0 for s in SPLITS)


__all__ = ["BuildStats", "EpisodeWindower", "assign_splits", "build_dataset"]

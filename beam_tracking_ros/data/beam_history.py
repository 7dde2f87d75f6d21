"""Measurements fed back: the powers an RSU measured in the previous frame's beam sweep, as a model input.

Why: every RSU that does beam management keeps its beam history -- which beams it swept last frame and
what it received on each. That is the strongest cue to the next beam there is (the channel moves little
in 100 ms), and it costs no sensor. Issue 16 asks for it as an optional input modality. Its source is
the ``radio`` (modalities.py): not a synchronized sensor, but the ``BeamMeasurement`` answers to the
beam manager's sweeps, which arrive *after* the prediction of their frame. So the input of frame ``t``
is the sweep of frame ``t - 1`` (:class:`SweepRecord`), and the first frame of a run has none.

* :func:`beam_history_feature` -- the per-frame input ``beam_history``, ``(2, B)`` float32: row 0 the
  measured power relative to the strongest measured beam in dB / 10, clipped to ``[-4, 0]`` (-4 where
  not measured), row 1 the mask of measured beams. Relative, so one site's link budget does not become
  the model's business; the live tracker and the dataset builder both call it.
* :class:`SweepSimulator` -- what the offline datasets feed in place of a live beam manager: the sweep a
  prediction-aided manager would have made of the previous frame (its top-k candidates ranked by a
  noisy view of that frame's powers, k and the noise drawn per frame so that good and bad predictors are
  both seen, the serving beam always among them, now and then a full sweep), answered with that frame's
  label powers -- exactly what the simulator's radio answers a live sweep with (``ros/rsu_publishers.py``).
  Seeded per episode, so a dataset is reproducible.

A missing or late measurement is not an error: the frame gets an empty sweep (nothing measured), as the
first frame of every run does in training, and the tracker counts it.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["HISTORY_FLOOR", "MeasurementCache", "SweepRecord", "SweepSimulator", "beam_history_feature",
           "merge_sweeps"]

HISTORY_FLOOR = -4.0  # dB / 10 below the strongest measured beam: also the value of an unmeasured beam


@dataclass(frozen=True)
class SweepRecord:
    """One frame's measured beams: ``beams`` (n,) int64 indices, ``power_dbm`` (n,) float32 (NaN where the
    measurement failed); ``stamp`` the frame measured (s). Empty arrays: nothing was measured."""

    beams: np.ndarray
    power_dbm: np.ndarray
    stamp: float = float("nan")

    @staticmethod
    def empty(stamp: float = float("nan")) -> SweepRecord:
        return SweepRecord(np.zeros(0, np.int64), np.zeros(0, np.float32), stamp)


def merge_sweeps(sweeps: Sequence[SweepRecord]) -> SweepRecord:
    """Several sweeps of one frame (the prediction's, then a beam-failure recovery) as one; a beam measured
    twice keeps its last finite value."""
    if not sweeps:
        return SweepRecord.empty()
    beams = np.concatenate([np.asarray(s.beams, np.int64).ravel() for s in sweeps])
    power = np.concatenate([np.asarray(s.power_dbm, np.float32).ravel() for s in sweeps])
    keep = np.isfinite(power)
    beams, power = beams[keep], power[keep]
    # the last occurrence of each beam wins: unique over the reversed arrays
    _, last = np.unique(beams[::-1], return_index=True)
    idx = len(beams) - 1 - last
    return SweepRecord(beams[idx], power[idx], float(sweeps[-1].stamp))


def beam_history_feature(sweep: SweepRecord | None, num_beams: int) -> np.ndarray:
    """The ``beam_history`` input of a frame from the previous frame's sweep: ``(2, num_beams)`` float32.

    Beams out of range and non-finite powers are ignored (counted by the caller where it matters); no
    sweep, or nothing finite in it, gives the empty feature (row 0 at the floor, row 1 zero).
    """
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    out = np.zeros((2, num_beams), np.float32)
    out[0] = HISTORY_FLOOR
    if sweep is None:
        return out
    beams = np.asarray(sweep.beams, dtype=np.int64).ravel()
    power = np.asarray(sweep.power_dbm, dtype=np.float64).ravel()
    if beams.shape != power.shape:
        raise ValueError(f"beam sweep: {beams.size} beams but {power.size} powers")
    ok = (beams >= 0) & (beams < num_beams) & np.isfinite(power)
    if not ok.any():
        return out
    beams, power = beams[ok], power[ok]
    out[0, beams] = np.clip((power - power.max()) / 10.0, HISTORY_FLOOR, 0.0)
    out[1, beams] = 1.0
    return out


class SweepSimulator:
    """The beam manager's sweeps of one stream of frames, for datasets recorded without one.

    ``measure(powers_dbm)`` takes a frame's per-beam powers (its label: what the radio would answer) and
    returns the :class:`SweepRecord` of the sweep made in that frame. The candidates are the top-k beams by
    ``powers + noise``: k uniform in ``[k_min, k_max]`` and the noise's standard deviation uniform in
    ``[0, max_noise_db]``, both drawn per frame -- a ranking anywhere between an oracle's and a poor
    model's -- plus the beam served after the previous sweep (the default policy measures it too); with
    probability ``full_sweep_prob`` every beam (a beam-failure recovery). :meth:`reset` at a continuity
    break: the next frame has no serving beam yet.
    """

    def __init__(self, seed: int = 0, k_min: int = 1, k_max: int = 16, max_noise_db: float = 12.0,
                 full_sweep_prob: float = 0.02) -> None:
        if not 1 <= k_min <= k_max:
            raise ValueError(f"need 1 <= k_min <= k_max, got {k_min}, {k_max}")
        if max_noise_db < 0 or not 0.0 <= full_sweep_prob <= 1.0:
            raise ValueError("max_noise_db must be >= 0 and full_sweep_prob in [0, 1]")
        self.rng = np.random.default_rng(seed)
        self.k_min, self.k_max = int(k_min), int(k_max)
        self.max_noise_db, self.full_sweep_prob = float(max_noise_db), float(full_sweep_prob)
        self.serving: int | None = None

    def reset(self) -> None:
        self.serving = None

    def measure(self, powers_dbm: np.ndarray, stamp: float = float("nan")) -> SweepRecord:
        p = np.asarray(powers_dbm, dtype=np.float64).ravel()
        n = p.size
        if self.rng.random() < self.full_sweep_prob:
            beams = np.arange(n)
        else:
            k = int(self.rng.integers(self.k_min, self.k_max + 1))
            view = p + self.rng.normal(0.0, self.rng.uniform(0.0, self.max_noise_db), n)
            view = np.where(np.isfinite(view), view, -np.inf)
            beams = np.argpartition(-view, min(k, n) - 1)[: min(k, n)]
            if self.serving is not None and self.serving < n:
                beams = np.union1d(beams, [self.serving])
        beams = np.sort(beams).astype(np.int64)
        power = p[beams].astype(np.float32)
        finite = np.isfinite(power)
        self.serving = int(beams[finite][np.argmax(power[finite])]) if finite.any() else self.serving
        return SweepRecord(beams, power, stamp)


class MeasurementCache:
    """The live side: the radio's recent answers, and the sweep a new frame's ``beam_history`` is made of.

    :meth:`add` takes each ``BeamMeasurement`` (as a :class:`SweepRecord` of the frame it measured; several
    of one frame are merged, the cache holds ``max_frames`` frames), :meth:`sweep_before` the sweep of the
    newest frame strictly before a new frame's stamp and at most ``max_age_s`` older -- the previous
    frame's, as in training. Whatever is missing, late, for another codebook or not finite is counted in
    :attr:`counts` and gives an empty sweep (the frame still gets a prediction); nothing raises.
    """

    def __init__(self, num_beams: int, max_age_s: float, codebook_id: str = "", max_frames: int = 16) -> None:
        if num_beams < 1 or not max_age_s > 0 or max_frames < 1:
            raise ValueError("MeasurementCache: need num_beams >= 1, max_age_s > 0 and max_frames >= 1")
        self.num_beams, self.max_age_s, self.codebook_id = int(num_beams), float(max_age_s), str(codebook_id)
        self.max_frames = int(max_frames)
        self._frames: collections.OrderedDict[int, list[SweepRecord]] = collections.OrderedDict()
        self.counts: collections.Counter = collections.Counter()

    def add(self, sweep: SweepRecord, codebook_id: str = "") -> bool:
        """Keep one measurement; False (and counted) when it cannot be used."""
        self.counts["measurements"] += 1
        if codebook_id and self.codebook_id and codebook_id != self.codebook_id:
            self.counts["other_codebook"] += 1
            return False
        beams = np.asarray(sweep.beams, dtype=np.int64).ravel()
        power = np.asarray(sweep.power_dbm, dtype=np.float32).ravel()
        if beams.shape != power.shape or not np.isfinite(sweep.stamp):
            self.counts["malformed"] += 1
            return False
        ok = (beams >= 0) & (beams < self.num_beams)
        finite = np.isfinite(power)
        self.counts["beams_out_of_range"] += int((~ok).sum())
        self.counts["nonfinite_powers"] += int((ok & ~finite).sum())
        keep = ok & finite
        if not keep.any():  # nothing measured that a frame could use: as if no answer came
            self.counts["unusable"] += 1
            return False
        key = round(sweep.stamp * 1e9)
        self._frames.setdefault(key, []).append(SweepRecord(beams[keep], power[keep], float(sweep.stamp)))
        self._frames.move_to_end(key)
        while len(self._frames) > self.max_frames:
            self._frames.popitem(last=False)
        return True

    def sweep_before(self, stamp: float) -> SweepRecord:
        """The merged sweep of the newest frame in ``[stamp - max_age_s, stamp)``; empty (counted) if none."""
        t = round(stamp * 1e9)
        oldest = t - round(self.max_age_s * 1e9)
        best = max((k for k in self._frames if oldest <= k < t), default=None)
        if best is None:
            self.counts["frames_without_history"] += 1
            return SweepRecord.empty()
        self.counts["frames_with_history"] += 1
        return merge_sweeps(self._frames[best])

    def clear(self) -> None:
        """Forget everything (a clock jump: the cached frames' stamps mean nothing any more)."""
        self._frames.clear()

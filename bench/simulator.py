"""Benchmark of the built-in simulator and channel model (issue 4 figures).

Prints:
1. simulator throughput in frames/s on one core at the default sensor settings (target >= 50),
   with the time per component (traffic, channel, camera, LiDAR, radar);
2. channel model cost per frame for 40 vehicles x 152 patterns x 64 antennas (target <= 1 ms);
3. label statistics of a generated dataset for 2-lane and 3-lane (beam histogram summary, fraction of
   LoS-blocked frames, how often the optimum changes between consecutive frames), for the CRKD
   sum-RSS label and the single-target label. Weather mix as in CRKD: 60 % day, 20 % night,
   10 % rain, 10 % fog.

Usage: python bench/simulator.py [--quick] [--frames N] [--episodes N] [--steps N] [--seed S]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: the figure is per core

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from beam_tracking_ros.channel import ChannelModel, RsuPose, VehicleBoxes  # noqa: E402
from beam_tracking_ros.sim import CameraConfig, LidarConfig, SimConfig, Simulator  # noqa: E402
from beam_tracking_ros.sim.config import RadarConfig  # noqa: E402

WEATHER_MIX = ("day",) * 6 + ("night",) * 2 + ("rain", "fog")


class _Timer:
    """Wraps a bound method and accumulates its wall time."""

    def __init__(self, fn):
        self.fn = fn
        self.total = 0.0

    def __call__(self, *a, **k):
        t0 = time.perf_counter()
        out = self.fn(*a, **k)
        self.total += time.perf_counter() - t0
        return out


def bench_throughput(frames: int, seed: int) -> None:
    sim = Simulator(SimConfig(seed=seed))
    for _ in range(5):
        sim.step()
    timers = {
        "traffic": _Timer(sim.traffic.step),
        "channel": _Timer(sim.channel.compute),
        "camera": _Timer(sim.camera.render),
        "lidar": _Timer(sim.lidar.scan),
        "radar": _Timer(sim.radar.measure),
    }
    sim.traffic.step = timers["traffic"]
    sim.channel.compute = timers["channel"]
    sim.camera.render = timers["camera"]
    sim.lidar.scan = timers["lidar"]
    sim.radar.measure = timers["radar"]
    n_veh, n_lidar, n_radar = [], [], []
    t0 = time.perf_counter()
    for _ in range(frames):
        f = sim.step()
        n_veh.append(len(sim.traffic))
        n_lidar.append(len(f.lidar))
        n_radar.append(len(f.radar))
    dt = time.perf_counter() - t0
    c = sim.config
    print("== 1. Simulator throughput (one core, default sensors) ==")
    print(f"camera {c.camera.width}x{c.camera.height} BGRA, LiDAR {c.lidar.channels} ch x "
          f"{c.lidar.h_resolution_deg} deg / {c.lidar.horizontal_fov_deg:.0f} deg, radar "
          f"{c.radar.horizontal_fov_deg:.0f} deg, GNSS, {sim.n_beams}-beam labels; {c.lanes}-lane, "
          f"{np.mean(n_veh):.1f} vehicles on average (max {max(n_veh)})")
    print(f"frames: {frames}   wall: {dt:.2f} s   throughput: {frames / dt:.1f} frames/s "
          f"({frames / dt / c.rate_hz:.1f}x real time at {c.rate_hz:.0f} Hz)")
    print(f"mean points/frame: LiDAR {np.mean(n_lidar):.0f}, radar {np.mean(n_radar):.1f}")
    for name, tm in timers.items():
        print(f"  {name:8s} {tm.total / frames * 1e3:6.2f} ms/frame")
    other = dt - sum(t.total for t in timers.values())
    print(f"  {'other':8s} {other / frames * 1e3:6.2f} ms/frame")
    print(f"20,000-sample dataset: {20000 / (frames / dt) / 60:.1f} min")


def bench_channel(reps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sim = Simulator(SimConfig(seed=seed, lanes=3))
    model = ChannelModel()
    v = 40
    lane = rng.integers(0, 3, v)
    d = rng.choice([-1, 1], v)
    center = np.c_[rng.uniform(-100, 100, v), -d * (lane + 0.5) * 3.5, np.full(v, 0.75)]
    size = np.tile([4.5, 1.8, 1.5], (v, 1))
    boxes = VehicleBoxes(center, size, np.where(d > 0, 0.0, np.pi))
    rsu: RsuPose = sim.scene.rsu
    walls = sim.scene.walls

    def run(r):
        times = np.empty(reps)
        for i in range(reps):
            t0 = time.perf_counter()
            model.compute(rsu, boxes, walls, r)
            times[i] = time.perf_counter() - t0
        return times

    run(rng)[:10]
    t_noise = run(rng)
    t_det = run(None)
    res = model.compute(rsu, boxes, walls, rng)
    print("\n== 2. Channel model cost per frame ==")
    print(f"{v} vehicles x {model.n_beams} patterns x {model.array.n_antennas} antennas, "
          f"{len(walls)} walls + ground + LoS = {res.path_valid.shape[1]} paths/vehicle, {reps} reps")
    print(f"with shadowing + noise draws: median {np.median(t_noise) * 1e3:.3f} ms, "
          f"mean {t_noise.mean() * 1e3:.3f} ms, p95 {np.percentile(t_noise, 95) * 1e3:.3f} ms")
    print(f"deterministic (no draws):     median {np.median(t_det) * 1e3:.3f} ms")


def _episode_labels(cfg: SimConfig, steps: int, veh_blk: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sim = Simulator(cfg)
    beams, blocked, valid = [], [], []
    for _ in range(steps):
        f = sim.step()
        res = sim.channel_result
        if res is not None:
            veh_blk.append(np.c_[res.los_blocked, res.block_db[:, 0]])
        if f.beam is None:
            valid.append(False)
            beams.append(-1)
            blocked.append(False)
            continue
        valid.append(True)
        beams.append(f.beam.optimal_beam)
        blocked.append(f.beam.los_blocked)
    return np.array(beams), np.array(blocked), np.array(valid)


def bench_labels(episodes: int, steps: int, seed: int) -> None:
    print("\n== 3. Label statistics of a generated dataset ==")
    print(f"{episodes} episodes x {steps} steps per layout (100 ms), weather mix {'/'.join(WEATHER_MIX)}")
    no_sensors = dict(camera=CameraConfig(enabled=False), lidar=LidarConfig(enabled=False),
                      radar=RadarConfig(enabled=False))
    model = ChannelModel()
    npb = model.codebook.n_beams_per_pattern
    for mode in ("sum_rss", "single"):
        for lanes in (2, 3):
            all_b, all_blk, changes, pairs, far_changes, veh_blk = [], [], 0, 0, 0, []
            for e in range(episodes):
                cfg = SimConfig(seed=seed + 1000 * lanes + e, lanes=lanes, label_mode=mode,
                                weather=WEATHER_MIX[e % len(WEATHER_MIX)], **no_sensors)
                b, blk, ok = _episode_labels(cfg, steps, veh_blk)
                both = ok[1:] & ok[:-1]
                changed = (b[1:] != b[:-1]) & both
                changes += int(changed.sum())
                # a step to a neighbouring single beam (one bin in sin(az)) is the mild kind of change
                adjacent = (npb[b[1:]] == 1) & (npb[b[:-1]] == 1) & (np.abs(b[1:] - b[:-1]) == 1)
                far_changes += int((changed & ~adjacent).sum())
                pairs += int(both.sum())
                all_b.append(b[ok])
                all_blk.append(blk[ok])
            b = np.concatenate(all_b)
            blk = np.concatenate(all_blk)
            hist = np.bincount(b, minlength=model.n_beams)
            p = hist[hist > 0] / hist.sum()
            entropy = float(-(p * np.log2(p)).sum())
            top = np.argsort(hist)[::-1][:8]
            kinds = np.bincount(npb[b], minlength=4)[1:] / len(b)
            az = model.codebook.pattern_azimuths_deg()
            print(f"\n[{mode}, {lanes}-lane] frames {len(b)}, distinct optimal beams {int((hist > 0).sum())}/"
                  f"{model.n_beams}, entropy {entropy:.2f} bits (uniform would be {np.log2(model.n_beams):.2f})")
            print(f"  single/2-beam/3-beam patterns: {kinds[0]:.1%} / {kinds[1]:.1%} / {kinds[2]:.1%}; "
                  f"most frequent beam {hist.max() / len(b):.1%}, top-5 {np.sort(p)[::-1][:5].sum():.1%}")
            print(f"  LoS-blocked frames: {blk.mean():.1%}   optimum changes between consecutive frames: "
                  f"{changes / max(pairs, 1):.1%} (by more than one beam: {far_changes / max(pairs, 1):.1%})")
            vb = np.concatenate(veh_blk)
            print(f"  all vehicles: LoS blocked in {vb[:, 0].mean():.1%} of vehicle-frames, LoS attenuated > 3 dB "
                  f"in {(vb[:, 1] > 3).mean():.1%}, mean loss when blocked {vb[vb[:, 0] > 0, 1].mean():.1f} dB")
            print("  top beams: " + ", ".join(
                f"#{i} ({'/'.join(f'{a:+.0f}' for a in az[i])} deg) {hist[i] / len(b):.1%}" for i in top))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke test (~20 s)")
    ap.add_argument("--frames", type=int, default=None, help="frames for the throughput test (default 600)")
    ap.add_argument("--reps", type=int, default=None, help="channel model repetitions (default 3000)")
    ap.add_argument("--episodes", type=int, default=None, help="episodes per layout and label mode (default 10)")
    ap.add_argument("--steps", type=int, default=None, help="steps per episode (default 200, as CRKD)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    frames = a.frames or (150 if a.quick else 600)
    reps = a.reps or (500 if a.quick else 3000)
    episodes = a.episodes or (2 if a.quick else 10)
    steps = a.steps or (100 if a.quick else 200)
    for name, val in (("--frames", frames), ("--reps", reps), ("--episodes", episodes), ("--steps", steps)):
        if val <= 0:
            ap.error(f"{name} must be positive")
    t0 = time.perf_counter()
    bench_throughput(frames, a.seed)
    bench_channel(reps, a.seed)
    bench_labels(episodes, steps, a.seed)
    print(f"\n(total benchmark time {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

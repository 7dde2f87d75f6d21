"""Simulator -> dataset without ROS: the fast path for training.

Why it bypasses ROS: serialising images and clouds into messages and back only to rebuild the same
frames costs time and adds nothing when the simulator runs in-process; the frames still go through the
same builder (window + preprocessing) as bags and the live node. Datasets are cached by a hash of
everything that determines their content, so asking twice for the same configuration reuses the first.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .builder import SENSOR_MODALITIES, assign_splits, build_dataset
from .preprocess import PreprocessConfig
from .store import FORMAT_VERSION, DatasetError, DatasetReader

LOG = logging.getLogger(__name__)
# bump when generation changes so old caches are not reused (v3: geometry ceiling, v4: beam-space features,
# v5: gps_beams, v6: radar_beams clustered on 1.5 x 0.75 m cells, the street's facades in
# the beam features' site, gps_beams from a line through the last fixes, radar_beams' horizon moved by Doppler,
# v7: the wide-field imaging radar of RadarConfig, whose field and mount scenario_preprocess passes on)
GENERATOR_VERSION = 7


def scenario(lanes: int = 2, **overrides: Any) -> Any:
    """A ``SimConfig`` for CRKD's 2-lane / 3-lane scenes (``lanes`` per direction) with overrides."""
    from ..sim import SimConfig

    return SimConfig(lanes=lanes, **overrides)


def rsu_gps_reference(config: Any) -> tuple[float, float, float]:
    """GNSS (lat, lon, alt) of the RSU array of a scenario: the origin of the GPS feature.

    Why: ``PreprocessConfig.gps_reference`` defaults to (0, 0, 0), which would turn positions into
    thousands of kilometres; the simulator's geo reference places the RSU somewhere real, so the
    default generation centres GPS on the RSU (the live node must use the same config, stored in meta).
    """
    from ..sim import Simulator

    ref = Simulator(config).rsu_gnss()
    return (float(ref[0]), float(ref[1]), float(ref[2]))


def lidar_ground_cut(config: Any, clearance_m: float = 0.3) -> float:
    """``PreprocessConfig.lidar_min_z`` for a scenario: ``clearance_m`` above the road, in the LiDAR frame.

    Why: with ground returns kept, the nearest return in every azimuth bin of the range profile
    (``lidar_feat``) is the ground ring under the mast, the same in every frame, so the feature carried
    no information about the vehicles (per-bin std 0.01 over a test split). CRKD also filters ground
    reflections before its BEV. The built-in road is flat, so one height cut does it.
    """
    return float(-config.lidar.mount_height + clearance_m)


def scenario_preprocess(config: Any, horizon: int = 3) -> PreprocessConfig:
    """The default ``PreprocessConfig`` of a built-in scenario: everything the scene's geometry fixes.

    * GPS origin at the RSU (:func:`rsu_gps_reference`) and the LiDAR ground cut (:func:`lidar_ground_cut`);
    * a BEV fitted to the road instead of a square around the mast: 0..24 m across (the lanes of a 3-lane
      road end at 22.5 m) by +-80 m along it (the label range), 1 m cells (24 x 160). Why: the square
      80 x 80 m grid spent most cells on facades and cut the road at +-40 m, half the label range;
    * the beam-space features (``lidar_beams``/``radar_beams``) through this scenario's RSU site, ``horizon``
      steps ahead, for the scenario's label mode;
    * the scenario's radar: its horizontal field (HPS sectors, maps) and its mount (``radar_beams``).
    """
    return PreprocessConfig(
        gps_reference=rsu_gps_reference(config), lidar_min_z=lidar_ground_cut(config),
        bev_x_range=(0.0, 24.0), bev_y_range=(-80.0, 80.0), bev_resolution=1.0,
        geometry_lanes=int(config.lanes), geometry_label_mode=config.label_mode, geometry_horizon=int(horizon),
        radar_fov_deg=float(config.radar.horizontal_fov_deg), radar_pitch_deg=float(config.radar.pitch_deg),
        radar_mount_height=float(config.radar.mount_height))


def bag_site_overrides(site_lanes: int | None, label_mode: str = "sum_rss", horizon: int = 3,
                       gps_reference: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """``PreprocessConfig`` fields for bags recorded from the built-in scenario with ``site_lanes`` lanes: its
    site's geometry (:func:`scenario_preprocess`) without its GPS origin -- the RSU fix recorded in the bags
    decides, unless ``gps_reference`` is given. Empty for no site and no reference (the default config)."""
    values: dict[str, Any] = {}
    if site_lanes is not None:
        values = scenario_preprocess(scenario(site_lanes, label_mode=label_mode), horizon).to_dict()
        values.pop("gps_reference")
    if gps_reference is not None:
        values["gps_reference"] = tuple(gps_reference)
    return values


def config_hash(payload: dict[str, Any]) -> str:
    """Stable SHA-256 of a JSON-able description (sorted keys), the dataset's cache key."""
    text = json.dumps(payload, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def episode_configs(scenarios: Sequence[Any], episodes: int, seed: int) -> list[Any]:
    """Scenario of each episode: scenarios taken in turn, each episode with its own derived seed."""
    if not scenarios:
        raise ValueError("scenarios: need at least one SimConfig")
    if not isinstance(episodes, int) or episodes <= 0:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    seeds = np.random.SeedSequence(seed).generate_state(episodes, dtype=np.uint32)
    return [dataclasses.replace(scenarios[e % len(scenarios)], seed=int(seeds[e])) for e in range(episodes)]


def generate_dataset(
    root: str | os.PathLike[str],
    scenarios: Sequence[Any] | Any = None,
    *,
    episodes: int = 10,
    frames_per_episode: int = 200,
    seed: int = 0,
    P: int = 8,
    H: int = 3,
    cfg: PreprocessConfig | None = None,
    modalities: Sequence[str] = SENSOR_MODALITIES,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    chunk_size: int = 256,
    force: bool = False,
    progress: bool = False,
) -> Path:
    """Simulate ``episodes`` episodes (scenarios in turn) and build the dataset at ``root``.

    ``scenarios``: one ``SimConfig`` or a list (e.g. ``[scenario(2), scenario(3)]``); default 2-lane.
    With ``cfg`` None, the default ``PreprocessConfig`` with the GPS origin at the first scenario's RSU.
    Reuses ``root`` when it already holds a complete dataset built from the same configuration
    (``meta['config_hash']``, which covers the store's format version, so a dataset of an older layout
    is rebuilt) unless ``force``. Returns ``root``.
    """
    from ..sim import SimConfig, generate_episode

    if scenarios is None:
        scenarios = [SimConfig()]
    elif isinstance(scenarios, SimConfig):
        scenarios = [scenarios]
    scenarios = list(scenarios)
    for i, s in enumerate(scenarios):
        if not isinstance(s, SimConfig):
            raise ValueError(f"scenarios[{i}]: expected a SimConfig, got {type(s).__name__}")
    if not isinstance(frames_per_episode, int) or frames_per_episode <= P + H - 1:
        raise ValueError(f"frames_per_episode must be an integer > P + H - 1 = {P + H - 1}, "
                         f"got {frames_per_episode!r}")
    if cfg is None:
        cfg = scenario_preprocess(scenarios[0], H)
    configs = episode_configs(scenarios, episodes, seed)
    payload = {
        "generator_version": GENERATOR_VERSION, "store_format_version": FORMAT_VERSION,
        "scenarios": scenarios, "episodes": episodes,
        "frames_per_episode": frames_per_episode, "seed": seed, "P": P, "H": H, "preprocess": cfg,
        "modalities": list(modalities), "fractions": list(fractions), "chunk_size": chunk_size,
    }
    digest = config_hash(payload)
    root = Path(root)
    if not force:
        try:
            reader = DatasetReader(root, verify=False)
        except DatasetError:
            reader = None
        if reader is not None and reader.meta.get("config_hash") == digest:
            LOG.info("reusing cached dataset %s (config %s)", root, digest[:12])
            return root
    splits = assign_splits(range(episodes), fractions, seed)

    def episode_stream() -> Iterator[tuple[int, Iterator[Any]]]:
        bar = _progress(episodes, progress)
        for e, conf in enumerate(configs):
            yield e, generate_episode(conf, frames_per_episode)
            bar.update(1)
        bar.close()

    meta = {
        "source": "builtin_simulator",
        "config_hash": digest,
        "codebook_id": _codebook_id(scenarios[0]),
        "scenarios": [dataclasses.asdict(s) for s in scenarios],
        "episode_scenario": [e % len(scenarios) for e in range(episodes)],
        "episode_seeds": [c.seed for c in configs],
        "frames_per_episode": frames_per_episode,
        "rate_hz": scenarios[0].rate_hz,
        "gnss_projection": _gnss_projection(),  # fixes as CARLA 0.9.16 projects them (features: world frame)
    }
    build_dataset(root, episode_stream(), P=P, H=H, cfg=cfg, modalities=modalities, splits=splits,
                  fractions=fractions, seed=seed, meta=meta, chunk_size=chunk_size)
    return root


def _gnss_projection() -> str:
    from ..sim.carla_format import GNSS_PROJECTION

    return GNSS_PROJECTION


def _codebook_id(config: Any) -> str:
    """The codebook id the simulator node publishes in BeamObservation (channel.codebook_id), so
    datasets, live predictions and ground truth name the same codebook the same way."""
    from ..channel import ChannelModel, codebook_id

    return codebook_id(config.channel, ChannelModel(config.channel).n_beams)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc="episodes", unit="ep")

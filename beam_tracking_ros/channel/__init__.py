"""mmWave channel model of the RSU: arrays, codebooks (CRKD's 152 patterns), paths, powers, labels.

Public API::

    ArrayConfig(kind='ura', n_rows=4, n_cols=16, carrier_ghz=28.0)   # ArrayConfig.ula(64)
    steering_vector(array, az, el) -> (..., N) complex64
    CodebookConfig(n_az=32, n_el=1, az_span_deg=180, el_span_deg=70, el_center_deg=-20,
                   multi_grid=9, max_beams=3)                          # 32 + 36 + 84 = 152 patterns
    build_codebook(array, config) -> Codebook (weights (B, N) complex64, members, directions)
    ChannelConfig(array, codebook, tx_power_dbm, pathloss='umi'|'fspl', shadowing_db, ...)
    ChannelModel(config).compute(RsuPose, VehicleBoxes, Walls, rng=None, shadow_db=None)
        -> ChannelResult (powers_dbm (V, B) float32, los_blocked (V,), per-path details)
    beam_powers(rsu_position, rsu_yaw, centers, sizes, yaws, walls, model, rng) -> (V, B) dBm
    label_powers(powers (V, B), 'single'|'sum_rss', target) -> (B,)
    optimal_beam(powers) -> argmax; horizon_labels(frame_powers (T, B), H) -> (T-H, H+1) beams

For the CARLA bridge: the channel works in a right-handed world frame (z up). From CARLA actor
transforms use ``x, -y, z`` for locations, ``-radians(yaw)`` for yaws, ``2 * extent`` (bounding box)
for sizes and ``location + bounding_box.location`` for box centres. Without building geometry pass
``walls=None`` (LoS + ground reflection + vehicle blockage), or ``Walls`` built from the map's facades.
"""
from .array import ArrayConfig, direction_from_angles, steering_from_direction, steering_vector
from .codebook import Codebook, CodebookConfig, build_codebook, check_codebook_fits
from .labels import LABEL_MODES, horizon_labels, label_powers, optimal_beam, sum_rss_dbm
from .propagation import (
    ChannelConfig,
    ChannelModel,
    ChannelResult,
    RsuPose,
    VehicleBoxes,
    Walls,
    beam_powers,
    codebook_id,
    knife_edge_db,
    pathloss_db,
    segment_blockage_db,
)

__all__ = [
    "LABEL_MODES",
    "ArrayConfig",
    "ChannelConfig",
    "ChannelModel",
    "ChannelResult",
    "Codebook",
    "CodebookConfig",
    "RsuPose",
    "VehicleBoxes",
    "Walls",
    "beam_powers",
    "build_codebook",
    "check_codebook_fits",
    "codebook_id",
    "direction_from_angles",
    "horizon_labels",
    "knife_edge_db",
    "label_powers",
    "optimal_beam",
    "pathloss_db",
    "segment_blockage_db",
    "steering_from_direction",
    "steering_vector",
    "sum_rss_dbm",
]

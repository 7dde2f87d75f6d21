"""One vocabulary of modalities: the four sensor streams, and the model inputs each of them yields.

Why one: the same stream was called ``gnss`` in the data path and ``gps`` on the tracker's topics, its
parameters and ``BeamPrediction.modalities``, across seven tables that had started to disagree. Here:

* a **sensor** is a raw stream -- a topic, a bag connection, a key of a synchronized frame, an entry of
  ``BeamPrediction.modalities`` / ``missing_modalities``, the ``<sensor>_topic`` parameters of the
  tracker: ``camera``, ``radar``, ``lidar``, ``gnss`` (a NavSatFix, as the CARLA bridge names it);
* a **model input** is a preprocessed key (in a dataset, a model card, an ONNX input name); each belongs
  to one sensor. ``gps`` is the *feature* made from the gnss fix (the target's position relative to the
  RSU, the papers' "GPS" input), and ``gps_beams`` its beam-space form.

``gps`` is still accepted where a user names a sensor (``--modalities gps``) and means ``gnss``.

One source is not a synchronized sensor: the ``radio``, the RSU's own beam measurements fed back
(issue 16; ``data/beam_history.py``). Its input ``beam_history`` of frame t is the sweep of frame t - 1,
answered after t - 1's prediction, so the tracker caches it beside the synchronizer instead of waiting
for it there. :data:`SENSORS` keeps the four synchronized streams (every default that means "all
sensors" stays so); :data:`SOURCES` adds the radio wherever a model input may come from.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["FEEDBACK_SOURCES", "INPUT_SENSOR", "RAW_INPUTS", "SENSORS", "SENSOR_ALIASES", "SENSOR_INPUTS",
           "SOURCES", "WINDOW_INPUTS", "sensor_name", "sensors_for_inputs"]

SENSORS: tuple[str, ...] = ("camera", "radar", "lidar", "gnss")
#: sources of model inputs that are not synchronized with the sensors (the beam manager's measurements)
FEEDBACK_SOURCES: tuple[str, ...] = ("radio",)
SOURCES: tuple[str, ...] = SENSORS + FEEDBACK_SOURCES

#: the model inputs of each sensor (preprocess.py, and the window-level camera_motion)
SENSOR_INPUTS: dict[str, tuple[str, ...]] = {
    "camera": ("camera", "camera_gray", "camera_motion"),
    "radar": ("radar_points", "radar_maps", "radar_beams"),
    "lidar": ("lidar_bev", "lidar_feat", "lidar_beams"),
    "gnss": ("gps", "gps_beams"),
    "radio": ("beam_history",),
}
#: inputs computed over the whole window, not per frame (preprocess_frame does not return them)
WINDOW_INPUTS: tuple[str, ...] = ("camera_motion",)
#: raw sensor arrays a dataset may keep next to the preprocessed inputs (the geometry references read them)
RAW_INPUTS: tuple[str, ...] = ("radar", "lidar")

INPUT_SENSOR: dict[str, str] = {key: sensor for sensor, keys in SENSOR_INPUTS.items() for key in keys}
SENSOR_ALIASES: dict[str, str] = {"gps": "gnss"}


def sensor_name(name: str) -> str:
    """The source ``name`` means (``gps`` -> ``gnss``); ValueError for anything else."""
    sensor = SENSOR_ALIASES.get(name, name)
    if sensor not in SOURCES:
        raise ValueError(f"unknown sensor {name!r}; expected one of {SOURCES}")
    return sensor


def sensors_for_inputs(inputs: Sequence[str]) -> tuple[str, ...]:
    """The sources a model with these input keys needs, in the fixed order of :data:`SOURCES` (the radio,
    when wanted, last)."""
    unknown = [k for k in inputs if k not in INPUT_SENSOR]
    if unknown:
        raise ValueError(f"model inputs: unknown input(s) {unknown}; known: {sorted(INPUT_SENSOR)}")
    needed = {INPUT_SENSOR[k] for k in inputs}
    return tuple(s for s in SOURCES if s in needed)

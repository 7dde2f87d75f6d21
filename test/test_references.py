"""Reference predictors on a generated dataset: label prior, stored geometry ceiling, LiDAR baseline."""

from __future__ import annotations

import numpy as np

from beam_tracking_ros.data.generate import generate_dataset, scenario
from beam_tracking_ros.data.store import DatasetReader
from beam_tracking_ros.references import (
    CEILING,
    GEOMETRY,
    PRIOR,
    format_references,
    geometry_scores,
    label_prior_scores,
    reference_metrics,
)
from beam_tracking_ros.sim import CameraConfig, RadarConfig


def test_reference_metrics_on_a_generated_dataset(tmp_path) -> None:
    sc = scenario(2, camera=CameraConfig(enabled=False), radar=RadarConfig(enabled=False))
    root = generate_dataset(tmp_path / "ds", [sc], episodes=3, frames_per_episode=30, seed=2, P=2, H=2,
                            modalities=("gnss",))
    reader = DatasetReader(root)
    prior = label_prior_scores(reader, "test")
    n = reader.count("test")
    assert prior.shape == (n, 3, 152) and np.all(prior == prior[:1, :1])  # one ranking for every sample
    geo = geometry_scores(reader, "test")  # re-simulates the test episode; checks its labels on the way
    assert geo is not None and geo.shape == (n, 3, 152)
    m = reference_metrics(root, "test")
    assert list(m) == [PRIOR, CEILING, GEOMETRY]
    for metrics in m.values():
        assert len(metrics["top1"]) == 3 and 0 <= metrics["ampr"] <= 1
    assert m[CEILING]["ampr"] > m[PRIOR]["ampr"] and m[GEOMETRY]["ampr"] > m[PRIOR]["ampr"]
    text = format_references(m, "2-lane")
    assert "geometry ceiling" in text and "label prior" in text
    assert list(reference_metrics(root, "test", geometry=False)) == [PRIOR, CEILING]

"""bench/ablation.py: every row trains and is scored on the same test split, beside the references."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import ablation  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from beam_tracking_ros.data.generate import generate_dataset, scenario

    root = tmp_path_factory.mktemp("ablation") / "ds"
    return generate_dataset(root, [scenario(2)], episodes=4, frames_per_episode=30, seed=0, P=4, H=3,
                            modalities=("radar", "lidar", "gnss"), fractions=(0.5, 0.25, 0.25))


def test_rows_and_references(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ablation.json"
    assert ablation.main(["--dataset", str(dataset), "--steps", "3", "--only", "radar+gps focal", "teacher",
                          "--no-geometry", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["rows"]) == {"radar+gps focal", "teacher"}
    assert {"label prior", "geometry ceiling"} <= set(res["references"])
    for row in res["rows"].values():
        m = row["metrics"][0]
        assert 0.0 < m["ampr"] <= 1.0 and len(m["mpr"]) == 4
    printed = capsys.readouterr().out
    assert "label prior" in printed and "teacher" in printed


def test_refuses_a_dataset_without_the_beam_features(tmp_path: Path) -> None:
    from beam_tracking_ros.data.generate import generate_dataset, scenario
    from beam_tracking_ros.data.preprocess import PreprocessConfig

    root = generate_dataset(tmp_path / "plain", [scenario(2)], episodes=4, frames_per_episode=20, P=4, H=3,
                            modalities=("lidar", "gnss"), fractions=(0.5, 0.25, 0.25),
                            cfg=PreprocessConfig(gps_reference=(49.0, 8.4, 110.0)))
    with pytest.raises(SystemExit):
        ablation.main(["--dataset", str(root), "--steps", "1", "--only", "teacher", "--no-geometry"])

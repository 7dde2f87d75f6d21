"""Hand-computed cases for the beam metrics (Top-k, DBA, MPR, RSS, power loss)."""

import numpy as np
import pytest
import torch

from beam_tracking_ros import metrics as M


def one_hot_scores(pred: np.ndarray, n_beams: int) -> np.ndarray:
    """Scores whose ranking is pred first, then beams by descending index distance-agnostic order."""
    s = np.zeros((*pred.shape, n_beams))
    np.put_along_axis(s, pred[..., None], 10.0, axis=-1)
    return s


def test_perfect_predictions_give_one():
    y = np.array([[3, 4, 5, 6], [10, 11, 12, 12]])
    s = one_hot_scores(y, 32)
    assert np.all(M.topk_accuracy(s, y, 1) == 1.0)
    assert M.atopk_accuracy(s, y, 1) == 1.0
    assert np.allclose(M.dba_score(s, y), 1.0)
    assert M.adba_score(s, y) == pytest.approx(1.0)


def test_off_by_two_hand_value():
    # single step, 16 beams; ranking: true+2 first, then true+7, then true (scores decreasing)
    n, c = 1, 16
    y = np.array([5])
    s = np.zeros((n, c))
    s[0, 7] = 3.0
    s[0, 12] = 2.0
    s[0, 5] = 1.0
    # Y1 = 1 - 2/5 = 0.6; Y2 = 1 - min(0.4, 1) = 0.6; Y3 = 1 - 0 = 1 -> DBA = (0.6+0.6+1)/3
    assert M.dba_score(s, y)[0] == pytest.approx((0.6 + 0.6 + 1.0) / 3)
    assert M.topk_accuracy(s, y, 1)[0] == 0.0
    assert M.topk_accuracy(s, y, 2)[0] == 0.0
    assert M.topk_accuracy(s, y, 3)[0] == 1.0


def test_far_miss_saturates_at_zero():
    y = np.array([0])
    s = np.zeros((1, 64))
    s[0, 40], s[0, 50], s[0, 60] = 3, 2, 1
    assert M.dba_score(s, y)[0] == pytest.approx(0.0)


def test_horizon_average_and_torch_input():
    y = np.array([[0, 1], [2, 3]])
    s = np.zeros((2, 2, 8))
    s[0, 0, 0] = 1  # hit
    s[1, 0, 5] = 1  # miss
    s[0, 1, 1] = 1  # hit
    s[1, 1, 3] = 1  # hit
    per = M.topk_accuracy(torch.tensor(s), torch.tensor(y), 1)
    assert per.tolist() == [0.5, 1.0]
    assert M.atopk_accuracy(s, y, 1) == pytest.approx(0.75)


def test_mpr_rss_power_loss():
    powers = np.array([[-70.0, -60.0, -80.0, -90.0], [-50.0, -55.0, -52.0, -51.0]])
    pred = np.array([1, 2])  # best beam of sample 0; 3rd best (rank 3) of sample 1
    pr = M.percentile_rank(pred, powers)
    assert pr[:, 0].tolist() == [1.0, (4 - 3 + 1) / 4]
    assert M.mean_percentile_rank(pred, powers)[0] == pytest.approx((1.0 + 0.5) / 2)
    assert M.mean_rss(pred, powers)[0] == pytest.approx((-60.0 - 52.0) / 2)
    assert M.power_loss_db(pred, powers)[0] == pytest.approx((0.0 + 2.0) / 2)


def test_worst_beam_percentile():
    powers = np.array([[0.0, -1.0, -2.0, -3.0]])
    assert M.percentile_rank(np.array([3]), powers)[0, 0] == pytest.approx(0.25)


def test_evaluate_predictions_keys():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(20, 4, 16))
    y = rng.integers(0, 16, size=(20, 4))
    p = rng.normal(size=(20, 4, 16))
    out = M.evaluate_predictions(s, y, p)
    for key in ("atop1", "atop3", "atop5", "adba", "ampr", "mean_rss_dbm", "mean_power_loss_db"):
        assert key in out
    assert len(out["top1"]) == 4
    assert out["atop1"] <= out["atop3"] <= out["atop5"]


@pytest.mark.parametrize(
    "scores,labels",
    [(np.zeros((3, 8)), np.array([0, 1, 8])), (np.zeros((3, 8)), np.zeros((2,), int)), (np.zeros((3,)), [0])],
)
def test_bad_input(scores, labels):
    with pytest.raises(ValueError):
        M.topk_accuracy(scores, labels, 1)


def test_bad_powers():
    with pytest.raises(ValueError, match="powers_dbm"):
        M.mean_rss(np.array([0]), np.array([[np.nan, 1.0]]))

"""Focal, KL, logit-MSE, feature KD, relational KD (Euclidean/cosine/Poincare) and DistillationLoss."""

import math

import pytest
import torch
import torch.nn.functional as F

from beam_tracking_ros.kd import losses as L


def test_focal_reduces_to_ce():
    torch.manual_seed(0)
    z = torch.randn(6, 4, 16)
    y = torch.randint(0, 16, (6, 4))
    fl = L.focal_loss(z, y, alpha=1.0, gamma=0.0)
    ce = F.cross_entropy(z.reshape(-1, 16), y.reshape(-1))
    assert fl.item() == pytest.approx(ce.item(), rel=1e-6)


def test_focal_downweights_easy_examples():
    z = torch.tensor([[10.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    y = torch.tensor([0, 0])
    per = L.focal_loss(z, y, gamma=2.0, reduction="none")
    ce = F.cross_entropy(z, y, reduction="none")
    assert per[0] / ce[0] < per[1] / ce[1] < 1.0
    # hand value for the second row: p = e^0.1 / (e^0.1 + 2)
    p = math.exp(0.1) / (math.exp(0.1) + 2)
    assert per[1].item() == pytest.approx(-((1 - p) ** 2) * math.log(p), rel=1e-5)


def test_kl_zero_for_equal_and_scales_with_t2():
    torch.manual_seed(1)
    z = torch.randn(5, 4, 8)
    assert L.kl_distillation_loss(z, z.clone(), 3.0).item() == pytest.approx(0.0, abs=1e-6)
    zs = torch.randn(5, 4, 8)
    k1 = L.kl_distillation_loss(zs, z, 1.0)
    # T^2 factor: scaling logits by T and using temperature T reproduces the T=1 KL times T^2
    k4 = L.kl_distillation_loss(zs * 4.0, z * 4.0, 4.0)
    assert k4.item() == pytest.approx(16.0 * k1.item(), rel=1e-5)


def test_kl_detaches_the_teacher_unless_told_not_to():
    zs = torch.randn(3, 8, requires_grad=True)
    zt = torch.randn(3, 8, requires_grad=True)
    L.kl_distillation_loss(zs, zt, 2.0).backward()
    assert zt.grad is None and zs.grad is not None
    kept = L.kl_distillation_loss(zs, zt, 2.0, detach_teacher=False)
    assert kept.item() == pytest.approx(L.kl_distillation_loss(zs, zt, 2.0).item())
    kept.backward()
    assert zt.grad is not None and zt.grad.abs().sum() > 0


def test_logit_mse():
    a = torch.zeros(2, 3)
    b = torch.ones(2, 3) * 2
    assert L.logit_mse_loss(a, b).item() == pytest.approx(4.0)


def closed_form_poincare(x, y, c):
    num = 2 * c * ((x - y) ** 2).sum(-1)
    den = (1 - c * (x * x).sum(-1)) * (1 - c * (y * y).sum(-1))
    return torch.acosh(1 + num / den) / math.sqrt(c)


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_poincare_matches_closed_form_and_symmetric(c):
    torch.manual_seed(2)
    f = torch.randn(7, 5, dtype=torch.float64) * 0.3
    d = L.poincare_distance_matrix(f, c)
    h = L.poincare_exp_map0(f, c)
    ref = closed_form_poincare(h[:, None, :], h[None, :, :], c)
    ref.fill_diagonal_(0.0)
    assert torch.allclose(d, ref, atol=1e-6)
    assert torch.allclose(d, d.T, atol=1e-9)
    assert torch.all(d.diagonal() == 0)
    assert (h.norm(dim=-1) < 1 / math.sqrt(c)).all()


def test_distance_matrices():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    e = L.euclidean_distance_matrix(x)
    assert e[0, 1].item() == pytest.approx(5.0)
    c = L.cosine_distance_matrix(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]))
    assert c[0, 1].item() == pytest.approx(1.0) and c[0, 2].item() == pytest.approx(2.0)


def test_rkd_zero_when_equal_and_positive_otherwise():
    torch.manual_seed(3)
    t = torch.randn(8, 32)
    assert L.relational_kd_loss(t.clone(), t).item() == pytest.approx(0.0, abs=1e-6)
    # width-independent: a scaled copy with different width has the same normalised relations
    s = torch.cat([t, t], dim=1) * 3.0
    flat = L.relational_kd_loss(s, t, distances=("euclidean", "cosine"))
    assert flat.item() == pytest.approx(0.0, abs=1e-5)
    assert L.relational_kd_loss(torch.randn(8, 16), t).item() > 0


def test_rkd_gradients_finite():
    torch.manual_seed(4)
    s = torch.randn(6, 10, requires_grad=True)
    loss = L.relational_kd_loss(s, torch.randn(6, 12))
    loss.backward()
    assert torch.isfinite(s.grad).all()


def out(b, s, c, mid, end, seed):
    g = torch.Generator().manual_seed(seed)
    return {
        "logits": torch.randn(b, s, c, generator=g, requires_grad=True),
        "mid": torch.randn(b, mid, generator=g, requires_grad=True),
        "end": torch.randn(b, end, generator=g, requires_grad=True),
    }


@pytest.mark.parametrize("method", L.DISTILLATION_METHODS)
def test_distillation_loss_all_methods(method):
    st = out(8, 4, 16, 12, 20, 0)
    te = out(8, 4, 16, 24, 40, 1)
    y = torch.randint(0, 16, (8, 4))
    dims = {"student_dims": {"mid": 12, "end": 20}, "teacher_dims": {"mid": 24, "end": 40}}
    crit = L.DistillationLoss(method, **dims)
    total, parts = crit(st, y, te)
    assert torch.isfinite(total) and "total" in parts
    total.backward()
    if method.startswith("kd-"):
        assert len(list(crit.parameters())) > 0
    if method == "none":
        assert parts["total"] == pytest.approx(L.focal_loss(st["logits"], y).item(), rel=1e-6)


def test_distillation_loss_zero_when_student_is_teacher():
    te = out(8, 4, 16, 24, 40, 1)
    for method in ("kl", "logit-mse", "rkd-both"):
        crit = L.DistillationLoss(method)
        total, _ = crit(te, None, te)
        assert total.item() == pytest.approx(0.0, abs=1e-5)


def test_distillation_loss_bad_config():
    with pytest.raises(ValueError, match="method"):
        L.DistillationLoss("kd-everything")
    with pytest.raises(ValueError, match="student_dims"):
        L.DistillationLoss("kd-mid")
    with pytest.raises(ValueError, match="teacher_out"):
        L.DistillationLoss("kl")(out(2, 1, 4, 2, 2, 0), torch.zeros(2, 1, dtype=torch.long))


def test_power_target_loss_is_minimised_by_the_true_power_ranking():
    """The logits P / T (the true powers' ranking, spaced as the target) minimise the loss; any
    permutation of them, or a hard one-hot on the best beam, scores worse."""
    torch.manual_seed(0)
    powers = -60.0 + 10.0 * torch.randn(5, 4, 32)
    best = L.power_target_loss(powers / 1.0, powers, temperature_db=1.0)
    perm = L.power_target_loss(powers[..., torch.randperm(32)], powers, temperature_db=1.0)
    onehot = L.power_target_loss(50.0 * F.one_hot(powers.argmax(-1), 32).float(), powers, temperature_db=1.0)
    assert best < perm and best < onehot
    z = (powers / 1.0).clone().requires_grad_(True)
    L.power_target_loss(z, powers, temperature_db=1.0).backward()
    assert z.grad.abs().max() < 1e-6  # a stationary point: the minimum of a convex loss


def test_power_target_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature_db"):
        L.power_target_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature_db=0.0)
    with pytest.raises(ValueError, match="does not match"):
        L.power_target_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_distillation_loss_task_losses():
    torch.manual_seed(1)
    z = torch.randn(4, 2, 8)
    p = -70.0 + 5.0 * torch.randn(4, 2, 8)
    y = p.argmax(-1)
    focal, _ = L.DistillationLoss("none", task_loss="focal")({"logits": z}, y)
    power, parts = L.DistillationLoss("none", task_loss="power")({"logits": z}, y, powers=p)
    both, parts2 = L.DistillationLoss("none", task_loss="focal+power")({"logits": z}, y, powers=p)
    assert set(parts) == {"power", "total"} and set(parts2) == {"focal", "power", "total"}
    assert both.item() == pytest.approx(focal.item() + power.item(), rel=1e-5)
    with pytest.raises(ValueError, match="powers"):
        L.DistillationLoss("none", task_loss="power")({"logits": z}, y)
    with pytest.raises(ValueError, match="task_loss"):
        L.DistillationLoss("none", task_loss="ranking")

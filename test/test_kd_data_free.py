"""Data-free KD (Zakeri et al.): generator, metadata, losses, and the two training steps."""

import pytest
import torch
from torch import nn

from beam_tracking_ros.kd import data_free as DF


class TinyLidarTeacher(nn.Module):
    """A GRU over (B, P, D) LiDAR features with a BatchNorm, returning the model output dict."""

    def __init__(self, d: int = 12, h: int = 16, steps: int = 4, beams: int = 8) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(d)
        self.gru = nn.GRU(d, h, batch_first=True)
        self.head = nn.Linear(h, steps * beams)
        self.steps, self.beams = steps, beams

    def forward(self, batch):
        x = batch["lidar_feat"]
        x = self.bn(x.transpose(1, 2)).transpose(1, 2)
        seq, last = self.gru(x)
        end = last[-1]
        return {"logits": self.head(end).reshape(-1, self.steps, self.beams), "mid": seq.mean(1), "end": end}


def real_batches(n: int = 4):
    g = torch.Generator().manual_seed(0)
    return [{"lidar_feat": torch.rand(16, 5, 12, generator=g) * 0.5 + 0.2} for _ in range(n)]


def trained_teacher():
    torch.manual_seed(0)
    t = TinyLidarTeacher()
    t.train()
    with torch.no_grad():
        for b in real_batches():  # populate BatchNorm running statistics from "real" data
            t(b)
    return t.eval()


def test_generator_shapes_and_range():
    g = DF.Generator("lidar_feat", (5, 12), noise_dim=20, hidden=8, output_range=(0.0, 1.0), pad_future=3)
    x = g(g.sample_noise(4))["lidar_feat"]
    assert x.shape == (4, 8, 12)
    assert x.min() >= 0 and x.max() <= 1
    assert torch.all(x[:, 5:] == 0)
    with pytest.raises(ValueError, match="output_range"):
        DF.Generator("x", (2,), output_range=(1.0, 0.0))


def test_metadata_roundtrip_and_values():
    t = trained_teacher()
    meta = DF.collect_teacher_metadata(t, real_batches(), features=("end", "mid"))
    assert meta.mean["end"].shape == (16,) and (meta.var["end"] >= 0).all()
    again = DF.TeacherMetadata.from_state_dict(meta.state_dict())
    assert torch.equal(again.mean["mid"], meta.mean["mid"])
    feats = torch.randn(1000, 3) * 2 + 1
    assert DF.metadata_loss(torch.ones(3), torch.full((3,), 4.0), feats) < 0.2
    assert DF.metadata_loss(torch.zeros(3), torch.ones(3), feats) > 5.0


def test_losses_hand_values():
    f = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert DF.activation_loss(f).item() == pytest.approx(-3.0)
    uniform = torch.zeros(2, 4)
    assert DF.entropy_loss(uniform).item() == pytest.approx(torch.log(torch.tensor(4.0)).item())
    confident = torch.tensor([[20.0, 0, 0, 0], [0, 20.0, 0, 0]])
    assert DF.entropy_loss(confident).item() < 1e-3
    # balanced over the batch even though each is confident -> minimal information-entropy loss
    expected = -torch.log(torch.tensor(2.0)).item()
    assert DF.information_entropy_loss(confident).item() == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("source", ["features", "batchnorm", "both"])
def test_generator_loss_decreases(source):
    t = trained_teacher()
    meta = DF.collect_teacher_metadata(t, real_batches())
    torch.manual_seed(1)
    g = DF.Generator("lidar_feat", (5, 12), noise_dim=32, hidden=32)
    hist = DF.train_generator(g, t, meta, steps=60, batch_size=32, lr=3e-3, source=source, seed=0)
    first = sum(h["total"] for h in hist[:5]) / 5
    last = sum(h["total"] for h in hist[-5:]) / 5
    assert last < first
    assert all(p.requires_grad for p in t.parameters())  # teacher unfrozen afterwards


def test_student_trains_on_generated_inputs_only():
    t = trained_teacher()
    meta = DF.collect_teacher_metadata(t, real_batches())
    g = DF.Generator("lidar_feat", (5, 12), noise_dim=32, hidden=32)
    DF.train_generator(g, t, meta, steps=20, batch_size=16)
    torch.manual_seed(2)
    s = TinyLidarTeacher(h=4)
    for loss in ("mse", "kl"):
        hist = DF.train_student_data_free(s, t, g, steps=60, batch_size=16, lr=1e-2, loss=loss)
        assert sum(hist[-5:]) < sum(hist[:5])


def test_bad_config():
    t = trained_teacher()
    g = DF.Generator("lidar_feat", (5, 12), noise_dim=8, hidden=4)
    with pytest.raises(ValueError, match="metadata"):
        DF.train_generator(g, t, None, steps=1, source="features")
    with pytest.raises(ValueError, match="loss"):
        DF.train_student_data_free(t, t, g, steps=1, loss="ce")


def smooth_batches(n: int = 4):
    """Sequences that differ across samples but barely along time (like the LiDAR range profiles)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        base = torch.rand(16, 1, 12, generator=g)
        out.append({"lidar_feat": base + 0.01 * torch.randn(16, 5, 12, generator=g)})
    return out


def test_input_metadata_collected_and_roundtrip():
    t = trained_teacher()
    meta = DF.collect_teacher_metadata(t, smooth_batches(), inputs=("lidar_feat",))
    assert meta.has_inputs("lidar_feat")
    assert meta.input_mean["lidar_feat"].shape == (5, 12) and meta.step_var["lidar_feat"].shape == (12,)
    x = torch.cat([b["lidar_feat"] for b in smooth_batches()])
    assert torch.allclose(meta.input_var["lidar_feat"], x.var(0, unbiased=False), atol=1e-5)
    again = DF.TeacherMetadata.from_state_dict(meta.state_dict())
    assert torch.equal(again.step_mean["lidar_feat"], meta.step_mean["lidar_feat"])
    assert not DF.TeacherMetadata.from_state_dict({k: v for k, v in meta.state_dict().items()
                                                   if k.startswith(("mean.", "var."))}).has_inputs("lidar_feat")
    with pytest.raises(ValueError, match="input_mean/input_var"):
        DF.TeacherMetadata.from_state_dict({"input_mean.lidar_feat": torch.zeros(1)})
    with pytest.raises(ValueError, match="sequence"):
        DF.collect_teacher_metadata(t, [{"lidar_feat": torch.rand(4, 1, 12)}], inputs=("lidar_feat",))


def test_input_metadata_loss_penalises_jitter_not_real_sequences():
    """The collapse it exists for: same pooled statistics, variance along time instead of across samples."""
    t = trained_teacher()
    meta = DF.collect_teacher_metadata(t, smooth_batches(), inputs=("lidar_feat",))
    real = torch.cat([b["lidar_feat"] for b in smooth_batches()])
    torch.manual_seed(0)
    jitter = real[0:1].expand_as(real) + (torch.rand_like(real) - 0.5)  # one sample repeated + frame noise
    ok_in, ok_step = DF.input_metadata_loss(meta, "lidar_feat", real)
    bad_in, bad_step = DF.input_metadata_loss(meta, "lidar_feat", jitter)
    assert ok_in < 1e-3 and ok_step < 1e-3
    assert bad_in > 10 * max(ok_in.item(), 1e-3) and bad_step > 10 * max(ok_step.item(), 1e-3)


def test_generator_with_input_metadata_matches_the_per_step_input_statistics():
    t = trained_teacher()
    meta = DF.collect_teacher_metadata(t, smooth_batches(), inputs=("lidar_feat",))
    real_var = torch.cat([b["lidar_feat"] for b in smooth_batches()]).var(0).mean().item()

    def trained(w: float) -> tuple[float, float]:
        torch.manual_seed(1)
        g = DF.Generator("lidar_feat", (5, 12), noise_dim=32, hidden=32, output_range=(-0.2, 1.2))
        hist = DF.train_generator(g, t, meta, steps=300, batch_size=32, lr=3e-3, seed=0, input_weight=w)
        assert ("inputs" in hist[-1]) == (w > 0)
        with torch.no_grad():
            x = g(g.sample_noise(256))["lidar_feat"]
        return DF.input_metadata_loss(meta, "lidar_feat", x)[0].item(), x.var(0).mean().item()

    (off, var_off), (on, var_on) = trained(0.0), trained(1.0)
    assert on < off / 10
    assert abs(var_on - real_var) < 0.5 * abs(var_off - real_var)  # variance across samples, like the data
    g = DF.Generator("lidar_feat", (5, 12), noise_dim=8, hidden=4)
    no_inputs = DF.collect_teacher_metadata(t, smooth_batches())
    with pytest.raises(ValueError, match="no input statistics"):
        DF.train_generator(g, t, no_inputs, steps=1, input_weight=1.0)


def test_adversarial_generator_step_seeks_disagreement_and_leaves_the_student_alone():
    """With only the disagreement term, generator steps raise the teacher-student KL on fresh samples;
    the student's weights do not move and its trainable flags and mode come back."""
    t = trained_teacher()
    for p in t.parameters():
        p.requires_grad_(False)
    torch.manual_seed(3)
    s = TinyLidarTeacher(h=4).train()
    before = [p.detach().clone() for p in s.parameters()]
    g = DF.Generator("lidar_feat", (5, 12), noise_dim=16, hidden=16)
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    rng = torch.Generator().manual_seed(0)

    def kl_now() -> float:
        with torch.no_grad():
            x = g(torch.randn(256, 16, generator=torch.Generator().manual_seed(9)))
            s.eval()
            value = DF.disagreement(s(x)["logits"], t(x)["logits"], 5.0).item()
            s.train()
            return value

    start = kl_now()
    for _ in range(40):
        DF.adversarial_generator_step(g, t, s, opt, lambda x, out: out["logits"].new_zeros(()), 1.0, 5.0, 32, rng)
    assert kl_now() > 1.5 * start
    assert all(torch.equal(a, b) for a, b in zip(before, s.parameters(), strict=True))
    assert all(p.requires_grad for p in s.parameters()) and s.training


def test_disagreement_is_zero_for_equal_logits_and_flows_into_both_sides():
    a = torch.randn(4, 3, 8, requires_grad=True)
    b = torch.randn(4, 3, 8, requires_grad=True)
    assert DF.disagreement(a.detach(), a.detach(), 2.0).item() == pytest.approx(0.0, abs=1e-6)
    DF.disagreement(a, b, 2.0).backward()
    assert a.grad is not None and b.grad is not None and a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_student_training_moves_the_generator_only_when_asked():
    t = trained_teacher()
    meta = DF.collect_teacher_metadata(t, real_batches())
    g = DF.Generator("lidar_feat", (5, 12), noise_dim=16, hidden=16)
    DF.train_generator(g, t, meta, steps=10, batch_size=16)
    frozen = [p.detach().clone() for p in g.parameters()]

    def objective(x, out):
        return DF.generator_loss(out, meta)[0]

    s = TinyLidarTeacher(h=4)
    DF.train_student_data_free(s, t, g, steps=10, batch_size=16, loss="kl")
    assert all(torch.equal(a, b) for a, b in zip(frozen, g.parameters(), strict=True))
    hist = DF.train_student_data_free(s, t, g, steps=10, batch_size=16, loss="kl", generator_every=2,
                                      adversarial_weight=0.5, generator_objective=objective)
    assert len(hist) == 10 and all(map(torch.isfinite, map(torch.tensor, hist)))
    assert not all(torch.equal(a, b) for a, b in zip(frozen, g.parameters(), strict=True))
    assert all(p.requires_grad for p in t.parameters()) and not t.training  # teacher restored
    with pytest.raises(ValueError, match="generator_objective"):
        DF.train_student_data_free(s, t, g, steps=1, generator_every=1)
    with pytest.raises(ValueError, match="adversarial_weight"):
        DF.train_student_data_free(s, t, g, steps=1, generator_every=1, adversarial_weight=-1.0,
                                   generator_objective=objective)


def test_inversion_loss_is_what_train_generator_minimises_and_checks_its_inputs():
    """The shared objective gives train_generator's logged total on the same batch, and refuses a
    feature source without metadata or input terms without input statistics."""
    t = trained_teacher()
    meta = DF.collect_teacher_metadata(t, real_batches())
    objective = DF.InversionLoss(meta, "lidar_feat", 5, alpha=1e-3, beta=1e-1)
    g = DF.Generator("lidar_feat", (5, 12), noise_dim=8, hidden=8)
    hist = DF.train_generator(g, t, None, steps=1, batch_size=8, lr=1e-9, seed=4, objective=objective)
    rng = torch.Generator().manual_seed(4)
    g.train()
    x = g(torch.randn(8, 8, generator=rng))
    t.eval()
    with torch.no_grad():
        value = objective(x, t(x)).item()
    assert value == pytest.approx(hist[0]["total"], rel=1e-3)
    with pytest.raises(ValueError, match="needs the teacher's stored feature statistics"):
        DF.InversionLoss(None, "lidar_feat", 5)
    no_inputs = DF.TeacherMetadata(mean=meta.mean, var=meta.var)
    with pytest.raises(ValueError, match="no input statistics"):
        DF.InversionLoss(no_inputs, "lidar_feat", 5, input_weight=1.0)
    with pytest.raises(ValueError, match="built for"):
        DF.train_generator(g, t, None, steps=1, objective=DF.InversionLoss(meta, "radar_points", 5))

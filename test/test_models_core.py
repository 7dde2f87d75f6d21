"""Model shapes, registry validation, parameter/FLOP counts, and KD wiring with real models."""

import pytest
import torch
from torch import nn

from beam_tracking_ros.data.preprocess import PreprocessConfig, output_shapes
from beam_tracking_ros.kd.data_free import Generator, collect_teacher_metadata, train_generator
from beam_tracking_ros.kd.losses import DistillationLoss
from beam_tracking_ros.models import (
    build_model,
    check_distillation_pair,
    count_flops,
    count_parameters,
    example_batch,
)
from beam_tracking_ros.models.registry import _gru_flops

SMALL = [
    "teacher", "teacher-ma", "student-radar-mlp", "student-ma", "teacher-lidar-gru", "student-lidar-gru",
]


@pytest.mark.parametrize("name", SMALL)
def test_forward_shapes(name):
    torch.manual_seed(0)
    m = build_model(name)
    out = m(example_batch(m, 3))
    assert out["logits"].shape == (3, 4, 64)
    assert out["mid"].shape == (3, m.mid_dim)
    assert out["end"].shape == (3, m.end_dim)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_teacher_fusions_and_modalities():
    for fusion in ("transformer", "gru-mha"):
        m = build_model("teacher", fusion=fusion, num_beams=32, horizon=2, window=4)
        out = m(example_batch(m, 2))
        assert out["logits"].shape == (2, 3, 32)
    single = build_model("teacher", modalities=["radar_maps"])
    assert single.modalities == ("radar_maps",)
    assert single(example_batch(single, 2))["logits"].shape == (2, 4, 64)


def test_registry_rejects_unknown():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet-9000")
    with pytest.raises(ValueError, match=r"unknown config keys.*hiden"):
        build_model("student-radar-mlp", hiden=5)
    with pytest.raises(ValueError, match="fusion"):
        build_model("teacher", fusion="lstm")
    with pytest.raises(ValueError, match="modality"):
        build_model("teacher", modalities=("sonar",))


def test_batch_validation():
    m = build_model("student-radar-mlp")
    with pytest.raises(ValueError, match="missing modality 'radar_points'"):
        m({"camera": torch.zeros(1, 8, 3, 64, 64)})
    with pytest.raises(ValueError, match="P=8"):
        m({"radar_points": torch.zeros(1, 5, 64, 6)})


def test_example_batch_matches_preprocess_shapes():
    cfg = PreprocessConfig()
    m = build_model("teacher")
    shapes = output_shapes(cfg)
    for key, value in example_batch(m, 2, cfg).items():
        assert value.shape == (2, 8, *shapes[key])


def test_counts_positive_and_students_smaller():
    pairs = [("teacher", "student-radar-mlp"), ("teacher-ma", "student-ma"),
             ("teacher-lidar-gru", "student-lidar-gru")]
    for t_name, s_name in pairs:
        t, s = build_model(t_name), build_model(s_name)
        tp, sp = count_parameters(t), count_parameters(s)
        tf, sf = count_flops(t), count_flops(s)
        assert tp > 0 and sp > 0 and tf > 0 and sf > 0
        assert sp * 3 < tp, (t_name, s_name, tp, sp)
        assert sf * 3 < tf, (t_name, s_name, tf, sf)


def test_flops_counted_not_guessed():
    lin = nn.Sequential(nn.Linear(10, 20))

    class Wrap(nn.Module):
        modalities = ("x",)
        window = 1

        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, b):
            return {"logits": self.lin(b["x"])}

    assert count_flops(Wrap(), {"x": torch.zeros(4, 1, 10)}) == 2 * 10 * 20
    gru = nn.GRU(5, 7, batch_first=True)
    assert _gru_flops(gru, torch.zeros(2, 3, 5)) == 2 * 3 * (3 * (2 * 5 * 7 + 2 * 7 * 7) + 8 * 7)


def test_crkd_student_sizes():
    s6 = build_model("student-radar-mlp-6m")
    assert 5.5e6 < count_parameters(s6) < 6.5e6
    assert len(s6.layers) == 6


def test_cross_modal_distillation_step():
    torch.manual_seed(0)
    teacher = build_model("teacher").eval()
    student = build_model("student-radar-mlp")
    check_distillation_pair(teacher, student)
    batch = example_batch(teacher, 4)
    batch = {k: torch.rand_like(v) for k, v in batch.items()}
    y = torch.randint(0, 64, (4, 4))
    with torch.no_grad():
        t_out = teacher(batch)
    for method in ("kd-both", "rkd-both", "kl"):
        crit = DistillationLoss(method, student_dims={"mid": student.mid_dim, "end": student.end_dim},
                                teacher_dims={"mid": teacher.mid_dim, "end": teacher.end_dim})
        loss, _ = crit(student({"radar_points": batch["radar_points"]}), y, t_out)
        loss.backward()
    with pytest.raises(ValueError, match="num_beams"):
        check_distillation_pair(teacher, build_model("student-radar-mlp", num_beams=32))


def test_data_free_with_lidar_gru_teacher():
    torch.manual_seed(0)
    teacher = build_model("teacher-lidar-gru").eval()
    real = [{"lidar_feat": torch.rand(16, 8, 64) * 0.5} for _ in range(2)]
    meta = collect_teacher_metadata(teacher, real)
    gen = Generator("lidar_feat", (8, 64), noise_dim=64, hidden=32, output_range=(0.0, 1.0))
    hist = train_generator(gen, teacher, meta, steps=30, batch_size=16, lr=3e-3)
    assert hist[-1]["total"] < hist[0]["total"]


def test_radar_mlp_dropout_only_in_training():
    torch.manual_seed(0)
    m = build_model("student-radar-mlp", dropout=0.5)
    x = example_batch(m, 2)
    x["radar_points"].normal_()
    m.eval()
    a, b = m(x)["logits"], m(x)["logits"]
    assert torch.equal(a, b)  # eval: deterministic
    m.train()
    assert not torch.equal(m(x)["end"], m(x)["end"])  # training: units dropped
    with pytest.raises(ValueError, match="dropout"):
        build_model("student-radar-mlp", dropout=1.0)


def test_lidar_gru_normalises_each_bin() -> None:
    """lidar_feat bins sit at different levels; the GRU must see them standardised (BatchNorm1d per bin)."""
    import torch

    from beam_tracking_ros.models.registry import build_model

    m = build_model("student-lidar-gru", num_beams=16)
    x = torch.rand(32, 8, 64) * 0.05 + torch.linspace(0.2, 0.9, 64)  # offset levels, small variation
    m.train()
    m({"lidar_feat": x})
    assert torch.allclose(m.norm.running_mean, 0.1 * x.mean(dim=(0, 1)), atol=1e-4)  # momentum 0.1 from 0


def test_conv_encoder_grid_keeps_where_things_are():
    """A globally pooled encoder cannot tell a blob on the left from the same blob 16 cells to the right
    (a shift by a multiple of its total stride); the grid-pooled one (the teachers' default) can."""
    from beam_tracking_ros.models.encoders import ConvEncoder

    torch.manual_seed(0)
    left = torch.zeros(1, 1, 1, 32, 32)
    left[..., 12:16, 4:8] = 1.0
    right = torch.roll(left, 16, dims=-1)
    pooled = ConvEncoder(1, width=4, depth=2, out_dim=8, grid=0).eval()
    gridded = ConvEncoder(1, width=4, depth=2, out_dim=8, grid=4, coords=True).eval()
    with torch.no_grad():
        assert torch.allclose(pooled(left), pooled(right), atol=1e-6)
        assert not torch.allclose(gridded(left), gridded(right), atol=1e-3)


def test_teacher_image_frames_encodes_only_the_newest_frames():
    m = build_model("teacher", modalities=("lidar_bev", "radar_points", "gps"), num_beams=16, grid=2,
                    image_frames=2, d_model=32, cnn_width=4, layers=1)
    batch = example_batch(m, 2)
    out = m.eval()(batch)
    batch["lidar_bev"][:, :-2] = 5.0  # frames the image encoder does not read
    assert torch.allclose(out["logits"], m(batch)["logits"])
    with pytest.raises(ValueError, match="image_frames"):
        build_model("teacher", image_frames=0)
    with pytest.raises(ValueError, match="transformer"):
        build_model("teacher", fusion="gru-mha", image_frames=2)


def test_radar_student_reads_its_newest_frames():
    """``frames`` sizes CRKD's student: the first layer reads only the newest radar frames (the rest of the
    window changes nothing), which is what brings it under 10 % of the default teacher's parameters."""
    small = build_model("student-radar-mlp", num_beams=152, hidden=12, frames=1, beam_features=True)
    assert sum(p.numel() for p in small.parameters()) < 21_749  # 10 % of the default teacher (217,492)
    batch = {"radar_points": torch.randn(2, 8, 64, 6), "radar_beams": torch.randn(2, 8, 4, 152)}
    with torch.no_grad():
        out = small.eval()(batch)["logits"]
        batch["radar_points"][:, :-1] = 0.0
        assert torch.equal(out, small(batch)["logits"])
    with pytest.raises(ValueError, match="frames"):
        build_model("student-radar-mlp", frames=9)


def test_teacher_fuses_every_beam_space_feature_through_its_own_skip() -> None:
    """The first beam feature listed takes the primary skip (10), the others theirs (1): at the start the
    logits are 10 x LiDAR + 1 x radar + 1 x GNSS geometry, and each scale is learned per horizon step."""
    from beam_tracking_ros.models.beam_models import MultimodalTeacher

    C, H, P = 12, 2, 3
    mods = ("lidar_beams", "gps", "radar_beams", "gps_beams")
    t = MultimodalTeacher(mods, num_beams=C, horizon=H, window=P, d_model=16, heads=2, layers=1)
    assert t.skip_key == "lidar_beams" and t.extra_skip_keys == ("radar_beams", "gps_beams")
    batch = {m: torch.rand(2, P, H + 1, C) - 1.0 for m in ("lidar_beams", "radar_beams", "gps_beams")}
    batch["gps"] = torch.rand(2, P, 3)
    out = t(batch)["logits"]
    want = 10 * batch["lidar_beams"][:, -1] + batch["radar_beams"][:, -1] + batch["gps_beams"][:, -1]
    assert torch.allclose(out, want, atol=1e-5)  # the heads start at zero (residual)
    out.sum().backward()
    assert t.extra_skip.grad is not None and t.extra_skip.grad.shape == (2, H + 1)
    single = MultimodalTeacher(("gps_beams", "lidar_beams"), num_beams=C, horizon=H, window=P, d_model=16, heads=2,
                               layers=1)
    assert single.skip_key == "gps_beams"  # single-target teachers list the fix first: it is the target's

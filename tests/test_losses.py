import pytest
import torch
from conftest import random_batch

from fbifpn import MultiTaskLoss, build_model, load_config
from fbifpn.losses import (
    boundary_target,
    consistency_target,
    penalty_reduced_focal,
    per_sample_bce,
    resize_mask,
)
from fbifpn.models.net import ModelOutput
from fbifpn.sanity import overfit, toy_batch


def test_boundary_target_on_hand_made_masks():
    real = torch.zeros(1, 1, 8, 8)
    assert boundary_target(real).eq(0).all()
    half = torch.full((1, 1, 4, 4), 0.5)
    assert boundary_target(half).eq(1).all()
    hard = torch.zeros(1, 1, 8, 8)
    hard[..., 2:6, 2:6] = 1
    assert boundary_target(hard).eq(0).all()  # inside and outside a hard mask: no blending


def test_resized_hard_mask_gets_a_boundary_at_its_edge():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :3] = 1  # the edge falls inside the left 4-pixel cells, which are 3/4 manipulated
    b = boundary_target(resize_mask(mask, (2, 2)))
    torch.testing.assert_close(b, torch.tensor([[[[0.75, 0.0], [0.75, 0.0]]]]))


def test_consistency_target():
    real = torch.zeros(2, 1, 16, 16)
    assert consistency_target(real, grid=4).eq(1).all()
    fake = torch.zeros(1, 1, 16, 16)
    fake[..., :8] = 1  # the left half of the grid is manipulated
    t = consistency_target(fake, grid=4)
    assert t.shape == (1, 16, 16)
    left = torch.tensor([c < 2 for _ in range(4) for c in range(4)])
    same_side = left[:, None] == left[None, :]
    assert t[0][same_side].eq(1).all() and t[0][~same_side].eq(0).all()
    torch.testing.assert_close(t, t.transpose(1, 2))


def _output(batch_size: int, size: int = 16) -> ModelOutput:
    g = torch.Generator().manual_seed(1)
    return ModelOutput(
        logit=torch.randn(batch_size, generator=g, requires_grad=True),
        mask_logit=torch.randn(batch_size, 1, size // 4, size // 4, generator=g, requires_grad=True),
        attn_logits=[torch.randn(batch_size, 1, s, s, generator=g, requires_grad=True) for s in (2, 4, 2, 4)],
        attn_levels=[1, 0, 1, 0],
        embed=torch.randn(batch_size, 8, 2, 2, generator=g, requires_grad=True),
    )


def test_fake_without_mask_only_teaches_cls(smoke):
    loss_fn = MultiTaskLoss(smoke)
    batch = {
        "label": torch.tensor([1.0]),
        "mask": torch.zeros(1, 1, 16, 16),
        "has_mask": torch.tensor([False]),
    }
    out = _output(1)
    total, parts = loss_fn(out, batch)
    assert parts["mask"] == 0 and parts["cons"] == 0 and parts["attn"] == 0
    assert parts["cls"] > 0
    total.backward()
    assert not out.mask_logit.grad.any() and not out.embed.grad.any()
    assert all(not a.grad.any() for a in out.attn_logits)
    assert out.logit.grad.any()


def test_masked_terms_average_only_over_samples_with_masks(smoke):
    loss_fn = MultiTaskLoss(smoke)
    out = _output(3)
    mask = torch.rand(3, 1, 16, 16)
    full = {
        "label": torch.tensor([1.0, 1.0, 0.0]),
        "mask": mask,
        "has_mask": torch.tensor([True, False, True]),
    }
    _, parts = loss_fn(out, full)
    keep = [0, 2]
    sub_out = ModelOutput(
        logit=out.logit[keep],
        mask_logit=out.mask_logit[keep],
        attn_logits=[a[keep] for a in out.attn_logits],
        attn_levels=out.attn_levels,
        embed=out.embed[keep],
    )
    sub = {"label": full["label"][keep], "mask": mask[keep], "has_mask": torch.tensor([True, True])}
    _, sub_parts = loss_fn(sub_out, sub)
    for part in ("mask", "cons", "attn"):
        torch.testing.assert_close(parts[part], sub_parts[part])


def test_attention_loss_averages_layers_and_sums_levels(smoke):
    loss_fn = MultiTaskLoss(smoke)
    out = _output(2)
    mask = torch.rand(2, 1, 16, 16)
    per_map = [per_sample_bce(a, resize_mask(mask, a.shape[-2:])).mean() for a in out.attn_logits]
    expected = (per_map[0] + per_map[2]) / 2 + (per_map[1] + per_map[3]) / 2
    batch = {"label": torch.ones(2), "mask": mask, "has_mask": torch.tensor([True, True])}
    torch.testing.assert_close(loss_fn(out, batch)[1]["attn"], expected)


def test_label_smoothing_and_focal_cls():
    logit = torch.tensor([8.0, -8.0])
    label = torch.tensor([1.0, 0.0])
    batch = {"label": label, "mask": torch.zeros(2, 1, 8, 8), "has_mask": torch.tensor([True, True])}
    out = ModelOutput(logit=logit)
    plain = MultiTaskLoss(load_config("smoke"))(out, batch)[1]["cls"]
    smoothed = MultiTaskLoss(load_config("smoke", ["loss.label_smoothing=0.2"]))(out, batch)[1]["cls"]
    assert plain < 1e-3 and smoothed > 0.5  # a confident, correct logit is penalised towards 0.9 / 0.1
    uncertain = ModelOutput(logit=torch.tensor([0.5, -0.5]))
    bce = MultiTaskLoss(load_config("smoke"))(uncertain, batch)[1]["cls"]
    focal = MultiTaskLoss(load_config("smoke", ["loss.cls_loss=focal"]))(uncertain, batch)[1]["cls"]
    assert 0 < focal < bce  # focal down-weights what is already classified correctly


def test_penalty_reduced_focal():
    target = torch.zeros(1, 1, 4, 4)
    target[..., 1, 1] = 1
    target[..., 1, 2] = 0.5
    perfect = torch.where(target == 1, 20.0, -20.0)
    assert penalty_reduced_focal(perfect, target, 2.0, 4.0).item() < 1e-6
    wrong = -perfect
    assert penalty_reduced_focal(wrong, target, 2.0, 4.0).item() > 10
    # a pixel near a positive (target 0.5) costs less than a background pixel when predicted positive
    near, far = torch.full((1, 1, 4, 4), -20.0), torch.full((1, 1, 4, 4), -20.0)
    near[..., 1, 1] = far[..., 1, 1] = 20.0
    near[..., 1, 2] = 2.0
    far[..., 3, 3] = 2.0
    assert penalty_reduced_focal(near, target, 2.0, 4.0) < penalty_reduced_focal(far, target, 2.0, 4.0)


@pytest.mark.parametrize("mask_loss", ["bce", "focal"])
@pytest.mark.parametrize("mask_target", ["boundary", "mask"])
def test_mask_loss_options_are_finite_and_positive(mask_loss, mask_target):
    cfg = load_config("smoke", [f"loss.mask_loss={mask_loss}", f"loss.mask_target={mask_target}"])
    model = build_model(cfg)
    batch = random_batch(64)
    total, parts = MultiTaskLoss(cfg)(model(batch["image"]), batch)
    assert torch.isfinite(total) and parts["mask"] > 0


def test_toy_batch_is_deterministic_and_masks_only_fakes():
    a, b = toy_batch(64, seed=3), toy_batch(64, seed=3)
    torch.testing.assert_close(a["image"], b["image"])
    assert a["mask"][a["label"] == 0].eq(0).all()
    assert (a["mask"][a["label"] == 1].flatten(1).amax(1) == 1).all()


def test_overfit_one_batch_on_smoke():
    """Hard masks, label smoothing off: the loss must fall by at least 80 % within 50 CPU steps."""
    cfg = load_config("smoke", ["loss.mask_target=mask", "loss.label_smoothing=0"])
    losses = overfit(cfg, steps=50, progress=False)
    assert losses[-1] <= 0.2 * losses[0]

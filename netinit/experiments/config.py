"""The configuration of an experiment: a small frozen dataclass, loaded from TOML and validated once.

An experiment is a grid of *conditions* x *seeds*. A condition is an initialisation **method**,
optionally trained with a decorrelation **regulariser**; its label is ``method`` or
``method@regulariser``. A method is a base initialiser followed by modifiers applied on top of
that very draw, joined by ``+``::

    default                         PyTorch's own layer default (kaiming_uniform, a = sqrt(5))
    kaiming_normal+pa               the kaiming_normal draw, PA-rewired
    kaiming_normal+stabilize+pa     best of stabilize_k draws (the base draw among them), rewired
    default+decorrelated            the default draw, rows decorrelated (symmetric, Loewdin)

A TOML file has a few top-level keys and one table per section; every key is optional except
``grid.methods``::

    name = "pa_vs_baseline"
    [data]        name, path, test_size, split_seed, n_samples
    [model]       arch, hidden, channels, blocks, activation
    [train]       optimizer, lr, momentum, weight_decay, batch_size, epochs, lr_schedule
    [init]        stabilize_k, pa_passes, backprop_steps
    [regulariser] coef, schedule, schedule_epochs
    [stats]       every_epoch, samples, threshold
    [grid]        methods, regularisers, baseline, seeds, first_seed
    [analysis]    primary, primary_epochs, secondary, secondary_epochs, margin, alpha, effect_dz, power
    [[families]]  name, role ("primary" or "exploratory"), comparisons ("A vs B", ...), hypothesis

A regulariser may carry its own coefficient, ``"decov=0.01"`` (otherwise ``regulariser.coef``), so
one grid sweeps a coefficient over decades; the condition label is then ``method@decov=0.01``.

**Families.** Each ``[[families]]`` table pre-declares a set of comparisons ``"A vs B"`` (both
conditions of the grid) that answer one question; Holm's correction runs within a family only,
and the report names the family (and its role) of every test. A config without families gets
one exploratory family per table of comparisons (the report says so).

Unknown keys, names and values are refused with a :class:`ConfigError` that names them and
lists the valid options. :func:`config_hash` hashes everything that decides the outcome of one
(condition, seed) run, that is every section but ``[grid]``, ``[analysis]``, ``[[families]]``
and the descriptive top-level keys: adding seeds or conditions to a grid keeps its hash, so a
results folder grows in place. Keys added in later versions are left out of the hash while they
hold their default, so the folders of earlier configs keep their hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import tomllib

from netinit.errors import NetinitError

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "InitConfig",
    "RegulariserConfig",
    "StatsConfig",
    "GridConfig",
    "AnalysisConfig",
    "FamilyConfig",
    "parse_regulariser",
    "ExperimentConfig",
    "Condition",
    "Method",
    "parse_method",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "config_hash",
    "override",
    "for_notebook",
    "notebook_dir",
    "with_declarations",
    "describe",
    "INITIALISERS",
    "MODIFIERS",
    "REGULARISERS",
    "ARCHS",
    "CONFIG_DIR",
]

#: Base initialisers (``default`` is each layer's PyTorch default: kaiming_uniform, a = sqrt(5)).
INITIALISERS = ("default", "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal",
                "orthogonal")
#: Modifiers applied on top of the base draw, in the order written (``stabilize`` first).
MODIFIERS = ("stabilize", "decorrelated", "decorrelated_backprop", "decorrelated_greedy", "pa",
             "scale_default", "scale_gain1")
#: Modifiers that draw the weights again (they must come first).
REDRAWING = ("stabilize", "decorrelated_greedy")
#: Modifiers that rescale the whole matrix (they must come last): the root mean square row norm
#: becomes PyTorch's default's, ``sqrt(1/3)``, or 1 (orthogonal with gain 1).
SCALES = ("scale_default", "scale_gain1")
#: Decorrelation regularisers (``netinit.diversity.regularisers.PENALTIES``) and ``none``.
REGULARISERS = ("none", "decov", "activation_correlation", "weight_correlation", "orthogonality")
#: Architectures of :mod:`netinit.experiments.models`.
ARCHS = ("mlp", "cnn", "resnet")
ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid")
FAMILY_ROLES = ("primary", "exploratory")
#: Per-epoch outcomes a comparison can use (``train_acc_running``: the mean over the epoch's
#: mini-batches, as papers report epoch-1 accuracy).
OUTCOMES = ("test_acc", "train_acc", "train_acc_running", "test_loss", "train_loss", "train_loss_running")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "cosine", "step")
SCHEDULES = ("constant", "first_epochs", "linear", "cosine", "adaptive")
PA_PASSES = ("both", "rows", "cols")
#: The bundled configurations (``analysis/configs``).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "analysis" / "configs"
#: Environment variable that shrinks notebook grids to a smoke test (:func:`for_notebook`).
SMALL_ENV = "NETINIT_NOTEBOOK_SMALL"
#: Environment variable naming the folder where notebooks keep their results (default ``out/notebooks``).
OUT_ENV = "NETINIT_NOTEBOOK_OUT"


class ConfigError(NetinitError, ValueError):
    """An experiment configuration names an unknown key, option or value."""


def _choice(section: str, key: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{section}.{key} = {value!r} is not valid; choose one of {', '.join(options)}")


def _positive(section: str, key: str, value: float, *, allow_zero: bool = False) -> None:
    if not (value > 0 or (allow_zero and value == 0)):
        raise ConfigError(f"{section}.{key} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: which data set (``netinit.experiments.datasets``) and how it is split."""

    name: str = "digits"
    path: str | None = None       #: mnist / fashion_mnist: IDX folder or .npz; cifar10: cifar-10-batches-py or .npz
    test_size: float = 0.25       #: digits / synthetic
    split_seed: int = 0           #: the train/test split is the same for every run
    n_samples: int = 3000         #: synthetic only
    n_train: int = 0              #: > 0: a stratified subset of the training set of this size (drawn with split_seed)
    n_test: int = 0               #: > 0: a stratified subset of the test set of this size (drawn with split_seed)

    def __post_init__(self) -> None:
        from netinit.experiments.datasets import DATASETS

        _choice("data", "name", self.name.replace("-", "_"), DATASETS)
        if not 0.0 < self.test_size < 1.0:
            raise ConfigError(f"data.test_size must lie in (0, 1), got {self.test_size!r}")
        _positive("data", "split_seed", self.split_seed, allow_zero=True)
        _positive("data", "n_samples", self.n_samples)
        _positive("data", "n_train", self.n_train, allow_zero=True)
        _positive("data", "n_test", self.n_test, allow_zero=True)
        if self.name.replace("-", "_") == "mnist" and not self.path:
            raise ConfigError(f"data.name = {self.name!r} needs data.path (a folder of IDX files or an .npz)")
        if self.name == "cifar10" and not self.path:
            raise ConfigError("data.name = 'cifar10' needs data.path (the cifar-10-batches-py folder or an .npz)")


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: the architecture (:mod:`netinit.experiments.models`)."""

    arch: str = "mlp"
    hidden: tuple[int, ...] = (64,)          #: mlp: hidden widths (depth = their number)
    channels: tuple[int, ...] = (16, 32)     #: cnn / resnet: channels per stage
    blocks: int = 1                          #: resnet: residual blocks per stage
    activation: str = "relu"
    batchnorm: bool = False                  #: mlp / cnn: a batch norm after every hidden Linear/Conv

    def __post_init__(self) -> None:
        _choice("model", "arch", self.arch, ARCHS)
        _choice("model", "activation", self.activation, ACTIVATIONS)
        for key in ("hidden", "channels"):
            if not getattr(self, key) or min(getattr(self, key)) < 1:
                raise ConfigError(f"model.{key} must be a non-empty list of positive ints, got {getattr(self, key)!r}")
        _positive("model", "blocks", self.blocks)


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: optimiser and schedule."""

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 10
    lr_schedule: str = "constant"   #: constant, cosine (to 0 at the last epoch), step (x0.1 at 1/2, 3/4)

    def __post_init__(self) -> None:
        _choice("train", "optimizer", self.optimizer, OPTIMIZERS)
        _choice("train", "lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _positive("train", "lr", self.lr)
        _positive("train", "momentum", self.momentum, allow_zero=True)
        _positive("train", "weight_decay", self.weight_decay, allow_zero=True)
        _positive("train", "batch_size", self.batch_size)
        _positive("train", "epochs", self.epochs)


@dataclass(frozen=True)
class InitConfig:
    """``[init]``: options of the modifiers."""

    stabilize_k: int = 10       #: draws of ``stabilize`` (the base draw is one of them)
    pa_passes: str = "both"     #: ``pa``: rows, cols or both
    backprop_steps: int = 100   #: ``decorrelated_backprop``: gradient steps

    def __post_init__(self) -> None:
        _positive("init", "stabilize_k", self.stabilize_k)
        _choice("init", "pa_passes", self.pa_passes, PA_PASSES)
        _positive("init", "backprop_steps", self.backprop_steps, allow_zero=True)


@dataclass(frozen=True)
class RegulariserConfig:
    """``[regulariser]``: coefficient and schedule of the decorrelation penalties of the grid."""

    coef: float = 0.1
    schedule: str = "first_epochs"
    schedule_epochs: float = 3.0

    def __post_init__(self) -> None:
        _positive("regulariser", "coef", self.coef, allow_zero=True)
        _choice("regulariser", "schedule", self.schedule, SCHEDULES)
        _positive("regulariser", "schedule_epochs", self.schedule_epochs)


@dataclass(frozen=True)
class StatsConfig:
    """``[stats]``: the network statistics recorded (at init and at the end, or every epoch)."""

    every_epoch: bool = False   #: also after every epoch (diversity curves)
    samples: int = 512          #: training samples of the fixed batch for activation statistics
    threshold: float = 0.5      #: ``|r|`` above which a pair of neurons counts as redundant

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise ConfigError(f"stats.samples must be >= 2, got {self.samples!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"stats.threshold must lie in [0, 1], got {self.threshold!r}")


@dataclass(frozen=True)
class Method:
    """A parsed method: base initialiser and the modifiers applied on top of its draw."""

    base: str
    modifiers: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return "+".join((self.base, *self.modifiers))


def parse_method(spec: str) -> Method:
    """Parse ``"base+modifier+..."``; raise :class:`ConfigError` naming a bad part.

    Examples
    --------
    >>> parse_method("kaiming_normal+stabilize+pa")
    Method(base='kaiming_normal', modifiers=('stabilize', 'pa'))
    """
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"a method must be a non-empty string like 'kaiming_normal+pa', got {spec!r}")
    base, *mods = spec.split("+")
    if base not in INITIALISERS:
        hint = f" (modifiers go after a base: 'default+{base}')" if base in MODIFIERS else ""
        raise ConfigError(f"method {spec!r}: unknown initialiser {base!r}{hint}; "
                          f"initialisers: {', '.join(INITIALISERS)}")
    for m in mods:
        if m not in MODIFIERS:
            raise ConfigError(f"method {spec!r}: unknown modifier {m!r}; modifiers: {', '.join(MODIFIERS)}")
    if len(set(mods)) != len(mods):
        raise ConfigError(f"method {spec!r}: a modifier appears twice")
    redraw = [m for m in mods if m in REDRAWING]
    if len(redraw) > 1:
        raise ConfigError(f"method {spec!r}: choose one of {', '.join(REDRAWING)} (each re-draws the weights)")
    if redraw and mods[0] != redraw[0]:
        raise ConfigError(f"method {spec!r}: {redraw[0]!r} re-draws the weights, so it must come first")
    if len({"decorrelated", "decorrelated_backprop", "decorrelated_greedy"} & set(mods)) > 1:
        raise ConfigError(f"method {spec!r}: choose one of 'decorrelated', 'decorrelated_backprop' "
                          "and 'decorrelated_greedy'")
    scales = [m for m in mods if m in SCALES]
    if len(scales) > 1:
        raise ConfigError(f"method {spec!r}: choose one of {', '.join(SCALES)}")
    if scales and mods[-1] != scales[0]:
        raise ConfigError(f"method {spec!r}: {scales[0]!r} sets the final scale, so it must come last")
    return Method(base, tuple(mods))


def parse_regulariser(spec: str) -> tuple[str, float | None]:
    """``"decov"`` -> ``("decov", None)``; ``"decov=0.01"`` -> ``("decov", 0.01)`` (its own coefficient).

    Examples
    --------
    >>> parse_regulariser("weight_correlation=1e-2")
    ('weight_correlation', 0.01)
    """
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"a regulariser must be a non-empty string like 'decov' or 'decov=0.01', got {spec!r}")
    name, sep, coef = spec.partition("=")
    _choice("grid", "regularisers", name, REGULARISERS)
    if not sep:
        return name, None
    if name == "none":
        raise ConfigError(f"grid.regularisers: {spec!r}: 'none' takes no coefficient")
    try:
        value = float(coef)
    except ValueError:
        raise ConfigError(f"grid.regularisers: {spec!r}: the coefficient {coef!r} is not a number") from None
    if not value >= 0:
        raise ConfigError(f"grid.regularisers: {spec!r}: the coefficient must be >= 0")
    return name, value


@dataclass(frozen=True)
class Condition:
    """One cell of the grid: a method trained with a regulariser (``"none"``: without)."""

    method: Method
    regulariser: str = "none"

    @property
    def label(self) -> str:
        return self.method.label if self.regulariser == "none" else f"{self.method.label}@{self.regulariser}"

    @property
    def penalty(self) -> str:
        """The regulariser's name without its coefficient."""
        return parse_regulariser(self.regulariser)[0]

    def coef(self, default: float) -> float:
        """The regulariser's own coefficient, else ``default`` (``regulariser.coef``)."""
        c = parse_regulariser(self.regulariser)[1]
        return default if c is None else c


@dataclass(frozen=True)
class GridConfig:
    """``[grid]``: conditions (methods x regularisers), the baseline, and the seeds."""

    methods: tuple[str, ...] = ("default", "default+pa")
    regularisers: tuple[str, ...] = ("none",)
    baseline: str | None = None   #: a condition label; default: the first condition
    seeds: int = 10
    first_seed: int = 0

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("grid.methods is empty; list at least one method, e.g. ['default', 'default+pa']")
        for m in self.methods:
            parse_method(m)
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"grid.methods lists a method twice: {list(self.methods)}")
        if not self.regularisers:
            raise ConfigError("grid.regularisers is empty; use ['none'] for no regulariser")
        for r in self.regularisers:
            parse_regulariser(r)
        _positive("grid", "seeds", self.seeds)
        _positive("grid", "first_seed", self.first_seed, allow_zero=True)
        labels = [c.label for c in self.conditions()]
        if self.baseline is not None and self.baseline not in labels:
            raise ConfigError(f"grid.baseline = {self.baseline!r} is not a condition of the grid; "
                              f"conditions: {', '.join(labels)}")

    def conditions(self) -> list[Condition]:
        """Every (method, regulariser) cell, methods first."""
        return [Condition(parse_method(m), r) for m in self.methods for r in self.regularisers]

    @property
    def baseline_label(self) -> str:
        return self.baseline if self.baseline is not None else self.conditions()[0].label

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))


@dataclass(frozen=True)
class AnalysisConfig:
    """``[analysis]``: the declared outcomes, equivalence margin and power analysis (not hashed).

    An outcome is a per-epoch measure (:data:`OUTCOMES`) averaged over the epochs
    ``[first, last]`` of its window (``0`` is the last epoch). ``margin`` is the TOST equivalence
    margin in the outcome's units (accuracy 0.01 = 1 point): a comparison whose 90% CI lies
    inside ``(-margin, margin)`` excludes effects of that size; 0 skips TOST.
    """

    primary: str = ""                        #: "" = none declared (the report then tests final and early)
    primary_epochs: tuple[int, ...] = (1, 1)
    secondary: str = ""
    secondary_epochs: tuple[int, ...] = (0, 0)
    margin: float = 0.0
    alpha: float = 0.05
    effect_dz: float = 0.0                   #: declared standardised paired effect of the power analysis
    power: float = 0.8

    def __post_init__(self) -> None:
        for key in ("primary", "secondary"):
            if getattr(self, key):
                _choice("analysis", key, getattr(self, key), OUTCOMES)
            w = getattr(self, f"{key}_epochs")
            if len(w) != 2 or min(w) < 0 or (w[1] != 0 and w[0] > w[1]) or (w[0] == 0 and w[1] != 0):
                raise ConfigError(f"analysis.{key}_epochs must be [first, last] with 1 <= first <= last "
                                  f"(0 = the last epoch), got {list(w)!r}")
        _positive("analysis", "margin", self.margin, allow_zero=True)
        _positive("analysis", "effect_dz", self.effect_dz, allow_zero=True)
        for key in ("alpha", "power"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ConfigError(f"analysis.{key} must lie in (0, 1), got {getattr(self, key)!r}")


@dataclass(frozen=True)
class FamilyConfig:
    """``[[families]]``: comparisons ``"A vs B"`` answering one question; Holm runs within it."""

    name: str
    role: str = "exploratory"
    comparisons: tuple[str, ...] = ()
    hypothesis: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a family needs a name")
        _choice(f"families.{self.name}", "role", self.role, FAMILY_ROLES)
        if not self.comparisons:
            raise ConfigError(f"family {self.name!r} lists no comparisons (\"A vs B\")")
        for c in self.comparisons:
            self.pair(c)

    @staticmethod
    def pair(text: str) -> tuple[str, str]:
        """``"A vs B"`` -> ``("A", "B")``."""
        parts = [p.strip() for p in text.split(" vs ")] if isinstance(text, str) else []
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"a family comparison must read 'A vs B', got {text!r}")
        return parts[0], parts[1]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [self.pair(c) for c in self.comparisons]


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment; see the module docstring for the TOML layout."""

    name: str = "experiment"
    description: str = ""
    checkpoints: bool = False   #: also save each run's initial and final weights (safetensors)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init: InitConfig = field(default_factory=InitConfig)
    regulariser: RegulariserConfig = field(default_factory=RegulariserConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    families: tuple[FamilyConfig, ...] = ()

    def __post_init__(self) -> None:
        labels = {c.label for c in self.grid.conditions()}
        names = [f.name for f in self.families]
        if len(set(names)) != len(names):
            raise ConfigError(f"families: a name appears twice: {names}")
        for f in self.families:
            for a, b in f.pairs:
                bad = [x for x in (a, b) if x not in labels]
                if bad:
                    raise ConfigError(f"family {f.name!r}: {bad[0]!r} is not a condition of the grid; "
                                      f"conditions: {', '.join(sorted(labels))}")


_SECTIONS = {f.name: f for f in dataclasses.fields(ExperimentConfig) if dataclasses.is_dataclass(f.default_factory)}
#: Top-level keys left out of the hash (they do not change what a run computes).
_UNHASHED = ("name", "description", "checkpoints", "grid", "analysis", "families")
#: Keys added after results were published: left out of the hash while they hold these defaults.
_HASH_DEFAULTS = {("data", "n_train"): 0, ("data", "n_test"): 0, ("model", "batchnorm"): False}


def _convert(where: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the annotation ``hint`` (int, float, str, bool, optional, tuple)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        return _convert(where, value, next(a for a in args if a is not type(None)))
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(_convert(f"{where}[{i}]", v, args[0]) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {hint!r} for {where}")  # pragma: no cover


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{where}] must be a table of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)
             if (f.name not in _SECTIONS and f.name != "families") or cls is not ExperimentConfig]
    unknown = [k for k in data if k not in names]
    if unknown:
        scope = "at the top level" if where == "" else f"in [{where}]"
        valid = names + ([f"[{s}]" for s in _SECTIONS] if cls is ExperimentConfig else [])
        raise ConfigError(f"unknown key {unknown[0]!r} {scope}; valid keys: {', '.join(valid)}")
    kwargs = {k: _convert(f"{where + '.' if where else ''}{k}", v, hints[k]) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(d: Mapping[str, Any]) -> ExperimentConfig:
    """Build and validate a config from nested dicts (the parsed TOML).

    Raises
    ------
    ConfigError
        An unknown section, key, initialiser, modifier, regulariser, data set or value.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"a config must be a table of keys, got {type(d).__name__}")
    top = {k: v for k, v in d.items() if k not in _SECTIONS and k != "families"}
    sections = {k: _build(_SECTIONS[k].default_factory, v, k) for k, v in d.items() if k in _SECTIONS}
    fams = d.get("families", [])
    if isinstance(fams, Mapping):  # [stats] families = {name = {...}} style: a table of tables
        fams = [{"name": k, **v} if isinstance(v, Mapping) else v for k, v in fams.items()]
    if not isinstance(fams, (list, tuple)):
        raise ConfigError(f"families must be an array of tables ([[families]]), got {fams!r}")
    families = tuple(_build(FamilyConfig, f, "families") for f in fams)
    cfg = _build(ExperimentConfig, top, "")
    return dataclasses.replace(cfg, **sections, families=families)


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read a TOML file into an :class:`ExperimentConfig` (validated).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ConfigError
        Not valid TOML, or a bad key or value (the message names the file and the key).
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    try:
        return config_from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """Nested plain dict (lists for tuples) that :func:`config_from_dict` reads back."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return [plain(x) for x in v] if isinstance(v, (tuple, list)) else v
    return {k: ({kk: plain(vv) for kk, vv in v.items()} if isinstance(v, dict) else plain(v))
            for k, v in dataclasses.asdict(cfg).items()}


def config_hash(cfg: ExperimentConfig) -> str:
    """A stable 16-hex-digit hash of what decides a run's outcome (every section but ``[grid]``).

    Examples
    --------
    >>> config_hash(ExperimentConfig()) == config_hash(override(ExperimentConfig(), {"grid.seeds": 3}))
    True
    """
    canonical = config_to_dict(config_from_dict(config_to_dict(cfg)))  # 3 and 3.0 hash alike
    d = {k: v for k, v in canonical.items() if k not in _UNHASHED}
    for (section, key), default in _HASH_DEFAULTS.items():
        if d[section].get(key) == default:
            del d[section][key]
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def override(cfg: ExperimentConfig, changes: Mapping[str, Any]) -> ExperimentConfig:
    """A copy of ``cfg`` with dotted keys replaced, e.g. ``{"grid.seeds": 2, "train.epochs": 3}``.

    Values given as strings are read as TOML values (``"[32, 32]"`` is a list, ``"adam"`` a
    string), so command-line ``--set key=value`` pairs can be passed as they are. A change of the
    grid keeps, of the declared families, the comparisons whose conditions remain (a family left
    with none is dropped).

    Raises
    ------
    ConfigError
        An unknown key or a bad value, as :func:`config_from_dict`.
    """
    d = config_to_dict(cfg)
    grid_changed = any(k.startswith("grid.") for k in changes)
    for key, value in changes.items():
        value = _parse_value(value) if isinstance(value, str) else value
        parts = key.split(".")
        if len(parts) == 1:
            d[parts[0]] = value
        elif len(parts) == 2 and parts[0] in _SECTIONS and parts[0] != "families":
            d[parts[0]][parts[1]] = value
        else:
            raise ConfigError(f"cannot set {key!r}: use a top-level key or section.key with a section "
                              f"among {', '.join(_SECTIONS)}")
    if grid_changed and "families" not in changes:  # a smaller grid keeps the comparisons it still has
        keep = {c.label for c in config_from_dict({"grid": d["grid"]}).grid.conditions()}
        fams = [{**f, "comparisons": [c for c in f["comparisons"] if set(FamilyConfig.pair(c)) <= keep]}
                for f in d["families"]]
        d["families"] = [f for f in fams if f["comparisons"]]
    return config_from_dict(d)


def for_notebook(cfg: ExperimentConfig, *, small: bool | None = None) -> ExperimentConfig:
    """The config a notebook runs: as given, or tiny (2 seeds, 2 epochs) when ``small``.

    ``small`` defaults to the environment variable ``NETINIT_NOTEBOOK_SMALL`` being set to a
    non-empty value other than ``0`` (CI sets it to execute the notebooks quickly).
    """
    if small is None:
        small = _small()
    if not small:
        return cfg
    methods = list(cfg.grid.methods[:3])
    regs = list(cfg.grid.regularisers[:2])
    base = cfg.grid.baseline_label
    keep = {c.label for c in GridConfig(tuple(methods), tuple(regs)).conditions()}
    return override(cfg, {"grid.seeds": 2, "train.epochs": min(cfg.train.epochs, 2),
                          "grid.methods": methods, "grid.regularisers": regs,
                          "grid.baseline": base if base in keep else None})


def with_declarations(stored: ExperimentConfig, declared: ExperimentConfig) -> ExperimentConfig:
    """``stored`` (the config a results folder was run with) with the ``[analysis]`` and the
    ``[[families]]`` of ``declared`` (a config file that declares them later), whose comparisons
    must be conditions of ``stored``'s grid; the two must describe the same runs (same hash).

    Raises
    ------
    ConfigError
        The hashes differ, or a family names a condition the stored grid lacks.
    """
    if config_hash(stored) != config_hash(declared):
        raise ConfigError(f"the declarations of {declared.name!r} (hash {config_hash(declared)}) are for other runs "
                          f"than {stored.name!r} (hash {config_hash(stored)})")
    return dataclasses.replace(stored, analysis=declared.analysis, families=declared.families)


def _small() -> bool:
    return os.environ.get(SMALL_ENV, "") not in ("", "0")


def notebook_dir(name: str) -> Path:
    """The results folder of notebook experiment ``name``: ``$NETINIT_NOTEBOOK_OUT/name`` (``-small``
    appended in the small mode), by default under ``out/notebooks`` of the repository."""
    root = Path(os.environ.get(OUT_ENV, "") or Path(__file__).resolve().parents[2] / "out" / "notebooks")
    return root / (name + ("-small" if _small() else ""))


def describe(cfg: ExperimentConfig) -> str:
    """A few lines saying what an experiment runs (for notebooks and logs)."""
    conds = cfg.grid.conditions()
    m, t = cfg.model, cfg.train
    arch = f"MLP {m.hidden}" if m.arch == "mlp" else f"{m.arch.upper()} {m.channels}"
    return (f"{cfg.name} (config hash {config_hash(cfg)}): {cfg.description}\n"
            f"data {cfg.data.name}; {arch}, {m.activation}; {t.optimizer} lr {t.lr} momentum {t.momentum}, "
            f"batch {t.batch_size}, {t.epochs} epochs\n"
            f"{len(conds)} conditions x {cfg.grid.seeds} seeds = {len(conds) * cfg.grid.seeds} runs; "
            f"baseline {cfg.grid.baseline_label}; conditions: {', '.join(c.label for c in conds)}"
            + "".join(f"\nfamily {f.name} ({f.role}, Holm within it): {'; '.join(f.comparisons)}" for f in cfg.families)
            + (f"\nprimary outcome {cfg.analysis.primary} epochs {list(cfg.analysis.primary_epochs)}; secondary "
               f"{cfg.analysis.secondary or '-'}; TOST margin {cfg.analysis.margin}" if cfg.analysis.primary else ""))

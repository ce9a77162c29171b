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

Unknown keys, names and values are refused with a :class:`ConfigError` that names them and
lists the valid options. :func:`config_hash` hashes everything that decides the outcome of one
(condition, seed) run, that is every section but ``[grid]`` and the descriptive top-level keys:
adding seeds or conditions to a grid keeps its hash, so a results folder grows in place.
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
MODIFIERS = ("stabilize", "decorrelated", "decorrelated_backprop", "pa")
#: Decorrelation regularisers (``netinit.diversity.regularisers.PENALTIES``) and ``none``.
REGULARISERS = ("none", "decov", "activation_correlation", "weight_correlation", "orthogonality")
#: Architectures of :mod:`netinit.experiments.models`.
ARCHS = ("mlp", "cnn", "resnet")
ACTIVATIONS = ("relu", "tanh", "gelu")
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

    def __post_init__(self) -> None:
        from netinit.experiments.datasets import DATASETS

        _choice("data", "name", self.name.replace("-", "_"), DATASETS)
        if not 0.0 < self.test_size < 1.0:
            raise ConfigError(f"data.test_size must lie in (0, 1), got {self.test_size!r}")
        _positive("data", "split_seed", self.split_seed, allow_zero=True)
        _positive("data", "n_samples", self.n_samples)
        if self.name.replace("-", "_") in ("mnist", "fashion_mnist") and not self.path:
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
    if "stabilize" in mods and mods[0] != "stabilize":
        raise ConfigError(f"method {spec!r}: 'stabilize' re-draws the weights, so it must come first")
    if {"decorrelated", "decorrelated_backprop"} <= set(mods):
        raise ConfigError(f"method {spec!r}: choose one of 'decorrelated' and 'decorrelated_backprop'")
    return Method(base, tuple(mods))


@dataclass(frozen=True)
class Condition:
    """One cell of the grid: a method trained with a regulariser (``"none"``: without)."""

    method: Method
    regulariser: str = "none"

    @property
    def label(self) -> str:
        return self.method.label if self.regulariser == "none" else f"{self.method.label}@{self.regulariser}"


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
            _choice("grid", "regularisers", r, REGULARISERS)
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


_SECTIONS = {f.name: f for f in dataclasses.fields(ExperimentConfig) if dataclasses.is_dataclass(f.default_factory)}
#: Top-level keys left out of the hash (they do not change what a run computes).
_UNHASHED = ("name", "description", "checkpoints", "grid")


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
    names = [f.name for f in dataclasses.fields(cls) if f.name not in _SECTIONS or cls is not ExperimentConfig]
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
    top = {k: v for k, v in d.items() if k not in _SECTIONS}
    sections = {k: _build(_SECTIONS[k].default_factory, v, k) for k, v in d.items() if k in _SECTIONS}
    cfg = _build(ExperimentConfig, top, "")
    return dataclasses.replace(cfg, **sections)


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
    string), so command-line ``--set key=value`` pairs can be passed as they are.

    Raises
    ------
    ConfigError
        An unknown key or a bad value, as :func:`config_from_dict`.
    """
    d = config_to_dict(cfg)
    for key, value in changes.items():
        value = _parse_value(value) if isinstance(value, str) else value
        parts = key.split(".")
        if len(parts) == 1:
            d[parts[0]] = value
        elif len(parts) == 2 and parts[0] in _SECTIONS:
            d[parts[0]][parts[1]] = value
        else:
            raise ConfigError(f"cannot set {key!r}: use a top-level key or section.key with a section "
                              f"among {', '.join(_SECTIONS)}")
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
            f"baseline {cfg.grid.baseline_label}; conditions: {', '.join(c.label for c in conds)}")

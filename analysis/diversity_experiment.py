"""Does a decorrelated initialisation (or decorrelation during training) speed up early learning?

The experiment of ``shared/specs/diversity.md`` section 4, after Kovalenko, Kordik, Friedjungova
(arXiv:2109.09612), who report about a 40% relative increase of test accuracy in the first 5
epochs from a decorrelated initialisation. A small MLP (ReLU hidden layers) is trained with SGD or
Adam from each initialisation ``method``, with and without each decorrelation ``regulariser``;
test accuracy and the diversity of the hidden layers are recorded after every epoch.

Paired design: for a seed, every condition uses the same per-layer generators (derived from the
seed and the layer name), hence the same base draw, biases and order of mini-batches;
``decorrelated`` decorrelates that very draw (symmetric, row means and norms kept), ``orthogonal``
is ``torch.nn.init.orthogonal_`` (gain 1) and ``pa_rewire`` applies ``netinit.rewire.pa_rewire_``
to it. The baseline is PyTorch's Linear default (``kaiming_uniform_`` with ``a = sqrt(5)``) with no
regulariser. Relative increase ``(acc - acc_base) / acc_base`` per seed and epoch, summarised by
the mean over seeds with a bootstrap CI and a paired two-sided Wilcoxon signed-rank test (Holm over
the conditions), by :mod:`analysis.stats`; the row ``epochs = "1-E"`` does the same on each seed's
mean accuracy over epochs 1..E.

Command line::

    python -m analysis.diversity_experiment --dataset digits --seeds 30 --epochs 5 -o data/results/
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from netinit.datasets import DATASETS, load_dataset
from netinit._io import atomic_path
from netinit._rng import layer_seed_sequence

__all__ = ["ExperimentConfig", "METHODS", "REGULARISERS", "run_experiment", "summarise", "main"]

METHODS = ("baseline", "decorrelated", "orthogonal", "pa_rewire")
REGULARISERS = ("none", "decov", "activation_correlation", "weight_correlation", "orthogonality")


@dataclass
class ExperimentConfig:
    """Settings of one experiment (one data set, every method x regulariser, ``seeds`` seeds)."""

    dataset: str = "digits"
    seeds: int = 30
    epochs: int = 5
    hidden: tuple[int, ...] = (32,)
    optimizer: str = "sgd"
    lr: float = 0.01
    batch_size: int = 64
    methods: tuple[str, ...] = METHODS
    regularisers: tuple[str, ...] = REGULARISERS
    schedule: str = "first_epochs"
    schedule_epochs: float = 3
    coef: float = 0.1
    data_path: str | None = None
    first_seed: int = 0
    diversity_samples: int = 512

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        self.methods = tuple(self.methods)
        self.regularisers = tuple(self.regularisers)
        bad = [m for m in self.methods if m not in METHODS] + [r for r in self.regularisers if r not in REGULARISERS]
        if bad:
            raise ValueError(f"unknown methods/regularisers {bad}; methods: {METHODS}, regularisers: {REGULARISERS}")
        if "baseline" not in self.methods or "none" not in self.regularisers:
            raise ValueError("the comparison needs method 'baseline' and regulariser 'none'")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not self.hidden or min(self.hidden) < 1 or self.seeds < 1 or self.epochs < 1:
            raise ValueError("hidden sizes, seeds and epochs must be positive")


def _seed_int(seed: int, name: str) -> int:
    return int(layer_seed_sequence(seed, name).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def build_model(n_in: int, hidden: Sequence[int], n_out: int):
    """``Linear -> ReLU -> ... -> Linear``; the Linear layers are named "0", "2", ..."""
    import torch.nn as nn

    layers: list[Any] = []
    sizes = [n_in, *hidden]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], n_out))
    return nn.Sequential(*layers)


def pa_rewire_available() -> bool:
    """Whether ``netinit.rewire.pa_rewire_`` can be imported (the ``pa_rewire`` method needs it)."""
    try:
        from netinit.rewire import pa_rewire_  # noqa: F401
    except ImportError:
        return False
    return True


def init_model(model: Any, method: str, seed: int) -> None:
    """Initialise every Linear layer of ``model`` by ``method``, paired across methods by ``seed``."""
    import torch
    from torch.nn import init

    from netinit.diversity import decorrelated_

    a = math.sqrt(5.0)  # torch.nn.Linear's default
    for name, m in model.named_modules():
        if not isinstance(m, torch.nn.Linear):
            continue
        g = torch.Generator().manual_seed(_seed_int(seed, name + ".weight"))
        with torch.no_grad():
            if method == "decorrelated":
                decorrelated_(m.weight, "kaiming_uniform", generator=g, base_kwargs={"a": a})
            elif method == "orthogonal":
                init.orthogonal_(m.weight, generator=g)
            else:
                init.kaiming_uniform_(m.weight, a=a, generator=g)
                if method == "pa_rewire":
                    if not pa_rewire_available():
                        raise NotImplementedError(
                            "method 'pa_rewire' needs netinit.rewire.pa_rewire_, which is not in this "
                            "checkout yet; leave the method out (--methods ...)"
                        )
                    from netinit.rewire import pa_rewire_

                    pa_rewire_(m.weight, generator=torch.Generator().manual_seed(_seed_int(seed, name + ".pa")))
            bound = 1.0 / math.sqrt(m.weight.shape[1])
            gb = torch.Generator().manual_seed(_seed_int(seed, name + ".bias"))
            init.uniform_(m.bias, -bound, bound, generator=gb)


def _accuracy(model: Any, X: Any, y: Any) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        acc = float((model(X).argmax(1) == y).double().mean())
    model.train()
    return acc


def train_one(cfg: ExperimentConfig, data: Any, seed: int, method: str, regulariser: str) -> pd.DataFrame:
    """Train one model; the tidy rows (epoch, step, layer, measure, value) of its history."""
    import torch
    import torch.nn.functional as F

    from netinit.diversity import Decorrelation, DiversityTracker

    Xtr, ytr, Xte, yte = data
    model = build_model(Xtr.shape[1], cfg.hidden, int(ytr.max()) + 1)
    init_model(model, method, seed)
    opt = (torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.Adam)(model.parameters(), lr=cfg.lr)
    reg = None
    if regulariser != "none":
        reg = Decorrelation(model, kind=regulariser, schedule=cfg.schedule, epochs=cfg.schedule_epochs,
                            coef=cfg.coef, activation="relu")
    hidden = [str(2 * i) for i in range(len(cfg.hidden))]
    tracker = DiversityTracker(model, Xtr[: cfg.diversity_samples], "epoch", layers=hidden, activation="relu")
    tracker.record(test_acc=_accuracy(model, Xte, yte))
    order = torch.Generator().manual_seed(_seed_int(seed, "batch-order"))
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(Xtr), generator=order)
        total, n = 0.0, 0
        for start in range(0, len(Xtr), cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            loss = F.cross_entropy(model(Xtr[idx]), ytr[idx])
            total, n = total + float(loss.detach()) * len(idx), n + len(idx)
            if reg is not None:
                loss = loss + reg()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tracker.after_step()
        if reg is not None:
            reg.step_epoch()
        tracker.after_epoch(test_acc=_accuracy(model, Xte, yte), train_loss=total / n)
    if reg is not None:
        reg.remove()
    return tracker.frame


def run_experiment(cfg: ExperimentConfig, *, progress: bool = False) -> pd.DataFrame:
    """Every (seed, method, regulariser) of ``cfg``; one tidy table of all histories."""
    if "pa_rewire" in cfg.methods and not pa_rewire_available():
        raise NotImplementedError(
            "method 'pa_rewire' needs netinit.rewire.pa_rewire_, which is not in this checkout yet; "
            f"run with --methods {' '.join(m for m in cfg.methods if m != 'pa_rewire')}"
        )
    data = load_dataset(cfg.dataset, path=cfg.data_path, seed=cfg.first_seed)
    frames = []
    for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
        for method in cfg.methods:
            for regulariser in cfg.regularisers:
                f = train_one(cfg, data, seed, method, regulariser)
                f.insert(0, "regulariser", regulariser)
                f.insert(0, "method", method)
                f.insert(0, "seed", seed)
                frames.append(f)
        if progress:
            print(f"seed {seed} done", file=sys.stderr, flush=True)
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "dataset", cfg.dataset)
    for k in ("schedule", "schedule_epochs", "coef", "optimizer", "lr", "batch_size"):
        out[k] = getattr(cfg, k)
    out["hidden"] = "-".join(map(str, cfg.hidden))
    return out


_BASE = "baseline+none"


def summarise(runs: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Relative increase of test accuracy over (baseline, none), per condition and epoch >= 1.

    Per epoch: :func:`analysis.stats.relative_improvement` (mean over seeds of
    ``(acc - acc_base) / acc_base``, bootstrap CI, paired Wilcoxon, Holm over the conditions of
    the epoch). Row ``epochs = "1-E"``: the same on each seed's mean accuracy over epochs 1..E,
    with the mean accuracies, Cohen's ``d_z`` and wins/ties/losses of
    :func:`analysis.stats.paired_comparison`.
    """
    from analysis.stats import paired_comparison, relative_improvement

    acc = runs[(runs["measure"] == "test_acc") & (runs["epoch"] >= 1)].copy()
    acc["condition"] = acc["method"] + "+" + acc["regulariser"]
    acc = acc.rename(columns={"value": "test_acc"})[["seed", "condition", "epoch", "test_acc"]]
    last = int(acc["epoch"].max())
    kw = dict(baseline=_BASE, method_col="condition", n_boot=n_boot, rng=seed)
    per_epoch = relative_improvement(acc, value="test_acc", **kw)
    pooled_acc = acc.groupby(["seed", "condition"], as_index=False)["test_acc"].mean()
    pooled_acc["epoch"] = f"1-{last}"
    pooled = relative_improvement(pooled_acc, value="test_acc", **kw)
    comp = paired_comparison(pooled_acc, value="test_acc", **kw).rename(columns={"method": "condition"})
    pooled = pooled.merge(comp[["condition", "mean_base", "mean_method", "dz", "wins", "ties", "losses"]],
                          left_on="method", right_on="condition").drop(columns="condition")
    means = acc.groupby(["condition", "epoch"])["test_acc"].mean()
    per_epoch["mean_method"] = [means[(m, e)] for m, e in zip(per_epoch["method"], per_epoch["epoch"])]
    per_epoch["mean_base"] = [means[(_BASE, e)] for e in per_epoch["epoch"]]
    out = pd.concat([per_epoch, pooled], ignore_index=True)
    out["epoch"] = out["epoch"].astype(str)
    parts = out.pop("method").str.split("+", n=1, expand=True)
    out.insert(0, "regulariser", parts[1])
    out.insert(0, "method", parts[0])
    return out.rename(columns={"epoch": "epochs", "n": "n_seeds"})


def _markdown(cfg: ExperimentConfig, runs: pd.DataFrame, summary: pd.DataFrame, command: str,
              seconds: float) -> str:
    import torch

    pooled = summary[summary["epochs"].str.contains("-")].sort_values("rel_improvement", ascending=False)
    acc = runs[runs["measure"] == "test_acc"].groupby(["method", "regulariser", "epoch"])["value"].mean()
    div = runs[(runs["measure"] == "act_mean_abs_r") & (runs["layer"] == "0")]
    div = div.groupby(["method", "regulariser", "epoch"])["value"].mean()
    epochs = list(range(cfg.epochs + 1))
    lines = [
        f"# Diversity experiment: {cfg.dataset}",
        "",
        f"Command: `{command}`",
        "",
        f"Config: `{asdict(cfg)}`",
        "",
        f"Training and measurement took {seconds:.0f} s on {platform.machine()} with torch {torch.__version__} "
        f"({torch.get_num_threads()} thread(s)), {cfg.seeds} seeds, paired design "
        "(per seed, the same per-layer generators, hence base draw, biases and batch order, across conditions).",
        "",
        f"## Relative increase of test accuracy over baseline (kaiming_uniform, no regulariser), "
        f"mean over epochs 1-{cfg.epochs}",
        "",
        "Per seed, the mean test accuracy over the epochs; relative increase = mean over seeds of "
        "(acc - acc_base) / acc_base with a 95% BCa bootstrap CI; paired two-sided Wilcoxon "
        "signed-rank test over seeds (Holm-adjusted over the conditions); d_z = Cohen's paired effect "
        "size; wins/ties/losses count the seeds (analysis.stats).",
        "",
        "| method | regulariser | rel. increase | 95% CI | acc | baseline acc | d_z | wins/ties/losses | p | p (Holm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in pooled.itertuples(index=False):
        lines.append(
            f"| {r.method} | {r.regulariser} | {100 * r.rel_improvement:+.1f}% | "
            f"[{100 * r.ci_low:+.1f}%, {100 * r.ci_high:+.1f}%] | {r.mean_method:.3f} | "
            f"{r.mean_base:.3f} | {r.dz:+.2f} | {int(r.wins)}/{int(r.ties)}/{int(r.losses)} | "
            f"{r.p_wilcoxon:.2g} | {r.p_wilcoxon_holm:.2g} |")
    per = summary[~summary["epochs"].str.contains("-")]
    lines += ["", "## Relative increase per epoch (Wilcoxon p, Holm-adjusted over the conditions of the epoch)", "",
              "| method | regulariser | " + " | ".join(map(str, epochs[1:])) + " |",
              "|---|---|" + "---|" * (len(epochs) - 1)]
    for (m, rg), part in per.groupby(["method", "regulariser"], sort=False):
        cells = {r.epochs: f"{100 * r.rel_improvement:+.1f}% (p={r.p_wilcoxon_holm:.2g})" for r in part.itertuples()}
        lines.append(f"| {m} | {rg} | " + " | ".join(cells.get(str(e), "") for e in epochs[1:]) + " |")
    lines += ["", "## Mean test accuracy per epoch (epoch 0 = at initialisation)", "",
              "| method | regulariser | " + " | ".join(map(str, epochs)) + " |",
              "|---|---|" + "---|" * len(epochs)]
    for (m, rg), s in acc.groupby(level=[0, 1]):
        lines.append(f"| {m} | {rg} | " + " | ".join(f"{s.loc[(m, rg, e)]:.3f}" for e in epochs) + " |")
    lines += ["", "## Mean |r| between the first hidden layer's ReLU activations (fixed training batch)",
              "", "| method | regulariser | " + " | ".join(map(str, epochs)) + " |",
              "|---|---|" + "---|" * len(epochs)]
    for (m, rg), s in div.groupby(level=[0, 1]):
        lines.append(f"| {m} | {rg} | " + " | ".join(f"{s.loc[(m, rg, e)]:.3f}" for e in epochs) + " |")
    lines += ["", f"Comparisons: `diversity_{cfg.dataset}_summary.csv` (per-epoch rows and the pooled row); "
              f"accuracies and diversity per seed, epoch and layer: `diversity_{cfg.dataset}_runs.csv`.", ""]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    d = ExperimentConfig()
    p = argparse.ArgumentParser(prog="python -m analysis.diversity_experiment", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default=d.dataset, choices=[*DATASETS, "fashion-mnist"])
    p.add_argument("--data-path", default=None, help="folder of MNIST IDX files or an .npz (mnist, fashion_mnist)")
    p.add_argument("--seeds", type=int, default=d.seeds)
    p.add_argument("--first-seed", type=int, default=d.first_seed)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--hidden", type=int, nargs="+", default=list(d.hidden), help="hidden sizes (2 values: 2 layers)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(d.methods))
    p.add_argument("--regularisers", nargs="+", choices=REGULARISERS, default=list(d.regularisers))
    p.add_argument("--schedule", default=d.schedule,
                   choices=["constant", "first_epochs", "linear", "cosine", "adaptive"])
    p.add_argument("--schedule-epochs", type=float, default=d.schedule_epochs)
    p.add_argument("--coef", type=float, default=d.coef)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("-o", "--out", default="data/results", help="output folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; writes diversity_<dataset>_{runs,summary}.csv and .md."""
    import torch

    args = _parser().parse_args(argv)
    cfg = ExperimentConfig(
        dataset=args.dataset.replace("-", "_"), seeds=args.seeds, epochs=args.epochs, hidden=tuple(args.hidden),
        optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size, methods=tuple(args.methods),
        regularisers=tuple(args.regularisers), schedule=args.schedule, schedule_epochs=args.schedule_epochs,
        coef=args.coef, data_path=args.data_path, first_seed=args.first_seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    command = "python -m analysis.diversity_experiment " + " ".join(shlex.quote(a) for a in argv_used)
    t0 = time.perf_counter()
    runs = run_experiment(cfg, progress=True)
    seconds = time.perf_counter() - t0
    stem = f"diversity_{cfg.dataset}"
    with atomic_path(out / f"{stem}_runs.csv") as tmp:
        runs.to_csv(tmp, index=False, float_format="%.6g")
    if cfg.seeds < 2:
        print(f"wrote {out / stem}_runs.csv in {seconds:.0f} s; no summary: paired tests need 2 or more seeds")
        return 0
    summary = summarise(runs)
    with atomic_path(out / f"{stem}_summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    with atomic_path(out / f"{stem}.md") as tmp:
        tmp.write_text(_markdown(cfg, runs, summary, command, seconds))
    print(f"wrote {out / stem}_runs.csv, {stem}_summary.csv, {stem}.md ({seconds:.0f} s of training)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

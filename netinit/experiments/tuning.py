"""Tune the baseline's learning rate on a validation split carved from the training set.

A design that compares initialisations by early accuracy needs a baseline that learns within the
first epochs: with too small a learning rate, early accuracy measures the initial scale times the
learning rate. :func:`tune_lr` trains the config's baseline condition with each learning rate of a
small grid on a stratified split of the *training* set (the test set is never seen), for a few
seeds, and picks the rate with the highest mean validation accuracy over a window of epochs. The
chosen rate is then written into the config (``train.lr``) and the tuning table committed beside
the results, so the choice is part of the record.

Run it from the shell::

    python -m netinit.experiments.tuning analysis/configs/decorrelation_controlled.toml \\
        --lrs 0.01 0.03 0.1 0.3 1.0 --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Sequence

import numpy as np
import pandas as pd

from netinit.experiments.config import ExperimentConfig, load_config, override

__all__ = ["validation_split", "tune_lr"]


def validation_split(data: Any, val_size: float, *, seed: int = 0) -> Any:
    """``(X_fit, y_fit, X_val, y_val)``: a stratified split of the training part of ``data``.

    Raises
    ------
    ValueError
        ``val_size`` outside (0, 1).
    """
    import torch
    from sklearn.model_selection import train_test_split

    from netinit.experiments.datasets import Dataset

    if not 0.0 < val_size < 1.0:
        raise ValueError(f"val_size must lie in (0, 1), got {val_size!r}")
    y = data.y_train.numpy()
    state = int(np.random.default_rng(np.random.SeedSequence([int(seed), 0x7A1])).integers(2**31 - 1))
    fit, val = train_test_split(np.arange(len(y)), test_size=val_size, stratify=y, random_state=state)
    fit, val = torch.as_tensor(np.sort(fit)), torch.as_tensor(np.sort(val))
    return Dataset(data.X_train[fit], data.y_train[fit], data.X_train[val], data.y_train[val])


def tune_lr(cfg: ExperimentConfig, lrs: Sequence[float], *, seeds: int = 3, val_size: float = 0.2,
            window: tuple[int, int] = (1, 5), condition: str | None = None) -> tuple[float, pd.DataFrame]:
    """The learning rate of ``lrs`` with the highest mean validation accuracy over ``window``.

    Parameters
    ----------
    cfg : ExperimentConfig
        Its data, model and training settings (``train.lr`` is replaced by each candidate).
    lrs : sequence of float
        Candidate learning rates.
    seeds : int, default 3
        Seeds per candidate (``grid.first_seed`` onwards).
    val_size : float, default 0.2
        Share of the training set held out for validation (stratified, fixed seed).
    window : (first, last), default (1, 5)
        Epochs whose validation accuracy is averaged (clipped to ``train.epochs``).
    condition : str, optional
        The condition label trained; default the config's baseline.

    Returns
    -------
    (best_lr, table)
        ``table`` has one row per (lr, seed): ``lr, seed, val_acc_window, val_acc_final, status``.
        A diverged run counts as accuracy 0.
    """
    from netinit.experiments.training import run_data, train_run

    if not lrs:
        raise ValueError("lrs is empty; give at least one learning rate")
    data = validation_split(run_data(cfg.data), val_size, seed=cfg.data.split_seed)
    label = condition or cfg.grid.baseline_label
    cond = next(c for c in cfg.grid.conditions() if c.label == label)
    first, last = window[0], min(window[1], cfg.train.epochs)
    rows = []
    for lr in lrs:
        c = override(cfg, {"train.lr": float(lr)})
        c = dataclasses.replace(c, stats=dataclasses.replace(c.stats, every_epoch=False))
        for seed in c.grid.seed_list[:seeds]:
            df = train_run(c, cond, seed, data=data)
            acc = df[(df["layer"] == "") & (df["measure"] == "test_acc")].set_index("epoch")["value"]
            ok = df["status"].iloc[0] == "ok"
            rows.append({"lr": float(lr), "seed": seed, "status": df["status"].iloc[0],
                         "val_acc_window": float(acc.loc[first:last].mean()) if ok else 0.0,
                         "val_acc_final": float(acc.iloc[-1]) if ok else 0.0})
    table = pd.DataFrame(rows)
    means = table.groupby("lr")["val_acc_window"].mean()
    return float(means.idxmax()), table


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m netinit.experiments.tuning", description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--lrs", type=float, nargs="+", required=True)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--val-size", type=float, default=0.2)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-o", "--output", help="write the tuning table (CSV) here")
    a = p.parse_args(argv)
    cfg = override(load_config(a.config), dict(kv.split("=", 1) for kv in a.set))
    best, table = tune_lr(cfg, a.lrs, seeds=a.seeds, val_size=a.val_size)
    print(table.groupby("lr")[["val_acc_window", "val_acc_final"]].mean().to_string())
    print(f"best lr: {best}")
    if a.output:
        table.to_csv(a.output, index=False)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Train one (condition, seed) run of an experiment and record it as one tidy table.

**One run** (:func:`train_run`) builds the model of the config, initialises it by the condition's
method (:func:`netinit.experiments.models.initialise`), trains it and records, as one tidy long table
(``epoch, layer, measure, value`` plus the run's identity):

* per epoch (``layer = ""``; epoch 0 is before training): ``train_loss``, ``train_acc`` (the whole
  training set in eval mode after the epoch), ``test_loss``, ``test_acc``; from epoch 1 also
  ``train_acc_running`` and ``train_loss_running``, the means over the epoch's mini-batches of
  the accuracy and loss of each batch as it was trained on (what papers report as "epoch-1
  training accuracy"; weighted by batch size), and ``reg_penalty`` (mean penalty of the epoch)
  for a regularised condition;
* per Linear/Conv layer at initialisation (epoch 0) and at the end (every epoch with
  ``stats.every_epoch``): strength variances, weight spread and correlation of the incoming
  weight vectors (:func:`netinit.metrics.layer_summary`); for the hidden layers the diversity of
  their activations on a fixed batch of ``stats.samples`` training samples
  (:func:`netinit.diversity.diversity`; with ``model.batchnorm`` these are the activation applied
  to the Linear/Conv output before its batch norm).

Every row carries ``config_hash``, ``method`` (the condition label), ``init``, ``base``,
``regulariser``, ``seed``, ``status`` (``ok`` or ``diverged``), ``error``, the fingerprints
``base_draw``, ``init_weights``, ``data_order``, ``seconds``, and the provenance: the versions of
python, torch, numpy, scipy and netinit, ``torch_threads`` and ``torch_interop_threads``, the
thread variables ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` (``""`` when unset) and
``wilcoxon_method`` (how the report's Wilcoxon tests are computed,
:data:`netinit.experiments.stats.WILCOXON_METHOD`).

**Paired design.** For a seed every condition shares the train/test split (``data.split_seed``),
the order of the mini-batches (stream ``(seed, "batch-order")``), the biases and, for methods of
the same base initialiser, the base draw, on which modifiers act; the fingerprints prove it.

A run whose loss becomes NaN or infinite is not raised: its table has ``status = "diverged"`` and
the step where it happened. Running a grid of runs and keeping their tables in a results folder is
:mod:`netinit.experiments.runner`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from netinit._io import atomic_path
from netinit._rng import torch_seed
from netinit.errors import NonFiniteError
from netinit.experiments.config import Condition, ExperimentConfig, config_hash
from netinit.experiments.models import build_model, initialise, weight_layers

__all__ = ["train_run", "run_data", "EPOCH_MEASURES", "LAYER_MEASURES", "ACT_MEASURES"]

#: Per-epoch measures (rows with ``layer == ""``).
EPOCH_MEASURES = ("train_loss", "train_acc", "test_loss", "test_acc", "train_acc_running", "train_loss_running",
                  "reg_penalty")
#: Per-layer weight statistics taken from :func:`netinit.metrics.layer_summary`.
LAYER_MEASURES = ("in_strength_var", "out_strength_var", "weight_std", "corr_in_mean_abs",
                  "corr_in_max_abs", "effective_n_in")
#: Per-layer activation statistics taken from :func:`netinit.diversity.diversity`.
ACT_MEASURES = ("act_mean_abs_r", "act_max_abs_r", "act_effective_n", "dead_neurons")


@functools.lru_cache(maxsize=4)
def run_data(data_cfg: Any) -> Any:
    """The (train and test) data of a config's ``[data]`` section, as every run of the grid sees it."""
    from netinit.experiments.datasets import load_dataset, subsample

    d = load_dataset(data_cfg.name, seed=data_cfg.split_seed, test_size=data_cfg.test_size,
                     path=data_cfg.path, n_samples=data_cfg.n_samples)
    if data_cfg.n_train or data_cfg.n_test:
        d = subsample(d, data_cfg.n_train, n_test=data_cfg.n_test, seed=data_cfg.split_seed)
    return d


def _versions() -> dict[str, Any]:
    import os

    import scipy
    import torch

    import netinit
    from netinit.experiments.stats import WILCOXON_METHOD

    return {"python_version": platform.python_version(), "torch_version": torch.__version__,
            "numpy_version": np.__version__, "scipy_version": scipy.__version__,
            "netinit_version": netinit.__version__, "torch_interop_threads": torch.get_num_interop_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
            "mkl_num_threads": os.environ.get("MKL_NUM_THREADS", ""), "wilcoxon_method": WILCOXON_METHOD}


def _evaluate(model: Any, X: Any, y: Any) -> tuple[float, float]:
    import torch
    import torch.nn.functional as F

    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(X), 4096):
            out = model(X[start:start + 4096])
            yy = y[start:start + 4096]
            loss += float(F.cross_entropy(out, yy, reduction="sum"))
            correct += int((out.argmax(1) == yy).sum())
    model.train()
    return loss / len(X), correct / len(X)


def _network_stats(model: Any, batch: Any, cfg: ExperimentConfig, epoch: int) -> list[tuple]:
    from netinit.diversity import diversity
    from netinit.metrics import layer_summary

    rows = []
    layers = weight_layers(model)
    for name, m in layers.items():
        W = m.weight.detach()
        s = layer_summary(W.reshape(W.shape[0], -1), layer=name, kind=type(m).__name__.lower(),
                          threshold=cfg.stats.threshold)
        rows += [(epoch, name, k, float(s[k])) for k in LAYER_MEASURES]
    hidden = [n for n in layers if n != "out"]
    if hidden:
        d = diversity(model, batch, layers=hidden, activation=cfg.model.activation,
                      threshold=cfg.stats.threshold)
        for r in d.itertuples(index=False):
            rows += [(epoch, r.layer, k, float(getattr(r, k))) for k in ACT_MEASURES]
    return rows


def _optimiser(model: Any, cfg: ExperimentConfig) -> tuple[Any, Any]:
    import torch

    t = cfg.train
    if t.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    if t.lr_schedule == "cosine":
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t.epochs)
    if t.lr_schedule == "step":
        miles = sorted({max(1, t.epochs // 2), max(1, 3 * t.epochs // 4)})
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=miles, gamma=0.1)
    return opt, None


def train_run(cfg: ExperimentConfig, condition: Condition, seed: int, *, data: Any = None,
              checkpoint_dir: Path | None = None) -> pd.DataFrame:
    """Train one (condition, seed) of ``cfg`` and return its tidy table (module docstring).

    Parameters
    ----------
    cfg : ExperimentConfig
    condition : Condition
        The method and regulariser.
    seed : int
        Run seed: initial draw, bias draw and batch order.
    data : Dataset, optional
        ``(X_train, y_train, X_test, y_test)``; loaded from ``cfg.data`` when None.
    checkpoint_dir : Path, optional
        Write ``<label>__seed<seed>_{init,final}.safetensors`` there.

    Returns
    -------
    pandas.DataFrame
        The run's rows; ``status`` is ``"diverged"`` (with the place in ``error``) when a loss
        became NaN or infinite. A NaN loss is never raised.
    """
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    Xtr, ytr, Xte, yte = data if data is not None else run_data(cfg.data)
    n_classes = int(max(int(ytr.max()), int(yte.max()))) + 1
    model = build_model(cfg.model, int(Xtr.shape[1]), n_classes)
    fingerprints = initialise(model, condition.method, seed, cfg.init)
    if checkpoint_dir is not None:
        _save_weights(model, checkpoint_dir, condition.label, seed, "init")
    batch = Xtr[: cfg.stats.samples]
    rows: list[tuple] = []
    status, error = "ok", ""

    def stats(epoch: int) -> None:
        nonlocal status, error
        try:
            rows.extend(_network_stats(model, batch, cfg, epoch))
        except NonFiniteError as e:  # weights or activations overflowed although the loss did not
            status, error = "diverged", f"non-finite weights or activations at epoch {epoch}: {e}"

    stats(0)

    def record(epoch: int) -> bool:
        tr = _evaluate(model, Xtr, ytr)
        te = _evaluate(model, Xte, yte)
        rows.extend([(epoch, "", "train_loss", tr[0]), (epoch, "", "train_acc", tr[1]),
                     (epoch, "", "test_loss", te[0]), (epoch, "", "test_acc", te[1])])
        return math.isfinite(tr[0]) and math.isfinite(te[0])

    if not record(0) and status == "ok":
        status, error = "diverged", "non-finite loss at initialisation"
    opt, sched = _optimiser(model, cfg)
    reg = None
    if condition.regulariser != "none":
        from netinit.diversity import Decorrelation

        r = cfg.regulariser
        reg = Decorrelation(model, kind=condition.penalty, schedule=r.schedule, epochs=r.schedule_epochs,
                            coef=condition.coef(r.coef), activation=cfg.model.activation)
    order = torch.Generator().manual_seed(torch_seed(seed, "batch-order"))
    n, bs = len(Xtr), cfg.train.batch_size
    first = torch.randperm(n, generator=order)
    order_h = hashlib.sha256(f"{n}/{bs}/".encode() + first.numpy().tobytes())
    try:
        for epoch in range(1, cfg.train.epochs + 1):
            if status != "ok":
                break
            perm = first if epoch == 1 else torch.randperm(n, generator=order)
            pen_sum, steps, seen, run_correct, run_loss = 0.0, 0, 0, 0, 0.0
            for step, start in enumerate(range(0, n, bs), start=1):
                idx = perm[start:start + bs]
                logits = model(Xtr[idx])
                loss = F.cross_entropy(logits, ytr[idx])
                seen += len(idx)
                run_correct += int((logits.detach().argmax(1) == ytr[idx]).sum())
                run_loss += float(loss.detach()) * len(idx)
                if reg is not None:
                    pen = reg()
                    pen_sum += float(pen.detach())
                    loss = loss + pen
                if not torch.isfinite(loss):
                    status, error = "diverged", f"non-finite training loss ({float(loss.detach())}) at epoch {epoch}, step {step}"
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
            if status != "ok":
                break
            rows.extend([(epoch, "", "train_acc_running", run_correct / max(seen, 1)),
                         (epoch, "", "train_loss_running", run_loss / max(seen, 1))])
            if reg is not None:
                reg.step_epoch()
                rows.append((epoch, "", "reg_penalty", pen_sum / max(steps, 1)))
            if sched is not None:
                sched.step()
            if not record(epoch):
                status, error = "diverged", f"non-finite evaluation loss after epoch {epoch}"
            elif cfg.stats.every_epoch or epoch == cfg.train.epochs:
                stats(epoch)
    finally:
        if reg is not None:
            reg.remove()
    if checkpoint_dir is not None and status == "ok":
        _save_weights(model, checkpoint_dir, condition.label, seed, "final")
    df = pd.DataFrame(rows, columns=["epoch", "layer", "measure", "value"])
    df["epoch"] = df["epoch"].astype("int64")
    df["value"] = df["value"].astype("float64")
    meta = {"config_hash": config_hash(cfg), "experiment": cfg.name, "method": condition.label,
            "init": condition.method.label, "base": condition.method.base,
            "regulariser": condition.regulariser, "seed": int(seed), "status": status, "error": error,
            **fingerprints, "data_order": order_h.hexdigest()[:16],
            "seconds": time.perf_counter() - t0, "torch_threads": torch.get_num_threads(), **_versions()}
    for i, (k, v) in enumerate(meta.items()):
        df.insert(i, k, v)
    return df


def _save_weights(model: Any, folder: Path, label: str, seed: int, stage: str) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(folder / f"{label}__seed{seed:05d}_{stage}.safetensors") as tmp:
        save_file(tensors, str(tmp))


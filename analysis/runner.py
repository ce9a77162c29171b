"""Run an experiment's grid of (condition, seed): train, measure, write one Parquet table per run.

**One run** (:func:`train_run`) builds the model of the config, initialises it by the condition's
method (:func:`analysis.models.initialise`), trains it and records, as one tidy long table
(``epoch, layer, measure, value`` plus the run's identity):

* per epoch (``layer = ""``; epoch 0 is before training): ``train_loss``, ``train_acc`` (the whole
  training set in eval mode), ``test_loss``, ``test_acc``, and ``reg_penalty`` (mean penalty of
  the epoch) for a regularised condition;
* per Linear/Conv layer at initialisation (epoch 0) and at the end (every epoch with
  ``stats.every_epoch``): strength variances, weight spread and correlation of the incoming
  weight vectors (:func:`netinit.metrics.layer_summary`); for the hidden layers the diversity of
  their activations on a fixed batch of ``stats.samples`` training samples
  (:func:`netinit.diversity.diversity`).

Every row carries ``config_hash``, ``method`` (the condition label), ``init``, ``base``,
``regulariser``, ``seed``, ``status`` (``ok`` or ``diverged``), ``error``, the fingerprints
``base_draw``, ``init_weights``, ``data_order``, ``seconds``, ``torch_threads`` and the versions of
python, torch, numpy and netinit. Every engine runs each run with the same number of torch threads
(1 by default), so a grid gives the same numbers in-process and on Dask.

**Paired design.** For a seed every condition shares the train/test split (``data.split_seed``),
the order of the mini-batches (stream ``(seed, "batch-order")``), the biases and, for methods of
the same base initialiser, the base draw, on which modifiers act; the fingerprints prove it.

**A results folder**::

    experiment.json                      the configs (by hash) whose runs the folder holds
    runs/<config_hash>/<label>__seed00003.parquet
    runs/<config_hash>/checkpoints/...   initial and final weights (checkpoints = true)

A run's table is written atomically (temporary file, then ``os.replace``) by the process that ran
it, so an interrupted grid loses only the runs in flight, and a rerun skips finished ones. A run
whose loss becomes NaN or infinite is written with ``status = "diverged"`` and the step where it
happened; it is finished (rerunning it would diverge again). A run that raises is reported and
not written, so a rerun retries it. A folder holding another config's runs is refused unless
``allow_mixed``.

**Engines.** ``scheduler=None`` runs in this process, one run after the other (tests, tiny
grids); ``"local"`` starts a :class:`distributed.LocalCluster` of worker processes on loopback;
any other string is the address of a running Dask scheduler, whose workers must see the results
folder (a shared file system) and be able to import ``analysis`` and ``netinit``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from analysis.config import (
    Condition,
    ConfigError,
    ExperimentConfig,
    config_from_dict,
    config_hash,
    config_to_dict,
)
from analysis.models import build_model, initialise, seed_int, weight_layers
from netinit._io import atomic_path
from netinit.errors import NetinitError, NonFiniteError, OutputError

__all__ = [
    "ResultsFolderError",
    "GridResult",
    "Progress",
    "train_run",
    "run_grid",
    "load_results",
    "read_manifest",
    "run_path",
    "LAYER_MEASURES",
    "EPOCH_MEASURES",
]

MANIFEST = "experiment.json"
FORMAT = "netinit-experiment/1"
#: Per-epoch measures (rows with ``layer == ""``).
EPOCH_MEASURES = ("train_loss", "train_acc", "test_loss", "test_acc", "reg_penalty")
#: Per-layer weight statistics taken from :func:`netinit.metrics.layer_summary`.
LAYER_MEASURES = ("in_strength_var", "out_strength_var", "weight_std", "corr_in_mean_abs",
                  "corr_in_max_abs", "effective_n_in")
#: Per-layer activation statistics taken from :func:`netinit.diversity.diversity`.
ACT_MEASURES = ("act_mean_abs_r", "act_max_abs_r", "act_effective_n", "dead_neurons")


class ResultsFolderError(NetinitError, ValueError):
    """A results folder belongs to another config, holds no runs, or is not a results folder."""


@dataclass(frozen=True)
class Progress:
    """Counts of a grid in progress: runs finished now (ok), diverged, raised, and left."""

    done: int
    failed: int
    errors: int
    left: int
    skipped: int
    last: str = ""

    def __str__(self) -> str:
        return (f"{self.done} done, {self.failed} failed, {self.errors} errors, {self.left} left"
                + (f" ({self.skipped} already finished)" if self.skipped else ""))


@dataclass
class GridResult:
    """What :func:`run_grid` did."""

    results_dir: Path
    config_hash: str
    planned: int
    skipped: int = 0
    done: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)   #: diverged runs (written)
    errors: list[dict[str, Any]] = field(default_factory=list)   #: runs that raised (not written)
    seconds: float = 0.0

    def summary(self) -> str:
        s = (f"{self.planned} runs planned: {self.skipped} already finished, {self.done} ran, "
             f"{len(self.failed)} diverged, {len(self.errors)} raised ({self.seconds:.0f} s)")
        for f in self.failed:
            s += f"\n  diverged: {f['method']} seed {f['seed']}: {f['error']}"
        for e in self.errors:
            s += f"\n  error: {e['method']} seed {e['seed']}: {e['error']}"
        return s


# --------------------------------------------------------------------------- one run
@functools.lru_cache(maxsize=4)
def _dataset(data_cfg: Any) -> Any:
    from netinit.datasets import load_dataset

    return load_dataset(data_cfg.name, seed=data_cfg.split_seed, test_size=data_cfg.test_size,
                        path=data_cfg.path, n_samples=data_cfg.n_samples)


def _versions() -> dict[str, str]:
    import torch

    import netinit

    return {"python_version": platform.python_version(), "torch_version": torch.__version__,
            "numpy_version": np.__version__, "netinit_version": netinit.__version__}


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
    Xtr, ytr, Xte, yte = data if data is not None else _dataset(cfg.data)
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
        reg = Decorrelation(model, kind=condition.regulariser, schedule=r.schedule, epochs=r.schedule_epochs,
                            coef=r.coef, activation=cfg.model.activation)
    order = torch.Generator().manual_seed(seed_int(seed, "batch-order"))
    n, bs = len(Xtr), cfg.train.batch_size
    first = torch.randperm(n, generator=order)
    order_h = hashlib.sha256(f"{n}/{bs}/".encode() + first.numpy().tobytes())
    try:
        for epoch in range(1, cfg.train.epochs + 1):
            if status != "ok":
                break
            perm = first if epoch == 1 else torch.randperm(n, generator=order)
            pen_sum, steps = 0.0, 0
            for step, start in enumerate(range(0, n, bs), start=1):
                idx = perm[start:start + bs]
                loss = F.cross_entropy(model(Xtr[idx]), ytr[idx])
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


# --------------------------------------------------------------------------- the folder
def run_path(results_dir: str | os.PathLike, chash: str, label: str, seed: int) -> Path:
    """Where the table of run (label, seed) of config ``chash`` lives."""
    return Path(results_dir) / "runs" / chash / f"{label}__seed{seed:05d}.parquet"


def read_manifest(results_dir: str | os.PathLike) -> dict[str, Any]:
    """The folder's ``experiment.json``: ``{"format": ..., "configs": {hash: config dict}}``.

    Raises
    ------
    ResultsFolderError
        The folder has no (readable) ``experiment.json``.
    """
    p = Path(results_dir) / MANIFEST
    if not p.is_file():
        raise ResultsFolderError(f"{results_dir}: not a results folder (no {MANIFEST}); "
                                 "run `netinit experiment CONFIG -o DIR` first")
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ResultsFolderError(f"{p}: unreadable ({e})") from None
    if m.get("format") != FORMAT or not isinstance(m.get("configs"), dict):
        raise ResultsFolderError(f"{p}: not a netinit experiment manifest (format {m.get('format')!r})")
    return m


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb and k != "grid":
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


def _prepare(results_dir: Path, cfg: ExperimentConfig, allow_mixed: bool) -> str:
    chash = config_hash(cfg)
    new = config_to_dict(cfg)
    if results_dir.exists() and not results_dir.is_dir():
        raise OutputError(f"{results_dir}: exists and is not a folder")
    if (results_dir / MANIFEST).is_file():
        manifest = read_manifest(results_dir)
        configs = manifest["configs"]
        if chash not in configs and configs and not allow_mixed:
            old_hash, old = next(iter(configs.items()))
            diff = "; ".join(_differences({k: v for k, v in old.items() if k != "grid"},
                                          {k: v for k, v in new.items() if k != "grid"})[:6])
            raise ResultsFolderError(
                f"{results_dir} holds runs of another config ({old.get('name')!r}, hash {old_hash}); "
                f"this config has hash {chash} (differences: {diff or 'none visible'}); use another "
                "folder, or pass --allow-mixed (allow_mixed=True) to keep both in one folder")
    elif results_dir.is_dir() and any(results_dir.iterdir()):
        raise OutputError(f"{results_dir}: the folder holds other files and no {MANIFEST}; "
                          "choose an empty or new folder for the results")
    else:
        manifest = {"format": FORMAT, "configs": {}}
    results_dir.mkdir(parents=True, exist_ok=True)
    manifest["configs"][chash] = new
    with atomic_path(results_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return chash


def _execute(cfg_dict: dict[str, Any], label: str, seed: int, results_dir: str, threads: int) -> dict[str, Any]:
    """Run one (label, seed) and write its table; never raises (runs on Dask workers too)."""
    out = {"method": label, "seed": seed, "status": "error", "error": ""}
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)  # results depend on it (reduction order): the same on every engine
        cfg = config_from_dict(cfg_dict)
        cond = next(c for c in cfg.grid.conditions() if c.label == label)
        chash = config_hash(cfg)
        ckpt = run_path(results_dir, chash, label, seed).parent / "checkpoints" if cfg.checkpoints else None
        df = train_run(cfg, cond, seed, checkpoint_dir=ckpt)
        path = run_path(results_dir, chash, label, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            df.to_parquet(tmp, index=False)
        out.update(status=str(df["status"].iloc[0]), error=str(df["error"].iloc[0]))
    except Exception as e:  # noqa: BLE001 - a crashing run must not stop the grid
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        torch.set_num_threads(before)
    return out


# --------------------------------------------------------------------------- the grid
def run_grid(
    cfg: ExperimentConfig,
    results_dir: str | os.PathLike,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    threads: int = 1,
    allow_mixed: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> GridResult:
    """Run every (condition, seed) of ``cfg`` not yet finished in ``results_dir``.

    Parameters
    ----------
    cfg : ExperimentConfig
    results_dir : path
        Created if missing; must be empty, new, or a results folder of the same config hash.
    scheduler : None, "local" or str
        ``None``: in this process; ``"local"``: a ``distributed.LocalCluster`` of ``workers``
        processes on 127.0.0.1 (one torch thread each); otherwise a Dask scheduler address
        (``tcp://host:8786``).
    workers : int, default 2
        Worker processes of the local cluster.
    threads : int, default 1
        torch threads of each run, whatever the engine (the floating-point reduction order,
        hence the results, can depend on it; it is recorded as ``torch_threads``).
    allow_mixed : bool, default False
        Accept a folder that already holds runs of another config.
    progress : callable, optional
        Called with a :class:`Progress` after each run (and once before the first).

    Returns
    -------
    GridResult

    Raises
    ------
    ResultsFolderError
        The folder holds runs of another config (and not ``allow_mixed``).
    OutputError
        The folder holds files that are not results.
    """
    t0 = time.perf_counter()
    results_dir = Path(results_dir)
    chash = _prepare(results_dir, cfg, allow_mixed)
    labels = [c.label for c in cfg.grid.conditions()]
    plan = [(lab, s) for s in cfg.grid.seed_list for lab in labels]
    todo = [(lab, s) for lab, s in plan if not run_path(results_dir, chash, lab, s).is_file()]
    res = GridResult(results_dir, chash, len(plan), skipped=len(plan) - len(todo))
    cfg_dict = config_to_dict(cfg)

    def tell(r: dict[str, Any] | None) -> None:
        if r is not None:
            if r["status"] == "ok":
                res.done += 1
            elif r["status"] == "diverged":
                res.failed.append(r)
            else:
                res.errors.append(r)
        if progress is not None:
            finished = res.done + len(res.failed) + len(res.errors)
            last = "" if r is None else f"{r['method']} seed {r['seed']}: {r['status']}"
            progress(Progress(res.done, len(res.failed), len(res.errors), len(todo) - finished,
                              res.skipped, last))

    tell(None)
    if scheduler is None:
        for lab, s in todo:
            tell(_execute(cfg_dict, lab, s, str(results_dir), threads))
    elif todo:
        _run_dask(cfg_dict, todo, results_dir, scheduler, workers, threads, tell)
    res.seconds = time.perf_counter() - t0
    return res


def _run_dask(cfg_dict: dict[str, Any], todo: list[tuple[str, int]], results_dir: Path, scheduler: str,
              workers: int, threads: int, tell: Callable[[dict[str, Any]], None]) -> None:
    from distributed import as_completed

    from analysis.parallel import dask_client

    with dask_client(scheduler, workers=workers) as client:
        where = str(results_dir.resolve())
        token = uuid.uuid4().hex[:8]  # keys unique to this grid, even on a cluster shared by several
        futures = {client.submit(_execute, cfg_dict, lab, s, where, threads, pure=False,
                                 key=f"netinit-run-{token}-{lab}-{s}"): (lab, s) for lab, s in todo}
        for fut in as_completed(futures):
            lab, s = futures[fut]
            try:
                tell(fut.result())
            except Exception as e:  # noqa: BLE001 - a lost worker loses only its run
                tell({"method": lab, "seed": s, "status": "error", "error": f"{type(e).__name__}: {e}"})


# --------------------------------------------------------------------------- reading back
def load_results(results_dir: str | os.PathLike, *, config_hash: str | None = None
                 ) -> tuple[ExperimentConfig, pd.DataFrame]:
    """The config and all run tables of a results folder, concatenated.

    Parameters
    ----------
    results_dir : path
    config_hash : str, optional
        Which config, when the folder holds several (a prefix is enough).

    Raises
    ------
    ResultsFolderError
        Not a results folder, several configs and none chosen, an unknown hash, or no runs.
    """
    manifest = read_manifest(results_dir)
    configs = manifest["configs"]
    if config_hash is None:
        if len(configs) != 1:
            raise ResultsFolderError(
                f"{results_dir} holds runs of {len(configs)} configs ("
                + ", ".join(f"{h}: {c.get('name')!r}" for h, c in configs.items())
                + "); choose one with config_hash= (--config-hash)")
        chash = next(iter(configs))
    else:
        match = [h for h in configs if h.startswith(config_hash)]
        if len(match) != 1:
            raise ResultsFolderError(f"config hash {config_hash!r} matches {len(match)} configs of "
                                     f"{results_dir}; configs: {', '.join(configs)}")
        chash = match[0]
    try:
        cfg = config_from_dict(configs[chash])
    except ConfigError as e:
        raise ResultsFolderError(f"{results_dir}: the stored config {chash} is not valid here ({e})") from None
    files = sorted((Path(results_dir) / "runs" / chash).glob("*.parquet"))
    if not files:
        raise ResultsFolderError(f"{results_dir}: no finished runs of config {chash} yet")
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return cfg, df


def _main(argv: list[str] | None = None) -> int:  # pragma: no cover - thin wrapper, see analysis.cli
    from analysis.cli import main

    return main(["experiment", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())

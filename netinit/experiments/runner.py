"""Run an experiment's grid of (condition, seed): train, measure, write one Parquet table per run.

Each run is trained and measured by :func:`netinit.experiments.training.train_run`, whose module docstring
describes its table (the per-epoch and per-layer measures, the columns every row carries) and the
paired design. This module plans the grid, runs it on an engine, writes each run's table into a
results folder and reads the folder back. Every engine runs each run with the same number of torch
threads (1 by default), so a grid gives the same numbers in-process and on Dask.

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

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from netinit._io import atomic_path
from netinit.errors import NetinitError, OutputError
from netinit.experiments.config import (
    ConfigError,
    ExperimentConfig,
    config_from_dict,
    config_hash,
    config_to_dict,
)
from netinit.experiments.training import ACT_MEASURES, EPOCH_MEASURES, LAYER_MEASURES, train_run  # noqa: F401 - re-exported

__all__ = [
    "ResultsFolderError",
    "GridResult",
    "Progress",
    "train_run",
    "run_grid",
    "check_folder",
    "load_results",
    "read_manifest",
    "run_path",
    "LAYER_MEASURES",
    "EPOCH_MEASURES",
]

MANIFEST = "experiment.json"
FORMAT = "netinit-experiment/1"


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


def check_folder(results_dir: str | os.PathLike, cfg: ExperimentConfig, allow_mixed: bool = False) -> dict[str, Any]:
    """The manifest a grid of ``cfg`` would write into ``results_dir`` (nothing is written).

    Raises
    ------
    OutputError
        ``results_dir`` is a file, or a folder holding files that are not results.
    ResultsFolderError
        The folder holds runs of another config (and not ``allow_mixed``).
    """
    results_dir = Path(results_dir)
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
    manifest["configs"][chash] = new
    return manifest


def _prepare(results_dir: Path, cfg: ExperimentConfig, allow_mixed: bool) -> str:
    manifest = check_folder(results_dir, cfg, allow_mixed)
    results_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(results_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return config_hash(cfg)


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
    FileNotFoundError, ConfigError
        In this process or on a local cluster: the config's data set cannot be found
        (:func:`netinit.experiments.datasets.check_dataset`), before anything is written.
    """
    t0 = time.perf_counter()
    results_dir = Path(results_dir)
    if scheduler in (None, "local"):  # a remote cluster's workers may see data this machine does not
        from netinit.experiments.config import ConfigError
        from netinit.experiments.datasets import check_dataset

        try:
            check_dataset(cfg.data.name, cfg.data.path)
        except ValueError as e:  # a data set that needs a path and has none: the config's [data] is wrong
            raise ConfigError(f"[data]: {e}") from None
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

    from netinit.parallel import dask_client

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
    published = Path(results_dir) / "runs.parquet"  # a published folder: all run tables in one file
    if files:
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    elif published.is_file():
        df = pd.read_parquet(published)
        df = df[df["config_hash"] == chash].reset_index(drop=True) if "config_hash" in df else df.iloc[:0]
    else:
        df = None
    if df is None or df.empty:
        raise ResultsFolderError(f"{results_dir}: no finished runs of config {chash} yet (no "
                                 f"runs/{chash}/*.parquet, no runs.parquet)")
    return cfg, df

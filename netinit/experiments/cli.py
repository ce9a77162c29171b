"""Command-line glue for experiments: ``netinit experiment CONFIG -o RESULTS`` and
``netinit results RESULTS -o REPORT``.

:func:`netinit.cli.build_parser` calls :func:`add_experiment_commands` to add both subcommands.
This module imports the core (:mod:`netinit.cliargs`), never :mod:`netinit.cli`.

Exit status: 0 success (runs that diverged are results, not errors), 1 bad input or runs that
raised (rerun to retry them), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from netinit.cliargs import err as _err
from netinit.cliargs import positive_int, scheduler_address
from netinit.experiments.config import OUTCOMES

__all__ = [
    "add_experiment_commands",
    "cmd_experiment",
    "cmd_results",
    "is_results_dir",
    "require_extras",
]


def is_results_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an experiment results folder (it holds ``experiment.json``)."""
    from netinit.experiments.runner import MANIFEST

    return (Path(path) / MANIFEST).is_file()


def _reporter(quiet: bool):
    if quiet:
        return None
    bar = {}

    def report(p: Any) -> None:
        if sys.stderr.isatty():
            from tqdm import tqdm

            if "bar" not in bar:
                bar["bar"] = tqdm(total=p.done + p.failed + p.errors + p.left, unit="run", file=sys.stderr)
            b = bar["bar"]
            b.n = p.done + p.failed + p.errors
            b.set_postfix_str(f"{p.done} done, {p.failed} failed, {p.errors} errors, {p.left} left")
            if p.left == 0:
                b.close()
        else:
            _err(f"netinit experiment: {p}" + (f" [{p.last}]" if p.last else ""))

    return report


def require_extras(*modules: str) -> None:
    """Raise :class:`ModuleNotFoundError` for the first of ``modules`` that is not installed, before
    any work starts (the command line names the extra that installs it)."""
    import importlib.util

    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def cmd_experiment(args: argparse.Namespace) -> int:
    """Run (or resume) the grid of a config file into a results folder."""
    require_extras("sklearn", "scipy", *(() if args.serial else ("distributed",)))
    from netinit.experiments.config import ConfigError, config_hash, load_config, override
    from netinit.experiments.runner import check_folder, run_grid, run_path

    if not Path(args.config).exists():
        raise FileNotFoundError(f"{args.config}: no such file")
    if Path(args.config).is_dir():
        raise IsADirectoryError(f"{args.config}: is a folder; give an experiment config (TOML) file")
    cfg = load_config(args.config)
    changes = {}
    for item in args.set or []:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        changes[k.strip()] = v.strip()
    if args.seeds is not None:
        changes["grid.seeds"] = args.seeds
    if changes:
        cfg = override(cfg, changes)
    if args.dry_run:
        check_folder(args.output, cfg, args.allow_mixed)  # what the run would refuse, the dry run refuses
        chash = config_hash(cfg)
        plan = [(c.label, s) for s in cfg.grid.seed_list for c in cfg.grid.conditions()]
        done = sum(run_path(args.output, chash, lab, s).is_file() for lab, s in plan)
        print(f"{cfg.name} (config hash {chash}): {len(cfg.grid.conditions())} conditions x "
              f"{cfg.grid.seeds} seeds = {len(plan)} runs, {done} already finished in {args.output}")
        return 0
    scheduler = None if args.serial else (args.scheduler or "local")
    if not args.quiet:
        where = "in this process" if scheduler is None else (
            f"on a local cluster of {args.workers} worker processes" if scheduler == "local" else f"on {scheduler}")
        _err(f"netinit experiment: {cfg.name} (config hash {config_hash(cfg)}) -> {args.output}, {where}")
    res = run_grid(cfg, args.output, scheduler=scheduler, workers=args.workers, threads=args.threads,
                   allow_mixed=args.allow_mixed, progress=_reporter(args.quiet))
    if not args.quiet:
        _err(f"netinit experiment: {res.summary()}")
        _err(f"netinit experiment: next: netinit results {args.output} -o {Path(args.output) / 'report'}")
    return 1 if res.errors else 0


def add_experiment_commands(subparsers: Any) -> list[argparse.ArgumentParser]:
    """Add ``experiment`` and ``results`` to an ``argparse`` subparsers object; returns their parsers."""
    e = subparsers.add_parser(
        "experiment", help="run a grid of (initialisation method, seed) from a TOML config, resumably",
        description="Train every (condition, seed) of the config not yet finished in the results folder; "
                    "then `netinit results RESULTS_DIR -o REPORT_DIR`. Needs the experiments extra "
                    "(pip install 'netinit[experiments]').")
    e.add_argument("config", help="experiment config (TOML), e.g. analysis/configs/pa_vs_baseline.toml")
    e.add_argument("-o", "--output", required=True, help="results folder (created; reruns resume it)")
    e.add_argument("--seeds", type=positive_int, help="number of seeds (overrides grid.seeds; a pilot: 5)")
    e.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 --set 'model.hidden=[32, 32]'")
    e.add_argument("--scheduler", metavar="ADDRESS", type=scheduler_address,
                   help="Dask scheduler of a running cluster (default: a local cluster on 127.0.0.1)")
    e.add_argument("--workers", type=positive_int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="worker processes of the local cluster (default: cores, at most 4)")
    e.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads per run (default 1; results can depend on it, it is recorded)")
    e.add_argument("--serial", action="store_true", help="run in this process, no Dask")
    e.add_argument("--allow-mixed", action="store_true",
                   help="accept a results folder holding runs of another config")
    e.add_argument("--dry-run", action="store_true", help="print the grid's size and what is finished")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress")
    e.set_defaults(func=cmd_experiment)

    r = subparsers.add_parser(
        "results", help="paired statistics, figures and report of an experiment results folder",
        description="Compare the methods of a results folder written by `netinit experiment` over its seeds.")
    r.add_argument("a", metavar="RESULTS", help="results folder (holds experiment.json)")
    r.add_argument("-o", "--output", required=True, help="output folder for tables, figures and report.html")
    r.add_argument("--config-hash", help="results folder with several configs: which one")
    r.add_argument("--metric", choices=OUTCOMES, default=None,
                   help="outcome of the last-epoch and mean-over-epochs tables, the Friedman ranks, the figures "
                        "and the first headline (default: the config's declared primary outcome, else test_acc); "
                        "the primary and secondary tests always use the outcomes the config's [analysis] declares")
    r.add_argument("--no-plots", action="store_true", help="tables only")
    r.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    r.add_argument("--force", action="store_true", help="write into a folder that holds other files")
    r.add_argument("-q", "--quiet", action="store_true", help="no messages")
    r.set_defaults(func=cmd_results)
    return [e, r]


def cmd_results(args: argparse.Namespace) -> int:
    """``netinit results RESULTS_DIR -o REPORT_DIR``: statistics, figures and report of a grid."""
    require_extras(*(() if args.no_plots else ("scikit_posthocs",)))  # the critical-difference diagram
    from netinit.errors import NetinitError
    from netinit.experiments.report import compare_results

    if not Path(args.a).exists():
        raise NetinitError(f"{args.a}: no such folder")
    if not is_results_dir(args.a):
        raise NetinitError(f"{args.a}: not an experiment results folder (no experiment.json)")
    rep = compare_results(args.a, args.output, config_hash=args.config_hash, metric=args.metric,
                          overwrite=args.force, plots=not args.no_plots)
    if args.json:
        print(json.dumps(rep.summary(), indent=2, default=str))
    if not args.quiet:
        for line in rep.headlines:
            _err(f"netinit results: {line}")
        if rep.notes:
            _err(f"netinit results: {len(rep.notes)} note(s) in the report, e.g. {rep.notes[0]}")
        _err(f"netinit results: wrote {len(rep.files)} files to {args.output} "
             f"(open {Path(args.output) / 'report.html'})")
    return 0

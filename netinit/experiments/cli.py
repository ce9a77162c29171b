"""Command-line glue for experiments: ``netinit experiment``, ``netinit compare RESULTS_DIR`` and
``netinit analyze CKPT --workers N``.

``netinit.cli`` calls :func:`add_experiment_commands` to add the ``experiment`` subcommand,
dispatches ``netinit compare X -o DIR`` with a single positional argument that is a results
folder (:func:`is_results_dir`) to :func:`compare_results_command`, and ``netinit analyze`` with
``--workers`` above 1 or a ``--scheduler`` to :func:`analyze_parallel_command`. ``python -m analysis.cli``
is the same as ``netinit``.

Exit status: 0 success (runs that diverged are results, not errors), 1 bad input or runs that
raised (rerun to retry them), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "add_experiment_commands",
    "add_compare_results_options",
    "cmd_experiment",
    "compare_results_command",
    "analyze_parallel_command",
    "is_results_dir",
    "main",
]


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def is_results_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an experiment results folder (it holds ``experiment.json``)."""
    from analysis.runner import MANIFEST

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


def cmd_experiment(args: argparse.Namespace) -> int:
    """Run (or resume) the grid of a config file into a results folder."""
    from analysis.config import config_hash, load_config, override
    from analysis.runner import run_grid, run_path

    if not Path(args.config).exists():
        raise FileNotFoundError(f"{args.config}: no such file")
    if Path(args.config).is_dir():
        raise IsADirectoryError(f"{args.config}: is a folder; give an experiment config (TOML) file")
    cfg = load_config(args.config)
    changes = {}
    for item in args.set or []:
        if "=" not in item:
            raise SystemExit(f"netinit experiment: --set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        changes[k.strip()] = v.strip()
    if args.seeds is not None:
        changes["grid.seeds"] = args.seeds
    if changes:
        cfg = override(cfg, changes)
    if args.dry_run:
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
        _err(f"netinit experiment: next: netinit compare {args.output} -o REPORT_DIR")
    return 1 if res.errors else 0


def add_experiment_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``experiment`` to an ``argparse`` subparsers object; returns its parser."""
    from netinit.cli import _positive_int, _scheduler_address

    e = subparsers.add_parser(
        "experiment", help="run a grid of (initialisation method, seed) from a TOML config, resumably",
        description="Train every (condition, seed) of the config not yet finished in the results folder; "
                    "then `netinit compare RESULTS_DIR -o REPORT_DIR`.")
    e.add_argument("config", help="experiment config (TOML), e.g. analysis/configs/pa_vs_baseline.toml")
    e.add_argument("-o", "--output", required=True, help="results folder (created; reruns resume it)")
    e.add_argument("--seeds", type=_positive_int, help="number of seeds (overrides grid.seeds; a pilot: 5)")
    e.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 --set 'model.hidden=[32, 32]'")
    e.add_argument("--scheduler", metavar="ADDRESS", type=_scheduler_address,
                   help="Dask scheduler of a running cluster (default: a local cluster on 127.0.0.1)")
    e.add_argument("--workers", type=_positive_int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="worker processes of the local cluster (default: cores, at most 4)")
    e.add_argument("--threads", type=_positive_int, default=1,
                   help="torch threads per run (default 1; results can depend on it, it is recorded)")
    e.add_argument("--serial", action="store_true", help="run in this process, no Dask")
    e.add_argument("--allow-mixed", action="store_true",
                   help="accept a results folder holding runs of another config")
    e.add_argument("--dry-run", action="store_true", help="print the grid's size and what is finished")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress")
    e.set_defaults(func=cmd_experiment)
    return e


def add_compare_results_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``netinit compare RESULTS_DIR`` that the two-checkpoint form lacks."""
    parser.add_argument("--config-hash", help="results folder with several configs: which one")
    parser.add_argument("--metric", default="test_acc",
                        help="outcome of the comparisons for a results folder (default test_acc)")


def compare_results_command(args: argparse.Namespace) -> int:
    """``netinit compare RESULTS_DIR -o REPORT_DIR``: statistics, figures and report of a grid.

    Reads ``args.a`` (the folder), ``args.output``; optionally ``force``, ``quiet``, ``json``,
    ``no_plots``, ``config_hash``, ``metric``.
    """
    from analysis.report import compare_results

    if getattr(args, "output", None) is None:
        raise SystemExit("netinit compare: give an output folder with -o DIR")
    rep = compare_results(args.a, args.output, config_hash=getattr(args, "config_hash", None),
                          metric=getattr(args, "metric", "test_acc"), force=getattr(args, "force", False),
                          plots=not getattr(args, "no_plots", False))
    if getattr(args, "json", False):
        print(json.dumps(rep.summary(), indent=2, default=str))
    if not getattr(args, "quiet", False):
        for line in rep.headlines:
            _err(f"netinit compare: {line}")
        if rep.notes:
            _err(f"netinit compare: {len(rep.notes)} note(s) in the report, e.g. {rep.notes[0]}")
        _err(f"netinit compare: wrote {len(rep.files)} files to {args.output} "
             f"(open {Path(args.output) / 'report.html'})")
    return 0


def analyze_parallel_command(args: argparse.Namespace) -> Any:
    """The :class:`~netinit.analyzer.Analysis` of ``netinit analyze CKPT --workers N [--scheduler ADDRESS]``.

    Reads ``args.checkpoint``, ``workers``, ``scheduler``, ``layers``, ``centrality``, ``k``,
    ``seed``, ``quiet``; refuses the options the workers cannot reproduce (they open the file by
    its path alone): ``--data``, ``--key``, ``--layout``, ``--embeddings``.
    """
    from analysis.parallel import analyze_parallel

    given = [opt for opt, value in (("--data", args.data), ("--key", args.key), ("--layout", args.layout),
                                    ("--embeddings", args.embeddings)) if value]
    if given:
        raise SystemExit(f"netinit analyze: --workers/--scheduler cannot be combined with {', '.join(given)}; "
                         "drop them, or analyse in one process (--workers 1, no --scheduler)")
    if not args.quiet:
        where = f"on {args.scheduler}" if args.scheduler else f"on a local cluster of {args.workers} worker processes"
        _err(f"netinit analyze: one task per layer {where}")
    return analyze_parallel(args.checkpoint, workers=args.workers, scheduler=args.scheduler, layers=args.layers,
                            centrality=None if args.centrality == "none" else args.centrality,
                            k=args.k, seed=args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.cli ...`` is ``netinit ...`` (one command line for everything)."""
    from netinit.cli import main as netinit_main

    return netinit_main(argv)


if __name__ == "__main__":
    sys.exit(main())

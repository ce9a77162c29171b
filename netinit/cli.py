"""The ``netinit`` command: argument parsing, progress and error-to-exit-code; no logic of its own.

Exit status: 0 success, 1 bad input (the message names the file and the problem), 2 usage.
Pass ``--debug`` to see the traceback of an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from netinit.cliargs import device as _device
from netinit.cliargs import err as _err
from netinit.cliargs import int_at_least
from netinit.cliargs import nonnegative_int as _nonnegative_int
from netinit.cliargs import plural as _n
from netinit.cliargs import positive_int as _positive_int
from netinit.cliargs import progress as _progress
from netinit.cliargs import scheduler_address as _scheduler_address

__all__ = ["main", "build_parser"]


def _layout(values: list[str] | None) -> dict[str, str] | None:
    """``--layout REGEX=in_out`` options as a mapping (split on the last ``=``)."""
    if not values:
        return None
    out = {}
    for v in values:
        regex, sep, orient = v.rpartition("=")
        if not sep or not regex or orient not in ("in_out", "out_in"):
            raise SystemExit(f"netinit: --layout expects REGEX=in_out or REGEX=out_in, got {v!r}")
        out[regex] = orient
    return out


def _open(path: str, args: argparse.Namespace):
    from netinit.formats import load_checkpoint

    ckpt = load_checkpoint(path, key=getattr(args, "key", None), layout=_layout(getattr(args, "layout", None)))
    if not getattr(args, "quiet", False):
        if ckpt.converted:
            _err(f"netinit: {len(ckpt.converted)} tensors of {path} are stored in another layout and shown "
                 f"in the canonical (out, in) one (e.g. {next(iter(ckpt.converted))}: "
                 f"{next(iter(ckpt.converted.values()))})")
        for name, why in list(ckpt.unmapped.items())[:5]:
            _err(f"netinit: could not map {name!r} of {path}: {why}")
        if len(ckpt.unmapped) > 5:
            _err(f"netinit: ... and {len(ckpt.unmapped) - 5} more weights that could not be mapped")
    return ckpt


def _data_batch(spec: str, samples: int, seed: int):
    """Inputs for activation statistics: a bundled data set's test split, or a user's file."""
    try:
        from netinit.experiments.datasets import load_dataset
    except ImportError as exc:
        raise SystemExit(f"netinit: --data needs the experiments extra (pip install 'netinit[experiments]'): {exc}") from None

    names = ("digits", "mnist1d", "synthetic")
    if spec in names:
        ds = load_dataset(spec, seed=seed)
    elif Path(spec).exists():
        name = "fashion_mnist" if "fashion" in spec.lower() else "mnist"
        ds = load_dataset(name, seed=seed, path=spec)
    elif Path(spec).suffix or any(sep in spec for sep in ("/", os.sep)):  # meant as a path
        raise FileNotFoundError(f"--data {spec}: no such file or folder (expected MNIST-style IDX files "
                                f"or an .npz, or one of {', '.join(names)})")
    else:
        raise SystemExit(f"netinit: --data expects one of {', '.join(names)} "
                         f"or the path of MNIST-style IDX files / an .npz; got {spec!r}")
    return ds.X_test[:samples].numpy()


def _null_count(text: str) -> int:
    """``--null K``: shuffled copies, at least 2 (a null SD needs two)."""
    return int_at_least(text, 2, "an integer >= 2 (shuffled copies of each layer)")


def _step_list(text: str) -> list[int]:
    """``--steps 0,500,1000``: one non-negative integer per checkpoint."""
    try:
        steps = [int(v) for v in text.split(",")]
    except ValueError:
        steps = [-1]
    if any(v < 0 for v in steps):
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers, got {text!r}")
    return steps


def _print_summary(summary: dict, written: list[Path], args: argparse.Namespace) -> None:
    """Record the files written in ``summary`` and print it as JSON on stdout with ``--json``."""
    summary["outputs"] = [str(p) for p in written]
    if args.json:
        print(json.dumps(summary, indent=2, default=str))


def _analysis_options(args: argparse.Namespace) -> dict:
    """The options of :func:`netinit.analyze` that the serial and the parallel runs share."""
    return {"layers": args.layers, "centrality": None if args.centrality == "none" else args.centrality,
            "k": args.k, "seed": args.seed, "null": args.null, "null_model": args.null_model,
            "network": args.network, "correlation": args.correlation}


def _analyze_parallel(args: argparse.Namespace, path: str):
    """The :class:`~netinit.analyzer.Analysis` of ``--workers N`` / ``--scheduler ADDRESS``; refuses
    the options the workers cannot reproduce (they open the file by its path alone)."""
    from netinit.parallel import analyze_parallel

    given = [opt for opt, value in (("--data", args.data), ("--key", args.key), ("--layout", args.layout),
                                    ("--embeddings", args.embeddings), ("--device", args.device)) if value]
    if given:
        raise SystemExit(f"netinit analyze: --workers/--scheduler cannot be combined with {', '.join(given)}; "
                         "drop them, or analyse in one process (--workers 1, no --scheduler)")
    if not args.quiet:
        where = f"on {args.scheduler}" if args.scheduler else f"on a local cluster of {args.workers} worker processes"
        _err(f"netinit analyze: one task per layer {where}")
    return analyze_parallel(path, workers=args.workers, scheduler=args.scheduler, **_analysis_options(args))


def _analyze_one(args: argparse.Namespace, path: str, ckpt):
    """The :class:`~netinit.analyzer.Analysis` of one checkpoint, serial or on Dask workers."""
    from netinit.analyzer import analyze

    if args.workers > 1 or args.scheduler:  # one Dask task per layer
        return _analyze_parallel(args, path)
    data = _data_batch(args.data, args.samples, args.seed) if args.data else None
    return analyze(ckpt, embeddings=args.embeddings, data=data, activation=args.activation, device=args.device,
                   progress=_progress("analyse", args.quiet), **_analysis_options(args))


def _analyze_trajectory(args: argparse.Namespace, paths: list[str]) -> int:
    """Several checkpoints: one stacked set of tables with ``checkpoint`` and ``step`` columns."""
    from netinit.report import write_trajectory_report
    from netinit.trajectory import Trajectory, parse_step

    if args.steps is not None and len(args.steps) != len(paths):
        raise SystemExit(f"netinit analyze: --steps gives {len(args.steps)} steps for {len(paths)} checkpoints "
                         f"({', '.join(paths[:4])}{', ...' if len(paths) > 4 else ''}); give one per checkpoint")
    analyses = []
    for i, path in enumerate(paths, start=1):
        if not args.quiet:
            _err(f"netinit analyze: checkpoint {i} of {len(paths)}: {path}")
        analyses.append(_analyze_one(args, path, _open(path, args)))
    steps = args.steps if args.steps is not None else [parse_step(p) for p in paths]
    traj = Trajectory(analyses, paths, steps, options=dict(analyses[0].options))
    written = (write_trajectory_report(traj, args.output, plots=not args.no_plots,
                                       neurons_format=args.neurons_format, overwrite=args.force)
               if args.output is not None else [])
    summary = traj.summary()
    _print_summary(summary, written, args)
    if not args.quiet:
        _err(f"netinit: analysed {len(paths)} checkpoints ({len(traj.layers)} layer rows)"
             + (f"; wrote {len(written)} files to {args.output} (open {Path(args.output) / 'report.html'})"
                if written else ""))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from netinit.layers import find_layers
    from netinit.report import write_report
    from netinit.trajectory import expand_checkpoints

    if args.output is None and not args.json:
        raise SystemExit("netinit analyze: give an output folder with -o DIR (or --json)")
    if args.null_model is not None and args.null is None:
        raise SystemExit("netinit analyze: --null-model needs --null K (the number of shuffled copies)")
    args.null_model = args.null_model or "matrix"
    paths = expand_checkpoints(args.checkpoint)
    if len(paths) > 1:
        if args.data:
            raise SystemExit("netinit analyze: --data analyses one checkpoint; give one, or drop --data")
        return _analyze_trajectory(args, paths)
    if args.steps is not None:
        raise SystemExit("netinit analyze: --steps is for several checkpoints (a list, a glob or a folder)")
    path = paths[0]
    ckpt = _open(path, args)
    result = _analyze_one(args, path, ckpt)
    written: list[Path] = []
    if args.output is not None:
        by_name = {layer.name: layer for layer in find_layers(ckpt, layers=args.layers,
                                                              embeddings=args.embeddings)[0]}
        written = write_report(result, args.output, plots=not args.no_plots,
                               neurons_format=args.neurons_format,
                               matrix_of=lambda n: by_name[n].matrix(), overwrite=args.force)
    summary = result.summary()
    _print_summary(summary, written, args)
    if not args.quiet:
        where = f" (weights under {result.container!r})" if result.container else ""
        _err(f"netinit: {path}{where}: {result.coverage.text()}")
        if written:
            _err(f"netinit: wrote {len(written)} files to {args.output} (open {Path(args.output) / 'report.html'})")
    return 0


def _check_report_path(args: argparse.Namespace, input_path: str | os.PathLike) -> None:
    """Refuse a ``--report`` path that would clobber the input, the rewired checkpoint or an
    existing file (without ``--force``), before anything is written."""
    from netinit._io import check_not_input
    from netinit.errors import OutputError

    report = Path(args.report)
    try:
        check_not_input(report, input_path)
    except OutputError:
        raise OutputError(f"{args.report}: --report names the input checkpoint; choose another path "
                          "for the CSV") from None
    if args.output is not None and report.resolve() == Path(args.output).resolve():
        raise OutputError(f"{args.report}: --report names the output checkpoint (-o); choose another path for the CSV")
    if report.is_dir():
        raise OutputError(f"{args.report}: --report names a folder; give the path of a CSV file")
    if report.exists() and not args.force:
        raise OutputError(f"{args.report}: the report file exists already; choose another path or pass --force")
    parent = report.parent if str(report.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{args.report}: the folder {parent} does not exist")


def _check_cuda_index(device: str) -> None:
    """``cuda:N`` names a GPU this machine has (``cuda`` without a GPU is refused by the rewiring)."""
    import torch

    from netinit.errors import DeviceError

    if torch.cuda.is_available() and int(device.partition(":")[2]) >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r} asked for, but this machine has "
                          f"{_n(torch.cuda.device_count(), 'CUDA device')} (cuda:0 to cuda:{torch.cuda.device_count() - 1})")


def cmd_rewire(args: argparse.Namespace) -> int:
    from netinit._io import atomic_path
    from netinit.rewire.checkpoint import rewire_checkpoint

    if args.output is None and not args.dry_run:
        raise SystemExit("netinit rewire: give the output file with -o PATH (or --dry-run)")
    ckpt = _open(args.checkpoint, args)
    if args.report is not None:
        _check_report_path(args, ckpt.path)
    if args.device.startswith("cuda:"):
        _check_cuda_index(args.device)
    report = rewire_checkpoint(ckpt, None if args.dry_run else args.output, seed=args.seed,
                               layers=args.layers, passes=args.passes, device=args.device,
                               overwrite=args.force, progress=_progress("rewire", args.quiet))
    if args.report is not None:
        with atomic_path(args.report) as tmp:
            report.to_csv(tmp, index=False)
    if not args.quiet:
        import pandas as pd

        with pd.option_context("display.max_rows", 500, "display.width", 160, "display.float_format", "{:.4g}".format):
            shown = report[["layer", "shape", "in_strength_var_before", "in_strength_var_after",
                            "out_strength_var_before", "out_strength_var_after"]]
            print(shown.to_string(index=False))
        what = "would rewire" if args.dry_run else "rewired"
        _err(f"netinit: {what} {_n(len(report), 'layer')} of {args.checkpoint} (seed {args.seed}, passes {args.passes})"
             + ("" if args.dry_run else f"; wrote {args.output}")
             + (f"; report in {args.report}" if args.report else ""))
    return 0


def _experiments_cli():
    """The experiment commands (:mod:`netinit.experiments.cli`); they depend on the core, never the
    reverse, and need the ``experiments`` extra only when they run."""
    import netinit.experiments.cli

    return netinit.experiments.cli


def cmd_compare(args: argparse.Namespace) -> int:
    if args.b is None:  # one positional argument
        if _experiments_cli().is_results_dir(args.a):
            raise SystemExit(f"netinit compare: {args.a} is an experiment results folder; its statistics are "
                             f"`netinit results {args.a} -o DIR` (compare takes two checkpoints)")
        raise SystemExit("netinit compare: give two checkpoints, netinit compare A B -o DIR "
                         "(an experiment's results folder: netinit results RESULTS -o DIR)")
    from netinit.compare import compare_checkpoints
    from netinit.report_compare import write_comparison

    if args.output is None and not args.json:
        raise SystemExit("netinit compare: give an output folder with -o DIR (or --json)")
    c = compare_checkpoints(_open(args.a, args), _open(args.b, args), layers=args.layers, allow_mismatch=args.allow_mismatch,
                            progress=_progress("compare", args.quiet))
    written = write_comparison(c, args.output, plots=not args.no_plots, overwrite=args.force) if args.output else []
    summary = c.summary()
    _print_summary(summary, written, args)
    if not args.quiet:
        _err(f"netinit: compared {_n(len(c.layers), 'shared layer')}"
             + (f"; {len(c.unmatched)} unmatched (see unmatched.csv)" if len(c.unmatched) else "")
             + (f"; wrote {len(written)} files to {args.output}" if written else ""))
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    from netinit.formats import available_formats

    print(f"{'format':<12} {'suffixes':<26} {'access':<12} {'needs':<8} description")
    for fmt in available_formats():
        access = "read, write" if fmt.writes else "read"
        print(f"{fmt.name:<12} {' '.join(fmt.suffixes):<26} {access:<12} {fmt.requires or '-':<8} {fmt.description}")
    return 0


_CHECKPOINT_HELP = ("checkpoint file (PyTorch, safetensors, ONNX, Keras .keras/.h5, Flax msgpack, TorchScript, "
                    ".npz) or sharded checkpoint (its index JSON or folder); `netinit formats` lists the formats")


def build_parser() -> argparse.ArgumentParser:
    from netinit import __version__

    parser = argparse.ArgumentParser(prog="netinit", description=(
        "Neural-network weights as weighted graphs: analyse checkpoints, rewire layers."))
    parser.add_argument("--version", action="version", version=f"netinit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)

    a = sub.add_parser("analyze", aliases=["analyse"], help="per-layer and per-neuron statistics, plots, report")
    a.add_argument("checkpoint", nargs="+",
                   help=_CHECKPOINT_HELP + "; several checkpoints (paths, a quoted glob such as 'runs/step_*.pt', "
                        "or a folder of checkpoint files) give one table over training with checkpoint and step "
                        "columns and trajectory figures")
    a.add_argument("-o", "--output", help="output folder (created; must be empty or hold earlier netinit outputs)")
    a.add_argument("--layers", metavar="REGEX", help="analyse only layers whose tensor name matches")
    a.add_argument("--embeddings", action="store_true", help="include embedding matrices")
    a.add_argument("--centrality", choices=["none", "auto", "exact", "sampled"], default="none",
                   help="add neuron centralities (auto: exact on small layers, sampled on large ones)")
    a.add_argument("-k", type=_positive_int, default=64, help="source nodes of sampled centralities (default 64)")
    a.add_argument("--seed", type=_nonnegative_int, default=0,
                   help="seed of sampled centralities, --null shuffles and Leiden communities; each layer's "
                        "stream derives from it and the layer's name (default 0)")
    a.add_argument("--key", help="in a checkpoint holding several weight sets, the key of the one to use")
    a.add_argument("--data", metavar="NAME|PATH",
                   help="add activation diversity of an MLP checkpoint on data: digits, mnist1d, synthetic, "
                        "or MNIST-style IDX files / .npz")
    a.add_argument("--activation", choices=["relu", "tanh", "sigmoid", "gelu"], default="relu",
                   help="nonlinearity between the MLP's layers with --data (default relu)")
    a.add_argument("--samples", type=int, default=512, help="data samples for activation statistics (default 512)")
    a.add_argument("--neurons-format", choices=["csv", "parquet"], default="csv")
    a.add_argument("--no-plots", action="store_true", help="tables only")
    a.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    a.add_argument("--force", action="store_true", help="write into a folder that holds other files")
    a.add_argument("--layout", action="append", metavar="REGEX=in_out|out_in",
                   help="stored orientation of 2-D weights matching REGEX (repeatable), e.g. 'c_proj=in_out'")
    a.add_argument("--steps", type=_step_list, metavar="S1,S2,...",
                   help="training steps of several checkpoints, in order (default: parsed from names such as "
                        "step_1000, epoch3, ckpt-500)")
    a.add_argument("--null", type=_null_count, metavar="K",
                   help="judge every layer statistic against K shuffled copies of the same weights: adds "
                        "<stat>_null_mean, <stat>_null_sd and <stat>_z columns (and a z for each chain "
                        "correlation); K=100 takes about 1 to 2 minutes on a 4096x4096 layer on 2 cores, nearly all "
                        "of it drawing the permutations")
    a.add_argument("--null-model", choices=["matrix", "rows", "columns"],
                   help="with --null: shuffle all weights (matrix, default), within each row (each output "
                        "neuron keeps its incoming weights) or within each column")
    a.add_argument("--device", type=_device, default=None,
                   help="compute the layer and neuron tables through torch on this device (cuda, cuda:N or cpu), one "
                        "layer at a time; default: numpy on the CPU")
    a.add_argument("--correlation", choices=["auto", "exact", "sampled"], default="auto",
                   help="neuron correlations: exact, or estimated from a seeded sample of neurons with a standard "
                        "error column beside each estimate (auto, default: exact on layers up to 1024 neurons "
                        "per side, sampled above)")
    a.add_argument("--network", action="store_true",
                   help="add network measures on |w|: clustering, harmonic and current-flow closeness, subgraph "
                        "centrality, neural persistence, Leiden communities; the first three are slow above about "
                        "2048 neurons per side and are skipped (with the reason in network_skipped) on layers "
                        "wider than 2048, subgraph centrality and communities on layers of more than 2048x2048 "
                        "weights")
    a.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="analyse the layers in parallel, one Dask task per layer, on a local cluster of N "
                        "worker processes (default 1: in this process)")
    a.add_argument("--scheduler", metavar="ADDRESS", type=_scheduler_address,
                   help="analyse the layers in parallel on the Dask scheduler at ADDRESS (e.g. tcp://host:8786)")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    a.set_defaults(func=cmd_analyze)

    r = sub.add_parser("rewire", help="PA-rewire the weight layers and save the checkpoint in its format")
    r.add_argument("checkpoint", help=_CHECKPOINT_HELP + "; never modified")
    r.add_argument("-o", "--output", help="output checkpoint, in the format of the input (a folder or index "
                                          "JSON for a sharded one)")
    r.add_argument("--seed", type=_nonnegative_int, default=0,
                   help="run seed, a non-negative integer (default 0); each layer's stream derives from it "
                        "and its name")
    r.add_argument("--layers", metavar="REGEX", help="rewire only layers whose tensor name matches")
    r.add_argument("--passes", choices=["both", "rows", "cols"], default="both",
                   help="rows: reorder each output neuron's incoming weights (a row), which evens out the "
                        "input neurons' out-strengths (lowers out_strength_var); cols: reorder each input "
                        "neuron's outgoing weights (a column), which evens out the output neurons' "
                        "in-strengths (lowers in_strength_var); both (default): rows, then cols")
    r.add_argument("--device", type=_device, default="cpu",
                   help="cpu (numpy kernel, default), cuda or cuda:N (torch kernel on a GPU)")
    r.add_argument("--key", help="in a checkpoint holding several weight sets, the key of the one to use")
    r.add_argument("--report", metavar="CSV", help="write the per-layer strength variances and their ratios to "
                                                   "this CSV (not the input or output; --force to replace a file)")
    r.add_argument("--dry-run", action="store_true", help="report what rewiring does, write nothing")
    r.add_argument("--force", action="store_true",
                   help="replace an existing output or report file (never the input)")
    r.add_argument("--layout", action="append", metavar="REGEX=in_out|out_in",
                   help="stored orientation of 2-D weights matching REGEX (repeatable), e.g. 'c_proj=in_out'")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar or table")
    r.set_defaults(func=cmd_rewire)

    c = sub.add_parser("compare", help="compare two checkpoints layer by layer (e.g. initial vs trained)")
    c.add_argument("a", help="first checkpoint (A): " + _CHECKPOINT_HELP)
    c.add_argument("b", nargs="?", help="second checkpoint (B), in any of those formats (not necessarily A's)")
    c.add_argument("-o", "--output", help="output folder for tables, figures and report.html")
    c.add_argument("--layers", metavar="REGEX", help="compare only layers whose tensor name matches")
    c.add_argument("--allow-mismatch", action="store_true",
                   help="list layers whose shape changed instead of stopping")
    c.add_argument("--no-plots", action="store_true", help="tables only")
    c.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    c.add_argument("--force", action="store_true", help="write into a folder that holds other files")
    c.add_argument("--layout", action="append", metavar="REGEX=in_out|out_in",
                   help="stored orientation of 2-D weights matching REGEX (repeatable), e.g. 'c_proj=in_out'")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    c.set_defaults(func=cmd_compare)
    subcommands = [a, r, c, *_experiments_cli().add_experiment_commands(sub)]

    f = sub.add_parser("formats", help="list supported checkpoint formats")
    f.set_defaults(func=cmd_formats)
    for p in subcommands + [f]:  # --debug works before or after the subcommand
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
    return parser


def _message(exc: BaseException) -> str:
    """The one-line message of an error: Python's own ``[Errno 2] No such file or directory: 'x'``
    of a file that could not be opened becomes ``x: no such file or directory``."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror and str(exc).startswith("[Errno"):
        return f"{exc.filename}: {exc.strerror[:1].lower()}{exc.strerror[1:]}"
    from netinit.errors import NonFiniteError

    if isinstance(exc, NonFiniteError):  # the other layers can still be analysed or rewired
        return f"{exc} (leave that layer out with --layers REGEX)"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from netinit.errors import NetinitError

    try:
        return int(args.func(args))
    except BrokenPipeError:  # the reader of stdout went away (`netinit analyze x --json | head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
        return 141
    except (NetinitError, OSError, TimeoutError) as exc:  # OSError: files, and a Dask scheduler out of reach
        if args.debug:
            raise
        _err(f"netinit: error: {_message(exc)}")
        return 1
    except ModuleNotFoundError as exc:  # an optional dependency: say which extra brings it
        extra = _EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None or args.debug:
            raise
        _err(f"netinit: error: this needs the {extra} extra: pip install 'netinit[{extra}]' (no module {exc.name!r})")
        return 1
    except KeyboardInterrupt:
        _err("netinit: interrupted")
        return 130


#: optional modules -> the extra that installs them (pyproject.toml)
_EXTRAS = {"dask": "experiments", "distributed": "experiments", "sklearn": "experiments",
           "scikit_posthocs": "experiments", "mnist1d": "experiments", "onnx": "onnx", "h5py": "keras",
           "gguf": "gguf"}


if __name__ == "__main__":
    sys.exit(main())

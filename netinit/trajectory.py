"""Trajectories: the analysis of several checkpoints of one model (over training) as tidy tables.

:func:`analyze_trajectory` runs :func:`netinit.analyze` on every checkpoint and stacks the tables
with two leading columns, ``checkpoint`` (the path as given or found) and ``step`` (the training
step: given, or parsed from the name; empty where neither says). Checkpoints are named by

* paths, in the order given;
* glob patterns (``'runs/ckpt-*.pt'``), and
* folders of checkpoints (a folder that is not itself a checkpoint: not a sharded or model
  folder), whose entries are the files with a checkpoint suffix and the sub-folders
  (``checkpoint-500/`` as ``transformers``' Trainer writes them);

the last two are ordered by step where every name gives one, by name otherwise.

A step is the number after ``step``, ``steps``, ``epoch``, ``ckpt``, ``checkpoint``, ``iter``,
``iteration`` or ``it`` in the file or folder name (the last such number, case-insensitive, with
an optional ``-``, ``_``, ``=`` or ``.`` between): ``step_1000.pt`` -> 1000, ``epoch3.safetensors``
-> 3, ``ckpt-500`` -> 500, ``model_init.pt`` -> none.

Nothing here prints, plots or writes files (:func:`netinit.report.write_trajectory_report`
does). Any two checkpoints of a trajectory can be compared neuron by neuron with
:func:`netinit.compare_checkpoints` (``netinit compare A B``).
"""

from __future__ import annotations

import errno
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from netinit.analyzer import Analysis

__all__ = ["Trajectory", "analyze_trajectory", "expand_checkpoints", "parse_step"]

_STEP = re.compile(r"(?<![a-z])(?:steps?|epoch|ckpt|checkpoint|iter(?:ation)?|it)[-_=.]?(\d+)(?!\d)",
                   re.IGNORECASE)
_GLOB_CHARS = set("*?[")


def parse_step(name: str | os.PathLike) -> int | None:
    """The training step in a checkpoint's file or folder name, or None (module docstring).

    Examples
    --------
    >>> [parse_step(n) for n in ("step_1000.pt", "runs/epoch3.safetensors", "ckpt-500", "model_init.pt")]
    [1000, 3, 500, None]
    """
    found = _STEP.findall(Path(name).name)
    return int(found[-1]) if found else None


def _ordered(paths: list[str]) -> list[str]:
    steps = [parse_step(p) for p in paths]
    if paths and all(s is not None for s in steps):
        return [p for _, p in sorted(zip(steps, paths), key=lambda t: (t[0], t[1]))]
    return sorted(paths)


def _entries(folder: Path) -> list[str]:
    """The checkpoints of a folder of checkpoints: files with a checkpoint suffix, sub-folders."""
    from netinit.formats import available_formats

    suffixes = {s for f in available_formats() for s in f.suffixes if s.startswith(".") and s != ".json"}
    out = []
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or entry.name.endswith(".index.json") or entry.suffix.lower() in suffixes:
            out.append(str(entry))
    return out


def expand_checkpoints(specs: Iterable[str | os.PathLike]) -> list[str]:
    """The checkpoints named by paths, glob patterns and folders of checkpoints, in order.

    A folder that opens as one checkpoint (sharded, a model folder) is one checkpoint; any other
    folder stands for its entries (module docstring). A path that does not exist and is no
    pattern is kept, so that opening it gives the usual error.

    Raises
    ------
    FileNotFoundError
        A glob pattern matches nothing, or a folder holds no checkpoint.
    """
    from netinit.errors import NetinitError
    from netinit.formats import load_checkpoint

    out: list[str] = []
    for spec in map(str, specs):
        p = Path(spec)
        if not p.exists() and _GLOB_CHARS & set(spec):
            matches = glob.glob(spec)
            if not matches:
                raise FileNotFoundError(errno.ENOENT, "no checkpoint matches this pattern", spec)
            out += _ordered(matches)
        elif p.is_dir():
            try:
                load_checkpoint(p).close()
                out.append(spec)
            except NetinitError as exc:
                found = _entries(p)
                if not found:
                    why = str(exc).removeprefix(f"{spec}: ").removeprefix(f"{p}: ")
                    raise FileNotFoundError(errno.ENOENT, f"not a checkpoint ({why}) and holds no checkpoint "
                                            "files", spec) from None
                out += _ordered(found)
        else:
            out.append(spec)
    return out


def _steps(checkpoints: Sequence[str], steps: Sequence[int] | None) -> list[int | None]:
    if steps is None:
        return [parse_step(c) for c in checkpoints]
    steps = list(steps)
    if len(steps) != len(checkpoints):
        raise ValueError(f"steps must give one step per checkpoint: {len(steps)} steps for "
                         f"{len(checkpoints)} checkpoints")
    bad = [s for s in steps if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad:
        raise ValueError(f"steps must be non-negative integers, got {bad[0]!r}")
    return steps


def _stack(frames: list[pd.DataFrame], checkpoints: list[str], steps: list[int | None]) -> pd.DataFrame:
    parts = []
    for df, ckpt, step in zip(frames, checkpoints, steps):
        df = df.copy()
        df.insert(0, "step", pd.array([step] * len(df), dtype="Int64"))
        df.insert(0, "checkpoint", pd.array([ckpt] * len(df), dtype="string"))
        parts.append(df)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["checkpoint", "step"])


@dataclass
class Trajectory:
    """The analyses of several checkpoints and their stacked tables.

    Attributes
    ----------
    analyses : list of Analysis
        One per checkpoint, in order.
    checkpoints : list of str
        The checkpoints as given or found.
    steps : list of int or None
        Their steps (None where unknown).
    layers, neurons, chains, skipped : DataFrame
        The tables of :class:`~netinit.analyzer.Analysis`, stacked, with ``checkpoint`` and
        ``step`` (nullable integer) as the first two columns.
    """

    analyses: list[Analysis]
    checkpoints: list[str]
    steps: list[int | None]
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (len(self.analyses) == len(self.checkpoints) == len(self.steps)):
            raise ValueError("a Trajectory needs one analysis and one step per checkpoint")
        for table in ("layers", "neurons", "chains", "skipped"):
            setattr(self, table, _stack([getattr(a, table) for a in self.analyses], self.checkpoints,
                                        self.steps))

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: every checkpoint's :meth:`Analysis.summary` with its step."""
        return {"n_checkpoints": len(self.analyses),
                "checkpoints": [{"step": step, **a.summary()} for a, step in zip(self.analyses, self.steps)],
                "options": self.options}


def analyze_trajectory(
    sources: Iterable[str | os.PathLike],
    *,
    steps: Sequence[int] | None = None,
    progress: Any = None,
    **options: Any,
) -> Trajectory:
    """:func:`netinit.analyze` of every checkpoint of a trajectory, stacked (module docstring).

    Parameters
    ----------
    sources : iterable of path-like
        Checkpoint paths, glob patterns or folders of checkpoints (:func:`expand_checkpoints`).
    steps : sequence of int, optional
        The step of each checkpoint, in order; default: parsed from the names (:func:`parse_step`).
    progress : callable, optional
        Wraps the iteration over checkpoints (e.g. ``tqdm``).
    **options
        Passed to :func:`netinit.analyze` for every checkpoint (``layers``, ``null``,
        ``network``, ``seed``, ...).

    Returns
    -------
    Trajectory

    Raises
    ------
    ValueError
        No checkpoint, or ``steps`` of another length or not non-negative integers.
    FileNotFoundError
        A pattern matching nothing, a folder without checkpoints, a missing file.

    Examples
    --------
    >>> t = analyze_trajectory(["data/examples/mlp_digits_init.safetensors",
    ...                         "data/examples/mlp_digits.safetensors"], steps=[0, 30])
    >>> t.layers[["step", "layer"]].head(2).values.tolist()  # doctest: +SKIP
    [[0, '0.weight'], [0, '2.weight']]
    """
    from netinit.analyzer import analyze

    checkpoints = expand_checkpoints(sources)
    if not checkpoints:
        raise ValueError("no checkpoint to analyse: give paths, glob patterns or folders of checkpoints")
    step_list = _steps(checkpoints, steps)
    items = progress(checkpoints) if progress is not None else checkpoints
    analyses = [analyze(c, **options) for c in items]
    recorded = dict(analyses[0].options)
    return Trajectory(analyses, checkpoints, step_list, options=recorded)

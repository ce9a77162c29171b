"""Rewire the layers of a checkpoint file and export it in its own format.

Each selected layer's canonical matrix is rewired with its own random stream, derived from the
run seed and the layer's name, so a layer's result does not depend on which other layers were
selected. The rewired matrices are written back in the stored shape and dtype; every other
tensor and all metadata are kept (see :func:`netinit.formats.save_checkpoint`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from netinit._io import check_not_input
from netinit._rng import layer_generator, torch_generator
from netinit.errors import DeviceError, DtypeError, OutputError
from netinit.formats import Checkpoint, load_checkpoint, save_checkpoint
from netinit.layers import Layer, find_layers
from netinit.metrics.strength import strength_variances
from netinit.rewire._checks import Passes
from netinit.rewire._cpu import plan_stacks
from netinit.rewire.report import REPORT_COLUMNS, report_frame, report_row

__all__ = ["rewire_checkpoint", "REPORT_COLUMNS"]


def _rewire_matrix(W: np.ndarray, seed: int, name: str, passes: str, device: str) -> np.ndarray:
    """One layer on a torch device (the CPU path is :func:`_stacked`)."""
    import torch

    from netinit.rewire.pa import pa_rewire_

    t = torch.from_numpy(np.ascontiguousarray(W)).to(device)
    generator = torch_generator(seed, name, t.device)
    pa_rewire_(t, generator=generator, passes=passes)
    return t.cpu().numpy()


def _stacked(found: list[Layer], seed: int, passes: str) -> Callable[[Layer], tuple[np.ndarray, np.ndarray]]:
    """``f(layer) -> (W, rewired W)`` for the CPU, rewiring layers of one matrix shape and dtype
    together (:func:`netinit.rewire._cpu.plan_stacks`) when the first of them is asked for; each
    result is exactly ``pa_rewire(W, rng=layer_generator(seed, name))``."""
    from netinit.rewire.pa import rewire_stack

    keys = [(layer.matrix_shape, layer.dtype) for layer in found]
    plan = plan_stacks(keys, [layer.matrix_shape for layer in found], [True] * len(found))
    stack_of = {i: stack for stack in plan for i in stack}
    index = {id(layer): i for i, layer in enumerate(found)}
    ready: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def get(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
        i = index[id(layer)]
        if i not in ready:
            stack = stack_of[i]
            Ws = [found[j].matrix() for j in stack]
            out = rewire_stack(Ws, [layer_generator(seed, found[j].name) for j in stack], passes)
            ready.update({j: (W, W2) for j, W, W2 in zip(stack, Ws, out)})
        return ready.pop(i)

    return get


def _check_suffix(out: Path, ckpt: Checkpoint) -> None:
    """Refuse an output name that promises another format than the one that will be written.

    Checked before any layer is rewired, so a bad name fails at once: a sharded checkpoint's new
    index must also end with its shards' index suffix (:func:`netinit.formats.sharded.check_index_name`).
    """
    from netinit.formats import available_formats, get_format

    suffix = out.suffix.lower()
    own = get_format(ckpt.format)
    kind = getattr(ckpt, "kind", None)
    if ckpt.format == "sharded" and kind is not None and not out.is_dir():
        from netinit.formats.sharded import check_index_name, is_index_path

        if is_index_path(out):
            check_index_name(out, kind)
    if not suffix or suffix in own.suffixes or suffix == ckpt.path.suffix.lower() or out.is_dir():
        return
    other = [f.name for f in available_formats() if suffix in f.suffixes]
    if other and own.name == "folder":
        raise OutputError(f"{out}: the suffix {suffix} names the {other[0]} format, but a model folder is rewritten "
                          f"as a model folder; give a folder path (e.g. {out.with_suffix('')})")
    if other:
        raise OutputError(f"{out}: the suffix {suffix} names the {other[0]} format, but the rewired checkpoint is "
                          f"written in its own format ({own.name}); use {' or '.join(own.suffixes)}")


def rewire_checkpoint(
    source: Checkpoint | os.PathLike | str,
    out: os.PathLike | str | None,
    *,
    seed: int = 0,
    layers: str | None = None,
    passes: Passes = "both",
    device: str = "cpu",
    overwrite: bool = False,
    progress: Callable[[Iterable[Layer]], Iterable[Layer]] | None = None,
) -> pd.DataFrame:
    """PA-rewire every selected weight layer of a checkpoint and save the result.

    Parameters
    ----------
    source : Checkpoint or path
        The checkpoint to rewire (never modified).
    out : path or None
        Where to write the rewired checkpoint, in the source's format. ``None`` is a dry run:
        the report is computed, nothing is written.
    seed : int, default 0
        Run seed; layer ``name`` draws from the stream of ``(seed, name)``.
    layers : str, optional
        Regular expression on tensor names selecting the layers to rewire.
    passes : {"both", "rows", "cols"}
        Which passes of :func:`netinit.pa_rewire` to run.
    device : str, default "cpu"
        ``"cpu"`` runs the numpy kernel; ``"cuda"`` (or ``"cuda:1"``) the torch kernel on a GPU.
    overwrite : bool, default False
        Replace an existing file at ``out`` (never the input).
    progress : callable, optional
        Wraps the iteration over layers (e.g. ``tqdm``).

    Returns
    -------
    DataFrame
        One row per rewired layer: in/out strength variance before and after and their ratios.

    Raises
    ------
    OutputError
        ``out`` is the input, or exists and ``overwrite`` is false.
    NoLayersError, ShapeError, NonFiniteError, DtypeError
        Nothing to rewire, or a layer that cannot be rewired.
    """
    ckpt = source if isinstance(source, Checkpoint) else load_checkpoint(source)
    if out is not None:
        check_not_input(out, ckpt.path)
        _check_suffix(Path(out), ckpt)
        if Path(out).exists() and not overwrite:
            raise OutputError(f"{out}: exists already; choose another path or pass --force")
    if device != "cpu":
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} asked for, but CUDA is not available here")
    found, _ = find_layers(ckpt, layers=layers)
    quantised = [layer for layer in found if layer.quant is not None]
    if quantised:
        q = quantised[0]
        raise DtypeError(f"{ckpt.path}: layer {q.name!r} is quantised ({q.quant.scheme}); rewire the full-precision "
                         f"checkpoint and quantise after (or leave the quantised layers out with --layers)")
    rows = []
    replacements: dict[str, np.ndarray] = {}
    stacked = _stacked(found, seed, passes) if device == "cpu" else None
    for layer in (progress(found) if progress is not None else found):
        if stacked is not None:
            W, W2 = stacked(layer)
        else:
            W = layer.matrix()
            W2 = _rewire_matrix(W, seed, layer.name, passes, device)
        rows.append(report_row(layer, strength_variances(W), strength_variances(W2)))
        if layer.index is None:
            replacements[layer.name] = layer.from_matrix(W2)
        else:  # one expert of a stack: the stack is written back whole, each expert in its own place
            stack = replacements.get(layer.stored_name)
            if stack is None:
                stack = replacements[layer.stored_name] = np.array(ckpt.load(layer.stored_name), copy=True)
            stack[layer.index] = layer.from_matrix(W2)
    if out is not None:
        save_checkpoint(ckpt, out, replacements)
    return report_frame(rows)

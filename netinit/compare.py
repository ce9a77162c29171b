"""Compare two checkpoints layer by layer: how much did the weights and their structure change?

Layers are matched by tensor name (after container and prefix handling, so a Lightning ``.ckpt``
compares with a plain state dict, and a ``.pt`` with a ``.safetensors``). For each shared layer:

* ``rel_change`` = ``||W_b - W_a||_F / ||W_a||_F`` (relative Frobenius change);
* in/out strength variance in A and B and their ratio B/A;
* ``in_strength_corr`` / ``out_strength_corr``: Pearson correlation between A's and B's neuron
  strengths (does a strong neuron stay strong?);
* the diversity summaries of both (mean |r| between incoming weight vectors).

Per neuron: its strength in A and in B. Nothing here prints or writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from netinit.errors import NoLayersError, ShapeError
from netinit.formats import Checkpoint, load_checkpoint
from netinit.layers import Layer, find_layers
from netinit.metrics.correlation import correlation_summary

__all__ = ["Comparison", "compare_checkpoints"]


@dataclass
class Comparison:
    """Result of :func:`compare_checkpoints`.

    Attributes
    ----------
    layers : DataFrame
        One row per shared layer (see the module docstring for the columns).
    neurons : DataFrame
        ``layer, side, neuron, strength_a, strength_b, change``; side ``"out"`` rows are output
        neurons with their in-strength, side ``"in"`` rows input neurons with their out-strength.
    unmatched : DataFrame
        ``layer, status, shape_a, shape_b`` for layers only in A, only in B, or of another shape.
    """

    a: str
    b: str
    layers: pd.DataFrame
    neurons: pd.DataFrame
    unmatched: pd.DataFrame
    options: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        cols = ["layer", "shape", "rel_change", "in_strength_var_a", "in_strength_var_b",
                "in_strength_corr", "corr_in_mean_abs_a", "corr_in_mean_abs_b"]
        recs = self.layers[cols].to_dict(orient="records")
        return {"a": self.a, "b": self.b, "n_layers": int(len(self.layers)),
                "unmatched": self.unmatched.to_dict(orient="records"),
                "layers": [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in recs]}


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    den = float(np.sqrt((x @ x) * (y @ y)))
    return float(x @ y / den) if den > 0 else float("nan")


def _shape(s: tuple[int, ...]) -> str:
    return "x".join(map(str, s))


def compare_checkpoints(
    a: Checkpoint | os.PathLike | str,
    b: Checkpoint | os.PathLike | str,
    *,
    layers: str | None = None,
    allow_mismatch: bool = False,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> Comparison:
    """Compare the weight layers shared by two checkpoints.

    Parameters
    ----------
    a, b : Checkpoint or path
        The checkpoints (any formats; e.g. the initial and the trained weights).
    layers : str, optional
        Regular expression selecting layers by tensor name.
    allow_mismatch : bool, default False
        Layers present in both with different shapes are listed in ``unmatched`` instead of
        raising.
    progress : callable, optional
        Wraps the iteration over layers.

    Returns
    -------
    Comparison

    Raises
    ------
    NoLayersError
        The checkpoints share no weight layer name.
    ShapeError
        A shared layer changed shape (unless ``allow_mismatch``).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> np.savez(os.path.join(d, "a.npz"), fc=np.ones((2, 2)))
    >>> np.savez(os.path.join(d, "b.npz"), fc=np.full((2, 2), 1.5))
    >>> c = compare_checkpoints(os.path.join(d, "a.npz"), os.path.join(d, "b.npz"))
    >>> float(c.layers.loc[0, "rel_change"])
    0.5
    """
    ca = a if isinstance(a, Checkpoint) else load_checkpoint(a)
    cb = b if isinstance(b, Checkpoint) else load_checkpoint(b)
    la = {layer.name: layer for layer in find_layers(ca, layers=layers)[0]}
    lb = {layer.name: layer for layer in find_layers(cb, layers=layers)[0]}
    unmatched = [{"layer": n, "status": "only in A", "shape_a": _shape(la[n].shape), "shape_b": ""}
                 for n in la if n not in lb]
    unmatched += [{"layer": n, "status": "only in B", "shape_a": "", "shape_b": _shape(lb[n].shape)}
                  for n in lb if n not in la]
    shared: list[tuple[Layer, Layer]] = []
    for name, layer_a in la.items():
        if name not in lb:
            continue
        layer_b = lb[name]
        if layer_a.matrix_shape != layer_b.matrix_shape:
            if not allow_mismatch:
                raise ShapeError(f"{cb.path}: layer {name!r} has shape {layer_b.shape} in B but "
                                 f"{layer_a.shape} in {ca.path} (pass allow_mismatch / --allow-mismatch "
                                 f"to list such layers and compare the rest)")
            unmatched.append({"layer": name, "status": "shape changed", "shape_a": _shape(layer_a.shape),
                              "shape_b": _shape(layer_b.shape)})
            continue
        shared.append((layer_a, layer_b))
    if not shared:
        raise NoLayersError(f"{ca.path} and {cb.path} share no weight layer of the same name and shape "
                            f"({len(la)} layers in A, {len(lb)} in B)")
    rows, neurons = [], []
    for layer_a, layer_b in (progress(shared) if progress is not None else shared):
        A = layer_a.matrix().astype(np.float64)
        B = layer_b.matrix().astype(np.float64)
        norm_a = float(np.linalg.norm(A))
        s_in = (A.sum(axis=1), B.sum(axis=1))
        s_out = (A.sum(axis=0), B.sum(axis=0))
        div = {}
        for tag, M in (("a", A), ("b", B)):
            div[tag] = correlation_summary(M, name=layer_a.name) if M.shape[1] >= 2 else {"mean_abs": 0.0}
        rows.append({
            "layer": layer_a.name, "kind": layer_a.kind, "shape": _shape(layer_a.shape),
            "rel_change": float(np.linalg.norm(B - A)) / norm_a if norm_a > 0 else float("inf"),
            "in_strength_var_a": float(s_in[0].var()), "in_strength_var_b": float(s_in[1].var()),
            "out_strength_var_a": float(s_out[0].var()), "out_strength_var_b": float(s_out[1].var()),
            "in_strength_corr": _pearson(*s_in), "out_strength_corr": _pearson(*s_out),
            "corr_in_mean_abs_a": div["a"]["mean_abs"], "corr_in_mean_abs_b": div["b"]["mean_abs"],
        })
        for side, (sa, sb) in (("out", s_in), ("in", s_out)):
            neurons.append(pd.DataFrame({"layer": layer_a.name, "side": side, "neuron": np.arange(len(sa)),
                                         "strength_a": sa, "strength_b": sb, "change": sb - sa}))
    table = pd.DataFrame(rows)
    table["in_strength_var_ratio"] = table["in_strength_var_b"] / table["in_strength_var_a"].where(
        table["in_strength_var_a"] > 0)
    table["out_strength_var_ratio"] = table["out_strength_var_b"] / table["out_strength_var_a"].where(
        table["out_strength_var_a"] > 0)
    return Comparison(
        a=str(ca.path), b=str(cb.path), layers=table,
        neurons=pd.concat(neurons, ignore_index=True),
        unmatched=pd.DataFrame(unmatched, columns=["layer", "status", "shape_a", "shape_b"]),
        options={"layers": layers, "allow_mismatch": allow_mismatch},
    )

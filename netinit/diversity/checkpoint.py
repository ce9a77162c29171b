"""Activation-space diversity of the layers stored in a checkpoint file.

A state dict holds weights but not the forward pass, so activations can only be computed where
the architecture is implied by the weights: a chain of linear layers (an MLP), in file order,
each layer's outputs feeding the next, with one nonlinearity between layers. That is what
:func:`mlp_from_checkpoint` rebuilds; other architectures need the model itself and
:func:`netinit.diversity.diversity`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from netinit.errors import LayerError, ShapeError
from netinit.formats import Checkpoint
from netinit.layers import find_layers

__all__ = ["mlp_from_checkpoint", "checkpoint_activation_diversity"]

_NONLINEARITIES = ("relu", "tanh", "sigmoid", "gelu")


def _bias_name(ckpt: Checkpoint, weight: str) -> str | None:
    if weight.endswith("weight"):
        cand = weight[: -len("weight")] + "bias"
        if cand in ckpt.names():
            return cand
    return None


def mlp_from_checkpoint(
    ckpt: Checkpoint, *, n_features: int, layers: str | None = None, activation: str = "relu",
) -> tuple[Any, list[str]]:
    """Rebuild the MLP whose linear layers a checkpoint stores.

    Parameters
    ----------
    ckpt : Checkpoint
        An open checkpoint.
    n_features : int
        Number of input features of the data; the first linear layer must take that many.
    layers : str, optional
        Regular expression selecting the linear layers (default: every linear layer).
    activation : {"relu", "tanh", "sigmoid", "gelu"}
        Nonlinearity placed between consecutive layers.

    Returns
    -------
    model : torch.nn.Sequential
        ``Linear, act, Linear, act, ..., Linear`` (float32, eval mode).
    names : list of str
        The checkpoint tensor name of each ``Linear``, in order.

    Raises
    ------
    LayerError
        No linear layer, or the layers do not chain (``n_out`` of one != ``n_in`` of the next).
    ShapeError
        The first layer does not take ``n_features`` inputs.
    """
    import torch

    if activation not in _NONLINEARITIES:
        raise ValueError(f"activation must be one of {', '.join(_NONLINEARITIES)}, got {activation!r}")
    all_layers = find_layers(ckpt, layers=layers)[0]
    found = [layer for layer in all_layers if layer.kind == "linear"]
    others = [layer for layer in all_layers if layer.kind != "linear"]
    if others:
        raise LayerError(f"{ckpt.path}: holds {others[0].kind} layers ({others[0].name!r}), so its forward pass "
                         f"cannot be rebuilt from the weights alone; activation diversity from a checkpoint needs an "
                         f"MLP (select its linear layers with --layers) or use netinit.diversity(model, batch)")
    if not found:
        raise LayerError(f"{ckpt.path}: no linear layers to run data through (activation diversity "
                         f"from a checkpoint needs an MLP; for other models use netinit.diversity(model, batch))")
    if found[0].n_in != n_features:
        raise ShapeError(f"{ckpt.path}: the first linear layer {found[0].name!r} takes {found[0].n_in} inputs, "
                         f"but the data has {n_features} features")
    for a, b in zip(found, found[1:]):
        if a.n_out != b.n_in:
            raise LayerError(f"{ckpt.path}: layers {a.name!r} ({a.n_out} outputs) and {b.name!r} ({b.n_in} inputs) "
                             f"do not chain, so the checkpoint is not a plain MLP; select a chain with --layers "
                             f"or use netinit.diversity(model, batch) on the model")
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "gelu": torch.nn.GELU}[activation]
    mods: list[Any] = []
    for i, layer in enumerate(found):
        lin = torch.nn.Linear(layer.n_in, layer.n_out, bias=_bias_name(ckpt, layer.name) is not None)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.asarray(layer.matrix(), dtype=np.float32)))
            bias = _bias_name(ckpt, layer.name)
            if bias is not None:
                lin.bias.copy_(torch.from_numpy(np.asarray(ckpt.load(bias), dtype=np.float32).reshape(-1)))
        mods.append(lin)
        if i < len(found) - 1:
            mods.append(act())
    return torch.nn.Sequential(*mods).eval(), [layer.name for layer in found]


def checkpoint_activation_diversity(
    ckpt: Checkpoint, X: Any, *, layers: str | None = None, activation: str = "relu",
) -> pd.DataFrame:
    """Activation-space diversity of each hidden layer of the MLP a checkpoint stores.

    Each layer's output is passed through ``activation`` before the statistics, except the last
    layer's (the logits), which is measured as it is.

    Returns
    -------
    DataFrame
        ``layer`` (checkpoint tensor name) and the ``act_*`` and ``dead_neurons`` columns of
        :func:`netinit.diversity.diversity`.
    """
    import torch

    from netinit.diversity import diversity

    X = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if X.ndim != 2:
        X = X.reshape(len(X), -1)
    model, names = mlp_from_checkpoint(ckpt, n_features=int(X.shape[1]), layers=layers, activation=activation)
    modules = [str(i) for i, m in enumerate(model) if isinstance(m, torch.nn.Linear)]
    hidden = diversity(model, X, layers=modules[:-1], activation=activation) if len(modules) > 1 else None
    last = diversity(model, X, layers=modules[-1:])
    table = pd.concat([t for t in (hidden, last) if t is not None], ignore_index=True)
    table["layer"] = table["layer"].map(dict(zip(modules, names)))
    keep = ["layer"] + [c for c in table.columns if c.startswith("act_")] + ["dead_neurons", "n_samples"]
    return table[[c for c in keep if c in table.columns]]

"""The tensors of a torch module as :func:`netinit.layers.find_layers` sees them.

Every parameter and persistent buffer, named as in ``model.state_dict()`` and in module-tree
order, with what the module's class says about it: the kind of layer its weight is, the groups
of a transposed convolution, the stored orientation. The weights of these classes are layers:

================================================  ==========================================
module                                            weight(s)
================================================  ==========================================
``Linear`` (``MultiheadAttention.out_proj`` too)  ``weight``; linear or attention by name
``Conv1d/2d/3d``                                  ``weight``; ``_depthwise`` when every group
                                                  has one input channel
``ConvTranspose1d/2d/3d``                         ``weight``, with its ``groups``
``MultiheadAttention``                            ``in_proj_weight`` or ``q/k/v_proj_weight``
``Embedding``                                     ``weight`` (kept with ``embeddings=True``)
``transformers`` ``Conv1D`` (GPT-2)               ``weight`` stored ``(in, out)``
================================================  ==========================================

Other parameters are skipped with the reason (a checkpoint file, which holds no classes, reads
2-D parameters of other modules as linear layers by their name). A parameter shared by several
modules (tied weights) is listed once; its other names are skipped as the same parameter.
"""

from __future__ import annotations

from typing import Any

from netinit.errors import LayerError
from netinit.formats.base import TensorInfo

__all__ = ["module_tensors"]


def _dtype(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def _weights(mod: Any) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """``{attribute: (kind hint, extra)}`` of the weights of ``mod`` that are layers."""
    import torch.nn as nn

    if isinstance(mod, nn.Linear):
        return {"weight": (None, {})}
    if isinstance(mod, nn.modules.conv._ConvNd):
        nd = len(mod.kernel_size)
        if mod.transposed:
            return {"weight": (f"conv_transpose{nd}d", {"groups": int(mod.groups)})}
        depthwise = mod.groups > 1 and mod.in_channels // mod.groups == 1
        return {"weight": (f"conv{nd}d" + ("_depthwise" if depthwise else ""), {})}
    if isinstance(mod, nn.MultiheadAttention):
        return {a: ("attention", {}) for a in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")}
    if isinstance(mod, nn.Embedding):
        return {"weight": ("embedding", {})}
    if type(mod).__name__ == "Conv1D" and hasattr(mod, "nf") and hasattr(mod, "nx"):  # transformers' GPT-2
        return {"weight": (None, {"layout": "in_out"})}
    return {}


def module_tensors(model: Any) -> list[tuple[TensorInfo, str | None, dict[str, Any]]]:
    """``(info, kind hint, extra)`` for every parameter and persistent buffer of ``model``.

    ``extra`` holds the :class:`~netinit.layers.Layer` fields the module knows (``groups``,
    ``layout``, ``module``, ``param``), or ``not_a_layer`` with the reason a 2-D tensor is not
    one.
    """
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"find_layers takes a Checkpoint or a torch.nn.Module; got {type(model).__name__}")
    out: list[tuple[TensorInfo, str | None, dict[str, Any]]] = []
    seen: dict[int, str] = {}
    for mname, mod in model.named_modules(remove_duplicate=False):
        weights = _weights(mod)
        own = list(mod.named_parameters(recurse=False)) + [
            (b, t) for b, t in mod.named_buffers(recurse=False) if b not in mod._non_persistent_buffers_set]
        for attr, t in own:
            name = f"{mname}.{attr}" if mname else attr
            if t is None:
                continue
            if isinstance(t, nn.parameter.UninitializedParameter):
                raise LayerError(f"layer {name!r} is a lazy module whose weight is not initialised yet; "
                                 "run one forward pass first")
            info = TensorInfo(name, tuple(int(d) for d in t.shape), _dtype(t))
            if id(t) in seen:
                out.append((info, None, {"not_a_layer": f"the same parameter as {seen[id(t)]!r} (tied weights)"}))
                continue
            seen[id(t)] = name
            if attr in weights:
                hint, extra = weights[attr]
                out.append((info, hint, {**extra, "module": type(mod).__name__, "param": t}))
            else:
                why = f"a parameter of {type(mod).__name__}, not a Linear, convolution or attention weight"
                out.append((info, None, {"not_a_layer": why}))
    return out

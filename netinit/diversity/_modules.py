"""Weight layers of a torch model and the forward hooks that capture their outputs.

Private helpers shared by the measures, the regulariser and the tracker, so the three see the same
layers and the same activations:

* the layers are those of :func:`netinit.layers.find_layers` held by ``torch.nn.Linear`` and
  (non-transposed) ``torch.nn.Conv1d/2d/3d`` modules, named by their module
  (``model.named_modules()``), selected by ``layers=`` as everywhere in netinit;
* the activation of a layer is its **output** (the pre-activation ``W x + b``), optionally passed
  through ``activation`` (``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"gelu"`` or a callable);
* a Linear output ``(..., n)`` is a matrix ``(samples, n)`` with every leading position a sample;
  a Conv output ``(batch, channels, *positions)`` is averaged over the positions, one value per
  channel and sample.

torch is imported inside the functions.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Union

from netinit.errors import DataError, NoLayersError
from netinit.layers import LayerSelection, weight_modules

__all__ = [
    "ActivationLike",
    "weight_modules",
    "select_modules",
    "resolve_activation",
    "as_samples",
    "batch_input",
    "capture",
    "model_device",
]

ActivationLike = Union[None, str, Callable[[Any], Any]]

_ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu")


def select_modules(model: Any, layers: LayerSelection, *, default: str = "all") -> dict[str, Any]:
    """The Linear/Conv modules that ``layers`` selects (all of them, or all but the last, when None).

    ``layers`` has the meaning of :func:`netinit.layers.find_layers` (a regular expression on
    the layer names, ``"fc1.weight"``, or a list of layer or module names). ``default="hidden"``
    leaves out the last Linear/Conv layer (the output layer) when ``layers`` is None. Raises
    :class:`NoLayersError` when nothing is left and :class:`LayerError` naming every entry of
    ``layers`` that is not a Linear/Conv layer of the model.
    """
    try:
        found = weight_modules(model, layers)
    except NoLayersError:
        if layers is not None:
            raise
        found = {}
    if not found:
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise NoLayersError(f"the model has no Linear or Conv layer (its modules: {', '.join(kinds)})")
    if layers is None and default == "hidden":
        names = list(found)[:-1]
        if not names:
            raise NoLayersError(
                f"the model has a single Linear/Conv layer ({next(iter(found))!r}) and no hidden "
                "layer; name the layers to use with layers="
            )
        return {n: found[n] for n in names}
    return found


def resolve_activation(activation: ActivationLike) -> Callable[[Any], Any] | None:
    """None, a callable, or the name of a nonlinearity applied to a layer's output."""
    if activation is None or callable(activation):
        return activation
    if isinstance(activation, str) and activation in _ACTIVATIONS:
        import torch

        return getattr(torch, activation) if activation != "gelu" else torch.nn.functional.gelu
    raise ValueError(
        f"activation must be None, a callable or one of {', '.join(_ACTIVATIONS)}; got {activation!r}"
    )


def as_samples(out: Any, module: Any = None) -> Any:
    """A layer output as a matrix ``(samples, neurons)``.

    Conv outputs ``(batch, channels, *positions)`` are averaged over the positions; Linear outputs
    ``(..., n)`` keep every leading position as a sample. Without ``module`` the tensor is taken
    as ``(samples, n)`` when 2-D and as a conv output when it has more dimensions.
    """
    import torch.nn as nn

    conv = isinstance(module, nn.modules.conv._ConvNd) if module is not None else out.dim() > 2
    if conv:
        if out.dim() < 3:
            raise DataError(
                f"a Conv activation needs shape (batch, channels, *positions), got {tuple(out.shape)}"
            )
        return out.flatten(2).mean(dim=2)
    if out.dim() < 2:
        raise DataError(f"activations need shape (samples, neurons), got {tuple(out.shape)}")
    return out.reshape(-1, out.shape[-1])


def batch_input(batch: Any) -> Any:
    """The model input of ``batch``: a tensor, or the first element of a tuple/list ``(x, y, ...)``."""
    import torch

    if isinstance(batch, (tuple, list)):
        if not batch:
            raise DataError("batch is an empty sequence; pass a tensor or an (inputs, targets) pair")
        batch = batch[0]
    if not isinstance(batch, torch.Tensor):
        raise TypeError(
            f"batch must be a torch.Tensor or a tuple (inputs, ...), got {type(batch).__name__}"
        )
    if batch.dim() == 0 or batch.shape[0] < 2:
        n = 0 if batch.dim() == 0 else batch.shape[0]
        raise DataError(
            f"activation statistics need at least 2 samples in the batch, got {n} "
            f"(input shape {tuple(batch.shape)})"
        )
    return batch


def model_device(model: Any) -> Any:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@contextlib.contextmanager
def capture(modules: dict[str, Any], *, detach: bool) -> Iterator[dict[str, Any]]:
    """Register forward hooks storing the last output of each module; remove them on exit."""
    store: dict[str, Any] = {}
    handles = [m.register_forward_hook(_hook(store, name, detach)) for name, m in modules.items()]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def _hook(store: dict[str, Any], name: str, detach: bool):
    def hook(module, inputs, output):  # noqa: ARG001 (torch's hook signature)
        store[name] = output.detach() if detach else output

    return hook

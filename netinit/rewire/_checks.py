"""Input validation shared by the rewiring functions (done once, at the public boundary)."""

from __future__ import annotations

from typing import Any

import numpy as np

from netinit.errors import DtypeError, NonFiniteError, ShapeError

__all__ = ["PASSES", "check_passes", "check_array", "check_tensor", "matrix_shape"]

PASSES = ("both", "rows", "cols")

_TORCH_FLOATS = ("float16", "bfloat16", "float32", "float64")


def check_passes(passes: Any) -> str:
    """Return ``passes`` if it is one of :data:`PASSES`, else raise :class:`ValueError`."""
    if not isinstance(passes, str) or passes not in PASSES:
        raise ValueError(f"passes must be one of {', '.join(map(repr, PASSES))}; got {passes!r}")
    return passes


def matrix_shape(shape: tuple[int, ...], what: str = "W") -> tuple[int, int]:
    """Canonical ``(n_rows, n_cols) = (shape[0], prod(shape[1:]))`` of an ``ndim >= 2`` shape."""
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise ShapeError(
            f"{what} must have at least 2 dimensions (a matrix or a conv kernel (out, in, *k)); "
            f"got shape {shape}"
        )
    if 0 in shape:
        raise ShapeError(f"{what} is empty (shape {shape}); there is nothing to rewire")
    return shape[0], int(np.prod(shape[1:], dtype=np.int64))


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def check_array(W: Any, what: str = "W") -> np.ndarray:
    """Validate a numpy weight array: floating dtype, ``ndim >= 2``, not empty, finite."""
    A = np.asarray(W)
    if A.dtype.kind != "f":
        raise DtypeError(
            f"{what} must hold floating-point weights (float16, float32, float64); got dtype {A.dtype}"
        )
    matrix_shape(A.shape, what)
    if np.isfinite(A.sum(dtype=np.float64)):  # NaN and inf propagate: all finite, no mask
        return A
    finite = np.isfinite(A)  # the sum overflowed or something is not finite: look closer
    if not finite.all():
        bad = ~finite
        first = _first_bad(bad)
        raise NonFiniteError(
            f"{what} holds {int(bad.sum())} non-finite value(s) (NaN or inf), the first at index "
            f"{first}: {float(A[first])!r}"
        )
    return A


def check_tensor(tensor: Any, what: str = "tensor", *, finite: bool = True) -> None:
    """Validate a torch weight tensor: float16/bfloat16/float32/float64, ``ndim >= 2``, finite."""
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor; got {type(tensor).__name__}")
    name = str(tensor.dtype).removeprefix("torch.")
    if name not in _TORCH_FLOATS:
        raise DtypeError(f"{what} must have dtype in {_TORCH_FLOATS}; got {name}")
    matrix_shape(tuple(tensor.shape), what)
    if not finite:
        return
    with torch.no_grad():
        if bool(torch.isfinite(tensor.sum(dtype=torch.float64))):  # NaN and inf propagate
            return
        ok = torch.isfinite(tensor)  # the sum overflowed or something is not finite: look closer
        if not bool(ok.all()):
            bad = ~ok
            flat = int(bad.flatten().to(torch.uint8).argmax())
            first = tuple(int(i) for i in np.unravel_index(flat, tuple(tensor.shape)))
            raise NonFiniteError(
                f"{what} holds {int(bad.sum())} non-finite value(s) (NaN or inf), the first at "
                f"index {first}: {float(tensor[first])!r}"
            )

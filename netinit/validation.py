"""Validation of weights at the public boundary, once, with one message for each problem.

Every public function that takes weights (numpy arrays or torch tensors) validates them here:

* :func:`check_finite`: NaN or infinity, ``"{what} holds N non-finite value(s) (NaN or inf), the
  first at index I: V"``; a float64 sum decides the common all-finite case in one pass;
* :func:`check_matrix`: a canonical ``(n_out, n_in)`` matrix, real dtype, non-empty, finite;
* :func:`check_array` / :func:`check_tensor`: a floating-point weight of 2 or more dimensions
  (a matrix or a convolution kernel) to rewire or re-draw;
* :func:`matrix_shape`: the canonical ``(n_out, n_in)`` of a stored shape;
* :func:`check_choice`: an option among a fixed set of strings.

torch is imported only when a tensor is given.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator, Sequence

import numpy as np

from netinit.errors import DtypeError, NonFiniteError, ShapeError

__all__ = ["is_torch", "check_finite", "check_matrix", "check_array", "check_tensor", "matrix_shape",
           "check_choice", "checked", "TORCH_FLOATS"]

#: The torch dtypes a weight to rewire or re-draw may have.
TORCH_FLOATS = ("float16", "bfloat16", "float32", "float64")


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    return type(x).__module__.startswith("torch")


def _first_index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


#: objects whose finiteness is established for the duration of a :func:`checked` block
_CHECKED: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar("netinit_checked", default=())


@contextlib.contextmanager
def checked(*arrays: Any) -> Iterator[None]:
    """Within the block, :func:`check_finite` of these very objects (not copies or views) returns at
    once: for a caller that validated them and hands them, unchanged, to several metrics."""
    token = _CHECKED.set(_CHECKED.get() + tuple(id(a) for a in arrays))
    try:
        yield
    finally:
        _CHECKED.reset(token)


def check_finite(W: Any, what: str = "W") -> None:
    """Raise :class:`NonFiniteError` if the array or tensor ``W`` holds NaN or infinity.

    Integer arrays are finite. One float64 sum decides the common case (NaN and infinity
    propagate through it); only when it is not finite are the values looked at one by one.
    """
    if id(W) in _CHECKED.get():
        return
    if is_torch(W):
        import torch

        if not (W.is_floating_point() or W.is_complex()):
            return
        with torch.no_grad():
            X = W.detach()
            if bool(torch.isfinite(X.sum(dtype=torch.float64))):
                return
            bad = ~torch.isfinite(X)
            n_bad = int(bad.sum())
            if not n_bad:
                return
            first = _first_index(int(bad.flatten().to(torch.uint8).argmax()), tuple(X.shape))
            value = float(X[first])
    else:
        A = np.asarray(W)
        if A.dtype.kind not in "fc" or np.isfinite(A.sum(dtype=np.float64 if A.dtype.kind == "f" else None)):
            return
        bad = ~np.isfinite(A)
        n_bad = int(bad.sum())
        if not n_bad:
            return
        first = _first_index(int(np.argmax(bad)), A.shape)
        value = A[first].item()
    raise NonFiniteError(f"{what} holds {n_bad} non-finite value(s) (NaN or inf), the first at index {first}: {value!r}")


def matrix_shape(shape: Sequence[int], what: str = "W") -> tuple[int, int]:
    """Canonical ``(n_rows, n_cols) = (shape[0], prod(shape[1:]))`` of a shape of 2 or more dimensions."""
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise ShapeError(
            f"{what} must have at least 2 dimensions (a matrix or a conv kernel (out, in, *k)); got shape {shape}"
        )
    if 0 in shape:
        raise ShapeError(f"{what} is empty (shape {shape})")
    return shape[0], int(np.prod(shape[1:], dtype=np.int64))


def check_matrix(W: Any, what: str = "W", *, allow_torch: bool = False) -> Any:
    """Validate a canonical weight matrix ``(n_out, n_in)``.

    Returns ``W`` as a numpy array (a view when possible; bfloat16 tensors as float32), or the
    tensor itself when ``allow_torch`` is true.

    Raises
    ------
    DtypeError
        Not real floats or integers (bool, complex, object, quantised).
    ShapeError
        Not 2-D, or a dimension of 0.
    NonFiniteError
        NaN or infinity.
    """
    if is_torch(W):
        if W.is_quantized or W.is_complex() or not (W.is_floating_point() or str(W.dtype) != "torch.bool"):
            raise DtypeError(f"{what}: weights must be real floats or integers, got dtype {W.dtype}")
        if not allow_torch:
            X = W.detach()
            if X.device.type != "cpu":
                X = X.cpu()
            if str(X.dtype) == "torch.bfloat16":
                X = X.float()
            W = X.numpy()
    else:
        W = np.asarray(W)
        if W.dtype.kind not in "iuf":
            raise DtypeError(f"{what}: weights must be real floats or integers, got dtype {W.dtype}")
    shape = tuple(W.shape)
    if len(shape) != 2:
        raise ShapeError(f"{what}: expected a 2-D weight matrix (n_out, n_in), got shape {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ShapeError(f"{what}: expected a non-empty matrix (n_out, n_in), got shape {shape}")
    check_finite(W, what)
    return W


def check_array(W: Any, what: str = "W") -> np.ndarray:
    """Validate a numpy weight to rewire: floating dtype, 2 or more dimensions, not empty, finite."""
    A = np.asarray(W)
    if A.dtype.kind != "f":
        raise DtypeError(f"{what} must hold floating-point weights (float16, float32, float64); got dtype {A.dtype}")
    matrix_shape(A.shape, what)
    check_finite(A, what)
    return A


def check_tensor(tensor: Any, what: str = "tensor", *, finite: bool = True) -> None:
    """Validate a torch weight: dtype in :data:`TORCH_FLOATS`, 2 or more dimensions, finite."""
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor; got {type(tensor).__name__}")
    name = str(tensor.dtype).removeprefix("torch.")
    if name not in TORCH_FLOATS:
        raise DtypeError(f"{what} must have dtype in {TORCH_FLOATS}; got {name}")
    matrix_shape(tuple(tensor.shape), what)
    if finite:
        check_finite(tensor, what)


def check_choice(value: Any, choices: Sequence[str], what: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ValueError` naming them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value

r"""The deterministic kernel of PA rewiring: one pass over the rows of a matrix.

All randomness of a pass is an array ``E`` of independent ``Exp(1)`` draws, one per entry of
the matrix, drawn before the kernel runs. Given ``E`` the pass is a pure function, and every
backend (numpy here, torch on CPU or CUDA here, Triton in :mod:`netinit.rewire._triton`, the
blocked CPU engine in :mod:`netinit.rewire._cpu`) computes exactly the same result.

The pass (Scabini, De Baets and Bruno [1]_), for ``M`` of shape ``(R, C)``:

.. math::

    s^{(i)} = \sum_{r < i} M'_{r,:} \quad(\text{float64, added row after row}),\qquad
    p^{(i)}_j = s^{(i)}_j + \bigl(|\min_k s^{(i)}_k| + 1\bigr),

    \kappa^{(i)}_j = E_{ij} / p^{(i)}_j,\qquad
    \pi^{(i)} = \operatorname{argsort}_j \kappa^{(i)}_j,\qquad
    M'_{i, \pi^{(i)}_r} = \operatorname{sort}(M_{i,:})_r ,

for ``i = 1 .. R-1``; row 0 keeps its order. Sorting ``E_j / p_j`` ascending orders the
columns exactly as successive weighted draws without replacement with probabilities
``p / sum(p)`` do (the exponential-clocks construction; ``numpy.random.Generator.choice(C, C,
replace=False, p=p / p.sum())`` has the same distribution): the first column in the order
receives the most negative weight, so high-strength columns tend to get the lowest values.

**Keys.** The argsort is done by sorting 64-bit integers: a key is non-negative, so its float64
bit pattern, read as an int64, sorts like the key. The low ``b = max(1, ceil(log2 C))`` bits are
replaced by the column index, so one integer sort (much faster than an argsort) gives the order,
and ties are broken by the column index. Keys are thereby compared on their leading
``63 - b`` bits (``52 - b`` mantissa bits, relative resolution ``2^{b-52}``, ``4e-12`` for
``C = 8192``); two keys of one row agree that far with probability about ``C^2 2^{b-52}``, and
then only the order of those two nearly-tied columns is decided by index instead of by chance.

References
----------
.. [1] L. Scabini, B. De Baets, O. M. Bruno, "Improving deep neural network random
   initialization through neuronal rewiring", arXiv:2207.08148 (2022); Neurocomputing 599
   (2024).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netinit.errors import DtypeError, ShapeError
from netinit.validation import is_torch

__all__ = ["pa_pass", "index_bits"]


def index_bits(n_cols: int) -> int:
    """Number of low key bits that hold the column index: ``max(1, ceil(log2(n_cols)))``."""
    return max(1, (int(n_cols) - 1).bit_length())


def pa_pass(M: Any, E: Any) -> Any:
    r"""Rewire the rows of ``M`` once, given the exponential draws ``E`` (deterministic kernel).

    Parameters
    ----------
    M : numpy.ndarray or torch.Tensor, shape (R, C)
        Floating-point matrix. Not modified.
    E : same type as ``M``, shape (R, C)
        Independent ``Exp(1)`` draws (converted to float64); row 0 is not used.

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (R, C)
        New matrix, dtype and device of ``M``. Row ``i`` holds the values of ``M[i]``, placed by
        the weighted order of the columns given the float64 strengths of rows ``0 .. i-1`` of
        the result (module docstring).

    Raises
    ------
    ShapeError
        If ``M`` is not 2-D or ``E`` has another shape.
    DtypeError
        If ``M`` is not floating point.

    Notes
    -----
    The numpy and torch versions perform the same float64 operations in the same order and
    agree bit for bit (except for the relative order of ``-0.0`` and ``+0.0`` within a row).
    Neither is fast: this is the reference the fast paths are tested against.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> M = rng.standard_normal((4, 5))
    >>> out = pa_pass(M, rng.standard_exponential(M.shape))
    >>> bool((np.sort(out, axis=1) == np.sort(M, axis=1)).all())
    True
    """
    if is_torch(M):
        return pa_pass_torch(M, E)
    return _pa_pass_numpy(np.asarray(M), np.asarray(E))


def _check_pair(shape: tuple[int, ...], e_shape: tuple[int, ...], floating: bool, dtype: Any) -> None:
    if len(shape) != 2:
        raise ShapeError(f"pa_pass needs a 2-D matrix M; got shape {shape}")
    if e_shape != shape:
        raise ShapeError(f"E must have the shape of M {shape}; got {e_shape}")
    if not floating:
        raise DtypeError(f"M must be floating point; got dtype {dtype}")


def _pa_pass_numpy(M: np.ndarray, E: np.ndarray) -> np.ndarray:
    _check_pair(M.shape, E.shape, M.dtype.kind == "f", M.dtype)
    R, C = M.shape
    b = index_bits(C)
    lo = np.int64((1 << b) - 1)
    idx = np.arange(C, dtype=np.int64)
    E = E.astype(np.float64, copy=False)
    out = M.copy()
    s = np.zeros(C, dtype=np.float64)
    for i in range(1, R):
        s += out[i - 1]
        p = s + (abs(s.min()) + 1.0)
        key = E[i] / p
        packed = (key.view(np.int64) & ~lo) | idx
        order = np.sort(packed) & lo
        out[i, order] = np.sort(M[i])
    return out


def pa_pass_torch(M: Any, E: Any) -> Any:
    import torch

    _check_pair(tuple(M.shape), tuple(E.shape), M.is_floating_point(), M.dtype)
    R, C = M.shape
    b = index_bits(C)
    lo = (1 << b) - 1
    with torch.no_grad():
        idx = torch.arange(C, dtype=torch.int64, device=M.device)
        E = E.to(device=M.device, dtype=torch.float64)
        out = M.detach().clone()
        sorted_rows = torch.sort(M.detach(), dim=1).values
        s = torch.zeros(C, dtype=torch.float64, device=M.device)
        for i in range(1, R):
            s += out[i - 1]
            p = s + (s.min().abs() + 1.0)
            key = E[i] / p
            packed = (key.view(torch.int64) & ~lo) | idx
            order = torch.sort(packed).values & lo
            out[i, order] = sorted_rows[i]
    return out

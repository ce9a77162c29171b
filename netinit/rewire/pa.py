r"""PA rewiring of one weight array: :func:`pa_rewire` (numpy) and :func:`pa_rewire_` (torch).

A weight array with ``ndim >= 2`` is the matrix ``W`` of shape ``(shape[0], prod(shape[1:]))``
(a conv kernel ``(out, in/g, *k)`` becomes ``(out, in/g * prod(k))``, as in the reference
implementation). ``passes="both"`` runs the row pass on ``W`` (each output neuron's incoming
weights are placed so as to balance the inputs' out-strength) and then the row pass on the
transpose of the result (each input neuron's outgoing weights, balancing the outputs'
in-strength); ``"rows"`` and ``"cols"`` run one of them. The pass itself is
:func:`netinit.rewire.kernels.pa_pass`; see there for the maths.

Only positions change: after the row pass each row holds the values it held before, after the
column pass each column holds the values it held after the row pass, and the layer's multiset of
values is kept bit for bit. A layer whose values are all equal is returned unchanged (every
placement of equal values is the same matrix); it is not an error.

Randomness. The two passes draw from independent streams: the numpy function spawns two child
generators from ``rng`` (``[rows, cols]``), so ``passes="cols"`` applied to the result of
``passes="rows"`` with the same seed gives the result of ``passes="both"``. The torch function
draws everything from ``generator``: on CUDA the exponential draws come from it directly; on the
CPU it supplies 248 bits of entropy to a numpy stream (numpy's exponential sampler is 5x faster
than torch's on the CPU), and the rest is as in :func:`pa_rewire`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from netinit._rng import RngLike, as_generator, stream
from netinit.rewire._checks import Passes, check_passes
from netinit.rewire._cpu import Draw, rewire_inplace, rewire_stack_inplace
from netinit.validation import check_array, check_tensor, matrix_shape

if TYPE_CHECKING:
    import torch

__all__ = ["pa_rewire", "pa_rewire_"]

def _draws(gen: np.random.Generator) -> tuple[Draw, Draw]:
    """The row pass's and the column pass's draw functions: the two child streams of ``gen``."""
    g_rows, g_cols = stream(gen, 2)
    return (lambda out: g_rows.standard_exponential(out=out),
            lambda out: g_cols.standard_exponential(out=out))


def _numpy_inplace(A: np.ndarray, gen: np.random.Generator, passes: str) -> None:
    """Rewire the C-contiguous 2-D float array ``A`` in place with the two streams of ``gen``."""
    rewire_inplace(A, passes, *_draws(gen))


def pa_rewire(W: ArrayLike, *, rng: RngLike = None, passes: Passes = "both") -> np.ndarray:
    r"""Preferential-attachment rewiring of a weight array (Scabini, De Baets and Bruno).

    The weights' values are kept; their positions are redrawn, row after row, so that the
    accumulated strength of the columns evens out: row ``i`` of ``W`` (shape ``(R, C)``) is
    placed by a weighted order of the columns drawn without replacement with probabilities

    .. math:: p_j \propto s_j + |\min_k s_k| + 1,\qquad s_j = \sum_{r<i} W'_{rj},

    the first column drawn receiving the row's smallest value (:func:`~netinit.rewire.pa_pass`).

    Parameters
    ----------
    W : array_like, shape (n_out, n_in) or (n_out, n_in/g, *k)
        Floating-point weights (float16, float32, float64). Not modified.
    rng : None, int or numpy.random.Generator, optional
        Source of randomness (``0`` is a seed like any other). Two independent child streams are
        spawned from it, one per pass.
    passes : {"both", "rows", "cols"}, default "both"
        ``"rows"`` rewires each row of the matrix (incoming weights of each output neuron),
        ``"cols"`` each column, ``"both"`` rows then columns of the result.

    Returns
    -------
    numpy.ndarray
        New array of the shape and dtype of ``W``. The strengths are accumulated in float64
        whatever the dtype.

    Raises
    ------
    ShapeError
        If ``W`` has fewer than 2 dimensions or no entries.
    DtypeError
        If ``W`` is not floating point (integer, bool, complex, object).
    NonFiniteError
        If ``W`` holds NaN or infinity.
    ValueError
        If ``passes`` is not one of the three options.

    See Also
    --------
    pa_rewire_ : the same on a torch tensor, in place (CPU or CUDA).
    netinit.rewire.pa_pass : the deterministic kernel of one pass.

    Notes
    -----
    Runs in ``O(R C log C + C R log R)`` time, row after row (each row depends on the rewired
    rows above it), with extra memory of a few MiB: draws, value sorts and transposes are made
    block by block, and a helper thread prepares the next block while the current one is
    rewired. Given the same draws the result is exactly the kernel's.

    References
    ----------
    .. [1] L. Scabini, B. De Baets, O. M. Bruno, "Improving deep neural network random
       initialization through neuronal rewiring", arXiv:2207.08148 (2022); Neurocomputing 599
       (2024).

    Examples
    --------
    >>> import numpy as np
    >>> W = np.random.default_rng(0).standard_normal((64, 32))
    >>> V = pa_rewire(W, rng=1)
    >>> bool((np.sort(V, axis=None) == np.sort(W, axis=None)).all())
    True
    >>> bool(V.sum(axis=0).var() < W.sum(axis=0).var())
    True
    """
    passes = check_passes(passes)
    A, work = _numpy_work(W, "W")
    gen = as_generator(rng)
    if work is None:  # all equal: every placement is the same matrix
        return A.copy()
    _numpy_inplace(work, gen, passes)
    return work.astype(A.dtype, copy=False).reshape(A.shape)


def _numpy_work(W: Any, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The validated array and its C-contiguous ``(n_rows, n_cols)`` work copy (float32 for
    float16, else its own dtype); ``None`` for the copy when all values are equal."""
    A = check_array(W, what)
    n_rows, n_cols = matrix_shape(A.shape, what)
    if A.min() == A.max():
        return A, None
    work_dtype = A.dtype if A.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    if A.dtype.itemsize > 8:  # long double: keep it (the engine is dtype-generic)
        work_dtype = A.dtype
    return A, np.array(A.reshape(n_rows, n_cols), dtype=work_dtype, order="C", copy=True)


def rewire_stack(arrays: list[Any], rngs: list[RngLike], passes: str = "both") -> list[np.ndarray]:
    """:func:`pa_rewire` of each array with its ``rng``, the arrays rewired together.

    The arrays share one canonical ``(n_rows, n_cols)`` shape; each result is exactly
    ``pa_rewire(array, rng=rng, passes=passes)``, but step ``t`` of all of them is one series of
    numpy calls (see :mod:`netinit.rewire._cpu`). Every array is validated before any work.
    """
    passes = check_passes(passes)
    if len(arrays) != len(rngs):
        raise ValueError(f"{len(arrays)} arrays but {len(rngs)} generators")
    prepared = [_numpy_work(W, f"arrays[{i}]") for i, W in enumerate(arrays)]
    if len({matrix_shape(A.shape) for A, _ in prepared}) > 1:
        raise ValueError("the arrays of a stack share one (n_rows, n_cols) shape")
    gens = [as_generator(r) for r in rngs]
    _stacks_by_dtype([(work, *_draws(g)) for (_, work), g in zip(prepared, gens) if work is not None], passes)
    return [A.copy() if work is None else work.astype(A.dtype, copy=False).reshape(A.shape) for A, work in prepared]


def pa_rewire_(tensor: torch.Tensor, *, generator: torch.Generator | None = None, passes: Passes = "both") -> torch.Tensor:
    r"""Preferential-attachment rewiring of a torch weight tensor, in place.

    The torch counterpart of :func:`pa_rewire` in the style of ``torch.nn.init``: runs under
    ``torch.no_grad()``, modifies ``tensor`` on its device and returns it.

    Parameters
    ----------
    tensor : torch.Tensor, shape (n_out, n_in) or (n_out, n_in/g, *k)
        float16, bfloat16, float32 or float64, on the CPU or a CUDA device. ``requires_grad``
        is kept.
    generator : torch.Generator, optional
        Source of every random draw, on the tensor's device; the global generator when None.
    passes : {"both", "rows", "cols"}, default "both"
        As in :func:`pa_rewire`.

    Returns
    -------
    torch.Tensor
        ``tensor`` itself.

    Raises
    ------
    ShapeError, DtypeError, NonFiniteError, ValueError
        As :func:`pa_rewire` (DtypeError for integer, bool, complex or quantised tensors).

    Notes
    -----
    On CUDA the draws are ``Exp(1)`` float64 tensors from ``generator`` (a CUDA generator when
    given); each pass sorts all rows' values at once and runs Triton kernels
    (:mod:`netinit.rewire._triton`: one program for the whole pass on rows of up to 1024
    entries, bucketed row steps replayed from a CUDA graph on longer ones), falling back to the
    torch kernel when Triton is missing; nothing returns to the host inside a pass. GPU memory
    is not optimised: float64 draws, sorted values, a working copy and a transpose are held at
    once (peak several times the layer; see ``bench/results/rewire_gpu.json``).
    On the CPU the numpy engine of :func:`pa_rewire` works in place on the tensor's memory
    (float32/float64) or on a float32 copy (float16/bfloat16, converted exactly).

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Linear(32, 16).weight
    >>> g = torch.Generator().manual_seed(0)
    >>> pa_rewire_(w, generator=g) is w
    True
    """
    import torch

    passes = check_passes(passes)
    check_tensor(tensor, "tensor")
    n_rows, n_cols = matrix_shape(tuple(tensor.shape), "tensor")
    with torch.no_grad():
        if bool(tensor.min() == tensor.max()):
            return tensor
        if tensor.device.type == "cpu":
            _cpu_inplace(tensor, generator, passes, n_rows, n_cols)
        else:
            _device_inplace(tensor, generator, passes, n_rows, n_cols)
    return tensor


def cpu_in_place(tensor: Any) -> bool:
    """Whether the CPU engine works on the tensor's own memory (float32/float64, contiguous)
    rather than on a copy."""
    import torch

    return tensor.dtype in (torch.float32, torch.float64) and tensor.is_contiguous()


def _cpu_work(tensor: Any, generator: Any, n_rows: int, n_cols: int) -> tuple[np.ndarray, Draw, Draw, Any]:
    """What the CPU engine needs for one tensor: its ``(n_rows, n_cols)`` float32/float64 work
    matrix (the tensor's own memory when it can be), the two passes' draw functions (a numpy
    stream seeded from 248 bits of ``generator``) and ``finish()``, which writes the result back."""
    import torch

    entropy = torch.randint(0, 2**62, (4,), generator=generator, dtype=torch.int64).tolist()
    draw_rows, draw_cols = _draws(np.random.default_rng(np.random.SeedSequence(entropy)))
    t = tensor.detach()
    if cpu_in_place(t):
        return (t.numpy().reshape(n_rows, n_cols), draw_rows, draw_cols,
                lambda: torch.autograd.graph.increment_version(tensor))
    work = t.to(torch.float64 if t.dtype == torch.float64 else torch.float32).contiguous()
    return (work.numpy().reshape(n_rows, n_cols), draw_rows, draw_cols,
            lambda: tensor.copy_(work.view(tensor.shape)))


def _cpu_inplace(tensor: Any, generator: Any, passes: str, n_rows: int, n_cols: int) -> None:
    A, draw_rows, draw_cols, finish = _cpu_work(tensor, generator, n_rows, n_cols)
    rewire_inplace(A, passes, draw_rows, draw_cols)
    finish()


def rewire_stack_(tensors: list[Any], generators: list[Any], passes: str = "both", *,
                   check_finite: bool = True) -> None:
    """:func:`pa_rewire_` of each CPU tensor with its generator, the tensors rewired together.

    The tensors share one canonical ``(n_rows, n_cols)`` shape; each gets exactly the result of
    ``pa_rewire_(tensor, generator=generator, passes=passes)`` (all-equal ones are left alone),
    but step ``t`` of all of them is one series of numpy calls, which is what makes the many
    small repeated layers of a model fast (:func:`netinit.rewire.rewire_model_` groups them).
    Every tensor is validated before any is changed (``check_finite=False``: a caller that has
    checked finiteness already).
    """
    import torch

    passes = check_passes(passes)
    if len(tensors) != len(generators):
        raise ValueError(f"{len(tensors)} tensors but {len(generators)} generators")
    shapes = set()
    for i, t in enumerate(tensors):
        check_tensor(t, f"tensors[{i}]", finite=check_finite)
        if t.device.type != "cpu":
            raise ValueError(f"tensors[{i}] is on {t.device}; a stack is rewired on the CPU")
        shapes.add(matrix_shape(tuple(t.shape)))
    if len(shapes) > 1:
        raise ValueError(f"the tensors of a stack share one (n_rows, n_cols) shape; got {sorted(shapes)}")
    with torch.no_grad():
        works = [_cpu_work(t, g, *matrix_shape(tuple(t.shape)))
                 for t, g in zip(tensors, generators) if not bool(t.min() == t.max())]
        _stacks_by_dtype([w[:3] for w in works], passes)
        for *_, finish in works:
            finish()


def _stacks_by_dtype(works: list[tuple[np.ndarray, Draw, Draw]], passes: str) -> None:
    """Rewire ``(matrix, draw_rows, draw_cols)`` triples of one shape, each dtype as one stack."""
    groups: dict[np.dtype, list[tuple[np.ndarray, Draw, Draw]]] = {}
    for w in works:
        groups.setdefault(w[0].dtype, []).append(w)
    for g in groups.values():
        rewire_stack_inplace([w[0] for w in g], passes, [w[1] for w in g], [w[2] for w in g])


def _device_kernel(n_cols: int):
    """The pass kernel for CUDA: the Triton one, or the torch loop when Triton is missing."""
    try:
        from netinit.rewire._triton import pa_pass_triton
    except ImportError:  # no triton: the plain torch loop (slow but exact)
        from netinit.rewire.kernels import pa_pass_torch

        return pa_pass_torch
    return pa_pass_triton


def _device_inplace(tensor: Any, generator: Any, passes: str, n_rows: int, n_cols: int) -> None:
    import torch

    M = tensor.detach().reshape(n_rows, n_cols)  # a view when contiguous
    f64 = dict(dtype=torch.float64, device=tensor.device)
    if passes in ("both", "rows") and n_rows > 1:
        E = torch.empty((n_rows, n_cols), **f64).exponential_(generator=generator)
        M = _device_kernel(n_cols)(M, E)
        del E
    if passes in ("both", "cols") and n_cols > 1:
        E = torch.empty((n_cols, n_rows), **f64).exponential_(generator=generator)
        M = _device_kernel(n_rows)(M.t().contiguous(), E).t()
        del E
    tensor.copy_(M.reshape(tensor.shape))

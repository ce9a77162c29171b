r"""Decorrelated yet stochastic weight initialisation.

A random draw ``W`` (shape ``(n_out, n_in)``; a Conv kernel ``(out, in/groups, *k)`` is the
matrix ``(out, in/groups * prod(k))``) from a base initialiser is turned into rows with (near)
zero pairwise Pearson correlation while every row keeps its mean and its norm, so the
distribution of row scales is the base initialiser's. With ``mu_i`` the mean of row ``i`` and
``c_i = w_i - mu_i`` its centred part:

``symmetric`` (Loewdin)
    ``Q = (C C^T)^{-1/2} C = U V^T`` for the thin SVD ``C = U S V^T``: the orthonormal rows
    closest to ``C`` in Frobenius norm, so the result stays random. The new rows are
    ``mu_i + ||c_i|| q_i``: pairwise Pearson correlation 0, row means and norms unchanged.
    At most ``m = n_in - 1`` centred rows can be orthogonal (``n_in`` for ``centre=False``). For
    more rows, ``overcomplete="blocks"`` (default) orthogonalises consecutive blocks of ``m`` rows
    separately: zero correlation inside a block, the draw's correlation between blocks;
    ``overcomplete="frame"`` applies the same formula to all rows at once, ``Q = U V^T`` with
    ``U`` of shape ``(n, m)``: the closest Parseval frame, whose rows (normalised) come close to
    the lowest mean ``r^2`` below and usually have a lower max ``|r|`` than blocks, but a higher
    mean ``|r|`` (no exact zeros). The residual is reported by :func:`decorrelate`.
``greedy``
    Draw ``candidates * n_out`` rows from the base initialiser (``candidates`` draws of the
    tensor's shape) and keep, one at a time, the candidate with the lowest maximum ``|r|`` to
    the rows already kept, starting from the first row of the first draw. Rows are base draws,
    unchanged.
``backprop`` (Kovalenko and Kordik 2023)
    Gradient steps on the unit-norm centred rows ``z_i`` for a decorrelation objective,
    ``mean_sq``: ``sum_{i != j} r_ij^2`` (gradient ``(R - I) Z`` up to a factor, ``R = Z Z^T``)
    or ``logdet``: ``-log det(R + 10^-3 I)`` (gradient ``-(R + 10^-3 I)^{-1} Z``), each step
    followed by re-centring and re-normalising the rows; then ``mu_i + ||c_i|| z_i``. Step size
    ``lr / max_i sum_j |R_ij|`` (``mean_sq``) or ``lr / max_i ||g_i||`` (``logdet``). It works
    for ``n_out > n_in`` too: ``mean_sq`` then approaches the lower bound of a unit-norm tight
    frame, ``mean_{i != j} r_ij^2 >= (n / m - 1) / (n - 1)`` with ``m = n_in - 1``.

The kernels (``symmetric``, ``backprop``) run in float64 on numpy arrays or on torch tensors on
their own device; fed the same draw, both backends agree to rounding.

References
----------
A. Kovalenko, P. Kordik, M. Friedjungova, "Dynamic Neural Diversification: Path to Computationally
Sustainable Neural Networks", arXiv:2109.09612 (2021) (decorrelated yet stochastic initialisation).
A. Kovalenko, P. Kordik, "Decorrelated Weight Initialization by Backpropagation", ICANN 2023.
P.-O. Loewdin, "On the non-orthogonality problem", Adv. Quantum Chem. 5 (1970).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Mapping, Union

import numpy as np

from netinit._rng import accepts_generator
from netinit.diversity import _kernels as K
from netinit.errors import DtypeError, ShapeError
from netinit.metrics.correlation import correlation_summary
from netinit.validation import check_finite

__all__ = ["decorrelate", "decorrelated_", "BASES", "METHODS"]

#: Names accepted as ``base`` (torch.nn.init functions; the trailing underscore is optional).
BASES = (
    "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal",
    "uniform", "normal", "trunc_normal", "orthogonal",
)
#: The decorrelation methods.
METHODS = ("symmetric", "greedy", "backprop")
_OBJECTIVES = ("mean_sq", "logdet")

BaseLike = Union[str, Callable[..., Any]]
#: ``method=`` of :func:`decorrelate` and :func:`decorrelated_`
Method = Literal["symmetric", "greedy", "backprop"]


def _stats(M, xp, centre: bool) -> dict[str, float]:
    if M.shape[1] < 2:  # one input, cosine: a zero column changes no cosine and gives 2 features
        M = np.concatenate([M, M * 0], axis=1) if xp is K.Np else xp.cat_zero(M)
    s = correlation_summary(M, centre=centre)
    return {"mean_abs_r": s["mean_abs"], "max_abs_r": s["max_abs"], "mean_sq_r": s["mean_sq"]}


def decorrelate(
    W: Any,
    *,
    method: Method = "symmetric",
    centre: bool = True,
    steps: int = 100,
    lr: float = 0.5,
    objective: Literal["mean_sq", "logdet"] = "mean_sq",
    overcomplete: Literal["blocks", "frame"] = "blocks",
) -> tuple[Any, dict[str, Any]]:
    r"""Decorrelate the rows of a weight, keeping each row's mean and norm.

    Parameters
    ----------
    W : array or tensor of shape (n_out, n_in) or (out, in/groups, \*k)
        A random draw (numpy array or floating torch tensor on any device); not modified.
    method : {"symmetric", "backprop"}, default "symmetric"
        See the module docstring (``greedy`` needs fresh draws: use :func:`decorrelated_`).
    centre : bool, default True
        Pearson correlation (rows centred, means kept); ``False``: cosine similarity.
    steps : int, default 100
        ``backprop`` only: number of gradient steps.
    lr : float, default 0.5
        ``backprop`` only: step size (relative; see the module docstring).
    objective : {"mean_sq", "logdet"}, default "mean_sq"
        ``backprop`` only: the decorrelation objective.
    overcomplete : {"blocks", "frame"}, default "blocks"
        ``symmetric`` only, when there are more rows than ``capacity``: see the module docstring.

    Returns
    -------
    W_new : same type, shape and dtype as ``W``
        The decorrelated weight.
    info : dict
        ``method``; ``n_rows``, ``n_features``; ``capacity`` (most rows that can be exactly
        decorrelated: ``n_features - 1``, or ``n_features`` with ``centre=False``); ``blocks``
        (number of blocks orthogonalised separately); ``exact`` (``n_rows <= capacity``); ``bound_mean_sq_r`` (lowest
        reachable mean ``r^2``, 0 when exact); ``before`` and ``after``: dicts of ``mean_abs_r``,
        ``max_abs_r``, ``mean_sq_r`` of the Pearson correlation of the rows (cosine similarity with
        ``centre=False``).

    Raises
    ------
    ShapeError
        ``W`` has fewer than 2 dimensions, or a single input with ``centre=True`` (its rows are
        constant after centring).
    NonFiniteError
        ``W`` holds NaN or infinity.
    DtypeError
        ``W`` is not floating point.
    ValueError
        Unknown ``method`` or ``objective``, bad ``steps`` or ``lr``.

    Examples
    --------
    >>> import numpy as np
    >>> W0 = np.random.default_rng(0).uniform(-1, 1, size=(16, 32))
    >>> W1, info = decorrelate(W0)
    >>> info["after"]["max_abs_r"] < 1e-10, np.allclose(np.linalg.norm(W1, axis=1), np.linalg.norm(W0, axis=1))
    (True, True)
    >>> info["before"]["max_abs_r"] > 0.3
    True
    """
    out, M, xp = _run(W, method, centre, steps, lr, objective, overcomplete)
    n, d = M.shape
    cap = d - 1 if centre else d
    exact = n <= cap
    info = {
        "method": method,
        "n_rows": n,
        "n_features": d,
        "capacity": cap,
        "blocks": -(-n // cap) if method == "symmetric" and overcomplete == "blocks" else 1,
        "exact": exact,
        "bound_mean_sq_r": 0.0 if exact else (n / cap - 1) / (n - 1),
        "before": _stats(M, xp, centre),
        "after": _stats(out, xp, centre),
    }
    return xp.cast_back(out, W).reshape(tuple(W.shape)), info


def _run(W: Any, method: str, centre: bool, steps: int, lr: float, objective: str, overcomplete: str):
    """Validate, then run the kernel: (float64 result (n, d), float64 input (n, d), backend)."""
    if method not in ("symmetric", "backprop"):
        extra = " (greedy draws candidates: use decorrelated_)" if method == "greedy" else ""
        raise ValueError(f"method must be 'symmetric' or 'backprop'{extra}; got {method!r}")
    if overcomplete not in ("blocks", "frame"):
        raise ValueError(f"overcomplete must be 'blocks' or 'frame'; got {overcomplete!r}")
    if objective not in _OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(_OBJECTIVES)}; got {objective!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if not (isinstance(lr, (int, float)) and 0 < lr <= 1):
        raise ValueError(f"lr must lie in (0, 1], got {lr!r}")
    xp = K.backend(W)
    M = _check_matrix(W, xp, centre)
    n, d = M.shape
    if method == "symmetric":
        block = (d - 1 if centre else d) if overcomplete == "blocks" else max(n, 1)
        return K.symmetric(M, xp, centre, block), M, xp
    return K.backprop(M, xp, centre, int(steps), float(lr), objective), M, xp


def _check_matrix(W: Any, xp, centre: bool):
    if xp is K.Th:
        if W.is_complex() or not W.is_floating_point():
            raise DtypeError(f"decorrelation needs a floating-point tensor, got {W.dtype}")
    elif np.asarray(W).dtype.kind not in "fiu":
        raise DtypeError(f"decorrelation needs a real array, got dtype {np.asarray(W).dtype}")
    if len(W.shape) < 2:
        raise ShapeError(
            f"decorrelation needs a weight of shape (n_out, n_in, ...), got shape {tuple(W.shape)}"
        )
    M = xp.f64(W).reshape(W.shape[0], -1)
    if M.shape[1] < 2 and centre:
        raise ShapeError(
            f"a weight of shape {tuple(W.shape)} has a single input per neuron: its centred rows are "
            "0 and have no Pearson correlation; pass centre=False"
        )
    check_finite(M, "the weight to decorrelate")
    return M


# --------------------------------------------------------------------------- torch init
def _resolve_base(base: BaseLike) -> Callable[..., Any]:
    import torch.nn.init as tinit

    if callable(base):
        return base
    if isinstance(base, str) and base.rstrip("_") in BASES:
        return getattr(tinit, base.rstrip("_") + "_")
    raise ValueError(
        f"base must be a callable or the name of a torch.nn.init initialiser, one of "
        f"{', '.join(BASES)}; got {base!r}"
    )


def _draw(fn: Callable[..., Any], like: Any, generator: Any, kwargs: Mapping[str, Any]) -> Any:
    import torch

    t = torch.empty_like(like, memory_format=torch.contiguous_format)
    if generator is not None:
        if not accepts_generator(fn):
            raise TypeError(
                f"base {getattr(fn, '__name__', fn)!r} takes no generator= argument, so the draw "
                "could not follow the generator; pass an initialiser f(tensor, generator=None)"
            )
        out = fn(t, generator=generator, **kwargs)
    else:
        out = fn(t, **kwargs)
    return t if out is None else out


_DEFAULTS = {"centre": True, "steps": 100, "lr": 0.5, "objective": "mean_sq", "overcomplete": "blocks"}
_OPTIONS = {
    "symmetric": ("centre", "overcomplete"),
    "greedy": ("centre", "candidates"),
    "backprop": ("centre", "steps", "lr", "objective"),
}


def decorrelated_(
    tensor: Any,
    base: BaseLike = "kaiming_uniform",
    *,
    generator: Any = None,
    method: Method = "symmetric",
    base_kwargs: Mapping[str, Any] | None = None,
    **options: Any,
) -> Any:
    r"""Fill ``tensor`` with a decorrelated yet random draw (in place, ``torch.nn.init`` style).

    Draws from the base initialiser with ``generator`` (every draw uses it), decorrelates the rows
    of the canonical matrix ``(out, in/groups * prod(k))`` by ``method`` (module docstring) and
    copies the result into ``tensor`` under ``torch.no_grad``.

    Parameters
    ----------
    tensor : torch.Tensor of shape (n_out, n_in) or (out, in/groups, \*k)
        Floating point; filled in place.
    base : str or callable, default "kaiming_uniform"
        A name in :data:`BASES` (``torch.nn.init`` with its defaults; ``torch.nn.Linear``'s own
        default is ``kaiming_uniform`` with ``base_kwargs={"a": math.sqrt(5)}``), or a callable
        ``f(tensor, generator=None, **base_kwargs)`` filling ``tensor``.
    generator : torch.Generator, optional
        Threaded into every draw.
    method : {"symmetric", "greedy", "backprop"}, default "symmetric"
    base_kwargs : dict, optional
        Keyword arguments of the base initialiser.
    **options
        ``centre`` (all methods, default True); ``overcomplete`` (symmetric: ``"blocks"`` or
        ``"frame"``, see :func:`decorrelate`); ``candidates`` (greedy, default 4: draws of the
        tensor's shape to choose from); ``steps``, ``lr``, ``objective`` (backprop: see
        :func:`decorrelate`).

    Returns
    -------
    torch.Tensor
        ``tensor`` itself. Its residual correlation: :func:`netinit.diversity.weight_diversity`;
        :func:`decorrelate` also reports it.

    Raises
    ------
    ShapeError
        ``tensor`` has fewer than 2 dimensions (or one input with ``centre=True``).
    DtypeError
        ``tensor`` is not floating point.
    ValueError
        Unknown ``base`` (the message lists the valid names) or ``method``.
    TypeError
        An option the method does not take, or a base callable without ``generator=``.

    Examples
    --------
    >>> import torch
    >>> w = torch.empty(32, 64)
    >>> _ = decorrelated_(w, generator=torch.Generator().manual_seed(0))
    >>> from netinit.diversity import weight_diversity
    >>> weight_diversity(w)["max_abs_r"] < 1e-5
    True
    """
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() < 2:
        raise ShapeError(
            f"decorrelated_ needs a weight of shape (n_out, n_in, ...), got shape {tuple(tensor.shape)}"
        )
    if not tensor.is_floating_point():
        raise DtypeError(f"decorrelated_ needs a floating-point tensor, got {tensor.dtype}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    unknown = sorted(set(options) - set(_OPTIONS[method]))
    if unknown:
        raise TypeError(
            f"method {method!r} takes the options {', '.join(_OPTIONS[method])}; got {', '.join(unknown)}"
        )
    fn = _resolve_base(base)
    kwargs = dict(base_kwargs or {})
    with torch.no_grad():
        draw = _draw(fn, tensor, generator, kwargs)
        if method == "greedy":
            m = options.get("candidates", 4)
            if isinstance(m, bool) or not isinstance(m, int) or m < 1:
                raise ValueError(f"candidates must be a positive integer, got {m!r}")
            pool = [draw] + [_draw(fn, tensor, generator, kwargs) for _ in range(m - 1)]
            result = K.greedy(pool, centre=bool(options.get("centre", True)))
        else:
            result = _run(draw, method, **{**_DEFAULTS, **options})[0]
        tensor.copy_(result.reshape(tensor.shape))
    return tensor

r"""Neuron-to-neuron correlation of weight vectors (or activations) and its summaries.

For a matrix ``X`` of shape ``(n, d)`` whose rows are the vectors of ``n`` neurons (the incoming
weights of a layer's output neurons, the columns of an activation batch transposed, ...), the
Pearson correlation of neurons ``a`` and ``b`` is

.. math:: r_{ab} = \frac{\sum_k (x_{ak} - \bar x_a)(x_{bk} - \bar x_b)}
                       {\lVert x_a - \bar x_a \rVert \, \lVert x_b - \bar x_b \rVert}.

Rows with zero variance (a constant neuron: a dead ReLU, an all-equal weight vector) have no
correlation; they are counted as ``n_constant`` and left out of every summary, never averaged
in as NaN. With ``m`` usable rows there are ``m (m - 1) / 2`` pairs.

The effective number of neurons is the participation ratio of the eigenvalues of ``R``:
``(sum lambda)^2 / sum lambda^2 = trace(R)^2 / ||R||_F^2 = m / (1 + (m - 1) mean(r^2))``, between
1 (all neurons identical up to sign and scale) and ``m`` (pairwise uncorrelated).

**Exact summaries** (``method="exact"``). Rows are standardised in float64, a block of rows at a
time (a half-precision matrix is never widened whole), and stored in the product dtype. Up to
:data:`FLOAT64_MAX_NEURONS` rows (and ``2^24`` elements) the products are float64 and the
summary is computed as earlier releases did, bit for bit: ``Z Z^T`` in row blocks, every ordered
pair. Above, the products are float32 and only the upper triangle of ``Z Z^T`` is formed, in
tiles (a block of rows against itself, a symmetric product, and against the rows after it; at
most 32 MiB each, large enough for BLAS to run near its peak); each tile is reduced in one sweep
to every statistic (sum of ``|r|``, sum of ``r^2``, count above the threshold, maximum), the sums
accumulated in float64. With unit rows rounded to float32 and float32 dot products of length ``d``, every
computed ``r`` is within

.. math:: \varepsilon_d = \frac{(d+2)\,u}{1-(d+2)\,u}, \qquad u = 2^{-24},

of its float64 value (Higham, *Accuracy and Stability of Numerical Algorithms*, 2002, 3.1, with
``|z_a| |z_b| <= ||z_a|| ||z_b|| = 1``; :func:`float32_error_bound`). Hence mean ``|r|`` and max
``|r|`` move by at most ``eps``, mean ``r^2`` by at most ``2 eps mean|r| + eps^2``, and the share
above the threshold only through pairs with ``||r| - threshold| <= eps``. The bound is a worst
case; BLAS's blocked sums are typically 100x closer.

**Sampled estimates** (``method="sampled"``; ``"auto"`` samples above
:data:`EXACT_MAX_NEURONS` rows). ``s`` = ``sample_size`` usable rows are drawn uniformly without
replacement; each pair statistic ``h`` (``|r|``, ``1[|r| > t]``, ``r^2``) is estimated by its
mean over the ``s (s - 1) / 2`` sampled pairs, a U-statistic of degree 2, unbiased for the mean
over all pairs. Pairs that share a neuron are dependent, so the standard error is the
**delete-one-neuron jackknife** of the U-statistic: with ``T_a`` the sum of ``h`` over the pairs
of sampled neuron ``a`` and ``U_{(-a)} = (2 \sum_{b<c} h_{bc} - 2 T_a) / ((s-1)(s-2))``,

.. math:: \widehat{\mathrm{SE}}^2 = \Bigl(1 - \frac{s}{m}\Bigr)\,\frac{s-1}{s}
          \sum_a \bigl(U_{(-a)} - \bar U_{(\cdot)}\bigr)^2,

the finite-population factor ``1 - s/m`` making it 0 when every neuron is sampled (Arvesen,
*Jackknifing U-statistics*, Ann. Math. Statist. 40, 1969). ``mean r^2`` and the effective number
are exact (standard error 0) when the small Gram matrix ``Z^T Z`` (``d x d``) is cheap,
``m d <= 4 s^2``, since ``||Z Z^T||_F = ||Z^T Z||_F``; otherwise the effective number is the
plug-in ``m / (1 + (m-1) \hat\mu_2)`` with a delta-method error. The sampled maximum is a
lower bound of the true one (``max_abs_is_lower_bound``). Sampled products are float32 (the
sampling error dominates the rounding error by orders of magnitude).

Works on numpy arrays and on torch tensors (on their own device; a CPU tensor goes through the
numpy kernels, a bfloat16 one as float32); accumulation is float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from netinit._rng import RngLike, as_generator
from netinit.errors import ShapeError
from netinit.validation import check_finite, is_torch

__all__ = ["correlation_matrix", "correlation_summary", "float32_error_bound", "usable_from_moments", "EXACT_MAX_NEURONS",
           "SAMPLE_SIZE", "FLOAT64_MAX_NEURONS"]

#: ``method="auto"`` is exact for matrices of at most this many rows, sampled above.
EXACT_MAX_NEURONS = 1024
#: Rows drawn by ``method="sampled"`` (default ``sample_size``).
SAMPLE_SIZE = 512
#: Exact summaries form float64 products up to this many rows, float32 above.
FLOAT64_MAX_NEURONS = 512

_TILE = 512  # fewest rows per tile of the upper triangle (float32 products) ...
_TILE_ELEMENTS = 1 << 23  # ... and more while a tile row block holds at most 8M entries (32 MiB)
_BLOCK = 1024  # rows per block of the float64 products
_FLOAT64_MAX_ELEMENTS = 1 << 24  # and at most this many elements (128 MiB in float64)
_STD_ELEMENTS = 1 << 20  # float64 elements per standardisation block (8 MiB)
_TRANSPOSE_ROWS = 64  # rows per block when gathered columns are transposed (in cache)
_METHODS = ("auto", "exact", "sampled")
_CPU_TENSORS_AS_NUMPY = True  # torch CPU tensors run the numpy kernels (tests switch it off)


def float32_error_bound(d: int) -> float:
    r"""Worst-case error of one correlation computed from float32 unit rows of length ``d``.

    :math:`\varepsilon_d = (d+2)u / (1 - (d+2)u)` with :math:`u = 2^{-24}`: the rounding of both
    unit vectors to float32 and a float32 dot product of length ``d`` (Higham 2002, Lemma 3.1 and
    eq. 3.5). Valid while :math:`(d + 2) u < 1`.
    """
    k = (int(d) + 2) * 2.0**-24
    return k / (1.0 - k)


def _std_numpy(B: np.ndarray, centre: bool, d: int, legacy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Standardise a float64 block in place; returns its usable unit rows and their mask.

    ``legacy`` computes the norms as earlier releases did (``np.linalg.norm``), bit for bit;
    otherwise by ``einsum`` (faster, equal to rounding).
    """
    if centre:
        B -= B.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(B, axis=1) if legacy else np.sqrt(np.einsum("ij,ij->i", B, B))
    scale = np.maximum(np.maximum(B.max(axis=1), -B.min(axis=1)), 1.0)
    ok = norms > 1e-12 * scale * np.sqrt(d)
    if ok.all():
        B /= norms[:, None]
        return B, ok
    return B[ok] / norms[ok, None], ok


def _std_torch(B: Any, centre: bool, d: int) -> tuple[Any, Any]:
    import torch

    if centre:
        B = B - B.mean(dim=1, keepdim=True)
    norms = torch.linalg.vector_norm(B, dim=1)
    # max |x| as max(max x, -min x): the same value, and far faster than abs().amax() in torch
    scale = torch.clamp(torch.maximum(B.amax(dim=1), -B.amin(dim=1)), min=1.0)
    ok = norms > 1e-12 * scale * (d ** 0.5)
    if bool(ok.all()):
        return B.div_(norms[:, None]), ok
    return B[ok] / norms[ok, None], ok


def _standardise(X: Any, centre: bool, dtype: str = "float64", rows: Any = None):
    """Rows centred (Pearson) or not (cosine), scaled to unit norm in float64 and stored as
    ``dtype``; returns ``(Z, ok)``: the usable rows and the mask of usable rows.

    Works through ``X`` in blocks of about 8 MiB of float64, so a float16/bfloat16/float32 matrix
    is never widened whole; ``rows`` (sorted indices) restricts the work to those rows.
    """
    n, d = int(X.shape[0]), int(X.shape[1])
    idx = np.arange(n) if rows is None else np.asarray(rows)
    step = max(1, _STD_ELEMENTS // max(d, 1))
    if is_torch(X):
        import torch

        tdt = getattr(torch, dtype)
        X = X.detach()
        t_idx = torch.as_tensor(idx, device=X.device)
        parts, oks = [], []
        for a in range(0, len(idx), step):
            sel = t_idx[a:a + step]
            B = (X[a:a + step] if rows is None else X[sel]).to(torch.float64, copy=True)
            Zb, ok = _std_torch(B, centre, d)
            parts.append(Zb.to(tdt))
            oks.append(ok)
        Z = torch.cat(parts) if parts else torch.empty((0, d), dtype=tdt, device=X.device)
        ok = torch.cat(oks) if oks else torch.zeros(0, dtype=torch.bool, device=X.device)
        return Z, ok
    if rows is not None:  # the chosen rows first, in the native dtype: the same values, read in order
        X = _gather_rows(X, idx)
    Z = np.empty((len(idx), d), dtype=dtype)
    ok = np.zeros(len(idx), dtype=bool)
    m = 0
    for a in range(0, len(idx), step):
        B = _rows_f64(X, a, a + step)  # a C-ordered copy (never a view: standardised in place)
        Zb, ok[a:a + step] = _std_numpy(B, centre, d, legacy=dtype == "float64")
        Z[m:m + len(Zb)] = Zb
        m += len(Zb)
    return Z[:m], ok


def _transposed(X: np.ndarray) -> bool:
    """Whether ``X`` is laid out as a transposed matrix (``W.T``: its rows are ``W``'s columns)."""
    return X.ndim == 2 and X.strides[0] < X.strides[1] and X.shape[1] > 1


def _rows_f64(X: np.ndarray, a: int, b: int) -> np.ndarray:
    """``X[a:b]`` as a C-ordered float64 copy; the rows of a transposed view are copied in
    cache-sized blocks (6x faster than numpy's strided copy of a 2048 x 5632 view)."""
    if not _transposed(X):
        return np.array(X[a:b], dtype=np.float64, order="C")
    src = X.T[:, a:b]  # (d, rows), rows contiguous
    out = np.empty((src.shape[1], src.shape[0]))
    for r in range(0, src.shape[0], _TRANSPOSE_ROWS):
        out[:, r:r + _TRANSPOSE_ROWS] = src[r:r + _TRANSPOSE_ROWS].T
    return out


def _gather_rows(X: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``X[idx]`` as a C-ordered array. The rows of a transposed view (``W.T``: the columns of a
    layer) are gathered along ``W``'s contiguous axis and transposed in cache-sized blocks, 4x
    faster than indexing the view."""
    if not _transposed(X):
        return np.take(X, idx, axis=0)
    G = np.take(X.T, idx, axis=1)  # (d, s): a contiguous read of every row of W
    out = np.empty((len(idx), X.shape[1]), dtype=X.dtype)
    for a in range(0, G.shape[0], _TRANSPOSE_ROWS):
        out[:, a:a + _TRANSPOSE_ROWS] = G[a:a + _TRANSPOSE_ROWS].T
    return out


def usable_from_moments(s: np.ndarray, q: np.ndarray, d: int, X: Any = None) -> np.ndarray:
    r"""Mask of the rows that :func:`correlation_summary` can use (Pearson: not constant), from each
    row's float64 sum ``s`` and sum of squares ``q`` over its ``d`` entries
    (:func:`netinit.metrics.strength.layer_sums` has both for the rows and the columns of a layer).

    The centred sum of squares is :math:`c = q - s^2/d`, computed within
    :math:`8 (d + 2) 2^{-53} q` (the rounding of ``q`` and of ``s``, with
    :math:`s^2/d \le q`). A row whose ``c`` exceeds that error by :math:`4 \cdot 10^{-24} d` passes
    the float64 test of the standardisation (``norm > 1e-12 max(max|x|, 1) sqrt(d)``, and
    ``max|x| <= norm``) for sure; the others (constant rows among them) are decided by that test
    itself on ``X``, so the mask is the one the standardisation gives, exactly.

    Parameters
    ----------
    s, q : ndarray of shape (n,), float64
    d : int
        Entries per row.
    X : array of shape (n, d), optional
        The rows, for the test of the undecided ones; without it they count as unusable.
    """
    s, q = np.asarray(s, dtype=np.float64), np.asarray(q, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        c = q - s * s / d
        sure = c - 8.0 * (d + 2) * 2.0**-53 * q > 4e-24 * d
    unsure = np.flatnonzero(~sure)
    if len(unsure) and X is not None:
        sure[unsure] = _standardise(X, True, rows=unsure)[1]
    return sure


def _usable_rows(X: Any, centre: bool) -> Any:
    """Mask of the rows :func:`_standardise` keeps, from two native-dtype reductions per row.

    A row whose range ``p = max - min`` is 0 is constant. Otherwise its centred norm is at least
    ``p / sqrt(2)`` and its largest centred entry at most ``p``, so it passes the test
    ``norm > 1e-12 max(scale, 1) sqrt(d)`` whenever ``p > 1.5e-12 sqrt(d)`` (for ``p >= 1`` always);
    likewise for the uncentred norm with ``max |x|``. Rows in between are decided by the float64
    test itself.
    """
    d = int(X.shape[1])
    if is_torch(X):
        import torch

        hi, lo = X.detach().amax(dim=1).double(), X.detach().amin(dim=1).double()
        p = (hi - lo) if centre else torch.maximum(hi.abs(), lo.abs())
        sure, zero = p > 1.5e-12 * d ** 0.5, p == 0
        unsure = torch.nonzero(~sure & ~zero).flatten().cpu().numpy()
        ok = sure.clone()
        if len(unsure):
            ok[torch.as_tensor(unsure, device=ok.device)] = _standardise(X, centre, rows=unsure)[1]
        return ok
    hi = X.max(axis=1).astype(np.float64)
    lo = X.min(axis=1).astype(np.float64)
    p = (hi - lo) if centre else np.maximum(np.abs(hi), np.abs(lo))
    sure = p > 1.5e-12 * math.sqrt(d)
    unsure = np.flatnonzero(~sure & (p != 0))
    if len(unsure):
        sure[unsure] = _standardise(X, centre, rows=unsure)[1]
    return sure


def _check(X: Any, name: str) -> None:
    if len(X.shape) != 2:
        raise ShapeError(f"{name}: expected a 2-D matrix (neurons, features), got shape {tuple(X.shape)}")
    if X.shape[1] < 2:
        raise ShapeError(
            f"{name}: correlation needs at least 2 features per neuron, got shape {tuple(X.shape)}"
        )
    check_finite(X, name)


def correlation_matrix(X: Any, *, centre: bool = True, name: str = "X") -> np.ndarray:
    """Pearson (or cosine) correlation matrix of the rows of ``X``.

    Parameters
    ----------
    X : array of shape (n, d)
        One row per neuron.
    centre : bool, default True
        Centre each row first (Pearson); ``False`` gives cosine similarity.
    name : str
        Used in error messages.

    Returns
    -------
    R : ndarray of shape (n, n), float64
        Rows and columns of constant neurons are NaN (their correlation is undefined);
        the diagonal of the others is 1.

    Raises
    ------
    ShapeError
        ``X`` is not 2-D or has fewer than 2 columns.
    NonFiniteError
        ``X`` holds NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> R = correlation_matrix(np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.1], [3.0, 2.0, 1.0]]))
    >>> np.round(R[0], 3).tolist()
    [1.0, 1.0, -1.0]
    """
    _check(X, name)
    Z, ok = _standardise(X, centre)
    if is_torch(Z):
        Z, ok = Z.cpu().numpy(), ok.cpu().numpy()
    n = X.shape[0]
    R = np.full((n, n), np.nan)
    idx = np.flatnonzero(ok)
    sub = np.clip(Z @ Z.T, -1.0, 1.0)
    np.fill_diagonal(sub, 1.0)
    R[np.ix_(idx, idx)] = sub
    return R


# -- kernels: one pass over each tile, every statistic ------------------------------------------

def _reduce(T: Any, threshold: float) -> tuple[float, float, float, float]:
    """``(sum |r|, sum r^2, count |r| > t, max |r|)`` of a tile of ``r`` (float64 sums), made
    ``|r|`` clamped to 1 in place first."""
    if is_torch(T):
        import torch

        T = T.abs_().clamp_(max=1.0)
        return (float(T.sum(dtype=torch.float64)), float(torch.square(T).sum(dtype=torch.float64)),
                float((T > threshold).sum()), float(T.max()) if T.numel() else 0.0)
    np.abs(T, out=T)
    np.minimum(T, 1.0, out=T)
    return (float(T.sum(dtype=np.float64)), float(np.einsum("ij,ij->", T, T, dtype=np.float64)),
            float(np.count_nonzero(T > threshold)), float(T.max(initial=0.0)))


def _triangle(Z: Any, threshold: float) -> tuple[float, float, float, float]:
    """``(sum |r|, sum r^2, count |r| > t, max |r|)`` over the pairs ``a < b`` of rows of ``Z``.

    Upper-triangle tiles: for each block of rows (at least :data:`_TILE`, more while the block's
    products hold at most :data:`_TILE_ELEMENTS` entries), the diagonal tile ``Z_i Z_i^T``
    (numpy computes it as a symmetric rank-k update, half the work of a product; its diagonal is
    zeroed and its sums halved), then the block against the rows after it.
    """
    m = int(Z.shape[0])
    tile = max(_TILE, _TILE_ELEMENTS // max(m, 1))  # big tiles: BLAS runs near its peak
    tot = [0.0, 0.0, 0.0, 0.0]
    for a in range(0, m, tile):
        b = min(a + tile, m)
        Zi = Z[a:b]
        D = Zi @ Zi.T  # symmetric: its diagonal zeroed, every pair counted twice
        if is_torch(D):
            D.fill_diagonal_(0.0)
        else:
            np.fill_diagonal(D, 0.0)
        tiles = [(D, 0.5)] if b == m else [(D, 0.5), (Zi @ Z[b:].T, 1.0)]
        for T, w in tiles:
            s_abs, s_sq, n_above, mx = _reduce(T, threshold)
            tot[0] += w * s_abs
            tot[1] += w * s_sq
            tot[2] += w * n_above
            tot[3] = max(tot[3], mx)
    return tot[0], tot[1], tot[2], tot[3]


def _pair_rows(Z: Any, threshold: float) -> tuple[np.ndarray, float]:
    """Per row ``a`` of ``Z``: sums over ``b != a`` of ``|r|``, ``1[|r| > t]``, ``r^2`` (a (3, s)
    float64 array) and the maximum ``|r|`` over the pairs. One symmetric product when the
    ``s x s`` matrix holds at most :data:`_TILE_ELEMENTS` entries, row blocks above."""
    s = int(Z.shape[0])
    out = np.zeros((3, s))
    mx = 0.0
    step = s if s * s <= _TILE_ELEMENTS else _TILE
    for a in range(0, s, step):
        b = min(a + step, s)
        if is_torch(Z):
            import torch

            T = (Z @ Z.T if step == s else Z[a:b] @ Z.T).abs_().clamp_(max=1.0)
            r = torch.arange(b - a, device=T.device)
            T[r, r + a] = 0.0
            parts = (T.sum(1, dtype=torch.float64), (T > threshold).sum(1),
                     torch.square(T).sum(1, dtype=torch.float64))
            out[:, a:b] = torch.stack([p.double() for p in parts]).cpu().numpy()
            mx = max(mx, float(T.max()))
        else:
            T = Z @ Z.T if step == s else Z[a:b] @ Z.T  # the first: a symmetric rank-k update
            np.abs(T, out=T)
            np.minimum(T, 1.0, out=T)
            r = np.arange(b - a)
            T[r, r + a] = 0.0
            out[0, a:b] = T.sum(axis=1, dtype=np.float64)
            out[1, a:b] = np.count_nonzero(T > threshold, axis=1)
            out[2, a:b] = np.einsum("ij,ij->i", T, T, dtype=np.float64)
            mx = max(mx, float(T.max()))
    return out, mx


def _jackknife(T: np.ndarray, m: int) -> tuple[float, float]:
    """U-statistic ``U`` (mean over pairs) and its jackknife SE from row sums ``T`` (length s)."""
    s = len(T)
    total = float(T.sum())  # every pair twice
    U = total / (s * (s - 1))
    if s < 3:
        return U, float("nan")
    loo = (total - 2.0 * T) / ((s - 1) * (s - 2))
    var = (s - 1) / s * float(np.sum((loo - loo.mean()) ** 2))
    return U, math.sqrt(max(0.0, 1.0 - s / m) * var)


def _frobenius_sq(X: Any, centre: bool) -> float:
    """``||Z^T Z||_F^2 = sum_{a,b} r_ab^2`` (diagonal included) over the usable rows, in float64
    blocks: ``O(n d^2)`` work and ``O(d^2)`` memory."""
    d = int(X.shape[1])
    step = max(1, _STD_ELEMENTS // d)
    if is_torch(X):
        import torch

        G = torch.zeros((d, d), dtype=torch.float64, device=X.device)
        for a in range(0, int(X.shape[0]), step):
            Zb, _ = _std_torch(X.detach()[a:a + step].to(torch.float64, copy=True), centre, d)
            G += Zb.T @ Zb
        return float(torch.square(G).sum())
    G = np.zeros((d, d))
    for a in range(0, int(X.shape[0]), step):
        Zb, _ = _std_numpy(_rows_f64(X, a, a + step), centre, d)
        G += Zb.T @ Zb
    return float(np.einsum("ij,ij->", G, G))


def _result(m: int, n_constant: int, method: str) -> dict[str, Any]:
    return {"mean_abs": 0.0, "max_abs": 0.0, "share_above": 0.0, "mean_sq": 0.0,
            "effective_n": float(m), "n_constant": float(n_constant),
            "n_pairs": float(m * (m - 1) // 2), "mean_abs_se": 0.0, "share_above_se": 0.0,
            "mean_sq_se": 0.0, "effective_n_se": 0.0, "max_abs_is_lower_bound": False,
            "n_sampled": float(m), "method": method}


def _legacy(Z: Any, threshold: float) -> tuple[float, float, float, float]:
    """The float64 summary of earlier releases (row blocks of the full ``Z Z^T``, ordered
    pairs), kept bit for bit for small layers: ``(sum |r|, sum r^2, count, max)`` halved to
    unordered pairs."""
    m = int(Z.shape[0])
    sum_abs = sum_sq = n_above = max_abs = 0.0
    for start in range(0, m, _BLOCK):
        stop = min(start + _BLOCK, m)
        B = Z[start:stop] @ Z.T
        if is_torch(B):
            B = B.clamp(-1.0, 1.0)
            import torch

            r = torch.arange(stop - start, device=B.device)
            B[r, r + start] = 0.0
            A = B.abs()
            sum_abs += float(A.sum())
            sum_sq += float((B * B).sum())
            n_above += float((A > threshold).sum())
            max_abs = max(max_abs, float(A.max()))
        else:
            rows = np.arange(stop - start)
            B = np.clip(B, -1.0, 1.0)
            B[rows, rows + start] = 0.0
            A = np.abs(B)
            sum_abs += float(A.sum())
            sum_sq += float(np.einsum("ij,ij->", B, B))
            n_above += float(np.count_nonzero(A > threshold))
            max_abs = max(max_abs, float(A.max()))
    return sum_abs / 2, sum_sq / 2, n_above / 2, max_abs


def _exact(X: Any, threshold: float, centre: bool) -> dict[str, Any]:
    n, d = int(X.shape[0]), int(X.shape[1])
    small = n <= FLOAT64_MAX_NEURONS and n * d <= _FLOAT64_MAX_ELEMENTS
    Z, ok = _standardise(X, centre, "float64" if small else "float32")
    m = int(Z.shape[0])
    out = _result(m, n - m, "exact")
    if m < 2:
        return out
    s_abs, s_sq, n_above, mx = (_legacy if small else _triangle)(Z, threshold)
    if small:  # the expressions of earlier releases, over ordered pairs
        pairs = m * (m - 1)
        out.update(mean_abs=2 * s_abs / pairs, max_abs=mx, share_above=2 * n_above / pairs,
                   mean_sq=2 * s_sq / pairs, effective_n=m * m / (m + 2 * s_sq))
        return out
    pairs = m * (m - 1) / 2
    out.update(mean_abs=s_abs / pairs, max_abs=mx, share_above=n_above / pairs,
               mean_sq=s_sq / pairs, effective_n=m * m / (m + 2.0 * s_sq))
    return out


def _sampled(X: Any, threshold: float, centre: bool, rng: RngLike, size: int, usable: Any = None) -> dict[str, Any]:
    n = int(X.shape[0])
    ok = _usable_rows(X, centre) if usable is None else usable
    usable = np.flatnonzero(ok.cpu().numpy() if is_torch(ok) else ok)
    m = len(usable)
    if m <= size:
        return _exact(X, threshold, centre)
    gen = as_generator(rng)
    rows = np.sort(gen.choice(usable, size=size, replace=False))
    Z, _ = _standardise(X, centre, "float32", rows=rows)
    sums, mx = _pair_rows(Z, threshold)
    out = _result(m, n - m, f"sampled(s={size})")
    out.update(max_abs=mx, max_abs_is_lower_bound=True, n_sampled=float(size))
    for key, T in zip(("mean_abs", "share_above", "mean_sq"), sums):
        out[key], out[f"{key}_se"] = _jackknife(T, m)
    d = int(X.shape[1])
    if m * d <= 4 * size * size:  # the d x d Gram costs at most 4x the sample's: exact
        frob = _frobenius_sq(X, centre)
        out["mean_sq"], out["mean_sq_se"] = (frob - m) / (m * (m - 1)), 0.0
    ms = out["mean_sq"]
    den = 1.0 + (m - 1) * ms
    out["effective_n"] = m / den
    out["effective_n_se"] = m * (m - 1) / den**2 * out["mean_sq_se"]
    return out


def correlation_summary(
    X: Any,
    *,
    threshold: float = 0.5,
    centre: bool = True,
    name: str = "X",
    method: str = "exact",
    rng: RngLike = None,
    sample_size: int = SAMPLE_SIZE,
    usable: np.ndarray | None = None,
) -> dict[str, Any]:
    r"""Summaries of the pairwise correlation of the rows of ``X`` over off-diagonal pairs.

    Exact, or estimated from a sample of rows with a standard error; the algorithms, the
    rounding-error bound of the float32 products and the estimators are in the module docstring
    (:mod:`netinit.metrics.correlation`).

    Parameters
    ----------
    X : array of shape (n, d)
        One row per neuron (numpy array or torch tensor on any device, any float dtype).
    threshold : float, default 0.5
        A pair with ``|r| > threshold`` counts as redundant.
    centre : bool, default True
        Pearson (True) or cosine similarity (False).
    name : str
        Used in error messages.
    method : {"exact", "sampled", "auto"}, default "exact"
        ``"auto"`` is exact up to :data:`EXACT_MAX_NEURONS` rows and sampled above; ``"sampled"``
        with ``sample_size`` at least the number of usable rows is exact.
    rng : None, int or numpy.random.Generator
        Draws the sampled rows (one ``Generator.choice`` without replacement).
    sample_size : int, default :data:`SAMPLE_SIZE`
        Rows drawn when sampling (at least 3, for the jackknife).
    usable : bool ndarray of shape (n,), optional
        The usable rows where the caller knows them (:func:`usable_from_moments`, for Pearson),
        which saves the sampled method a pass over ``X``; it must be the mask the
        standardisation gives. Ignored by the exact method.

    Returns
    -------
    dict
        ``mean_abs`` (mean ``|r|``), ``max_abs``, ``share_above`` (share of pairs with
        ``|r| > threshold``), ``mean_sq`` (mean ``r^2``), ``effective_n`` (participation ratio of
        the eigenvalues of ``R``), ``n_constant`` (rows left out), ``n_pairs`` (pairs of usable
        rows); ``mean_abs_se``, ``share_above_se``, ``mean_sq_se``, ``effective_n_se`` (standard
        errors: 0.0 when exact), ``max_abs_is_lower_bound`` (True when sampled),
        ``n_sampled`` (rows the statistics come from) and ``method`` (``"exact"`` or
        ``"sampled(s=512)"``). With fewer than two usable rows the pair statistics are 0.0 and
        ``effective_n`` equals the number of usable rows: documented values, never NaN.

    Raises
    ------
    ShapeError, NonFiniteError
        As :func:`correlation_matrix`.
    ValueError
        ``threshold`` outside [0, 1], an unknown ``method``, ``sample_size < 3``.

    Examples
    --------
    >>> import numpy as np
    >>> s = correlation_summary(np.eye(4))
    >>> round(s["mean_abs"], 4), round(s["effective_n"], 4), s["method"]
    (0.3333, 3.0, 'exact')
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if isinstance(sample_size, bool) or not isinstance(sample_size, (int, np.integer)) or sample_size < 3:
        raise ValueError(f"sample_size must be an integer of at least 3, got {sample_size!r}")
    _check(X, name)
    if is_torch(X) and X.device.type == "cpu" and _CPU_TENSORS_AS_NUMPY:
        # numpy's kernels are 2-3x faster than torch's on the CPU; bfloat16 (no numpy dtype) is
        # read as float32, never float64
        X = X.detach()
        X = (X.float() if str(X.dtype) == "torch.bfloat16" else X).numpy()
    if method == "auto":
        method = "exact" if int(X.shape[0]) <= EXACT_MAX_NEURONS else "sampled"
    if method == "exact":
        return _exact(X, threshold, centre)
    return _sampled(X, threshold, centre, rng, int(sample_size), usable)

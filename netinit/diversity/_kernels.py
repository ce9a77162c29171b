"""Numerical kernels of the decorrelated initialisation (see :mod:`netinit.diversity.init`).

Each kernel works on a float64 matrix ``(n, d)`` held by numpy or by torch (on its own device)
through a tiny backend namespace (``Np`` / ``Th``), so both backends run the same arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netinit.errors import NonFiniteError, ShapeError

__all__ = ["backend", "symmetric", "backprop", "greedy", "unit_rows", "Np", "Th"]

_LOGDET_EPS = 1e-3


class Np:
    """numpy backend."""

    @staticmethod
    def f64(x):
        return np.array(x, dtype=np.float64)

    @staticmethod
    def rownorm(x):
        return np.linalg.norm(x, axis=1, keepdims=True)

    @staticmethod
    def svd(x):
        return np.linalg.svd(x, full_matrices=False)

    @staticmethod
    def eye(n, like):
        return np.eye(n)

    @staticmethod
    def solve(a, b):
        return np.linalg.solve(a, b)

    @staticmethod
    def where(c, a, b):
        return np.where(c, a, b)

    @staticmethod
    def rowmax(x):
        return x.max(axis=1, keepdims=True)

    @staticmethod
    def maximum_all(x):
        return x.max()

    @staticmethod
    def empty_like(x):
        return np.empty_like(x)

    @staticmethod
    def cast_back(x, like):
        return x.astype(np.asarray(like).dtype if np.asarray(like).dtype.kind == "f" else np.float64)


class Th:
    """torch backend (the tensor's own device)."""

    @staticmethod
    def f64(x):
        import torch

        return x.detach().to(torch.float64).clone()

    @staticmethod
    def rownorm(x):
        import torch

        return torch.linalg.vector_norm(x, dim=1, keepdim=True)

    @staticmethod
    def svd(x):
        import torch

        return torch.linalg.svd(x, full_matrices=False)

    @staticmethod
    def eye(n, like):
        import torch

        return torch.eye(n, dtype=like.dtype, device=like.device)

    @staticmethod
    def solve(a, b):
        import torch

        return torch.linalg.solve(a, b)

    @staticmethod
    def where(c, a, b):
        import torch

        return torch.where(c, a, b)

    @staticmethod
    def rowmax(x):
        return x.amax(dim=1, keepdim=True)

    @staticmethod
    def maximum_all(x):
        return x.max()

    @staticmethod
    def empty_like(x):
        import torch

        return torch.empty_like(x)

    @staticmethod
    def cast_back(x, like):
        return x.to(like.dtype)

    @staticmethod
    def cat_zero(x):
        import torch

        return torch.cat([x, torch.zeros_like(x)], dim=1)


def backend(x: Any):
    """``Th`` for a torch tensor, ``Np`` otherwise."""
    return Th if type(x).__module__.startswith("torch") else Np


def unit_rows(Z, xp, centre: bool):
    """Rows centred (optionally) and scaled to unit norm; zero rows stay zero."""
    if centre:
        Z = Z - Z.mean(1, keepdims=True) if xp is Np else Z - Z.mean(dim=1, keepdim=True)
    n = xp.rownorm(Z)
    return Z / xp.where(n > 0, n, n * 0 + 1)


def symmetric(W, xp, centre: bool, cap: int):
    """Loewdin orthogonalisation of the centred rows, in blocks of ``cap`` rows; means and norms kept."""
    n, d = W.shape
    mu = (W.mean(1, keepdims=True) if xp is Np else W.mean(dim=1, keepdim=True)) if centre else W[:, :1] * 0
    C = W - mu
    s = xp.rownorm(C)
    out = xp.empty_like(W)
    for start in range(0, n, cap):
        B = C[start:start + cap]
        U, S, Vh = xp.svd(B)
        tol = max(B.shape) * np.finfo(np.float64).eps * xp.maximum_all(S)
        keep = (S > tol) * 1.0
        Q = unit_rows((U * keep[None, :]) @ Vh, xp, centre)
        out[start:start + cap] = mu[start:start + cap] + s[start:start + cap] * Q
    return out


def backprop(W, xp, centre: bool, steps: int, lr: float, objective: str):
    """Projected gradient steps on the unit centred rows for ``objective``; means and norms kept."""
    n, d = W.shape
    mu = (W.mean(1, keepdims=True) if xp is Np else W.mean(dim=1, keepdim=True)) if centre else W[:, :1] * 0
    s = xp.rownorm(W - mu)
    Z = unit_rows(W - mu, xp, centre)
    eye = xp.eye(n, Z)
    for _ in range(steps):
        R = Z @ Z.T
        if objective == "mean_sq":
            G = (R - eye) @ Z
            eta = lr / xp.maximum_all(abs(R).sum(1))
        else:
            G = -xp.solve(R + _LOGDET_EPS * eye, Z)
            eta = lr / xp.maximum_all(xp.rownorm(G))
        Z = unit_rows(Z - eta * G, xp, centre)
    return mu + s * Z



def greedy(pool: list[Any], *, centre: bool) -> Any:
    """Keep ``n`` of the rows of ``pool`` (each ``(n, ...)``), each with the least max ``|r|``."""
    import torch

    n = pool[0].shape[0]
    C = torch.cat([p.reshape(n, -1) for p in pool]).to(torch.float64)
    if C.shape[1] < 2 and centre:
        raise ShapeError(
            f"a weight of shape {tuple(pool[0].shape)} has a single input per neuron; pass centre=False"
        )
    if not bool(C.isfinite().all()):
        raise NonFiniteError("the base initialiser produced NaN or infinity")
    Z = unit_rows(C, Th, centre)
    live = torch.linalg.vector_norm(Z, dim=1) > 0.5
    first = torch.zeros(1, dtype=torch.long, device=C.device)
    worst = torch.where(live, (Z @ Z[0]).abs(), torch.full_like(C[:, 0], 2.0))
    worst[0] = float("inf")
    chosen = [first]
    for _ in range(n - 1):
        j = torch.argmin(worst).reshape(1)
        chosen.append(j)
        r = (Z @ Z.index_select(0, j).T).abs().squeeze(1)
        worst = torch.maximum(worst, torch.where(live, r, worst))
        worst.index_fill_(0, j, float("inf"))
    idx = torch.cat(chosen)
    return torch.cat(pool).reshape(C.shape[0], *pool[0].shape[1:]).index_select(0, idx)

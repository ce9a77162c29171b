r"""Decorrelation penalties: differentiable torch losses added to the task loss.

This module imports torch at the top; ``netinit`` and ``netinit.diversity`` import it lazily.

Activation penalties take ``H`` of shape ``(samples, n)`` (a Conv activation
``(batch, channels, *positions)`` is averaged over the positions first); with ``H_c`` the
column-centred activations and ``B`` the number of samples:

* :class:`ActivationCorrelation`: ``mean_{i != j} r_ij^2`` with ``r`` the batch Pearson
  correlation of the columns of ``H``. Constant (dead) columns have no correlation and are left
  out of the mean.
* :class:`DeCov` (Cogswell et al. 2016): ``0.5 * (||C||_F^2 - ||diag(C)||_2^2)`` with
  ``C = H_c^T H_c / B`` the batch covariance.

Weight penalties take ``W`` of shape ``(n_out, n_in)`` (a Conv kernel flattened to
``(out, in/groups * prod(k))``), with ``w_i`` its rows:

* :class:`WeightCorrelation`: ``mean_{i != j} cos(w_i, w_j)^2`` (a soft orthogonality; Pearson
  with ``centre=True``).
* :class:`Orthogonality`: ``||W' W'^T - I||_F^2`` with ``W'`` the rows of ``W`` normalised to unit
  length (``normalise=False``: the raw ``W``, the soft-orthogonality regulariser of Bansal et al.
  2018, which also pulls the row norms to 1).

Every penalty is 0 when it should be: orthogonal (or, for Pearson, centred-orthogonal) rows,
uncorrelated activations. A batch with fewer than 2 samples carries no correlation; the activation
penalties return 0 for it (the last, short batch of an epoch does not stop training). Each module
multiplies its penalty by ``coef``.

References
----------
M. Cogswell, F. Ahmed, R. Girshick, L. Zitnick, D. Batra, "Reducing Overfitting in Deep Networks
by Decorrelating Representations", ICLR 2016.
N. Bansal, X. Chen, Z. Wang, "Can We Gain More from Orthogonality Regularizations in Training
Deep CNNs?", NeurIPS 2018.
A. Kovalenko, P. Kordik, M. Friedjungova, arXiv:2109.09612 (2021).
"""

from __future__ import annotations

import torch
from torch import nn

from netinit.diversity._modules import as_samples
from netinit.errors import ShapeError

__all__ = [
    "ActivationCorrelation",
    "DeCov",
    "WeightCorrelation",
    "Orthogonality",
    "PENALTIES",
]

_TINY = 1e-12


def _rows(W: torch.Tensor) -> torch.Tensor:
    if W.dim() < 2:
        raise ShapeError(f"a weight penalty needs W of shape (n_out, n_in, ...), got {tuple(W.shape)}")
    return W.reshape(W.shape[0], -1)


def _samples(H: torch.Tensor) -> torch.Tensor:
    if H.dim() == 2:
        return H
    if H.dim() < 2:
        raise ShapeError(f"an activation penalty needs H of shape (samples, n), got {tuple(H.shape)}")
    return as_samples(H)


def _unit_rows(X: torch.Tensor, centre: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows centred (optionally) and scaled to unit norm; mask of the rows with non-zero norm."""
    if centre:
        X = X - X.mean(dim=1, keepdim=True)
    norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
    Xd = X.detach()
    live = norms.detach() > (_TINY * X.shape[1] ** 0.5) * Xd.abs().amax(dim=1, keepdim=True).clamp(min=1.0)
    return X / torch.where(live, norms, 1.0) * live, live.squeeze(1)


def _mean_sq_offdiag(Z: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """``sum_{i != j} (Z Z^T)_ij^2 / (m (m - 1))`` over the ``m`` live rows of unit-norm ``Z``."""
    R = Z @ Z.T
    d = torch.diagonal(R)
    m = live.sum().to(Z.dtype)
    return ((R * R).sum() - (d * d).sum()) / torch.clamp(m * (m - 1), min=1.0)


def _mean_abs_offdiag(Z: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    R = Z @ Z.T
    off = R - torch.diag_embed(torch.diagonal(R))
    m = live.sum().to(Z.dtype)
    return off.abs().sum() / torch.clamp(m * (m - 1), min=1.0)


class _Penalty(nn.Module):
    """Base class: ``forward(x) = coef * penalty(x)``; ``diversity(x) = 1 - mean |r|`` (no grad)."""

    space = "activation"

    def __init__(self, coef: float = 1.0) -> None:
        super().__init__()
        if not float(coef) >= 0.0:
            raise ValueError(f"coef must be a non-negative number, got {coef!r}")
        self.coef = float(coef)

    def extra_repr(self) -> str:
        return f"coef={self.coef}"

    def penalty(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.coef * self.penalty(x)

    @torch.no_grad()
    def diversity(self, x: torch.Tensor) -> torch.Tensor:
        """``1 - mean_{i != j} |r_ij|`` of ``x`` in this penalty's space, a 0-d tensor (no sync)."""
        if self.space == "activation":
            H = _samples(x)
            if H.shape[0] < 2:
                return torch.ones((), dtype=H.dtype, device=H.device)
            Z, live = _unit_rows(H.T, centre=True)
        else:
            Z, live = _unit_rows(_rows(x), centre=getattr(self, "centre", False))
        return 1.0 - _mean_abs_offdiag(Z, live)


class ActivationCorrelation(_Penalty):
    r"""Mean squared Pearson correlation between the neurons' activations on a batch.

    .. math:: P(H) = \frac{1}{m(m-1)} \sum_{i \ne j} r_{ij}^2, \qquad
              r_{ij} = \frac{h_{c,i}^\top h_{c,j}}{\lVert h_{c,i}\rVert \lVert h_{c,j}\rVert}

    over the ``m`` non-constant columns of ``H`` (shape ``(samples, n)``; Conv activations are
    averaged over positions). In [0, 1]; 0 for uncorrelated activations.

    Parameters
    ----------
    coef : float, default 1.0
        Multiplies the penalty.

    Examples
    --------
    >>> import torch
    >>> H = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    >>> float(ActivationCorrelation()(torch.cat([H, 2 * H[:, :1]], dim=1))) > 0.05
    True
    """

    def penalty(self, H: torch.Tensor) -> torch.Tensor:
        H = _samples(H)
        if H.shape[0] < 2:
            return H.sum() * 0.0
        Z, live = _unit_rows(H.T, centre=True)
        return _mean_sq_offdiag(Z, live)


class DeCov(_Penalty):
    r"""DeCov loss of Cogswell et al. (ICLR 2016): squared off-diagonal batch covariance.

    .. math:: P(H) = \tfrac12 \left(\lVert C \rVert_F^2 - \lVert \operatorname{diag} C \rVert_2^2
              \right), \qquad C = \tfrac1B H_c^\top H_c

    with ``H`` of shape ``(B, n)`` (Conv: averaged over positions) and ``H_c`` its centred columns.
    Scale dependent (it also shrinks activations); 0 for uncorrelated activations.

    Parameters
    ----------
    coef : float, default 1.0
        Multiplies the penalty.

    Examples
    --------
    >>> import torch
    >>> float(DeCov()(torch.eye(4)))    # covariance -1/16 off the diagonal: 0.5 * 12 / 256
    0.0234375
    """

    def penalty(self, H: torch.Tensor) -> torch.Tensor:
        H = _samples(H)
        B = H.shape[0]
        if B < 2:
            return H.sum() * 0.0
        Hc = H - H.mean(dim=0, keepdim=True)
        C = Hc.T @ Hc / B
        return 0.5 * ((C * C).sum() - (torch.diagonal(C) ** 2).sum())


class WeightCorrelation(_Penalty):
    r"""Mean squared cosine similarity between the rows of a weight (a soft orthogonality).

    .. math:: P(W) = \frac{1}{n(n-1)} \sum_{i \ne j} \cos(w_i, w_j)^2

    over the non-zero rows of ``W`` (shape ``(n_out, n_in)``; Conv kernels flattened). In [0, 1];
    0 for orthogonal rows. ``centre=True`` centres each row first (Pearson correlation).

    Parameters
    ----------
    coef : float, default 1.0
        Multiplies the penalty.
    centre : bool, default False
        Pearson correlation of the rows instead of cosine similarity.
    """

    space = "weight"

    def __init__(self, coef: float = 1.0, *, centre: bool = False) -> None:
        super().__init__(coef)
        self.centre = bool(centre)

    def extra_repr(self) -> str:
        return f"coef={self.coef}, centre={self.centre}"

    def penalty(self, W: torch.Tensor) -> torch.Tensor:
        Z, live = _unit_rows(_rows(W), centre=self.centre)
        return _mean_sq_offdiag(Z, live)


class Orthogonality(_Penalty):
    r"""Squared distance of the row Gram matrix from the identity.

    .. math:: P(W) = \lVert W' W'^\top - I \rVert_F^2

    with ``W'`` the rows of ``W`` (shape ``(n_out, n_in)``) normalised to unit length, or ``W``
    itself with ``normalise=False`` (soft orthogonality, Bansal et al. 2018). 0 for orthonormal
    rows; at least ``n_out (n_out - n_in) / n_in`` when ``n_out > n_in``. With normalised rows the
    Gram diagonal is 1, so the penalty is exactly ``n (n - 1)`` times :class:`WeightCorrelation`
    (``n`` the non-zero rows): the same penalty at another scale (a 32-row layer: 992x).
    ``normalise=False`` also penalises the row norms, and is the distinct penalty.

    Parameters
    ----------
    coef : float, default 1.0
        Multiplies the penalty.
    normalise : bool, default True
        Normalise the rows first.
    """

    space = "weight"

    def __init__(self, coef: float = 1.0, *, normalise: bool = True) -> None:
        super().__init__(coef)
        self.normalise = bool(normalise)

    def extra_repr(self) -> str:
        return f"coef={self.coef}, normalise={self.normalise}"

    def penalty(self, W: torch.Tensor) -> torch.Tensor:
        W = _rows(W)
        if self.normalise:
            W, _ = _unit_rows(W, centre=False)
        G = W @ W.T
        eye = torch.eye(G.shape[0], dtype=G.dtype, device=G.device)
        D = G - eye
        return (D * D).sum()


#: The penalty classes by kind name.
PENALTIES: dict[str, type[_Penalty]] = {
    "activation_correlation": ActivationCorrelation,
    "decov": DeCov,
    "weight_correlation": WeightCorrelation,
    "orthogonality": Orthogonality,
}

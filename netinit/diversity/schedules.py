r"""Schedules of the decorrelation coefficient ("dynamic" diversification).

The penalty added to the task loss at epoch ``e`` is ``coef * s(e) * P`` with ``P`` the
decorrelation penalty and ``s`` one of

=================  ====================================================================
kind               factor ``s(e)`` (``K`` = ``epochs``)
=================  ====================================================================
``constant``       1
``first_epochs``   1 while ``e < K``, then 0 (decorrelate at the start of training only)
``linear``         ``max(0, 1 - e / K)``
``cosine``         ``(1 + cos(pi * min(e, K) / K)) / 2``
``adaptive``       1 for a layer while its measured diversity ``1 - mean |r|`` (on the
                   current batch, in the space the penalty acts on) is below ``target``,
                   else 0; the layer's gate is re-evaluated at every call
=================  ====================================================================

``e`` counts completed epochs from 0 and may be fractional (set it per step for a smooth decay).

References
----------
A. Kovalenko, P. Kordik, M. Friedjungova, "Dynamic Neural Diversification: Path to Computationally
Sustainable Neural Networks", arXiv:2109.09612 (2021): decorrelation reinforced dynamically
during training improves learning at early stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Schedule", "SCHEDULES"]

#: The schedule kinds.
SCHEDULES = ("constant", "first_epochs", "linear", "cosine", "adaptive")


@dataclass(frozen=True)
class Schedule:
    """A schedule of the decorrelation coefficient.

    Parameters
    ----------
    kind : {"constant", "first_epochs", "linear", "cosine", "adaptive"}
        See the module docstring.
    epochs : float, default 3
        ``K``: the length of the active phase (``first_epochs``) or of the decay (``linear``,
        ``cosine``); unused by ``constant`` and ``adaptive``.
    target : float, default 0.8
        ``adaptive`` only: the penalty of a layer is on while ``1 - mean |r|`` of the layer is
        below ``target`` (in (0, 1]).

    Examples
    --------
    >>> s = Schedule("cosine", epochs=4)
    >>> [round(s.factor(e), 3) for e in range(6)]
    [1.0, 0.854, 0.5, 0.146, 0.0, 0.0]
    >>> Schedule("first_epochs", epochs=2).factor(2)
    0.0
    """

    kind: str = "constant"
    epochs: float = 3
    target: float = 0.8

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {self.kind!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float)) or not (
            math.isfinite(self.epochs) and self.epochs > 0
        ):
            raise ValueError(f"epochs must be a positive number, got {self.epochs!r}")
        if not 0.0 < float(self.target) <= 1.0:
            raise ValueError(f"target must lie in (0, 1], got {self.target!r}")

    @property
    def adaptive(self) -> bool:
        """Whether the factor is gated per layer by the measured diversity."""
        return self.kind == "adaptive"

    def factor(self, epoch: float) -> float:
        """The factor ``s(epoch)`` in [0, 1] (1.0 for ``adaptive``: its gate is per layer)."""
        if not (math.isfinite(epoch) and epoch >= 0):
            raise ValueError(f"epoch must be a non-negative number, got {epoch!r}")
        K = float(self.epochs)
        if self.kind in ("constant", "adaptive"):
            return 1.0
        if self.kind == "first_epochs":
            return 1.0 if epoch < K else 0.0
        if self.kind == "linear":
            return max(0.0, 1.0 - epoch / K)
        return 0.5 * (1.0 + math.cos(math.pi * min(epoch, K) / K))

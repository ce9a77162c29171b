r"""Dynamic decorrelation: a scheduled decorrelation penalty attached to a model.

:class:`Decorrelation` registers forward hooks on the chosen layers (activation penalties) or reads
their weights (weight penalties); calling it returns

.. math:: \mathcal{L}_\mathrm{dec} = \mathrm{coef} \cdot s(e) \sum_{\ell} g_\ell \, P(X_\ell)

for the last forward pass, with ``P`` the penalty of ``kind`` (see
:mod:`netinit.diversity.regularisers`), ``X_l`` the activations (or weight) of layer ``l``,
``s(e)`` the schedule's factor at epoch ``e`` and ``g_l`` the adaptive gate (1 unless the schedule
is ``adaptive``: see :mod:`netinit.diversity.schedules`).

The activations are the layers' outputs, optionally passed through ``activation``, exactly as in
:func:`netinit.diversity.diversity`.

References
----------
A. Kovalenko, P. Kordik, M. Friedjungova, "Dynamic Neural Diversification: Path to Computationally
Sustainable Neural Networks", arXiv:2109.09612 (2021).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch

from netinit.diversity._modules import (
    ActivationLike,
    model_device,
    resolve_activation,
    select_modules,
)
from netinit.diversity.regularisers import PENALTIES
from netinit.diversity.schedules import Schedule
from netinit.errors import DataError

__all__ = ["Decorrelation"]


class Decorrelation:
    """A scheduled decorrelation penalty on the hidden layers of a model.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained.
    kind : {"decov", "activation_correlation", "weight_correlation", "orthogonality"}
        The penalty (see :mod:`netinit.diversity.regularisers`).
    schedule : str or Schedule, default "first_epochs"
        ``"constant"``, ``"first_epochs"``, ``"linear"``, ``"cosine"``, ``"adaptive"`` (with its
        default target 0.8) or a :class:`Schedule` (then ``epochs`` is not used).
    epochs : float, default 3
        ``K`` of the schedule: active phase or decay length in epochs.
    coef : float, default 0.1
        The coefficient of the penalty.
    layers : None, str or list of str
        Which Linear/Conv layers (:mod:`netinit.layers`, "Selection"); default: every
        Linear/Conv layer but the last (the hidden layers).
    activation : None, "relu", "tanh", "sigmoid", "gelu" or callable
        Applied to a layer's output before an activation penalty (default: the output itself).

    Attributes
    ----------
    epoch : float
        Completed epochs; :meth:`step_epoch` adds 1, and it may be set directly.
    last_gates : dict of str to 0-d tensor
        ``adaptive`` only: the gate (0 or 1) of every layer at the last call.

    Raises
    ------
    ValueError
        Unknown ``kind`` or ``schedule``, bad ``epochs`` or ``coef``.
    LayerError, NoLayersError
        As :func:`netinit.diversity.diversity`.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> reg = Decorrelation(model, kind="decov", schedule="first_epochs", epochs=2, coef=0.1)
    >>> x, y = torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
    >>> loss = torch.nn.functional.cross_entropy(model(x), y) + reg()
    >>> loss.backward()
    >>> reg.step_epoch(); reg.step_epoch()
    >>> float(reg())                          # off after the first 2 epochs
    0.0
    >>> reg.remove()
    """

    def __init__(
        self,
        model: Any,
        kind: Literal["decov", "activation_correlation", "weight_correlation", "orthogonality"] = "decov",
        schedule: str | Schedule = "first_epochs",
        epochs: float = 3,
        coef: float = 0.1,
        layers: str | Sequence[str] | None = None,
        *,
        activation: ActivationLike = None,
    ) -> None:
        if kind not in PENALTIES:
            raise ValueError(f"kind must be one of {', '.join(PENALTIES)}; got {kind!r}")
        if not isinstance(schedule, Schedule):
            schedule = Schedule(schedule, epochs=epochs)
        if isinstance(coef, bool) or not isinstance(coef, (int, float)) or not coef >= 0:
            raise ValueError(f"coef must be a non-negative number, got {coef!r}")
        self.kind = kind
        self.schedule = schedule
        self.coef = float(coef)
        self._penalty = PENALTIES[kind](1.0)
        self._modules = select_modules(model, layers, default="hidden")
        self._device = model_device(model)
        self._f = resolve_activation(activation)
        self._store: dict[str, torch.Tensor] = {}
        self._handles = []
        if self._penalty.space == "activation":
            for name, m in self._modules.items():
                self._handles.append(m.register_forward_hook(self._hook(name)))
        self._epoch = 0.0
        self.last_gates: dict[str, torch.Tensor] = {}

    def _hook(self, name: str):
        store = self._store

        def hook(module, inputs, output):  # noqa: ARG001 (torch's hook signature)
            store[name] = output

        return hook

    @property
    def layers(self) -> list[str]:
        """The names of the regularised layers."""
        return list(self._modules)

    @property
    def epoch(self) -> float:
        """Completed epochs (the schedule's ``e``)."""
        return self._epoch

    @epoch.setter
    def epoch(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"epoch must be a non-negative number, got {value!r}")
        self._epoch = float(value)

    def step_epoch(self) -> None:
        """Advance the schedule by one epoch."""
        self._epoch += 1.0

    @property
    def factor(self) -> float:
        """``coef * s(epoch)``: the coefficient in force now (before any adaptive gate)."""
        return self.coef * self.schedule.factor(self._epoch)

    def __call__(self) -> torch.Tensor:
        """The scheduled penalty of the last forward pass, a 0-d tensor (0 when switched off)."""
        factor = self.factor
        if factor == 0.0:
            return torch.zeros((), device=self._device)
        if self._penalty.space == "activation":
            missing = [n for n in self._modules if n not in self._store]
            if missing:
                raise DataError(
                    f"no activations captured for layers {missing}: call the model on a batch "
                    "before the regulariser (and do not call remove() first)"
                )
            xs = {n: self._store[n] if self._f is None else self._f(self._store[n]) for n in self._modules}
        else:
            xs = {n: m.weight for n, m in self._modules.items()}
        total = None
        gates = {}
        for name, x in xs.items():
            p = self._penalty.penalty(x)
            if self.schedule.adaptive:
                gate = (self._penalty.diversity(x) < self.schedule.target).to(p.dtype)
                gates[name] = gate
                p = p * gate
            total = p if total is None else total + p
        self.last_gates = gates
        return factor * total

    def remove(self) -> None:
        """Remove the forward hooks and drop the captured activations."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._store.clear()

    def __enter__(self) -> "Decorrelation":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return (
            f"Decorrelation(kind={self.kind!r}, schedule={self.schedule!r}, coef={self.coef}, "
            f"layers={self.layers}, epoch={self._epoch})"
        )

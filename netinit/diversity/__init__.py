"""Neuron diversity: measures, decorrelation regularisers and schedules, decorrelated initialisation.

Built on A. Kovalenko, P. Kordik, M. Friedjungova, "Dynamic Neural Diversification: Path to
Computationally Sustainable Neural Networks", arXiv:2109.09612 (2021). Its full text was not
available to us: the abstract says that small networks suffer from redundant hidden neurons, that
the authors measure the diversity of a hidden layer's neurons during learning, that decorrelation
reinforced dynamically during training improves learning at early stages, and that a
decorrelated yet stochastic initialisation gave about a 40% relative increase of test accuracy in
the first 5 epochs. The stored copy of the follow-up (Kovalenko and Kordik, "Decorrelated Weight
Initialization by Backpropagation", ICANN 2023) shows that it pre-optimises a random draw by
backpropagation, motivates the objective by the determinant of the correlation matrix (close to 0
when neurons are redundant) and reports relative gains of 8.4/7.2/4.9% (CIFAR-10) and
11.8/11.7/5.6% (CIFAR-100) for models of 0.2M/0.5M/1.4M parameters; its exact loss is not in the
stored copy. Every definition here is therefore our design (``shared/specs/diversity.md``):

* :mod:`~netinit.diversity.measures`: :func:`weight_diversity`, :func:`activation_diversity`,
  :func:`diversity` (per-layer table). The activation of a layer is its output (pre-activation),
  or ``activation(output)`` when ``activation=`` is given, everywhere in this package.
* :mod:`~netinit.diversity.regularisers`: :class:`ActivationCorrelation`, :class:`DeCov`,
  :class:`WeightCorrelation`, :class:`Orthogonality` (torch modules).
* :mod:`~netinit.diversity.schedules` and :mod:`~netinit.diversity.dynamic`: :class:`Schedule`,
  :class:`Decorrelation` (a scheduled penalty attached to a model by forward hooks).
* :mod:`~netinit.diversity.init`: :func:`decorrelate` (numpy or torch kernel with a report) and
  :func:`decorrelated_` (``torch.nn.init`` style).
* :mod:`~netinit.diversity.tracker`: :class:`DiversityTracker` (tidy table over training).

Names are loaded on first use, so ``import netinit.diversity`` does not import torch.

The package itself is callable: ``netinit.diversity(model, batch)`` is
:func:`~netinit.diversity.measures.diversity`, so the per-layer table is one call away while
``netinit.diversity.Decorrelation`` and ``import netinit.diversity`` keep working.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = [
    "weight_diversity",
    "activation_diversity",
    "diversity",
    "ActivationCorrelation",
    "DeCov",
    "WeightCorrelation",
    "Orthogonality",
    "Schedule",
    "Decorrelation",
    "decorrelate",
    "decorrelated_",
    "DiversityTracker",
]

_WHERE = {
    "weight_diversity": "measures",
    "activation_diversity": "measures",
    "diversity": "measures",
    "ActivationCorrelation": "regularisers",
    "DeCov": "regularisers",
    "WeightCorrelation": "regularisers",
    "Orthogonality": "regularisers",
    "Schedule": "schedules",
    "Decorrelation": "dynamic",
    "decorrelate": "init",
    "decorrelated_": "init",
    "DiversityTracker": "tracker",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`~netinit.diversity.measures.diversity`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from netinit.diversity.measures import diversity

        return diversity(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

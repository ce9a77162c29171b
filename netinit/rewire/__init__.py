r"""Preferential-attachment (PA) rewiring of layer weights (Scabini, De Baets and Bruno).

Common random initialisations leave some neurons with a much larger *strength* (signed sum of
their weights) than others. PA rewiring lowers the variance of the strengths without changing
the weights' values: it only decides which connection gets which value. Row after row of the
canonical ``(n_out, n_in)`` matrix (a conv kernel ``(out, in/g, *k)`` is
``(out, in/g * prod(k))``), the columns are drawn in a weighted order without replacement,
with probabilities growing with the strength accumulated so far, and the row's values are
placed in ascending order along it; then the same on the columns of the result.

Public functions
----------------
:func:`pa_rewire`
    numpy, returns a new array.
:func:`pa_rewire_`
    torch, in place (CPU or CUDA), ``torch.nn.init`` style.
:func:`rewire_model_`
    every Linear / Conv / ConvTranspose / attention weight of a model, with a summary table.
:func:`stabilize_`, :func:`stabilize`
    the best of ``k`` initialisations by strength variance (the authors apply it first).
:func:`pa_pass`
    the deterministic kernel of one pass given the exponential draws (numpy or torch).

Conventions: randomness comes from ``rng`` (numpy) or ``generator`` (torch); the two passes use
independent streams; strengths are accumulated in float64 on every backend; fed the same
draws, every backend gives exactly the same matrix.

References
----------
.. [1] L. Scabini, B. De Baets, O. M. Bruno, "Improving deep neural network random
   initialization through neuronal rewiring", arXiv:2207.08148 (2022); Neurocomputing 599
   (2024). Reference implementation: github.com/scabini/PArewiring_weights.
"""

from __future__ import annotations

from netinit.rewire.kernels import pa_pass
from netinit.rewire.model import rewire_model_
from netinit.rewire.pa import pa_rewire, pa_rewire_
from netinit.rewire.stabilize import stabilize, stabilize_, strength_variances

__all__ = [
    "pa_pass",
    "pa_rewire",
    "pa_rewire_",
    "rewire_model_",
    "stabilize",
    "stabilize_",
    "strength_variances",
]

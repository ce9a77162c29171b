"""Diversity over training: a callback that records the per-layer measures to a tidy table.

Each record is the output of :func:`netinit.diversity.diversity` on a fixed batch, melted into
rows ``(epoch, step, layer, measure, value)``; values logged beside it (test accuracy, loss) are
rows with ``layer = ""``. Learning curves and diversity curves then come from one table::

    tracker = DiversityTracker(model, x_fixed, every="epoch")
    tracker.record(test_acc=evaluate(model))         # epoch 0, before training
    for epoch in range(5):
        for x, y in loader:
            ...                                      # forward, backward, optimiser step
            tracker.after_step()
        tracker.after_epoch(test_acc=evaluate(model))
    tracker.frame                                    # the tidy DataFrame
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from netinit._io import atomic_path
from netinit.diversity._modules import ActivationLike, resolve_activation
from netinit.diversity.measures import diversity
from netinit.errors import OutputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DiversityTracker", "TRACKER_COLUMNS"]

#: The columns of :attr:`DiversityTracker.frame`.
TRACKER_COLUMNS = ("epoch", "step", "layer", "measure", "value")
_ID = ("layer", "type")


class DiversityTracker:
    """Record the neuron diversity of a model during training.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained.
    data : tensor or tuple (inputs, targets), optional
        A fixed batch (at least 2 samples) for the activation measures; without it only the
        weight-space measures are recorded.
    every : "epoch" or int, default "epoch"
        Record at :meth:`after_epoch`, or at every ``every``-th :meth:`after_step`.
    layers : None, str or list of str
        Layers to measure (:mod:`netinit.layers`, "Selection"; default every Linear/Conv layer).
    activation : None, "relu", "tanh", "sigmoid", "gelu" or callable
        As in :func:`netinit.diversity.diversity`.
    path : str or PathLike, optional
        A CSV file rewritten atomically (temporary file, then ``os.replace``) after each record.

    Attributes
    ----------
    epoch, step : int
        Completed epochs and optimiser steps.

    Raises
    ------
    ValueError
        ``every`` is neither ``"epoch"`` nor a positive int.
    OutputError
        ``path`` is a folder or its folder does not exist.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    >>> tr = DiversityTracker(model, x, every="epoch")
    >>> tr.after_epoch(test_acc=0.5)
    >>> sorted(tr.frame["measure"].unique())[:3]
    ['act_effective_n', 'act_max_abs_r', 'act_mean_abs_r']
    >>> tr.frame.query("measure == 'test_acc'")["value"].tolist()
    [0.5]
    """

    def __init__(
        self,
        model: Any,
        data: Any = None,
        every: str | int = "epoch",
        *,
        layers: str | Sequence[str] | None = None,
        activation: ActivationLike = None,
        path: str | os.PathLike | None = None,
    ) -> None:
        if not (every == "epoch" or (isinstance(every, int) and not isinstance(every, bool) and every > 0)):
            raise ValueError(f"every must be 'epoch' or a positive int (steps), got {every!r}")
        resolve_activation(activation)
        self.model = model
        self.data = data
        self.every = every
        self.layers = layers
        self.activation = activation
        self.path = None if path is None else Path(path)
        if self.path is not None:
            if self.path.is_dir():
                raise OutputError(f"{self.path}: is a folder; pass the path of a CSV file")
            parent = self.path.parent if str(self.path.parent) else Path(".")
            if not parent.is_dir():
                raise OutputError(f"{self.path}: the folder {parent} does not exist")
        self.epoch = 0
        self.step = 0
        self._rows: list[dict[str, Any]] = []

    def record(self, **values: float) -> None:
        """Measure now and append the rows; ``values`` (name=number) become model-level rows."""
        df = diversity(self.model, self.data, layers=self.layers, activation=self.activation)
        long = df.melt(id_vars=list(_ID), var_name="measure", value_name="value")
        for r in long.itertuples(index=False):
            self._rows.append(
                {"epoch": self.epoch, "step": self.step, "layer": r.layer, "measure": r.measure,
                 "value": float(r.value)}
            )
        self.log(**values)

    def log(self, **values: float) -> None:
        """Append model-level rows ``(epoch, step, "", name, value)`` without measuring."""
        for k, v in values.items():
            self._rows.append(
                {"epoch": self.epoch, "step": self.step, "layer": "", "measure": k, "value": float(v)}
            )
        if self.path is not None:
            self.to_csv(self.path)

    def after_step(self) -> None:
        """Count an optimiser step; record when ``every`` is an int that divides the step count."""
        self.step += 1
        if self.every != "epoch" and self.step % self.every == 0:
            self.record()

    def after_epoch(self, **values: float) -> None:
        """Count an epoch; record (with ``values``) when ``every == "epoch"``, else only log them."""
        self.epoch += 1
        if self.every == "epoch":
            self.record(**values)
        elif values:
            self.log(**values)

    @property
    def frame(self) -> pd.DataFrame:
        """The tidy table: one row per (epoch, step, layer, measure)."""
        import pandas as pd

        return pd.DataFrame(self._rows, columns=list(TRACKER_COLUMNS))

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write :attr:`frame` to ``path`` atomically; returns the path."""
        path = Path(path)
        with atomic_path(path) as tmp:
            self.frame.to_csv(tmp, index=False)
        return path

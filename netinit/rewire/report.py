"""The rewiring report: one schema for :func:`~netinit.rewire.rewire_model_` and
:func:`~netinit.rewire.checkpoint.rewire_checkpoint` (and so ``netinit rewire --report``).

One row per rewired layer, in the order of the model, columns :data:`REPORT_COLUMNS`:
``layer`` (tensor or parameter name), ``kind``, ``block``, ``role``, ``expert``
(:class:`netinit.layers.Layer`), ``shape`` (stored, ``"64x3x3x3"``), ``dtype``, the population
variances of the in-strengths (row sums of the canonical matrix) and out-strengths (column sums)
before and after, and ``ratio_in``/``ratio_out`` = after / before (:func:`ratio`).
"""

from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from netinit.layers import Layer

__all__ = ["REPORT_COLUMNS", "ratio", "report_row", "report_frame"]

REPORT_COLUMNS = [
    "layer", "kind", "block", "role", "expert", "shape", "dtype", "in_strength_var_before", "in_strength_var_after",
    "out_strength_var_before", "out_strength_var_after", "ratio_in", "ratio_out",
]


def ratio(after: float, before: float) -> float:
    """``after / before``; where ``before`` is 0: 1.0 when ``after`` is 0 too (nothing changed), NaN
    otherwise (a change from 0 has no ratio)."""
    return after / before if before > 0 else float("nan") if after > 0 else 1.0


def report_row(layer: Layer, before: tuple[float, float], after: tuple[float, float]) -> dict[str, Any]:
    """The report's row of ``layer`` from its ``(in, out)`` strength variances before and after."""
    (vin0, vout0), (vin1, vout1) = before, after
    return {"layer": layer.name, "kind": layer.kind, "block": layer.block, "role": layer.role, "expert": layer.expert,
            "shape": "x".join(map(str, layer.shape)), "dtype": layer.dtype,
            "in_strength_var_before": vin0, "in_strength_var_after": vin1,
            "out_strength_var_before": vout0, "out_strength_var_after": vout1,
            "ratio_in": ratio(vin1, vin0), "ratio_out": ratio(vout1, vout0)}


def report_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The report table of ``rows`` (:func:`report_row`), columns :data:`REPORT_COLUMNS`."""
    df = pd.DataFrame(list(rows), columns=REPORT_COLUMNS)
    for col in ("block", "expert"):
        df[col] = df[col].astype("Int64")
    return df

"""The rewiring passes (the one option of rewiring validated here; weights in :mod:`netinit.validation`)."""

from __future__ import annotations

from typing import Any, Literal

from netinit.validation import check_choice

__all__ = ["PASSES", "Passes", "check_passes"]

PASSES = ("both", "rows", "cols")
Passes = Literal["both", "rows", "cols"]


def check_passes(passes: Any) -> str:
    """Return ``passes`` if it is one of :data:`PASSES`, else raise :class:`ValueError`."""
    return check_choice(passes, PASSES, "passes")

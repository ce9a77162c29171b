"""Fixtures shared by the rewiring tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(params=[0, 1, 12345], ids=lambda s: f"seed{s}")
def seed(request) -> int:
    """Seeds the invariant tests run under; they must hold for any seed (0 included)."""
    return request.param


def _spawned_draws(seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    g_rows, g_cols = np.random.default_rng(seed).spawn(2)
    return g_rows.standard_exponential(shape), g_cols.standard_exponential(shape[::-1])


@pytest.fixture
def spawned_draws():
    """``f(seed, shape)``: the draws ``pa_rewire(W, rng=seed)`` uses (rows pass, cols pass)."""
    return _spawned_draws

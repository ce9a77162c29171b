"""correlation_summary / correlation_matrix against np.corrcoef (numpy oracle for torch)."""

from __future__ import annotations

import numpy as np
import pytest

import netinit.metrics.correlation as corr_mod
from netinit.errors import NonFiniteError, ShapeError
from netinit.metrics.correlation import correlation_matrix, correlation_summary


def oracle(X, threshold=0.5):
    R = np.corrcoef(X)
    off = R[~np.eye(len(R), dtype=bool)]
    lam = np.linalg.eigvalsh(R)
    return {
        "mean_abs": np.abs(off).mean(),
        "max_abs": np.abs(off).max(),
        "share_above": (np.abs(off) > threshold).mean(),
        "mean_sq": (off**2).mean(),
        "effective_n": lam.sum() ** 2 / (lam**2).sum(),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summary_against_corrcoef(seed, monkeypatch):
    monkeypatch.setattr(corr_mod, "_BLOCK", 7)  # several blocks on a small matrix
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 12)) + rng.normal(size=(1, 12))  # correlated rows
    s = correlation_summary(X, threshold=0.3)
    for key, value in oracle(X, threshold=0.3).items():
        assert s[key] == pytest.approx(value, rel=1e-10, abs=1e-12), key
    assert s["n_pairs"] == 30 * 29 / 2 and s["n_constant"] == 0


def test_matrix_against_corrcoef_and_constant_rows():
    X = np.random.default_rng(4).normal(size=(6, 5))
    X[2] = 3.0  # constant neuron: no correlation
    R = correlation_matrix(X)
    keep = [0, 1, 3, 4, 5]
    np.testing.assert_allclose(R[np.ix_(keep, keep)], np.corrcoef(X[keep]), atol=1e-12)
    assert np.isnan(R[2]).all() and np.isnan(R[:, 2]).all()
    s = correlation_summary(X)
    assert s["n_constant"] == 1
    assert s["mean_abs"] == pytest.approx(oracle(X[keep])["mean_abs"], rel=1e-12)


def test_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(8).normal(size=(9, 14)).astype(np.float32)
    a, b = correlation_summary(torch.from_numpy(X)), correlation_summary(X)
    for key in b:
        assert a[key] == pytest.approx(b[key], rel=1e-10, abs=1e-12), key


def test_errors():
    with pytest.raises(ShapeError, match=r"X: expected a 2-D .* got shape \(4,\)"):
        correlation_summary(np.ones(4))
    with pytest.raises(ShapeError, match="at least 2 features"):
        correlation_summary(np.ones((4, 1)))
    with pytest.raises(NonFiniteError, match=r"X holds \d+ non-finite value"):
        correlation_summary(np.array([[1.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="threshold must lie in \\[0, 1\\], got 1.5"):
        correlation_summary(np.ones((3, 3)), threshold=1.5)

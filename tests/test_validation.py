"""netinit.validation: one message for each problem, and the checked() block."""

from __future__ import annotations

import numpy as np
import pytest

from netinit.errors import NonFiniteError
from netinit.validation import check_finite, checked


def test_checked_skips_only_the_objects_named_and_only_inside_the_block():
    W = np.array([[1.0, np.nan]])
    with checked(W):
        check_finite(W)  # the caller vouches for this very object
        with pytest.raises(NonFiniteError, match=r"V holds 1 non-finite value\(s\) \(NaN or inf\), the first at index \(0, 1\)"):
            check_finite(W.copy(), "V")  # a copy is checked
        with pytest.raises(NonFiniteError, match="W holds 1 non-finite"):
            check_finite(W[:, 1:], "W")  # so is a view
    with pytest.raises(NonFiniteError, match="W holds 1 non-finite"):
        check_finite(W)  # after the block


def test_check_finite_messages_for_numpy_and_torch():
    import torch

    for X in (np.array([[0.0, np.inf], [np.nan, 1.0]]), torch.tensor([[0.0, float("inf")], [float("nan"), 1.0]])):
        with pytest.raises(NonFiniteError, match=r"X holds 2 non-finite value\(s\) \(NaN or inf\), the first at index \(0, 1\): inf"):
            check_finite(X, "X")
    check_finite(np.arange(4).reshape(2, 2), "ints")  # integers are finite

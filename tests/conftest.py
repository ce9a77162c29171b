"""Shared fixtures: small checkpoints written in each format, explicit seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def small_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """An MLP + CNN state dict with biases, a norm and an integer buffer."""
    g = torch.Generator().manual_seed(seed)
    return {
        "conv.weight": torch.randn(8, 3, 3, 3, generator=g),
        "conv.bias": torch.randn(8, generator=g),
        "bn.weight": torch.ones(8),
        "bn.bias": torch.zeros(8),
        "bn.running_mean": torch.zeros(8),
        "bn.running_var": torch.ones(8),
        "bn.num_batches_tracked": torch.tensor(5),
        "fc1.weight": torch.randn(16, 12, generator=g),
        "fc1.bias": torch.randn(16, generator=g),
        "fc2.weight": torch.randn(4, 16, generator=g),
        "fc2.bias": torch.randn(4, generator=g),
    }


@pytest.fixture
def state_dict() -> dict[str, torch.Tensor]:
    return small_state_dict(0)

"""Tiny experiment configs and one shared results folder for the analysis tests."""

from __future__ import annotations

import pytest

from netinit.experiments.config import ExperimentConfig, override


def tiny_config(**changes) -> ExperimentConfig:
    """A grid that trains in well under a second per run: MLP 64-8-10 on digits, 2 epochs."""
    base = {"name": "tiny", "model.hidden": [8], "train.epochs": 2, "train.lr": 0.05,
            "stats.samples": 64, "grid.methods": ["default", "default+pa", "kaiming_normal"],
            "grid.seeds": 3}
    base.update(changes)
    return override(ExperimentConfig(), base)


@pytest.fixture(scope="session")
def tiny():
    """The factory :func:`tiny_config`."""
    return tiny_config


@pytest.fixture(scope="session")
def torch_one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory, torch_one_thread):
    """A finished results folder of :func:`tiny_config` (3 methods x 3 seeds), run serially once."""
    from netinit.experiments.runner import run_grid

    out = tmp_path_factory.mktemp("tiny_results")
    cfg = tiny_config()
    res = run_grid(cfg, out)
    assert res.done == 9 and not res.errors, res.summary()
    return cfg, out

"""Strength-variance ratios against the reference implementation's, over 30 seeds.

``data/pa_reference_stats.json`` (copied from the project's spec) gives, for each shape and
initialiser, the mean and standard deviation over 30 seeds of the after/before ratios of the
in- and out-strength variances under the reference implementation (weights drawn with
``torch.manual_seed(1000 + seed)``, rewired with ``seed = 1 .. 30``). We draw the weights with a
``torch.Generator`` seeded ``1000 + seed`` and rewire with ``rng=seed``.

Criterion: the two means are means of 30 independent ratios each, so their difference has
standard error ``sqrt((ref_std^2 + our_std^2) / 30)``; we require it within 4 standard errors.
With 40 comparisons a faithful implementation fails one by chance with probability about
``40 * 6e-5 = 0.3%`` (and the seeds are fixed, so the outcome is reproducible), while a wrong
pass direction, a missing pass or an unweighted shuffle is off by tens of standard errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from netinit.rewire import pa_rewire, strength_variances

REFERENCE = json.loads((Path(__file__).parent / "data" / "pa_reference_stats.json").read_text())
SEEDS = range(1, 31)


def _ratios(shape, init, passes="both"):
    r_in, r_out = [], []
    for seed in SEEDS:
        w = torch.empty(shape)
        getattr(torch.nn.init, init + "_")(w, generator=torch.Generator().manual_seed(1000 + seed))
        W = w.numpy()
        a_in, a_out = strength_variances(W)
        b_in, b_out = strength_variances(pa_rewire(W, rng=seed, passes=passes))
        r_in.append(b_in / a_in)
        r_out.append(b_out / a_out)
    return np.array(r_in), np.array(r_out)


def _z(ours: np.ndarray, mean: float, std: float) -> float:
    return float((ours.mean() - mean) / np.sqrt((std**2 + ours.var(ddof=1)) / len(ours)))


@pytest.mark.slow
@pytest.mark.parametrize("entry", REFERENCE, ids=lambda e: f"{'x'.join(map(str, e['shape']))}-{e['init']}")
def test_ratio_means_within_reference_spread(entry):
    assert entry["seeds"] == len(SEEDS)
    r_in, r_out = _ratios(tuple(entry["shape"]), entry["init"])
    z_in = _z(r_in, entry["ratio_in_mean"], entry["ratio_in_std"])
    z_out = _z(r_out, entry["ratio_out_mean"], entry["ratio_out_std"])
    ref_in, ref_out = entry["ratio_in_mean"], entry["ratio_out_mean"]
    assert abs(z_in) < 4, f"in-strength ratio mean {r_in.mean():.4f} vs {ref_in:.4f} (z={z_in:.2f})"
    assert abs(z_out) < 4, f"out-strength ratio mean {r_out.mean():.4f} vs {ref_out:.4f} (z={z_out:.2f})"


@pytest.mark.slow
def test_criterion_rejects_a_single_pass():
    """The criterion has power: the rows pass alone misses the in-strength reference badly."""
    entry = next(e for e in REFERENCE if e["shape"] == [256, 256] and e["init"] == "kaiming_normal")
    r_in, _ = _ratios((256, 256), "kaiming_normal", passes="rows")
    assert abs(_z(r_in, entry["ratio_in_mean"], entry["ratio_in_std"])) > 20

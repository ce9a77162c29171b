"""netinit.report_depth: figures over depth by role, and the spread over experts, for large models."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from netinit.report import save_figure
from netinit.report_depth import PER_LAYER_MAX, depth_figures, has_depth, has_experts


def _moe_table(blocks: int, experts: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(blocks):
        for role in ("attn_q", "attn_k", "attn_v", "attn_o", "router"):
            rows.append({"layer": f"model.layers.{b}.{role}.weight", "block": b, "role": role, "expert": pd.NA})
        for e in range(experts):
            for role in ("mlp_gate_up", "mlp_down"):
                rows.append({"layer": f"model.layers.{b}.mlp.experts.{e}.{role}", "block": b, "role": role, "expert": e})
    df = pd.DataFrame(rows)
    for metric in ("in_strength_var", "out_strength_var", "corr_in_mean_abs", "weight_std"):
        df[metric] = rng.uniform(0.01, 1.0, len(df))
    return df.astype({"block": "Int64", "expert": "Int64"})


def test_a_model_of_120_blocks_and_128_experts_draws_two_readable_figures(tmp_path):
    layers = _moe_table(120, 128)
    assert len(layers) > 30_000 > PER_LAYER_MAX and has_depth(layers) and has_experts(layers)
    paths = depth_figures(layers, tmp_path, save_figure)
    assert [p.name for p in paths] == ["depth_by_role.png", "experts.png"]
    for p in paths:
        w, h = Image.open(p).size
        assert 800 < w < 4000 and 800 < h < 4000  # the same size for 2 blocks or 120


def test_no_depth_figures_without_numbered_blocks(tmp_path):
    layers = _moe_table(1, 0)
    assert not has_depth(layers)
    assert depth_figures(layers, tmp_path, save_figure) == []

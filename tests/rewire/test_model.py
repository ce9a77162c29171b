"""rewire_model_: layer discovery, orientation, per-layer streams, the summary table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from netinit.errors import LayerError, NoLayersError, NonFiniteError
from netinit.layers import find_layers
from netinit.rewire import rewire_model_
from netinit.rewire.model import COLUMNS
from netinit.rewire.report import REPORT_COLUMNS


def _layer(model, name):
    return next(layer for layer in find_layers(model)[0] if layer.name == name)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3, groups=2))
        self.up = nn.ConvTranspose2d(16, 6, 3, groups=2)
        self.seq = nn.Conv1d(4, 5, 3)
        self.attn = nn.MultiheadAttention(12, 3)
        self.head = nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 10))
        for p in self.parameters():  # fixed, seed-independent of torch's global state
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


EXPECTED = [
    "features.0.weight", "features.2.weight", "up.weight", "seq.weight",
    "attn.in_proj_weight", "attn.out_proj.weight", "head.0.weight", "head.2.weight",
]


def _state(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_table_and_invariants():
    net = Net()
    before = _state(net)
    table = rewire_model_(net, seed=0)
    assert list(table.columns) == list(COLUMNS) == REPORT_COLUMNS  # one schema with netinit rewire
    assert list(table["layer"]) == EXPECTED
    assert table.loc[table["layer"] == "up.weight", "shape"].item() == "16x3x3x3"
    after = net.state_dict()
    for name, old in before.items():
        if name in EXPECTED:
            assert not torch.equal(after[name], old), name
            assert torch.equal(after[name].flatten().sort().values, old.flatten().sort().values), name
        else:  # biases are untouched
            assert torch.equal(after[name], old), name
    assert (table["ratio_in"] < 1).mean() > 0.7 and (table["ratio_out"] < 1).mean() > 0.7
    np.testing.assert_allclose(table["ratio_in"], table["in_strength_var_after"] / table["in_strength_var_before"])


def test_deterministic_seeded_and_independent_of_other_layers():
    a, b, c, d = Net(), Net(), Net(), Net()
    rewire_model_(a, seed=0)
    rewire_model_(b, seed=0)
    rewire_model_(c, seed=1)
    rewire_model_(d, seed=0, layers=["head.2"])  # a module name
    sa, sb, sc, sd = (m.state_dict() for m in (a, b, c, d))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["head.0.weight"], sc["head.0.weight"])
    assert torch.equal(sd["head.2.weight"], sa["head.2.weight"])  # same stream when alone
    assert torch.equal(sd["head.0.weight"], Net().state_dict()["head.0.weight"])  # not selected


def test_layers_regex():
    table = rewire_model_(Net(), seed=0, layers="features|up")
    assert list(table["layer"]) == ["features.0.weight", "features.2.weight", "up.weight"]
    assert list(rewire_model_(Net(), seed=0, layers=r"\.2\.weight$")["layer"]) == ["features.2.weight", "head.2.weight"]
    with pytest.raises(NoLayersError, match=r"Net: no weight layer matches the layer regex 'decoder'"):
        rewire_model_(Net(), layers="decoder")
    with pytest.raises(LayerError, match=r"invalid layer regex '\(' for Net"):
        rewire_model_(Net(), layers="(")
    with pytest.raises(LayerError, match=r"not weight layers: 'features\.1' \(no such tensor or module\)"):
        rewire_model_(Net(), layers=["head.0", "features.1"])


def test_no_layers_and_bad_options():
    with pytest.raises(NoLayersError, match="ReLU has no Linear, Conv"):
        rewire_model_(nn.ReLU())
    with pytest.raises(ValueError, match="passes must be one of"):
        rewire_model_(Net(), passes="rowz")
    with pytest.raises(ValueError, match="non-negative integer; got -2"):
        rewire_model_(Net(), stabilize=-2)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        rewire_model_(Net(), seed=-1)


def test_conv_transpose_orientation():
    """Canonical row ``o`` holds the weights feeding output channel ``o`` (groups respected)."""
    m = nn.ConvTranspose2d(6, 4, (2, 3), groups=2)  # weight (in=6, out/g=2, 2, 3)
    w = m.weight.detach()
    layer = _layer(m, "weight")
    M = layer.canonical(w)
    assert M.shape == (4, 3 * 6)
    for o in range(4):
        grp, oo = divmod(o, 2)
        feeding = w[3 * grp : 3 * grp + 3, oo]  # (in/g, kh, kw)
        assert torch.equal(M[o], feeding.reshape(-1))
    # output channel o's in-strength read off the layer itself: response to a unit input
    x = torch.ones(1, 6, 1, 1)
    y = torch.nn.functional.conv_transpose2d(x, w, groups=2).sum(dim=(0, 2, 3))
    torch.testing.assert_close(y, M.sum(1))
    assert torch.equal(layer.from_matrix(M), w)


def test_conv_transpose_rows_pass_keeps_each_output_channels_weights():
    net = nn.Sequential(nn.ConvTranspose2d(6, 4, 3, groups=2))
    w0 = net[0].weight.detach().clone()
    rewire_model_(net, seed=3, passes="rows")
    layer = _layer(net, "0.weight")
    M0, M1 = layer.canonical(w0), layer.canonical(net[0].weight.detach())
    assert torch.equal(M0.sort(dim=1).values, M1.sort(dim=1).values)
    assert not torch.equal(M0, M1)


def test_bfloat16_model_and_grad_flag():
    net = Net().to(torch.bfloat16)
    before = net.head[0].weight.detach().clone()
    rewire_model_(net, seed=0)
    w = net.head[0].weight
    assert w.dtype == torch.bfloat16 and w.requires_grad
    assert torch.equal(w.detach().flatten().sort().values, before.flatten().sort().values)


def test_shared_weight_rewired_once():
    lin = nn.Linear(8, 8)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    table = rewire_model_(net, seed=0)
    assert list(table["layer"]) == ["0.weight"]


def test_stabilize_then_rewire():
    a, b = Net(), Net()
    t = rewire_model_(a, seed=0, stabilize=4)
    rewire_model_(b, seed=0, stabilize=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = Net()
    rewire_model_(c, seed=0, stabilize=4, initializer="kaiming_normal", layers="head")
    assert not torch.equal(c.head[0].weight, a.head[0].weight)
    assert len(t) == len(EXPECTED)


class Repeated(nn.Module):
    """Repeated shapes (rewired as stacks), a transposed conv, a float16 layer and a view."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(7)
        self.blocks = nn.ModuleList(nn.Linear(16, 16) for _ in range(5))
        self.convs = nn.ModuleList(nn.Conv2d(4, 16, 2) for _ in range(3))  # canonical 16x16 too
        self.ups = nn.ModuleList(nn.ConvTranspose2d(6, 4, 3, groups=2) for _ in range(2))
        self.f16 = nn.ModuleList(nn.Linear(16, 16).half() for _ in range(2))
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen).to(p.dtype))


def test_layers_rewired_together_get_their_own_results():
    """rewire_model_ stacks same-shaped layers; each must equal pa_rewire_ on its own stream."""
    from netinit._rng import torch_seed
    from netinit.rewire import pa_rewire_
    from netinit.rewire.model import _chunks

    net, ref = Repeated(), Repeated()
    chunks = _chunks(find_layers(net)[0])
    assert max(len(c) for c in chunks) >= 5  # the test exercises real stacks
    rewire_model_(net, seed=4)
    with torch.no_grad():
        for w in find_layers(ref)[0]:
            M = w.canonical(w.param.detach()).contiguous()
            pa_rewire_(M, generator=torch.Generator().manual_seed(torch_seed(4, w.name)))
            w.write_(M)
    for (name, a), b in zip(net.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), name


def test_stack_sizes_are_bounded():
    from netinit.rewire._cpu import _STACK_ROW
    from netinit.rewire.model import _chunks

    ws = find_layers(Repeated())[0]
    chunks = _chunks(ws)
    assert sorted(i for c in chunks for i in c) == list(range(len(ws)))
    largest = max(w.param.numel() for w in ws)
    for c in chunks:
        keys = {(ws[i].matrix_shape, ws[i].param.dtype) for i in c}
        assert len(keys) == 1
        assert len(c) * max(ws[c[0]].matrix_shape) <= _STACK_ROW
        if ws[c[0]].transposed or ws[c[0]].param.dtype == torch.float16:  # rewired on copies
            assert sum(ws[i].param.numel() for i in c) <= largest


def test_non_finite_weight_stops_before_any_change():
    net = Repeated()
    with torch.no_grad():
        net.f16[1].weight[2, 3] = float("nan")
    before = _state(net)
    with pytest.raises(NonFiniteError, match=r"f16\.1\.weight holds 1 non-finite value"):
        rewire_model_(net, seed=0)
    after = net.state_dict()
    assert all(torch.equal(after[k], v) or torch.isnan(v).any() for k, v in before.items())
    assert torch.equal(after["blocks.0.weight"], before["blocks.0.weight"])

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from netinit.errors import FormatError, ShapeError
from netinit.formats import load_checkpoint, save_checkpoint
from netinit.layers import find_layers

D, H = 8, 32  # GPT-2 block: model width D, MLP width H


def _gpt2_block(seed: int = 0) -> dict[str, torch.Tensor]:
    """HF GPT-2 Conv1D weights, stored (in, out); biases have the output length."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"h.0.attn.c_attn": (D, 3 * D), "h.0.attn.c_proj": (D, D), "h.0.mlp.c_fc": (D, H),
              "h.0.mlp.c_proj": (H, D)}
    sd = {"wte.weight": torch.randn(50, D, generator=g), "h.0.ln_1.weight": torch.ones(D)}
    for name, (n_in, n_out) in shapes.items():
        sd[name + ".weight"] = torch.randn(n_in, n_out, generator=g)
        sd[name + ".bias"] = torch.randn(n_out, generator=g)
    return sd


def _save(sd, path):
    if path.suffix == ".safetensors":
        save_file(sd, str(path))
    else:
        torch.save(sd, path)
    return path


def _reload(path):
    return load_file(str(path)) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_gpt2_conv1d_shown_as_out_in_and_written_back(tmp_path, suffix):
    sd = _gpt2_block()
    p = _save(sd, tmp_path / f"gpt2{suffix}")
    ckpt = load_checkpoint(p)
    conv1d = [n for n in sd if n.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))]
    assert sorted(ckpt.converted) == sorted(conv1d)
    x = np.random.default_rng(0).normal(size=(3, D)).astype(np.float32)
    for name in conv1d:
        stored = sd[name].numpy()
        W = ckpt.load(name)
        assert ckpt.info(name).shape == W.shape == stored.shape[::-1]
        b = sd[name[: -len("weight")] + "bias"].numpy()
        x_in = np.random.default_rng(1).normal(size=(3, stored.shape[0])).astype(np.float32)
        # HF Conv1D.forward is addmm(bias, x, weight): x @ W_stored + b; canonical is x @ W.T + b
        np.testing.assert_allclose(x_in @ W.T + b, x_in @ stored + b, rtol=1e-6)
    assert ckpt.info("wte.weight").shape == (50, D)  # not a Conv1D name: as stored
    layers = {lay.name: lay for lay in find_layers(ckpt)[0]}
    assert layers["h.0.mlp.c_fc.weight"].matrix_shape == (H, D)  # (n_out, n_in)
    new = {"h.0.mlp.c_fc.weight": np.arange(H * D, dtype=np.float32).reshape(H, D)}
    out = save_checkpoint(ckpt, tmp_path / f"new{suffix}", new)
    again = _reload(out)
    assert tuple(again["h.0.mlp.c_fc.weight"].shape) == (D, H)
    np.testing.assert_array_equal(again["h.0.mlp.c_fc.weight"].numpy(), new["h.0.mlp.c_fc.weight"].T)
    for name in sd:
        if name not in new:
            assert torch.equal(again[name], sd[name])
    np.testing.assert_array_equal(load_checkpoint(out).load("h.0.mlp.c_fc.weight"), new["h.0.mlp.c_fc.weight"])
    del x


def test_nanogpt_linear_weights_stay_as_stored(tmp_path):
    sd = {k: (v.t().contiguous() if v.ndim == 2 and "c_" in k else v) for k, v in _gpt2_block().items()}
    ckpt = load_checkpoint(_save(sd, tmp_path / "nano.safetensors"))
    assert ckpt.converted == {}
    np.testing.assert_array_equal(ckpt.load("h.0.mlp.c_fc.weight"), sd["h.0.mlp.c_fc.weight"].numpy())


def test_without_evidence_the_file_is_read_as_stored_unless_forced(tmp_path):
    sd = {"h.0.attn.c_proj.weight": torch.randn(D, D), "h.0.attn.c_proj.bias": torch.zeros(D)}
    p = _save(sd, tmp_path / "sq.safetensors")
    assert load_checkpoint(p).converted == {}
    forced = load_checkpoint(p, layout={r"c_proj\.weight$": "in_out"})
    assert forced.converted == {"h.0.attn.c_proj.weight": "in_out (layout 'c_proj\\\\.weight$')"}
    np.testing.assert_array_equal(forced.load("h.0.attn.c_proj.weight"), sd["h.0.attn.c_proj.weight"].numpy().T)


def test_layout_forces_out_in_over_the_detection(tmp_path):
    p = _save(_gpt2_block(), tmp_path / "g.safetensors")
    ckpt = load_checkpoint(p, layout={r"\.attn\.": "out_in"})
    assert sorted(ckpt.converted) == ["h.0.mlp.c_fc.weight", "h.0.mlp.c_proj.weight"]
    lin = load_checkpoint(p, layout={r"wte": "in_out"})
    assert lin.info("wte.weight").shape == (D, 50)


def test_disagreeing_biases_need_a_layout(tmp_path):
    sd = _gpt2_block()
    sd["h.0.mlp.c_fc.weight"] = sd["h.0.mlp.c_fc.weight"].t().contiguous()  # one Linear among Conv1Ds
    p = _save(sd, tmp_path / "mixed.safetensors")
    with pytest.raises(FormatError, match=r"mixed\.safetensors: GPT-2 style weights disagree .*--layout"):
        load_checkpoint(p)
    ckpt = load_checkpoint(p, layout={"c_fc": "out_in", "c_attn|c_proj": "in_out"})
    assert "h.0.mlp.c_fc.weight" not in ckpt.converted and "h.0.attn.c_attn.weight" in ckpt.converted


@pytest.mark.parametrize("layout,msg", [
    ({"c_fc": "transposed"}, "layout 'transposed' for 'c_fc' is not one of in_out, out_in"),
    ({"c_fc[": "in_out"}, r"invalid layout regex 'c_fc\['"),
    ({"ln_1": "in_out"}, r"g\.safetensors: the layout pattern 'ln_1' matches no 2-D tensor"),
])
def test_invalid_layout(tmp_path, layout, msg):
    p = _save(_gpt2_block(), tmp_path / "g.safetensors")
    with pytest.raises(FormatError, match=msg):
        load_checkpoint(p, layout=layout)


def test_layout_only_for_formats_that_take_it(tmp_path):
    p = tmp_path / "w.npz"
    np.savez(p, w=np.ones((2, 2)))
    with pytest.raises(FormatError, match=r"w\.npz: layout= applies to .*safetensors.*, not npz"):
        load_checkpoint(p, layout={"w": "in_out"})


def test_replacement_in_stored_orientation_is_refused(tmp_path):
    ckpt = load_checkpoint(_save(_gpt2_block(), tmp_path / "g.safetensors"))
    with pytest.raises(ShapeError, match=r"replacement has shape \(8, 32\), expected \(32, 8\) \(stored transposed"):
        save_checkpoint(ckpt, tmp_path / "o.safetensors", {"h.0.mlp.c_fc.weight": np.zeros((D, H))})

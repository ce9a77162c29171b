"""Model folders as transformers' save_pretrained writes them and the Hugging Face cache holds them;
mixture-of-experts layers (per-expert and stacked) checked against the framework's own forward pass."""

from __future__ import annotations

import filecmp
import os
import shutil

import numpy as np
import pytest
import torch

import netinit
from netinit.cli import main
from netinit.errors import FormatError, LayerError
from netinit.formats import load_checkpoint

transformers = pytest.importorskip("transformers")

_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=64)
CONFIGS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(intermediate_size=48)),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(intermediate_size=16, num_local_experts=4)),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", dict(intermediate_size=48, moe_intermediate_size=16,
                                                                 head_dim=8, num_experts=4, num_experts_per_tok=2)),
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM", dict(intermediate_size=48, moe_intermediate_size=16,
                                                                 shared_expert_intermediate_size=24, num_experts=4,
                                                                 num_experts_per_tok=2)),
    "gpt_oss": ("GptOssConfig", "GptOssForCausalLM", dict(intermediate_size=16, head_dim=8, num_local_experts=4,
                                                          num_experts_per_tok=2,
                                                          layer_types=["sliding_attention", "full_attention"])),
    "llama4": ("Llama4TextConfig", "Llama4ForCausalLM", dict(intermediate_size=32, intermediate_size_mlp=48,
                                                             head_dim=8, num_local_experts=4)),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each tiny model saved by save_pretrained (seeded), and the model itself."""
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for arch, (config, model, extra) in CONFIGS.items():
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(0)  # transformers initialises from the global generator; restored below
        m = getattr(transformers, model)(getattr(transformers, config)(**_TINY, **extra)).eval()
        torch.random.set_rng_state(gen_state)
        m.save_pretrained(root / arch)
        out[arch] = (root / arch, m)
    return out


def _experts_module(model, arch):
    layer = model.model.layers[0]
    return {"mixtral": lambda: layer.mlp.experts, "qwen3_moe": lambda: layer.mlp.experts,
            "gpt_oss": lambda: layer.mlp.experts, "llama4": lambda: layer.feed_forward.experts}[arch]()


@pytest.mark.parametrize("arch", list(CONFIGS))
def test_a_save_pretrained_folder_reads_with_its_config(saved, arch):
    folder, model = saved[arch]
    ckpt = load_checkpoint(folder)
    assert (ckpt.format, ckpt.inner.format, ckpt.model["blocks"]) == ("folder", "safetensors", 2)
    assert ckpt.model["weights"] == "model.safetensors (safetensors)"
    found, skipped = netinit.find_layers(ckpt)
    assert {layer.block for layer in found} == {0, 1, None}
    assert not [s for s in skipped if s.reason.startswith(("3-D", "conv"))]
    assert all(layer.kind in ("linear", "attention") for layer in found)  # no stack read as a convolution
    roles = {layer.role for layer in found}
    assert {"attn_q", "attn_k", "attn_v", "attn_o", "head"} <= roles
    if arch != "llama":
        assert "router" in roles and {layer.expert for layer in found if layer.expert is not None} == {0, 1, 2, 3}


def test_shared_experts_have_their_own_roles_and_no_expert_index(saved):
    """Qwen2-MoE's shared expert (and its gate) beside the routed experts, as save_pretrained writes them."""
    folder, model = saved["qwen2_moe"]
    found, _ = netinit.find_layers(load_checkpoint(folder))
    block0 = {layer.name: layer for layer in found if layer.block == 0}
    shared = {layer.role for layer in block0.values() if ".shared_expert" in layer.name}
    assert shared == {"shared_gate", "shared_up", "shared_down", "shared_router"}
    assert all(block0[n].expert is None for n in block0 if ".shared_expert" in n)
    routed = {(layer.role, layer.expert) for layer in block0.values() if ".experts." in layer.name}
    assert routed == {(r, e) for r in ("mlp_gate", "mlp_up", "mlp_down") for e in range(4)}
    mlp = model.model.layers[0].mlp
    gate = block0["model.layers.0.mlp.shared_expert_gate.weight"]
    assert gate.shape == tuple(mlp.shared_expert_gate.weight.shape) == (1, 32)
    np.testing.assert_array_equal(block0["model.layers.0.mlp.shared_expert.down_proj.weight"].matrix(),
                                  mlp.shared_expert.down_proj.weight.detach().numpy())


@pytest.mark.parametrize("arch", ["mixtral", "qwen3_moe", "gpt_oss", "llama4"])
def test_each_expert_is_the_layer_the_framework_runs(saved, arch):
    """W x for every expert's canonical matrix equals the framework's own product with that expert."""
    folder, model = saved[arch]
    found, _ = netinit.find_layers(load_checkpoint(folder))
    experts = _experts_module(model, arch)
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    checked = 0
    for layer in found:
        if layer.block != 0 or layer.expert is None:
            continue
        W = torch.from_numpy(layer.matrix()).double()
        xin = x[:, : W.shape[1]]
        if layer.index is not None:  # a stacked tensor: gpt-oss and Llama 4 compute x @ stack[e]
            stack = getattr(experts, layer.stored_name.rsplit(".", 1)[1])[layer.index].detach().double()
            ref = xin @ stack
        else:  # per-expert modules saved as 2-D weights; the loaded model holds them as (E, out, in) stacks
            part = layer.name.split(".")[-2]
            fused = {"w1": ("gate_up_proj", 0), "w3": ("gate_up_proj", 1), "gate_proj": ("gate_up_proj", 0),
                     "up_proj": ("gate_up_proj", 1), "w2": ("down_proj", None), "down_proj": ("down_proj", None)}[part]
            stack = getattr(experts, fused[0])[layer.expert].detach().double()
            if fused[1] is not None:
                stack = stack.chunk(2, dim=0)[fused[1]]
            ref = torch.nn.functional.linear(xin, stack)
        torch.testing.assert_close(xin @ W.T, ref)
        checked += 1
    assert checked >= 8


def test_analyze_a_moe_folder_says_its_coverage_and_model_and_draws_depth(saved, tmp_path, capsys):
    folder, _ = saved["gpt_oss"]
    assert main(["analyze", str(folder), "-o", str(tmp_path / "a"), "--json"]) == 0
    out, err = capsys.readouterr()
    import json

    summary = json.loads(out)
    assert summary["coverage"]["text"].startswith("analysed 27 layers in 15 of 37 tensors (")
    assert summary["model"]["model_type"] == "gpt_oss" and summary["model"]["experts"] == 4
    assert err.splitlines()[0].endswith(summary["coverage"]["text"])
    assert {"depth_by_role.png", "experts.png"} <= {p.name for p in (tmp_path / "a").iterdir()}
    experts = [row for row in summary["layers"] if row["expert"] is not None]
    assert len(experts) == 16 and {row["role"] for row in experts} == {"mlp_gate_up", "mlp_down"}


def test_rewired_moe_folder_loads_back_with_each_experts_values(saved, tmp_path):
    folder, _ = saved["gpt_oss"]
    out = tmp_path / "rewired"
    assert main(["rewire", str(folder), "-o", str(out), "--seed", "0", "-q"]) == 0
    assert filecmp.cmp(folder / "config.json", out / "config.json", shallow=False)
    before, after = load_checkpoint(folder), load_checkpoint(out)
    changed = 0
    for name in before.names():
        a, b = before.load(name), after.load(name)
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            for e in range(a.shape[0]):  # each expert keeps exactly its own values
                np.testing.assert_array_equal(np.sort(a[e], axis=None), np.sort(b[e], axis=None))
            changed += not np.array_equal(a, b)
        elif "norm" in name or name.endswith("bias") or "embed" in name or "sinks" in name:
            np.testing.assert_array_equal(a, b)
    assert changed == 4
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out)
    stack = reloaded.model.layers[0].mlp.experts.gate_up_proj.detach().numpy()
    np.testing.assert_array_equal(stack, after.load("model.layers.0.mlp.experts.gate_up_proj"))


def _cache(root, folder, revision="0123abcd"):
    """A Hugging Face cache layout: models--org--name/{blobs, refs/main, snapshots/REV -> links to blobs}."""
    repo = root / "models--org--tiny"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    snap = repo / "snapshots" / revision
    snap.mkdir(parents=True)
    for i, f in enumerate(sorted(folder.iterdir())):
        blob = repo / "blobs" / f"blob{i}"
        shutil.copyfile(f, blob)
        os.symlink(os.path.relpath(blob, snap), snap / f.name)
    return repo, snap


def test_cache_snapshot_and_model_folder(saved, tmp_path):
    folder, _ = saved["llama"]
    repo, snap = _cache(tmp_path, folder)
    for path in (repo, snap):
        ckpt = load_checkpoint(path)
        assert ckpt.path == snap and ckpt.model["model_type"] == "llama"
        assert len(netinit.find_layers(ckpt)[0]) == 15
    (repo / "refs" / "main").write_text("feedbeef")
    with pytest.raises(FormatError, match=r"refs/main names revision 'feedbeef', which snapshots/ does not hold"):
        load_checkpoint(repo)


def test_sharded_save_pretrained_folder(saved, tmp_path):
    _, model = saved["mixtral"]
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ckpt = load_checkpoint(tmp_path / "sharded")
    assert (ckpt.format, ckpt.inner.format) == ("folder", "sharded")
    assert len(netinit.find_layers(ckpt)[0]) == 35


def test_bad_folders(saved, tmp_path):
    folder, _ = saved["llama"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(FormatError, match=r"a model folder without weights"):
        load_checkpoint(empty)
    lying = tmp_path / "lying"
    shutil.copytree(folder, lying)
    cfg = (lying / "config.json").read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 5')
    (lying / "config.json").write_text(cfg)
    with pytest.raises(FormatError, match=r"says 5 blocks \(num_hidden_layers\), but the weights hold blocks 0 to 1"):
        load_checkpoint(lying)
    moe = tmp_path / "moe"
    shutil.copytree(saved["gpt_oss"][0], moe)
    cfg = (moe / "config.json").read_text().replace('"num_local_experts": 4', '"num_local_experts": 8')
    (moe / "config.json").write_text(cfg)
    with pytest.raises(LayerError, match=r"moe: config.json says 8 experts, but '.*experts\.(gate_up|down)_proj' stacks 4"):
        netinit.find_layers(load_checkpoint(moe))
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(netinit.CorruptFileError, match=r"config.json: malformed JSON"):
        load_checkpoint(broken)


def test_a_stack_of_unknown_layout_is_skipped_not_read_as_a_convolution(tmp_path):
    from safetensors.torch import save_file

    save_file({"model.layers.0.mlp.experts.down_proj": torch.ones(4, 8, 8), "model.layers.0.fc.weight": torch.ones(3, 8)},
              str(tmp_path / "x.safetensors"))
    found, skipped = netinit.find_layers(load_checkpoint(tmp_path / "x.safetensors"))
    assert [layer.name for layer in found] == ["model.layers.0.fc.weight"]
    assert skipped[0].reason.startswith("3-D stack of experts in a layout netinit does not know")


def test_out_in_stacks_are_read_where_the_config_names_the_type(tmp_path):
    """transformers holds Mixtral's experts as (experts, out, in) stacks in memory; a folder whose
    config.json says mixtral has its stacks read that way (no config: skipped, not guessed)."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    stack = torch.randn(2, 6, 4, generator=gen)
    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"model.layers.0.mlp.experts.gate_up_proj": stack}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"model_type": "mixtral", "num_hidden_layers": 1, "num_local_experts": 2}')
    found, _ = netinit.find_layers(load_checkpoint(folder))
    assert [(la.name, la.expert, la.matrix_shape, la.layout) for la in found] == [
        (f"model.layers.0.mlp.experts.{e}.gate_up_proj", e, (6, 4), "out_in") for e in range(2)]
    for la in found:
        np.testing.assert_array_equal(la.matrix(), stack[la.index].numpy())


def test_a_folder_is_rewritten_as_a_folder(saved, tmp_path):
    folder, _ = saved["llama"]
    with pytest.raises(netinit.OutputError, match=r"out\.safetensors: the suffix \.safetensors names the safetensors format, "
                                                  r"but a model folder is rewritten as a model folder; give a folder path"):
        netinit.rewire_checkpoint(folder, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()

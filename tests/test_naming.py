"""netinit.naming: block, role and expert from tensor names; the order of the model."""

from __future__ import annotations

import pytest

from netinit.naming import block_of, expert_of, is_string_sorted, model_order, role_of


@pytest.mark.parametrize("name, block, role, expert", [
    ("model.layers.0.self_attn.q_proj.weight", 0, "attn_q", None),          # Llama
    ("model.layers.12.self_attn.o_proj.weight", 12, "attn_o", None),
    ("model.layers.3.mlp.gate_proj.weight", 3, "mlp_gate", None),
    ("model.layers.3.mlp.experts.7.down_proj.weight", 3, "mlp_down", 7),   # Qwen3-MoE, Mixtral style
    ("model.layers.3.mlp.gate.weight", 3, "router", None),
    ("model.layers.3.block_sparse_moe.gate.weight", 3, "router", None),
    ("transformer.h.2.attn.c_attn.weight", 2, "attn_qkv", None),          # GPT-2
    ("transformer.h.2.attn.c_proj.weight", 2, "attn_o", None),
    ("transformer.h.2.mlp.c_fc.weight", 2, "mlp_up", None),
    ("transformer.h.2.mlp.c_proj.weight", 2, "mlp_down", None),
    ("encoder.layer.1.attention.self.query.weight", 1, "attn_q", None),   # BERT
    ("encoder.layer.1.attention.output.dense.weight", 1, "attn_o", None),
    ("encoder.layer.1.intermediate.dense.weight", 1, "mlp_up", None),
    ("encoder.layer.1.output.dense.weight", 1, "mlp_down", None),
    ("transformer.h.0.self_attention.query_key_value.weight", 0, "attn_qkv", None),  # Falcon
    ("encoder.block.4.layer.1.DenseReluDense.wo.weight", 4, "mlp_down", None),       # T5
    ("lm_head.weight", None, "head", None),
    ("fc1.weight", None, "fc", None),
    ("features.0.weight", None, None, None),
    ("attn.in_proj_weight", None, "attn_qkv", None),
])
def test_place_from_names(name, block, role, expert):
    assert (block_of(name), role_of(name), expert_of(name)) == (block, role, expert)


def test_kind_decides_where_the_name_is_silent():
    assert role_of("features.0.weight", "conv2d") == "conv"
    assert role_of("features.3.weight", "linear") == "fc"
    assert role_of("classifier.weight", "conv2d") == "conv"
    assert role_of("wte.weight", "embedding") == "embedding"


def test_model_order_numeric_blocks_roles_in_execution_order_head_last():
    names = sorted(["lm_head.weight", "model.norm.weight", "model.embed_tokens.weight"]
                   + [f"model.layers.{b}.{p}.weight" for b in (1, 2, 10)
                      for p in ("mlp.down_proj", "mlp.up_proj", "self_attn.q_proj")])
    assert is_string_sorted(names)
    ordered = model_order(names)
    assert ordered[0] == "model.embed_tokens.weight" and ordered[-1] == "lm_head.weight"
    blocks = [block_of(n) for n in ordered if block_of(n) is not None]
    assert blocks == sorted(blocks) == [1, 1, 1, 2, 2, 2, 10, 10, 10]
    assert [role_of(n) for n in ordered[1:4]] == ["attn_q", "mlp_up", "mlp_down"]
    assert not is_string_sorted(ordered)


def test_encoder_before_decoder_and_experts_in_order():
    names = sorted([f"{side}.layers.{b}.fc1.weight" for side in ("decoder", "encoder") for b in (0, 1)]
                   + [f"model.layers.0.mlp.experts.{e}.up_proj.weight" for e in (0, 2, 11)])
    ordered = model_order(names)
    assert [n.split(".")[0] for n in ordered[:4]] == ["encoder", "encoder", "decoder", "decoder"]
    assert [expert_of(n) for n in ordered[4:]] == [0, 2, 11]


@pytest.mark.parametrize("name, block, role", [
    ("token_embd.weight", None, "embedding"), ("blk.3.attn_q.weight", 3, "attn_q"),
    ("blk.3.attn_output.weight", 3, "attn_o"), ("blk.3.ffn_gate_inp.weight", 3, "router"),
    ("blk.3.ffn_gate_exps.weight", 3, "mlp_gate"), ("blk.3.ffn_down_shexp.weight", 3, "mlp_down"),
    ("blk.3.ffn_up.weight", 3, "mlp_up"), ("output.weight", None, "head"),
])
def test_gguf_names(name, block, role):
    assert (block_of(name), role_of(name)) == (block, role)

"""netinit.naming: block, role and expert from tensor names; the order of the model."""

from __future__ import annotations

import pytest

from netinit.naming import GGUF_ROLES, ROLES, block_of, expert_of, is_string_sorted, model_order, role_of


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
    ("blk.3.ffn_gate_exps.weight", 3, "mlp_gate"), ("blk.3.ffn_down_shexp.weight", 3, "shared_down"),
    ("blk.3.ffn_up.weight", 3, "mlp_up"), ("output.weight", None, "head"),
])
def test_gguf_names(name, block, role):
    assert (block_of(name), role_of(name)) == (block, role)


@pytest.mark.parametrize("name, role", [
    # names only llama.cpp's table knows (netinit's own rules would say fc, attn_o or attn_qkv)
    ("transformer.decoder_layer.3.moe.linear_1.weight", "mlp_down"),          # Grok
    ("model.layers.3.block_sparse_moe.output_linear.weight", "mlp_down"),
    ("backbone.layers.3.mixer.out_proj.weight", "ssm_out"),                     # Mamba
    ("backbone.layers.3.mixer.in_proj.weight", "ssm_in"),
    # shared experts (Qwen2-MoE, DeepSeek) and their gate; multi-head latent attention
    ("model.layers.2.mlp.shared_expert.gate_proj.weight", "shared_gate"),
    ("model.layers.2.mlp.shared_experts.up_proj.weight", "shared_up"),
    ("model.layers.2.mlp.shared_experts.down_proj.weight", "shared_down"),
    ("model.layers.2.mlp.shared_expert_gate.weight", "shared_router"),
    ("model.layers.1.self_attn.kv_a_proj_with_mqa.weight", "attn_kv"),
    ("model.layers.1.self_attn.q_b_proj.weight", "attn_q"),
    # block templates under a wrapper (PEFT, multimodal language models)
    ("base_model.model.model.layers.1.mlp.up_proj.weight", "mlp_up"),
    ("model.language_model.layers.4.self_attn.o_proj.weight", "attn_o"),
])
def test_roles_from_llama_cpps_name_table(name, role):
    assert role_of(name) == role
    assert expert_of(name) is None


def test_every_template_of_the_table_gets_the_role_of_its_type():
    """Each name llama.cpp maps to a tensor type with a role here gets that role, unless another
    architecture gives the same name another type (then netinit's own rule decides)."""
    from gguf.tensor_mapping import TensorNameMap

    claimed: dict[str, set[str]] = {}
    for mapping in (TensorNameMap.mappings_cfg, TensorNameMap.block_mappings_cfg):
        for tensor, templates in mapping.items():
            for t in templates:
                claimed.setdefault(t, set()).add(tensor.name)
    checked = 0
    for template, types in claimed.items():
        roles = {GGUF_ROLES.get(t) for t in types}
        if len(types) != 1 or None in roles:
            continue
        (role,) = roles
        assert role_of(template.replace("{bid}", "7") + ".weight") == role, template
        checked += 1
    assert checked > 300
    assert set(GGUF_ROLES.values()) <= set(ROLES)


def test_shared_experts_order_inside_their_block():
    names = [f"model.layers.0.mlp.{p}.weight" for p in ("shared_expert.down_proj", "experts.1.up_proj", "gate",
                                                        "shared_expert.gate_proj", "experts.0.down_proj")]
    assert [role_of(n) for n in model_order(names)] == ["router", "shared_gate", "shared_down", "mlp_up", "mlp_down"]

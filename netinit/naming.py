"""Where a weight sits in its network, read from its name: block, role, expert, and model order.

Tensor names follow each framework's module tree (``model.layers.3.self_attn.q_proj.weight``,
``transformer.h.3.attn.c_attn.weight``, ``encoder.layer.3.attention.self.query.weight``,
``features.0.weight``). From a name this module reads:

* the **block**: the index after a component that numbers a network's repeated blocks
  (:data:`BLOCK_CONTAINERS`: ``layers``, ``layer``, ``h``, ``blocks``, ``block``, ...);
  ``None`` where the name has none (``features.0`` numbers the modules of a ``Sequential``,
  not blocks);
* the **role**: what the weight does, named the same across architectures (:data:`ROLES`):
  ``attn_q``/``attn_k``/``attn_v``/``attn_o``, fused ``attn_qkv``, the compressed key-value
  projections of multi-head latent attention ``attn_kv``, ``mlp_gate``/``mlp_up``/``mlp_down``,
  fused ``mlp_gate_up``, ``router``, a mixture-of-experts block's shared experts
  ``shared_gate``/``shared_up``/``shared_down`` and their gate ``shared_router``, a state-space
  (Mamba) block's ``ssm_in``/``ssm_out``, ``embedding``, ``head``, ``conv``, ``fc``; ``None``
  where no rule matches;
* the **expert**: the index after ``experts`` (mixture-of-experts layers), else ``None``.

Roles come first from llama.cpp's own table of tensor names (``gguf.TensorNameMap``, the names
of about a hundred architectures as ``transformers`` and the original releases store them, with
GGUF's own ``blk.N.attn_q`` names): a name matches a template with its block index as ``{bid}``
(leading components such as ``base_model.model.`` or ``model.language_model.`` may precede a block
template), per-expert names match with their expert index removed, and the template's tensor type
gives the role (:data:`GGUF_ROLES`; a tensor type without a role there, such as an RWKV mixer,
makes a layer ``fc``, or ``conv``). A template that several architectures give different types
(``model.layers.{bid}.self_attn.q_proj`` is RWKV's receptance as well as Llama's query) takes the
type netinit's own rules agree with. Names the table does not hold (GPT-2's ``c_fc``, plain
MLPs and CNNs, T5's ``DenseReluDense``, torch modules) fall back to netinit's own rules below,
which extend it.

:func:`model_order` sorts names as the model runs: embeddings first, then blocks in numeric
order (block 2 before block 10) with each block's roles in execution order (attention q, k, v,
o, then the MLP's router, gate, up, down), the output head last. It is applied where a file's
own order says nothing about the model (safetensors and other formats that store names sorted
as strings); files that keep the order they were written in (a PyTorch state dict, a torch
module) keep it.
"""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["BLOCK_CONTAINERS", "ROLES", "GGUF_ROLES", "block_of", "role_of", "expert_of", "model_order", "order_key",
           "is_string_sorted"]

#: Module names whose numbered children are a network's blocks.
BLOCK_CONTAINERS = ("layers", "layer", "h", "blocks", "block", "blk", "resblocks", "transformer_blocks", "decoder_layers",
                    "encoder_layers")
_BLOCK = re.compile(r"(?:^|\.)(?:" + "|".join(BLOCK_CONTAINERS) + r")\.(\d+)(?:\.|$)")
_EXPERT = re.compile(r"(?:^|\.)experts\.(\d+)(?:\.|$)")

#: Roles in execution order inside a block (the order :func:`model_order` uses).
ROLES = ("embedding", "attn_qkv", "attn_q", "attn_kv", "attn_k", "attn_v", "attn_o", "router", "shared_router",
         "shared_gate", "shared_up", "shared_down", "mlp_gate_up", "mlp_gate", "mlp_up", "mlp_down", "ssm_in", "ssm_out",
         "conv", "fc", "head")

#: netinit's role of each weight-bearing tensor type of llama.cpp's ``gguf.MODEL_TENSOR`` (after the
#: prefixes ``ENC_``, ``DEC_``, ``DEC_CROSS_``, ``V_ENC_`` and ``A_ENC_`` are removed: encoder,
#: decoder, cross-attention and vision/audio encoder tensors take the same roles); types not listed
#: (norms, RWKV mixers, vision projectors) make a layer ``fc`` (``conv`` for a convolution).
GGUF_ROLES = {
    "TOKEN_EMBD": "embedding", "POS_EMBD": "embedding", "TOKEN_TYPES": "embedding", "PER_LAYER_TOKEN_EMBD": "embedding",
    "OUTPUT": "head", "CLS": "head", "CLS_OUT": "head",
    "ATTN_QKV": "attn_qkv", "ATTN_Q": "attn_q", "ATTN_Q_A": "attn_q", "ATTN_Q_B": "attn_q", "ATTN_K": "attn_k",
    "ATTN_K_B": "attn_k", "ATTN_V": "attn_v", "ATTN_V_B": "attn_v", "ATTN_KV_A_MQA": "attn_kv", "ATTN_KV_B": "attn_kv",
    "ATTN_OUT": "attn_o", "ATTN_O": "attn_o",
    "FFN_GATE_INP": "router", "FFN_GATE_INP_SHEXP": "shared_router",
    "FFN_GATE": "mlp_gate", "FFN_UP": "mlp_up", "FFN_DOWN": "mlp_down",
    "FFN_GATE_EXP": "mlp_gate", "FFN_UP_EXP": "mlp_up", "FFN_DOWN_EXP": "mlp_down", "FFN_GATE_UP_EXP": "mlp_gate_up",
    "FFN_GATE_CHEXP": "mlp_gate", "FFN_UP_CHEXP": "mlp_up", "FFN_DOWN_CHEXP": "mlp_down",
    "FFN_GATE_SHEXP": "shared_gate", "FFN_UP_SHEXP": "shared_up", "FFN_DOWN_SHEXP": "shared_down",
    "SSM_IN": "ssm_in", "SSM_OUT": "ssm_out",
}
_GGUF_PREFIXES = ("DEC_CROSS_", "DEC_", "ENC_", "V_ENC_", "A_ENC_")

# (role, regex searched in the module path); the first match wins, so the more specific come first
_ROLE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((role, re.compile(r"(^|\.)(" + rx + r")$", re.I)) for role, rx in (
    ("embedding", r"embed_tokens|wte|wpe|tok_embeddings|word_embeddings|position_embeddings|token_type_embeddings|"
                  r"embeddings?|tok_emb|pos_emb|emb|shared|token_embd"),
    ("attn_qkv", r"c_attn|qkv|qkv_proj|query_key_value|in_proj|wqkv|in_proj_weight|attn_qkv"),
    ("attn_q", r"q_proj|query|wq|q|q_lin|q_a_proj|q_b_proj|q_proj_weight|attn_q"),
    ("attn_k", r"k_proj|key|wk|k|k_lin|k_proj_weight|attn_k"),
    ("attn_v", r"v_proj|value|wv|v|v_lin|v_proj_weight|attn_v"),
    ("attn_o", r"o_proj|out_proj|out_lin|(attn|attention|self_attention|self_attn)\.(c_proj|proj|wo|dense)|"
               r"attention\.output\.dense|attn_output"),
    ("attn_kv", r"kv_a_proj_with_mqa|kv_b_proj|wkv_a|wkv_b|attn_kv_a_mqa|attn_kv_b"),
    ("shared_router", r"shared_expert_gate|ffn_gate_inp_shexp"),
    ("router", r"router|(mlp|moe|block_sparse_moe|feed_forward)\.gate|ffn_gate_inp"),
    ("shared_gate", r"shared_experts?\.(gate_proj|w1)|ffn_gate_shexp"),
    ("shared_up", r"shared_experts?\.(up_proj|w3)|ffn_up_shexp"),
    ("shared_down", r"shared_experts?\.(down_proj|w2)|ffn_down_shexp"),
    ("mlp_gate_up", r"gate_up_proj|w13|ffn_gate_up(_exps)?"),
    ("mlp_gate", r"gate_proj|w1|wi_0|ffn_gate(_exps)?"),
    ("mlp_up", r"up_proj|w3|wi_1|wi|c_fc|fc1|intermediate\.dense|dense_h_to_4h|fc_in|lin1|ffn_up(_exps)?"),
    ("mlp_down", r"down_proj|w2|wo|c_proj|fc2|output\.dense|dense_4h_to_h|fc_out|lin2|ffn_down(_exps)?"),
    ("head", r"lm_head|head|classifier|score|cls|output|out"),
    ("conv", r"conv\w*|downsample\.0|shortcut\.0|stem\w*|patch_embed\.proj"),
    ("fc", r"fc\d*|linear\d*|dense\d*|lin\d*"),
))
_SUFFIX = re.compile(r"\.(weight|kernel|w|weight_orig|qweight|weight_packed)$")


def _stem(name: str) -> str:
    """The module path of a tensor name (``a.b.weight`` -> ``a.b``); attention projection
    parameters (``in_proj_weight``, ``q_proj_weight``) keep their own name."""
    if re.search(r"(^|\.)(in|q|k|v)_proj_weight$", name):
        return name
    return _SUFFIX.sub("", name)


def block_of(name: str) -> int | None:
    """The block index of a tensor name (``model.layers.10.mlp.up_proj.weight`` -> 10), or None."""
    m = _BLOCK.search(name)
    return int(m.group(1)) if m else None


def expert_of(name: str) -> int | None:
    """The expert index of a tensor name (``...mlp.experts.7.down_proj.weight`` -> 7), or None."""
    m = _EXPERT.search(name)
    return int(m.group(1)) if m else None


_EXPERT_INDEX = re.compile(r"(?:^|(?<=\.))experts\.\d+(?=\.|$)")
_GGUF_TABLE: dict[str, tuple[str, ...]] | None = None


def _gguf_table() -> dict[str, tuple[str, ...]]:
    """Template (``model.layers.{bid}.self_attn.q_proj``) -> the roles its tensor types give, from
    ``gguf.TensorNameMap`` (every architecture's names) and GGUF's own names (``blk.{bid}.attn_q``);
    read once."""
    global _GGUF_TABLE
    if _GGUF_TABLE is None:
        from gguf import TENSOR_NAMES
        from gguf.tensor_mapping import TensorNameMap

        def role(tensor) -> str | None:
            key = tensor.name
            for prefix in _GGUF_PREFIXES:
                if key.startswith(prefix) and key[len(prefix):] in GGUF_ROLES:
                    key = key[len(prefix):]
                    break
            return GGUF_ROLES.get(key)

        table: dict[str, list[str]] = {}
        sources = [TensorNameMap.mappings_cfg, TensorNameMap.block_mappings_cfg,
                   *getattr(TensorNameMap, "arch_block_mappings_cfg", {}).values(),
                   {t: (n,) for t, n in TENSOR_NAMES.items()}]
        for mapping in sources:
            for tensor, templates in mapping.items():
                r = role(tensor)
                for template in templates:
                    roles = table.setdefault(template, [])
                    if r is not None and r not in roles:
                        roles.append(r)
                    elif r is None and "" not in roles:
                        roles.append("")  # a known name without a weight role here (a norm, an SSM mixer)
        _GGUF_TABLE = {k: tuple(v) for k, v in table.items()}
    return _GGUF_TABLE


def _gguf_roles(stem: str) -> tuple[str, ...]:
    """The roles llama.cpp's name table gives module path ``stem`` (module docstring), or ()."""
    table = _gguf_table()
    path = _EXPERT_INDEX.sub("experts", stem)
    if path in table:
        return table[path]
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            for start in range(i + 1):  # the block template, then with leading components dropped
                key = ".".join(parts[start:i] + ["{bid}"] + parts[i + 1:])
                if key in table:
                    return table[key]
    return ()


def role_of(name: str, kind: str | None = None) -> str | None:
    """The role of a weight from its name (and kind): one of :data:`ROLES`, or None.

    ``kind`` (:func:`netinit.layers.classify`) decides where the name says nothing: a
    convolution is ``conv``, an embedding ``embedding``.

    Examples
    --------
    >>> role_of("model.layers.0.self_attn.q_proj.weight"), role_of("transformer.h.1.mlp.c_proj.weight")
    ('attn_q', 'mlp_down')
    >>> role_of("transformer.h.1.attn.c_proj.weight"), role_of("lm_head.weight"), role_of("fc1.weight")
    ('attn_o', 'head', 'fc')
    """
    if kind == "embedding":
        return "embedding"
    stem = _stem(name)
    conv = kind is not None and kind.startswith("conv")
    own = _own_role(name, stem, kind, conv)
    known = _gguf_roles(stem)
    roles = tuple(r for r in known if r)
    if not known or own in roles:
        return own
    if not roles:  # a tensor type llama.cpp knows that has no role of its own here
        return "conv" if conv else "fc" if kind in ("linear", None) else own
    role = roles[0]
    if role == "embedding" and kind not in (None, "embedding"):
        return own
    if conv and role in ("fc", "head", "mlp_up", "mlp_down"):
        return "conv"
    return role


def _own_role(name: str, stem: str, kind: str | None, conv: bool) -> str | None:
    """The role netinit's own rules (:data:`_ROLE_RULES`) give a name."""
    for role, rx in _ROLE_RULES:
        if rx.search(stem):
            if role == "embedding" and kind not in (None, "embedding"):
                continue
            if conv and role in ("fc", "head", "mlp_up", "mlp_down"):
                return "conv"
            if role in ("mlp_up", "mlp_down") and block_of(name) is None and re.search(r"(^|\.)fc\d$", stem):
                return "fc"  # fc1, fc2 of a plain MLP: its layers, not a block's up and down
            return role
    return "conv" if conv else "fc" if kind == "linear" else None


def _natural(text: str) -> tuple:
    """A key that orders numbered components numerically (``2`` before ``10``)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[._]", text))


_HEAD = re.compile(r"^(lm_head|head|classifier|score|output|cls)(\.|$)|(^|\.)(lm_head|score)(\.|$)")
_SIDE = {"encoder": 0, "decoder": 1}


def order_key(name: str) -> tuple:
    """The sort key of :func:`model_order`."""
    role = role_of(name)
    group = 0 if role == "embedding" else 2 if _HEAD.search(name) else 1
    m = _BLOCK.search(name)
    prefix, block, rest = (name, -1, "") if m is None else (name[:m.start()], int(m.group(1)), name[m.end():])
    side = tuple(_SIDE.get(p, 2) for p in prefix.split("."))
    rank = ROLES.index(role) if role in ROLES else len(ROLES)
    expert = expert_of(name)
    return (group, side, _natural(prefix), block, rank, -1 if expert is None else expert, _natural(rest))


def model_order(names: Iterable[str]) -> list[str]:
    """``names`` sorted in the order of the model (module docstring); stable for equal keys.

    Examples
    --------
    >>> model_order(["lm_head.weight", "model.layers.10.mlp.up_proj.weight",
    ...              "model.layers.2.self_attn.q_proj.weight", "model.embed_tokens.weight",
    ...              "model.layers.2.mlp.down_proj.weight"])  # doctest: +NORMALIZE_WHITESPACE
    ['model.embed_tokens.weight', 'model.layers.2.self_attn.q_proj.weight',
     'model.layers.2.mlp.down_proj.weight', 'model.layers.10.mlp.up_proj.weight', 'lm_head.weight']
    """
    return sorted(names, key=order_key)


def is_string_sorted(names: list[str]) -> bool:
    """Whether ``names`` are in plain string order (their order then says nothing about the model)."""
    return all(a <= b for a, b in zip(names, names[1:]))

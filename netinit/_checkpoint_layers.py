"""The tensors of a checkpoint file as :func:`netinit.layers.find_layers` sees them.

Every tensor in the order given, with what its name, shape and neighbours say beyond
:func:`netinit.layers.classify`:

* a 3-D stack of experts (``...experts.gate_up_proj``, GGUF's ``ffn_*_exps.weight``) becomes
  one entry per expert, named ``...experts.E.gate_up_proj``, in the stack's known stored
  layout (:func:`stack_layout`: from the model type a folder's ``config.json`` names, or from
  the tensor names), or is skipped when netinit does not know the layout;
* gpt-oss MXFP4 expert blocks become one entry per expert, dequantised on load;
* FP8 weights carry their scheme and scale tensor (:mod:`netinit.quant`), GGUF's quantised
  tensors their type; packed GPTQ, AWQ, compressed-tensors and bitsandbytes weights become one
  ``(n_out, n_in)`` entry each, described by :func:`netinit.quant.quantised_weight` with the
  folder's ``quantization_config``; scale, zero-point and index tensors are skipped as such,
  and schemes netinit cannot dequantise are skipped by name.
"""

from __future__ import annotations

import re
from typing import Any

from netinit.errors import CorruptFileError, LayerError, ShapeError
from netinit.formats.base import Checkpoint, TensorInfo
from netinit.quant import FP8_DTYPES, Quantized, companion_reason, fp8_scheme, mxfp4_scales, quantised_weight, unsupported_scheme

__all__ = ["checkpoint_tensors", "stack_layout", "expert_name"]


#: 3-D tensors that stack the experts of a mixture-of-experts block
_EXPERT_STACK = re.compile(r"(^|\.)experts\.(gate_up_proj|down_proj|gate_proj|up_proj)$|(^|\.)ffn_(gate_up|gate|up|down)_exps\.weight$")
#: model types whose stacked experts are stored (experts, in, out) / (experts, out, in)
_STACK_IN_OUT = ("gpt_oss", "llama4", "llama4_text")
_STACK_OUT_IN = ("mixtral", "qwen2_moe", "qwen3_moe", "qwen3_next", "olmoe", "deepseek_v2", "deepseek_v3", "minimax",
                 "granitemoe", "phimoe", "dbrx", "jamba", "ernie4_5_moe", "glm4_moe", "dots1", "hunyuan_v1_moe")


def stack_layout(name: str, names: set[str], model: dict[str, Any]) -> str | None:
    """Stored orientation of each expert of stack ``name``: from the model type when the folder's
    config says it, else from what the tensor names say; None when neither knows."""
    model_type = model.get("model_type")
    if model_type in _STACK_IN_OUT:
        return "in_out"
    if model_type in _STACK_OUT_IN or name.endswith("_exps.weight"):  # GGUF stores ne = (in, out, experts)
        return "out_in"
    if name + "_bias" in names or ".feed_forward.experts." in name:  # gpt-oss, Llama 4
        return "in_out"
    return None


def expert_name(name: str, e: int) -> str:
    head, _, last = name.rpartition(".")
    if last == "weight":
        head, _, last = head.rpartition(".")
        return f"{head}.{last}.{e}.weight" if head else f"{last}.{e}.weight"
    return f"{head}.{e}.{last}" if head else f"{e}.{last}"


def _fp8_block_size(qconfig: Any) -> int | None:
    """The square block of FP8 scales a ``quantization_config`` declares: ``weight_block_size``
    (``transformers``' fine-grained FP8) or a compressed-tensors group's ``weights.block_structure``."""
    if not isinstance(qconfig, dict):
        return None
    sizes = [qconfig.get("weight_block_size")]
    groups = qconfig.get("config_groups")
    if isinstance(groups, dict):
        sizes += [g.get("weights", {}).get("block_structure") for g in groups.values()
                  if isinstance(g, dict) and isinstance(g.get("weights"), dict)]
    for size in sizes:
        if isinstance(size, (list, tuple)) and size and all(isinstance(b, int) and b > 0 for b in size) \
                and len(set(size)) == 1:
            return int(size[0])
    return None


def checkpoint_tensors(ckpt: Checkpoint, infos: list[TensorInfo]) -> list[tuple[TensorInfo, str | None, dict[str, Any]]]:
    """``(info, kind hint, extra)`` of every tensor of a checkpoint, stacks of experts expanded to one
    entry per expert and quantised weights described (:mod:`netinit.quant`)."""
    names = {i.name for i in infos}
    by_name = {i.name: i for i in infos}
    model = getattr(ckpt, "model", None) or {}
    qconfig = model.get("quantization_config") or {}
    block_size = _fp8_block_size(qconfig)
    out: list[tuple[TensorInfo, str | None, dict[str, Any]]] = []
    for info in infos:
        hint = ckpt.kind_hint(info.name)
        mx = mxfp4_scales(info.name, info.shape, info.dtype, by_name)
        if mx is not None:  # gpt-oss MXFP4 experts: (experts, out, G, 16) codes -> one (out, 32 G) layer each
            base = info.name[: -len("_blocks")]
            for e in range(info.shape[0]):
                sub = TensorInfo(expert_name(base, e), (info.shape[1], info.shape[2] * 32), "float32")
                out.append((sub, "linear", {"quant": Quantized("MXFP4", mx, 32, method="mxfp4"), "stored_dtype": "mxfp4",
                                            "tensor_name": info.name, "index": e, "expert": e}))
            continue
        try:
            packed = quantised_weight(info.name, by_name, qconfig, ckpt.load)
        except (ShapeError, CorruptFileError) as exc:
            raise type(exc)(f"{ckpt.path}: {exc}") from None
        if isinstance(packed, tuple):  # dequantised on load, in the canonical (n_out, n_in) orientation
            shape, quant, stored = packed
            out.append((TensorInfo(info.name, shape, "float32"), hint, {"quant": quant, "stored_dtype": stored}))
            continue
        why = companion_reason(info.name)
        scheme = packed or (None if why else unsupported_scheme(info.name, info.dtype, names))
        if why or scheme:
            out.append((info, hint, {"skip": why or f"quantised ({scheme}): not supported"}))
            continue
        extra: dict[str, Any] = {}
        gguf_type = ckpt.quantization(info.name) if hasattr(ckpt, "quantization") else None
        if gguf_type:  # the GGUF reader dequantises; the layer records its scheme
            extra = {"quant": Quantized(f"GGUF {gguf_type}", "")}
        if info.dtype in FP8_DTYPES and len(info.shape) >= 2:
            try:
                extra = {"quant": fp8_scheme(info.name, info.shape, info.dtype, by_name, block_size),
                         "stored_dtype": info.dtype}
            except ShapeError as exc:
                raise ShapeError(f"{ckpt.path}: {exc}") from None
            info = TensorInfo(info.name, info.shape, "float32")
        if len(info.shape) == 3 and _EXPERT_STACK.search(info.name) and info.is_float:
            layout = stack_layout(info.name, names, model)
            if layout is None:
                out.append((info, hint, {"skip": "3-D stack of experts in a layout netinit does not know (it knows "
                                                 "gpt-oss, Llama 4, GGUF and, with config.json, the model types it names)"}))
                continue
            n_experts = model.get("experts")
            if n_experts is not None and info.shape[0] != n_experts:
                raise LayerError(f"{ckpt.path}: config.json says {n_experts} experts, but {info.name!r} stacks "
                                 f"{info.shape[0]}")
            for e in range(info.shape[0]):
                sub = TensorInfo(expert_name(info.name, e), info.shape[1:], info.dtype)
                out.append((sub, "linear", {**extra, "tensor_name": info.name, "index": e, "layout": layout,
                                            "expert": e}))
            continue
        out.append((info, hint, extra))
    return out

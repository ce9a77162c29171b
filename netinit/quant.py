"""Quantised weights: which tensors are quantised, by which scheme, and their dequantised values.

netinit analyses a quantised layer through its dequantised values and writes nothing back into a
quantised tensor (rewiring one is refused: rewire the full-precision checkpoint, then quantise).
Each quantised weight is one layer in the canonical ``(n_out, n_in)`` orientation (FP8 and
MXFP4 keep their stored shape), named by its stored tensor (``...q_proj.qweight``,
``...weight_packed``, ``...weight``); :class:`Quantized` names its scheme (the ``quantization``
column). Scale, zero-point, shape and index tensors are never layers: :func:`companion_reason`
names them. Values are computed exactly in float32 and, where the scales are stored in float16
or bfloat16 (bitsandbytes: the ``dtype`` its state names), rounded once to that dtype, the
weights the model computes with.

Dequantised here:

* **FP8** (``float8_e4m3fn``, ``float8_e5m2``) as DeepSeek-V3 and ``transformers``' fine-grained
  FP8 store it: ``weight`` in FP8 with ``weight_scale_inv`` of shape
  ``(ceil(out/b), ceil(in/b))`` (block ``b``, 128 unless ``quantization_config.weight_block_size``
  says otherwise), ``W = q * s[i // b, j // b]``; or with ``weight_scale`` per tensor (a
  scalar), per output channel (``(out,)`` or ``(out, 1)``), ``W = q * s`` (compressed-tensors
  ``float-quantized``, FBGEMM), per group of ``g`` inputs (``(out, in / g)``,
  ``W[o, j] = q[o, j] * s[o, j // g]``) or per square block (``(ceil(out/b), ceil(in/b))`` as
  for ``weight_scale_inv``, ``b`` from a compressed-tensors group's ``block_structure``, else
  128). A scale whose shape fits none of these is an error naming both tensors.
* **MXFP4** as gpt-oss stores its experts: ``*_blocks`` of shape ``(experts, out, G, 16)``
  (uint8, two FP4 E2M1 codes a byte, low nibble first) with ``*_scales`` ``(experts, out, G)``
  (E8M0 exponents, bias 127); expert ``e``'s weight is ``(out, 32 G)``,
  ``W[o, 32 g + k] = fp4(code) * 2 ** (scale[e, o, g] - 127)``.
* **GPTQ** (``qweight``, ``qzeros``, ``scales``, ``g_idx``; 2, 4 and 8 bits; v1 zeros stored
  minus one, ``gptq_v2`` as they are; act-order through ``g_idx``), **AWQ** GEMM (``qweight``
  with the interleaved order ``[0, 2, 4, 6, 1, 3, 5, 7]``) and **compressed-tensors** integer
  weights (``pack-quantized`` ``weight_packed``, ``int-quantized`` int8 ``weight``; group,
  channel and tensor strategies, symmetric or with ``weight_zero_point``): definitions in
  :mod:`netinit._quant_packed`. These need a folder's ``config.json`` ``quantization_config``
  (bits, group size, GPTQ ``checkpoint_format``, AWQ ``version``, compressed-tensors
  ``config_groups``), which the tensors must fit.
* **bitsandbytes** 4-bit (NF4 and FP4, with or without double quantisation of ``absmax``) and
  8-bit (``weight`` int8 with ``SCB``): definitions in :mod:`netinit._quant_bnb`; the 4-bit
  quant state (a uint8 tensor holding JSON) says the shape, block size and dtype.

Recognised and skipped with the reason ``quantised (SCHEME): not supported``: MXFP4 tensors of
another shape; GPTQ of 3 bits or another ``checkpoint_format`` (``marlin``, ...); AWQ of a
``version`` other than ``gemm`` (``"quantised (AWQ gemv): not supported"``), other bits or
without zero points (``zero_point: false``);
compressed-tensors formats other than the integer ones (``nvfp4-pack-quantized``, ...) or of
bits other than 2, 4 and 8; packed integer weights in a file without a ``config.json`` that
says how they were quantised.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping

import numpy as np

from netinit._quant_base import Quantized, as_stored
from netinit.errors import ShapeError

__all__ = ["Quantized", "FP8_DTYPES", "fp8_to_float32", "fp8_scheme", "companion_reason", "unsupported_scheme",
           "quantised_weight", "dequantize", "dequantize_fp8", "dequantize_mxfp4", "mxfp4_scales", "as_stored",
           "FP4_E2M1"]

#: the 16 values of an FP4 E2M1 code (sign bit 3)
FP4_E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
                    dtype=np.float32)

FP8_DTYPES = ("float8_e4m3fn", "float8_e5m2")

#: tensors that accompany a quantised weight: (regex on the name, what it is)
_COMPANIONS = (
    (r"\.weight_scale_inv$", "FP8 block scale"), (r"\.weight_scale$", "weight scale"),
    (r"\.(input_scale|output_scale|k_scale|v_scale|input_scale_inv)$", "FP8 activation scale"),
    (r"_scales$", "MXFP4 scale"), (r"\.(qzeros|scales|g_idx)$", "GPTQ/AWQ quantisation parameter"),
    (r"\.(absmax|quant_map|nested_absmax|nested_quant_map|quant_state\..*|SCB|weight_format)$",
     "bitsandbytes quantisation state"),
    (r"\.weight_(zero_point|g_idx|shape|global_scale|packed_scale)$", "compressed-tensors quantisation parameter"),
)
_UNSUPPORTED = ((r"_blocks$", "MXFP4"),)


def companion_reason(name: str) -> str | None:
    """Why ``name`` is not a layer if it is a scale, zero point or index of a quantised weight."""
    for rx, what in _COMPANIONS:
        if re.search(rx, name):
            return f"{what} (quantisation parameter, not a weight)"
    return None


def unsupported_scheme(name: str, dtype: str, names: set[str]) -> str | None:
    """The scheme of a quantised weight netinit cannot dequantise and :func:`quantised_weight` does
    not describe (MXFP4 blocks outside gpt-oss's layout), or None."""
    for rx, scheme in _UNSUPPORTED:
        if re.search(rx, name):
            return scheme
    return None


def quantised_weight(name: str, infos: Mapping[str, Any], config: Mapping[str, Any] | None,
                     load: Callable[[str], np.ndarray]) -> tuple[tuple[int, int], Quantized, str] | str | None:
    """A packed GPTQ, AWQ, compressed-tensors or bitsandbytes weight.

    Parameters
    ----------
    name : str
        The tensor.
    infos : mapping of str to TensorInfo
        Every tensor of the checkpoint, by name.
    config : mapping or None
        ``config.json``'s ``quantization_config``.
    load : callable
        Loads a tensor by name (the bitsandbytes quant state and compressed-tensors
        ``weight_shape`` are read here).

    Returns
    -------
    ``((n_out, n_in), Quantized, stored dtype)`` for a weight netinit dequantises, the scheme
    (``"AWQ gemv"``) of one it does not, None for a tensor that is neither.

    Raises
    ------
    ShapeError
        A companion tensor missing or of a shape that does not fit the weight.
    CorruptFileError
        A bitsandbytes quant state that is not its JSON.
    """
    from netinit._quant_bnb import bnb4_state, describe_bnb4, describe_bnb8
    from netinit._quant_packed import describe_awq, describe_compressed, describe_gptq

    info = infos[name]
    if info.numel == 0:  # an empty tensor is no weight of any scheme
        return None
    cfg = config if isinstance(config, Mapping) else {}
    method = str(cfg.get("quant_method") or "").lower()
    if name.endswith(".qweight"):
        if method in ("gptq", "awq"):
            return (describe_gptq if method == "gptq" else describe_awq)(name, infos, cfg)
        return "GPTQ/AWQ, no quantization_config in config.json or quantize_config.json" if not method else f"GPTQ/AWQ under {method}"
    if not (name.endswith(".weight") or name.endswith(".weight_packed")):
        return None
    stem = name[: name.rindex(".") + 1]
    if info.dtype == "uint8" and name.endswith(".weight") and bnb4_state(name, infos):
        return describe_bnb4(name, infos, load)
    if info.dtype == "int8" and name.endswith(".weight") and stem + "SCB" in infos:
        return describe_bnb8(name, infos)
    if name.endswith(".weight_packed") or (info.dtype == "int8" and stem + "weight_scale" in infos):
        if method == "compressed-tensors":
            return describe_compressed(name, infos, cfg, load)
        return "compressed-tensors, no quantization_config in config.json" if not method else \
            f"compressed-tensors layout under {method}"
    return None


def dequantize(q: Quantized, load: Callable[[str], np.ndarray], name: str, dtype: str) -> np.ndarray:
    """The float32 values of quantised weight ``name`` (stored dtype ``dtype``) by ``q.method``:
    the stored shape for FP8, ``(experts, out, in)`` for MXFP4, ``(n_out, n_in)`` otherwise.

    Raises
    ------
    CorruptFileError
        Stored indices out of range (a GPTQ ``g_idx`` naming a group that does not exist).
    """
    if q.method == "mxfp4":
        return dequantize_mxfp4(load(name), load(q.scale))
    if q.method == "fp8":
        return dequantize_fp8(load(name), dtype, load(q.scale), q)
    if q.method in ("bnb4", "bnb8"):
        from netinit import _quant_bnb

        return (_quant_bnb.dequantize_bnb4 if q.method == "bnb4" else _quant_bnb.dequantize_bnb8)(q, load, name)
    from netinit import _quant_packed

    return getattr(_quant_packed, f"dequantize_{q.method}")(q, load, name)


def fp8_scheme(name: str, shape: tuple[int, ...], dtype: str, infos: Mapping[str, Any],
               block_size: int | None = None) -> Quantized:
    """The :class:`Quantized` of FP8 weight ``name`` from its scale tensor's name and shape.

    Raises
    ------
    ShapeError
        No scale beside the weight, or a scale whose shape does not fit the weight.
    """
    stem = name[: -len("weight")] if name.endswith("weight") else name + "_"
    out, inn = shape[0], int(np.prod(shape[1:], dtype=np.int64))
    inv, direct = stem + "weight_scale_inv", stem + "weight_scale"
    if inv in infos:
        s = tuple(infos[inv].shape)
        b = block_size or 128
        if len(s) == 2 and s == (math.ceil(out / b), math.ceil(inn / b)):
            return Quantized(f"{dtype} block {b}x{b}", inv, b, method="fp8")
        raise ShapeError(f"scale {inv!r} of shape {s} does not fit FP8 weight {name!r} of shape {shape} "
                         f"(blocks of {b}: expected {(math.ceil(out / b), math.ceil(inn / b))})")
    if direct in infos:
        s = tuple(infos[direct].shape)
        n = int(np.prod(s, dtype=np.int64)) if s else 1
        if n == 1:
            return Quantized(f"{dtype} per tensor", direct, method="fp8")
        if n == out and (len(s) == 1 or s[1:] == (1,) * (len(s) - 1)):
            return Quantized(f"{dtype} per channel", direct, method="fp8")
        if len(s) == 2 and s[0] == out and s[1] > 1 and inn % s[1] == 0:  # compressed-tensors "group"
            g = inn // s[1]
            return Quantized(f"{dtype} group {g}", direct, method="fp8", params=(("group", g),))
        b = block_size or 128  # compressed-tensors "block": the config's block_structure, else 128 as above
        if len(s) == 2 and s == (math.ceil(out / b), math.ceil(inn / b)):
            return Quantized(f"{dtype} block {b}x{b}", direct, b, method="fp8")
        raise ShapeError(f"scale {direct!r} of shape {s} does not fit FP8 weight {name!r} of shape {shape} "
                         f"(a scalar, one scale per output channel ({out}), per group ({out}, in / group) or per "
                         f"block of {b}: {(math.ceil(out / b), math.ceil(inn / b))})")
    raise ShapeError(f"FP8 weight {name!r} has no scale ({inv!r} or {direct!r}) beside it")


_LUT: dict[str, np.ndarray] = {}


def fp8_to_float32(bits: np.ndarray, dtype: str) -> np.ndarray:
    """FP8 values (stored as their uint8 bit patterns) as float32, exactly."""
    if dtype not in _LUT:
        import torch

        codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
        _LUT[dtype] = codes.view(getattr(torch, dtype)).to(torch.float32).numpy()
    return _LUT[dtype][np.asarray(bits, dtype=np.uint8)]


def dequantize_fp8(bits: np.ndarray, dtype: str, scale: np.ndarray, q: Quantized) -> np.ndarray:
    """The float32 weight of FP8 ``bits`` (stored shape) and its scale (module docstring)."""
    W = fp8_to_float32(bits, dtype)
    shape = W.shape
    M = W.reshape(shape[0], -1)
    s = np.asarray(scale, dtype=np.float32)
    group = dict(q.params).get("group")
    if group:
        M = M * np.repeat(s.reshape(M.shape[0], -1), group, axis=1)
    elif q.block:
        b = q.block
        full = np.repeat(np.repeat(s, b, axis=0), b, axis=1)[: M.shape[0], : M.shape[1]]
        M = M * full
    elif s.size == 1:
        M = M * s.reshape(())
    else:
        M = M * s.reshape(-1, 1)
    return M.reshape(shape).astype(np.float32, copy=False)


def mxfp4_scales(name: str, shape: tuple[int, ...], dtype: str, infos: Mapping[str, Any]) -> str | None:
    """The scale tensor of MXFP4 blocks ``name`` when the pair has gpt-oss's layout, else None."""
    if not name.endswith("_blocks") or dtype != "uint8" or len(shape) != 4 or shape[-1] != 16:
        return None
    scales = name[: -len("_blocks")] + "_scales"
    info = infos.get(scales)
    return scales if info is not None and tuple(info.shape) == tuple(shape[:-1]) else None


def dequantize_mxfp4(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """MXFP4 ``blocks`` ``(..., G, 16)`` and E8M0 ``scales`` ``(..., G)`` as float32 ``(..., 32 G)``."""
    blocks = np.asarray(blocks, dtype=np.uint8)
    out = np.empty(blocks.shape[:-1] + (32,), dtype=np.float32)
    out[..., 0::2] = FP4_E2M1[blocks & 0x0F]
    out[..., 1::2] = FP4_E2M1[blocks >> 4]
    out = np.ldexp(out, np.asarray(scales, dtype=np.int32)[..., None] - 127).astype(np.float32, copy=False)
    return out.reshape(blocks.shape[:-2] + (blocks.shape[-2] * 32,))

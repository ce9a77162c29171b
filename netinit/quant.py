"""Quantised weights: which tensors are quantised, by which scheme, and their dequantised values.

netinit analyses a quantised layer through its dequantised values and writes nothing back into a
quantised tensor (rewiring one is refused: rewire the full-precision checkpoint, then quantise).
Scale, zero-point and index tensors are never layers: :func:`companion_reason` names them.

Dequantised here:

* **FP8** (``float8_e4m3fn``, ``float8_e5m2``) as DeepSeek-V3 and ``transformers``' fine-grained
  FP8 store it: ``weight`` in FP8 with ``weight_scale_inv`` of shape
  ``(ceil(out/b), ceil(in/b))`` (block ``b``, 128 unless ``quantization_config.weight_block_size``
  says otherwise), ``W = q * s[i // b, j // b]``; or with ``weight_scale`` per tensor (a
  scalar), per output channel (``(out,)`` or ``(out, 1)``), ``W = q * s`` (compressed-tensors,
  FBGEMM). A scale whose shape fits none of these is an error naming both tensors.

* **MXFP4** as gpt-oss stores its experts: ``*_blocks`` of shape ``(experts, out, G, 16)``
  (uint8, two FP4 E2M1 codes a byte, low nibble first) with ``*_scales`` ``(experts, out, G)``
  (E8M0 exponents, bias 127); expert ``e``'s weight is ``(out, 32 G)``,
  ``W[o, 32 g + k] = fp4(code) * 2 ** (scale[e, o, g] - 127)``.

Recognised and skipped with the reason ``quantised (SCHEME): not supported``: MXFP4 tensors of
another shape, GPTQ and AWQ packed int4 (``qweight``, ``qzeros``, ``scales``,
``g_idx``), bitsandbytes 4-bit and 8-bit (``weight`` of uint8/int8 with ``absmax``/``SCB``
companions).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from netinit.errors import ShapeError

__all__ = ["Quantized", "FP8_DTYPES", "fp8_to_float32", "fp8_scheme", "companion_reason", "unsupported_scheme",
           "dequantize_fp8", "dequantize_mxfp4", "mxfp4_scales", "FP4_E2M1"]

#: the 16 values of an FP4 E2M1 code (sign bit 3)
FP4_E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
                    dtype=np.float32)

FP8_DTYPES = ("float8_e4m3fn", "float8_e5m2")

#: tensors that accompany a quantised weight: (regex on the name, what it is)
_COMPANIONS = (
    (r"\.weight_scale_inv$", "FP8 block scale"), (r"\.weight_scale$", "FP8 weight scale"),
    (r"\.(input_scale|output_scale|k_scale|v_scale|input_scale_inv)$", "FP8 activation scale"),
    (r"_scales$", "MXFP4 scale"), (r"\.(qzeros|scales|g_idx)$", "GPTQ/AWQ quantisation parameter"),
    (r"\.(absmax|quant_map|nested_absmax|nested_quant_map|quant_state\..*|SCB|weight_format)$",
     "bitsandbytes quantisation state"),
    (r"\.weight_(zero_point|g_idx|shape|global_scale|packed_scale)$", "compressed-tensors quantisation parameter"),
)
_UNSUPPORTED = (
    (r"_blocks$", "MXFP4"), (r"\.qweight$", "GPTQ/AWQ int4"), (r"\.weight_packed$", "compressed-tensors packed int"),
)


@dataclass(frozen=True)
class Quantized:
    """How a layer's weight is quantised: ``scheme`` (``"float8_e4m3fn block 128x128"``,
    ``"GGUF Q8_0"``), the scale tensor's name (empty where the reader dequantises, as for GGUF)
    and the block size (0 for per-tensor or per-channel scales)."""

    scheme: str
    scale: str
    block: int = 0


def companion_reason(name: str) -> str | None:
    """Why ``name`` is not a layer if it is a scale, zero point or index of a quantised weight."""
    for rx, what in _COMPANIONS:
        if re.search(rx, name):
            return f"{what} (quantisation parameter, not a weight)"
    return None


def unsupported_scheme(name: str, dtype: str, names: set[str]) -> str | None:
    """The scheme of a quantised weight netinit cannot dequantise, or None."""
    for rx, scheme in _UNSUPPORTED:
        if re.search(rx, name):
            return scheme
    stem = name[: -len(".weight")] if name.endswith(".weight") else None
    if stem is not None and dtype in ("uint8", "int8") and any(
            f"{stem}.weight.{c}" in names or f"{stem}.{c}" in names for c in ("absmax", "SCB", "quant_state.bitsandbytes__nf4",
                                                                            "quant_state.bitsandbytes__fp4")):
        return "bitsandbytes 4-bit" if dtype == "uint8" else "bitsandbytes 8-bit"
    return None


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
            return Quantized(f"{dtype} block {b}x{b}", inv, b)
        raise ShapeError(f"scale {inv!r} of shape {s} does not fit FP8 weight {name!r} of shape {shape} "
                         f"(blocks of {b}: expected {(math.ceil(out / b), math.ceil(inn / b))})")
    if direct in infos:
        s = tuple(infos[direct].shape)
        n = int(np.prod(s, dtype=np.int64)) if s else 1
        if n == 1:
            return Quantized(f"{dtype} per tensor", direct)
        if n == out and (len(s) == 1 or s[1:] == (1,) * (len(s) - 1)):
            return Quantized(f"{dtype} per channel", direct)
        raise ShapeError(f"scale {direct!r} of shape {s} does not fit FP8 weight {name!r} of shape {shape} "
                         f"(a scalar or one scale per output channel, {out})")
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
    if q.block:
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

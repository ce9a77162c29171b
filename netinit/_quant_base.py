"""What every quantisation scheme shares: :class:`Quantized` (re-exported by :mod:`netinit.quant`)
and the rounding of dequantised values to the dtype the scales are stored in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Quantized", "as_stored"]


@dataclass(frozen=True)
class Quantized:
    """How a layer's weight is quantised.

    Attributes
    ----------
    scheme : str
        What the ``quantization`` column shows (``"float8_e4m3fn block 128x128"``, ``"GGUF Q8_0"``,
        ``"GPTQ int4 group 128"``, ``"bitsandbytes nf4 block 64 double-quantised"``).
    scale : str
        The scale tensor's name (empty where the reader dequantises, as for GGUF).
    block : int
        Block or group size along the input (0 for per-tensor or per-channel scales).
    method : str
        Which dequantisation :func:`dequantize` runs (``fp8``, ``mxfp4``, ``gptq``, ``awq``,
        ``compressed``, ``bnb4``, ``bnb8``); empty where the reader dequantises.
    tensors : tuple of str
        The companion tensors the method reads, in its order.
    params : tuple of (str, value)
        What the method needs besides (bits, group size, shape, the scales' dtype, ...).
    """

    scheme: str
    scale: str
    block: int = 0
    method: str = ""
    tensors: tuple[str, ...] = ()
    params: tuple[tuple[str, Any], ...] = ()


def as_stored(W: np.ndarray, dtype: str) -> np.ndarray:
    """float32 ``W`` rounded to ``dtype`` (``float16``, ``bfloat16``; others unchanged), as float32."""
    W = np.asarray(W, dtype=np.float32)
    if dtype == "float16":
        return W.astype(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        from netinit.formats.safetensors import bf16_bits_to_float32, float32_to_bf16_bits

        return bf16_bits_to_float32(float32_to_bf16_bits(W))
    return np.ascontiguousarray(W)

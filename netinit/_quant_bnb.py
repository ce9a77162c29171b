"""bitsandbytes weights, as ``transformers`` saves them: 4-bit (NF4, FP4) and 8-bit (LLM.int8).

4-bit
    ``weight`` uint8 holding two codes a byte, the first in the high nibble, for the ``n``
    values of the row-major ``(n_out, n_in)`` matrix; beside it ``weight.absmax`` (one scale per
    block of ``blocksize`` consecutive values), ``weight.quant_map`` (the 16 code values) and
    ``weight.quant_state.bitsandbytes__nf4`` (or ``__fp4``), a uint8 tensor holding the JSON
    ``{"quant_type", "blocksize", "dtype", "shape"}``. ``W[i] = quant_map[code[i]] *
    absmax[i // blocksize]`` (flat index ``i``), rounded to ``dtype``. Double (nested)
    quantisation stores ``absmax`` as uint8 codes of its own blockwise scheme:
    ``absmax[k] = nested_quant_map[code[k]] * nested_absmax[k // nested_blocksize] +
    nested_offset`` (``nested_blocksize`` and ``nested_offset`` in the JSON).
8-bit
    ``weight`` int8 ``(n_out, n_in)`` and ``SCB`` ``(n_out,)`` the absolute maximum of each row:
    ``W[o, j] = q[o, j] * SCB[o] / 127``, computed as bitsandbytes does, ``q * SCB *
    7.874015718698502e-3`` in float32.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Mapping

import numpy as np

from netinit._quant_base import Quantized, as_stored
from netinit.errors import CorruptFileError, ShapeError
from netinit.formats.base import TensorInfo

__all__ = ["bnb4_state", "describe_bnb4", "describe_bnb8", "dequantize_bnb4", "dequantize_bnb8"]

Load = Callable[[str], np.ndarray]
_STATE = ".quant_state.bitsandbytes__"
_MAX_STATE = 1 << 16


def bnb4_state(name: str, infos: Mapping[str, TensorInfo]) -> str | None:
    """The quant-state tensor of 4-bit weight ``name``, or None when it has none."""
    for kind in ("nf4", "fp4"):
        if name + _STATE + kind in infos:
            return name + _STATE + kind
    return None


def _read_state(state: str, load: Load) -> dict[str, Any]:
    raw = np.asarray(load(state))
    if raw.dtype != np.uint8 or raw.size > _MAX_STATE:
        raise CorruptFileError(f"bitsandbytes quant state {state!r} is {raw.dtype} of {raw.size} values, not JSON bytes")
    try:
        doc = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"bitsandbytes quant state {state!r} is not JSON ({exc})") from None
    shape, bs = doc.get("shape") if isinstance(doc, dict) else None, doc.get("blocksize") if isinstance(doc, dict) else None
    ok = (isinstance(shape, list) and shape and all(isinstance(d, int) and d > 0 for d in shape)
          and isinstance(bs, int) and bs > 0 and doc.get("quant_type") in ("nf4", "fp4")
          and doc.get("dtype", "float32") in ("float16", "bfloat16", "float32"))
    if not ok:
        raise CorruptFileError(f"bitsandbytes quant state {state!r} lacks a valid quant_type, blocksize, dtype or "
                               f"shape: {json.dumps(doc)[:200]}")
    return doc


def describe_bnb4(name: str, infos: Mapping[str, TensorInfo], load: Load) -> Any:
    """``((n_out, n_in), Quantized, stored dtype)`` of bitsandbytes 4-bit ``...weight``, or the reason
    it is skipped.

    Raises
    ------
    CorruptFileError
        A quant state that is not the JSON bitsandbytes writes.
    ShapeError
        A companion missing, or of a size that does not fit the weight.
    """
    info, state = infos[name], bnb4_state(name, infos)
    doc = _read_state(state, load)
    qt, bs, shape = doc["quant_type"], doc["blocksize"], tuple(doc["shape"])
    if len(shape) != 2:
        return f"bitsandbytes {qt}, {len(shape)}-D weight"
    n = shape[0] * shape[1]
    if info.numel != math.ceil(n / 2):
        raise ShapeError(f"bitsandbytes 4-bit weight {name!r} holds {info.numel} bytes, but {state!r} says shape "
                         f"{shape} ({math.ceil(n / 2)} bytes)")

    def need(suffix: str, size: int, dtypes: tuple[str, ...]) -> str:
        other = infos.get(name + suffix)
        if other is None:
            raise ShapeError(f"bitsandbytes 4-bit weight {name!r} has no {name + suffix!r} beside it")
        if other.numel != size or other.dtype not in dtypes:
            raise ShapeError(f"{other.name!r} ({other.dtype} {other.shape}) does not fit bitsandbytes 4-bit weight "
                             f"{name!r} of shape {shape} (expected {size} values of {' or '.join(dtypes)})")
        return other.name

    nested = name + ".nested_absmax" in infos or "nested_blocksize" in doc
    n_absmax = math.ceil(n / bs)
    tensors = [need(".absmax", n_absmax, ("uint8",) if nested else ("float32",)), need(".quant_map", 16, ("float32",))]
    params: list[tuple[str, Any]] = [("shape", shape), ("blocksize", bs), ("dtype", doc.get("dtype", "float32"))]
    if nested:
        nbs, offset = doc.get("nested_blocksize"), doc.get("nested_offset")
        if not (isinstance(nbs, int) and nbs > 0 and isinstance(offset, (int, float))):
            raise CorruptFileError(f"bitsandbytes quant state {state!r} of a double-quantised weight lacks "
                                   f"nested_blocksize or nested_offset")
        tensors += [need(".nested_absmax", math.ceil(n_absmax / nbs), ("float32",)),
                    need(".nested_quant_map", 256, ("float32",))]
        params += [("nested_blocksize", nbs), ("nested_offset", float(offset))]
    scheme = f"bitsandbytes {qt} block {bs}" + (" double-quantised" if nested else "")
    return shape, Quantized(scheme, tensors[0], bs, method="bnb4", tensors=tuple(tensors), params=tuple(params)), qt


def dequantize_bnb4(q: Quantized, load: Load, name: str) -> np.ndarray:
    """The float32 ``(n_out, n_in)`` weight of bitsandbytes 4-bit ``name`` (module docstring)."""
    p = dict(q.params)
    shape, bs = p["shape"], p["blocksize"]
    n = shape[0] * shape[1]
    packed = np.asarray(load(name), dtype=np.uint8).reshape(-1)
    codes = np.empty(2 * packed.size, dtype=np.uint8)
    codes[0::2], codes[1::2] = packed >> 4, packed & 0x0F
    qmap = np.asarray(load(q.tensors[1]), dtype=np.float32).reshape(-1)
    absmax = np.asarray(load(q.tensors[0])).reshape(-1)
    if "nested_blocksize" in p:
        nested = np.asarray(load(q.tensors[2]), dtype=np.float32).reshape(-1)
        nmap = np.asarray(load(q.tensors[3]), dtype=np.float32).reshape(-1)
        absmax = nmap[absmax] * np.repeat(nested, p["nested_blocksize"])[: absmax.size] + np.float32(p["nested_offset"])
    W = qmap[codes[:n]] * np.repeat(absmax.astype(np.float32, copy=False), bs)[:n]
    return as_stored(W.reshape(shape), p["dtype"])


def describe_bnb8(name: str, infos: Mapping[str, TensorInfo]) -> Any:
    """``((n_out, n_in), Quantized, "int8")`` of bitsandbytes 8-bit ``...weight`` beside ``...SCB``."""
    info, scb = infos[name], infos[name[: -len("weight")] + "SCB"]
    if len(info.shape) != 2:
        return f"bitsandbytes int8, {len(info.shape)}-D weight"
    if scb.numel != info.shape[0] or scb.dtype not in ("float32", "float16", "bfloat16"):
        raise ShapeError(f"{scb.name!r} ({scb.dtype} {scb.shape}) does not fit bitsandbytes 8-bit weight {name!r} of "
                         f"shape {info.shape} (expected one float per output row, {info.shape[0]})")
    return info.shape, Quantized("bitsandbytes int8 per channel", scb.name, method="bnb8", tensors=(scb.name,)), "int8"


def dequantize_bnb8(q: Quantized, load: Load, name: str) -> np.ndarray:
    """The float32 ``(n_out, n_in)`` weight of bitsandbytes 8-bit ``name`` (module docstring)."""
    scb = np.asarray(load(q.tensors[0]), dtype=np.float32).reshape(-1, 1)
    return (np.asarray(load(name), dtype=np.float32) * scb) * np.float32(7.874015718698502e-3)

"""Packed integer weights: GPTQ, AWQ (GEMM) and compressed-tensors, described and dequantised.

Each format packs ``bits``-bit unsigned codes into the integers of a tensor, lowest bits first:
code ``k`` of a word sits at bits ``k * bits ... (k + 1) * bits - 1``. Where the codes of one
word run along the input dimension (GPTQ's ``qweight``) or the output dimension (GPTQ's
``qzeros``, AWQ, compressed-tensors' ``weight_packed`` along the input), and how a code becomes
a weight, is the format's definition below. Every layer is returned in the canonical
``(n_out, n_in)`` orientation, computed exactly in float32 and rounded once to the dtype the
scales are stored in (what the model multiplies with).

GPTQ (``quantization_config.quant_method == "gptq"``)
    ``qweight`` ``(n_in * bits / w, n_out)`` (``w`` the bits of its integer type, 32 for int32)
    with input row ``j`` as code ``j % (w / bits)`` of word row ``j // (w / bits)``;
    ``qzeros`` ``(G, n_out * bits / w)`` with output ``o`` as code ``o % (w / bits)`` of word
    ``o // (w / bits)``; ``scales`` ``(G, n_out)``; ``g_idx`` ``(n_in,)`` the group of each
    input (``j // group_size`` where absent; act-order files permute it).
    ``W[o, j] = scales[g, o] * (q[j, o] - z[g, o])`` with ``g = g_idx[j]``, where the v1
    format (``checkpoint_format`` ``"gptq"``, the default) stores ``z - 1`` (so
    ``z = (stored + 1) mod 2**bits``) and ``gptq_v2`` stores ``z``. Bits 2, 4 and 8.
AWQ (``quant_method == "awq"``, ``version == "gemm"``)
    ``qweight`` ``(n_in, n_out / 8)``, ``qzeros`` ``(G, n_out / 8)``, int32, 4-bit codes along
    the output dimension in the interleaved order ``[0, 2, 4, 6, 1, 3, 5, 7]`` (code ``k`` of
    word ``c`` is output ``8 c + order[k]``); ``scales`` ``(G, n_out)``;
    ``W[o, j] = scales[j // group_size, o] * (q[j, o] - z[j // group_size, o])``.
compressed-tensors (``quant_method == "compressed-tensors"``)
    ``pack-quantized``: ``weight_packed`` ``(n_out, ceil(n_in * bits / 32))`` int32, codes along
    the input dimension, each the signed value plus ``2**(bits - 1)``; ``weight_shape`` holds
    ``(n_out, n_in)``; ``int-quantized`` / ``naive-quantized``: ``weight`` int8 holding the
    signed values. ``weight_scale`` ``(n_out, G)`` (strategy ``group``, ``G = ceil(n_in /
    group_size)``), ``(n_out, 1)`` (``channel``) or one value (``tensor``); asymmetric schemes
    add ``weight_zero_point`` (packed like the codes, along the output dimension, or stored as
    the scale's shape); ``weight_g_idx`` (act-order) gives each input's group.
    ``W[o, j] = s[o, g] * (q[o, j] - z[o, g])`` with ``g = g_idx[j]`` or ``j // group_size``.
    The scheme of a weight is the ``config_groups`` entry whose ``weights`` fit its tensors.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from netinit._quant_base import Quantized, as_stored
from netinit.errors import CorruptFileError, ShapeError
from netinit.formats.base import TensorInfo

__all__ = ["describe_gptq", "describe_awq", "describe_compressed", "dequantize_gptq", "dequantize_awq",
           "dequantize_compressed", "unpack", "AWQ_ORDER"]

#: AWQ GEMM: code k of a word holds output column order[k] of its group of 8
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
_INT_DTYPES = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}

Load = Callable[[str], np.ndarray]


def unpack(words: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """The unsigned ``bits``-bit codes of ``words`` (2-D integers), lowest bits first, laid out along
    ``axis``: code ``k`` of word ``[r, c]`` becomes element ``[r * p + k, c]`` (``axis=0``) or
    ``[r, c * p + k]`` (``axis=1``), ``p = itemsize * 8 / bits``. Returns uint8 codes."""
    w = np.ascontiguousarray(words)
    u = w.view(w.dtype.str.replace("i", "u"))
    p = w.dtype.itemsize * 8 // bits
    shifts = (np.arange(p, dtype=np.uint64) * bits).astype(u.dtype)
    codes = ((u[..., None] >> shifts) & u.dtype.type((1 << bits) - 1)).astype(np.uint8)  # (R, C, p)
    r, c = w.shape
    if axis == 0:
        return codes.transpose(0, 2, 1).reshape(r * p, c)
    return codes.reshape(r, c * p)


def _int(cfg: Mapping[str, Any], *keys: str, default: int | None = None) -> int | None:
    for key in keys:
        v = cfg.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return default


def _need(name: str, companion: str, infos: Mapping[str, TensorInfo], what: str) -> TensorInfo:
    info = infos.get(companion)
    if info is None:
        raise ShapeError(f"{what} weight {name!r} has no {companion!r} beside it")
    return info


def _misfit(name: str, shape: tuple[int, ...], other: TensorInfo, what: str, expected: Any) -> ShapeError:
    return ShapeError(f"{other.name!r} of shape {other.shape} does not fit {what} weight {name!r} of shape {shape} "
                      f"(expected {expected})")


def _groups(n_in: int, group_size: int) -> tuple[int, int]:
    """``(group size, number of groups)``; a group size of -1 or 0 is one group per row."""
    gs = n_in if group_size <= 0 else group_size
    return gs, max(1, math.ceil(n_in / gs))


def describe_gptq(name: str, infos: Mapping[str, TensorInfo], cfg: Mapping[str, Any]) -> Any:
    """``((n_out, n_in), Quantized, stored dtype)`` of GPTQ ``...qweight``, or the reason it is skipped.

    Raises
    ------
    ShapeError
        A companion missing, or of a shape that does not fit the weight.
    """
    info, stem = infos[name], name[: -len("qweight")]
    bits = _int(cfg, "bits", "w_bit", default=4)
    fmt = str(cfg.get("checkpoint_format") or cfg.get("format") or "gptq").lower()
    if fmt not in ("gptq", "gptq_v2"):
        return f"GPTQ {fmt}"
    if bits not in (2, 4, 8):
        return f"GPTQ int{bits}"
    word = _INT_DTYPES.get(info.dtype)
    if word is None or len(info.shape) != 2:
        return f"GPTQ, qweight of {info.dtype} {info.shape}"
    n_in, n_out = info.shape[0] * word // bits, info.shape[1]
    shape = info.shape
    group_size = _int(cfg, "group_size", "q_group_size", default=128)
    gs, G = _groups(n_in, group_size)
    g_idx = infos.get(stem + "g_idx")
    if g_idx is not None and g_idx.shape != (n_in,):
        raise _misfit(name, shape, g_idx, "GPTQ", f"({n_in},): one group index per input of {bits}-bit codes")
    if g_idx is None and cfg.get("desc_act"):
        raise ShapeError(f"GPTQ weight {name!r} is act-order (desc_act) but has no {stem + 'g_idx'!r} beside it")
    scales = _need(name, stem + "scales", infos, "GPTQ")
    zeros = _need(name, stem + "qzeros", infos, "GPTQ")
    if scales.shape != (G, n_out):
        raise _misfit(name, shape, scales, "GPTQ", f"{(G, n_out)}: groups of {gs} inputs by outputs")
    zword = _INT_DTYPES.get(zeros.dtype)
    if zword is None or (n_out * bits) % zword or zeros.shape != (G, n_out * bits // zword):
        want = (G, n_out * bits / (zword or word))
        raise _misfit(name, shape, zeros, "GPTQ", f"an integer tensor of shape {want}: {bits}-bit zero points")
    v1 = fmt == "gptq"
    scheme = f"GPTQ int{bits} " + ("per channel" if group_size <= 0 else f"group {gs}") + \
        (" act-order" if cfg.get("desc_act") else "") + ("" if v1 else " v2")
    tensors = (scales.name, zeros.name) + ((g_idx.name,) if g_idx is not None else ())
    q = Quantized(scheme, scales.name, 0 if group_size <= 0 else gs, method="gptq", tensors=tensors,
                  params=(("bits", bits), ("group_size", gs), ("v1", v1), ("dtype", scales.dtype)))
    return (n_out, n_in), q, f"int{bits}"


def _g_index(g_idx: np.ndarray | None, n_in: int, gs: int, G: int, name: str) -> np.ndarray:
    if g_idx is None:
        return np.arange(n_in) // gs
    g = np.asarray(g_idx).astype(np.int64, copy=False)
    if g.size and (g.min() < 0 or g.max() >= G):
        raise CorruptFileError(f"group index {name!r} holds {int(g.min())}..{int(g.max())}; valid groups are 0..{G - 1}")
    return g


def dequantize_gptq(q: Quantized, load: Load, name: str) -> np.ndarray:
    """The float32 ``(n_out, n_in)`` weight of GPTQ ``name`` (module docstring)."""
    p = dict(q.params)
    bits, gs = p["bits"], p["group_size"]
    codes = unpack(load(name), bits, axis=0)  # (n_in, n_out)
    zeros = unpack(load(q.tensors[1]), bits, axis=1)  # (G, n_out)
    if p["v1"]:
        zeros = (zeros + 1) & ((1 << bits) - 1)
    scales = np.asarray(load(q.tensors[0]), dtype=np.float32)
    g = _g_index(load(q.tensors[2]) if len(q.tensors) > 2 else None, codes.shape[0], gs, scales.shape[0], q.tensors[-1])
    W = (codes.astype(np.float32) - zeros[g]) * scales[g]
    return as_stored(W.T, p["dtype"])


def describe_awq(name: str, infos: Mapping[str, TensorInfo], cfg: Mapping[str, Any]) -> Any:
    """``((n_out, n_in), Quantized, stored dtype)`` of AWQ ``...qweight``, or the reason it is skipped."""
    info, stem = infos[name], name[: -len("qweight")]
    version = str(cfg.get("version") or "gemm").lower()
    bits = _int(cfg, "bits", "w_bit", default=4)
    if version != "gemm":
        return f"AWQ {version}"
    if bits != 4:
        return f"AWQ int{bits}"
    if info.dtype != "int32" or len(info.shape) != 2:
        return f"AWQ, qweight of {info.dtype} {info.shape}"
    if cfg.get("zero_point") is False:  # symmetric AWQ: no qzeros; a layout netinit has not verified
        return "AWQ without zero points"
    n_in, n_out = info.shape[0], info.shape[1] * 8
    group_size = _int(cfg, "group_size", "q_group_size", default=128)
    gs, G = _groups(n_in, group_size)
    scales = _need(name, stem + "scales", infos, "AWQ")
    zeros = _need(name, stem + "qzeros", infos, "AWQ")
    if scales.shape != (G, n_out):
        raise _misfit(name, info.shape, scales, "AWQ", f"{(G, n_out)}: groups of {gs} inputs by 8 outputs a word")
    if zeros.dtype != "int32" or zeros.shape != (G, info.shape[1]):
        raise _misfit(name, info.shape, zeros, "AWQ", f"int32 {(G, info.shape[1])}: 4-bit zero points")
    scheme = "AWQ int4 " + ("per channel" if group_size <= 0 else f"group {gs}")
    q = Quantized(scheme, scales.name, 0 if group_size <= 0 else gs, method="awq", tensors=(scales.name, zeros.name),
                  params=(("group_size", gs), ("dtype", scales.dtype)))
    return (n_out, n_in), q, "int4"


def _awq_columns(codes: np.ndarray) -> np.ndarray:
    """AWQ codes ``(rows, 8 C)`` in stored order to output order."""
    r, n = codes.shape
    return codes.reshape(r, n // 8, 8)[:, :, np.argsort(AWQ_ORDER)].reshape(r, n)


def dequantize_awq(q: Quantized, load: Load, name: str) -> np.ndarray:
    """The float32 ``(n_out, n_in)`` weight of AWQ GEMM ``name`` (module docstring)."""
    p = dict(q.params)
    codes = _awq_columns(unpack(load(name), 4, axis=1))  # (n_in, n_out)
    zeros = _awq_columns(unpack(load(q.tensors[1]), 4, axis=1))  # (G, n_out)
    scales = np.asarray(load(q.tensors[0]), dtype=np.float32)
    g = np.arange(codes.shape[0]) // p["group_size"]
    W = (codes.astype(np.float32) - zeros[g]) * scales[g]
    return as_stored(W.T, p["dtype"])


def _ct_candidates(cfg: Mapping[str, Any], packed: bool) -> list[tuple[str, dict[str, Any]]]:
    """``(format, weights args)`` of the integer ``config_groups`` of a compressed-tensors config."""
    groups = cfg.get("config_groups")
    out = []
    for group in (groups.values() if isinstance(groups, dict) else ()):
        args = group.get("weights") if isinstance(group, dict) else None
        if not isinstance(args, dict) or str(args.get("type", "int")).lower() != "int":
            continue
        fmt = str(group.get("format") or cfg.get("format") or "").lower()
        if fmt in (("pack-quantized",) if packed else ("int-quantized", "naive-quantized")):
            out.append((fmt, args))
    return out


def _ct_fit(args: Mapping[str, Any], n_out: int, n_in: int, scale: TensorInfo) -> tuple[str, int] | None:
    """``(strategy, group size)`` when ``args`` fits a weight of ``(n_out, n_in)`` with ``scale``, else None."""
    strategy = str(args.get("strategy") or "tensor").lower()
    s = scale.shape
    if strategy == "group":
        gs = _int(args, "group_size", default=0) or 0
        if gs > 0 and s == (n_out, math.ceil(n_in / gs)):
            return strategy, gs
    elif strategy == "channel" and s in ((n_out, 1), (n_out,)):
        return strategy, n_in
    elif strategy == "tensor" and int(np.prod(s, dtype=np.int64)) == 1:
        return strategy, n_in
    return None


def describe_compressed(name: str, infos: Mapping[str, TensorInfo], cfg: Mapping[str, Any], load: Load) -> Any:
    """``((n_out, n_in), Quantized, stored dtype)`` of a compressed-tensors integer weight
    (``...weight_packed``, or an int8 ``...weight`` beside ``...weight_scale``), or the reason
    it is skipped.

    Raises
    ------
    ShapeError
        A companion missing or of a shape that fits no ``config_groups`` scheme.
    """
    info = infos[name]
    packed = name.endswith(".weight_packed")
    stem = name[: -len("weight_packed")] if packed else name[: -len("weight")]
    if packed and info.dtype != "int32":
        fmt = str(cfg.get("format") or "packed").lower()
        return f"compressed-tensors {fmt}, weight_packed of {info.dtype}"
    if len(info.shape) != 2:
        return f"compressed-tensors {len(info.shape)}-D weight"
    scale = _need(name, stem + "weight_scale", infos, "compressed-tensors")
    if packed:
        wshape = _need(name, stem + "weight_shape", infos, "compressed-tensors")
        dims = np.asarray(load(wshape.name)).reshape(-1)
        if dims.size != 2 or not np.issubdtype(dims.dtype, np.integer) or dims.min() < 1 or dims[0] != info.shape[0]:
            raise ShapeError(f"{wshape.name!r} holds {dims.tolist()[:4]}, which is no (n_out, n_in) for packed "
                             f"weight {name!r} of shape {info.shape}")
        n_out, n_in = int(dims[0]), int(dims[1])
    else:
        n_out, n_in = info.shape
    candidates = _ct_candidates(cfg, packed)
    if not candidates:
        return f"compressed-tensors {str(cfg.get('format') or 'without config_groups').lower()}"
    fits = []
    for fmt, args in candidates:
        bits = _int(args, "num_bits", default=8)
        if packed and info.shape[1] != math.ceil(n_in * bits / 32):
            continue
        fit = _ct_fit(args, n_out, n_in, scale)
        if fit is not None:
            fits.append((fmt, bits, *fit, not args.get("symmetric", True), args.get("actorder")))
    fits = list(dict.fromkeys(fits))
    if not fits:
        raise ShapeError(f"compressed-tensors weight {name!r} of shape {info.shape} with {scale.name!r} of shape "
                         f"{scale.shape} fits none of config.json's config_groups")
    if len(fits) > 1:
        return "compressed-tensors, several config_groups fit"
    fmt, bits, strategy, gs, asym, _ = fits[0]
    if bits not in (2, 4, 8) or (not packed and info.dtype != "int8"):
        return f"compressed-tensors {fmt} int{bits}"
    G = scale.shape[1] if strategy == "group" else 1
    tensors, zp_packed = [scale.name, "", ""], False
    zp = _need(name, stem + "weight_zero_point", infos, "asymmetric compressed-tensors") if asym else None
    if zp is not None:
        plain = scale.shape
        packed_zp = (math.ceil(n_out * bits / 32), G)
        zp_packed = packed and strategy != "tensor" and zp.dtype == "int32" and zp.shape == packed_zp and zp.shape != plain
        if zp.shape != plain and not zp_packed:
            raise _misfit(name, (n_out, n_in), zp, "compressed-tensors", f"{plain} or packed {packed_zp}")
        tensors[1] = zp.name
    g_idx = infos.get(stem + "weight_g_idx")
    if g_idx is not None and strategy == "group":
        if g_idx.shape != (n_in,):
            raise _misfit(name, (n_out, n_in), g_idx, "compressed-tensors", f"({n_in},): one group per input")
        tensors[2] = g_idx.name
    scheme = f"compressed-tensors int{bits} " + (f"group {gs}" if strategy == "group" else f"per {strategy}") + \
        (" asymmetric" if tensors[1] else "") + (" act-order" if tensors[2] else "")
    q = Quantized(scheme, scale.name, gs if strategy == "group" else 0, method="compressed", tensors=tuple(tensors),
                  params=(("bits", bits), ("group_size", gs), ("packed", packed), ("zp_packed", zp_packed),
                          ("shape", (n_out, n_in)), ("dtype", scale.dtype)))
    return (n_out, n_in), q, f"int{bits}"


def dequantize_compressed(q: Quantized, load: Load, name: str) -> np.ndarray:
    """The float32 ``(n_out, n_in)`` weight of compressed-tensors ``name`` (module docstring)."""
    p = dict(q.params)
    bits, gs, (n_out, n_in) = p["bits"], p["group_size"], p["shape"]
    offset = 1 << (bits - 1)
    if p["packed"]:
        values = unpack(load(name), bits, axis=1)[:, :n_in].astype(np.float32) - offset
    else:
        values = np.asarray(load(name), dtype=np.float32)
    scale = np.asarray(load(q.tensors[0]), dtype=np.float32)
    scale = scale.reshape(n_out, -1) if scale.size > 1 else scale.reshape(1, 1)
    G = scale.shape[1]
    zero = np.zeros((1, 1), np.float32)
    if p["zp_packed"]:  # packed along the output dimension, offset like the codes
        zero = unpack(load(q.tensors[1]), bits, axis=0)[:n_out].astype(np.float32) - offset
    elif q.tensors[1]:
        zero = np.asarray(load(q.tensors[1]), dtype=np.float32).reshape(scale.shape)
    if G > 1:
        g = _g_index(load(q.tensors[2]) if q.tensors[2] else None, n_in, gs, G, q.tensors[2])
        scale, zero = scale[:, g], (zero[:, g] if zero.shape[1] > 1 else zero)
    return as_stored((values - zero) * scale, p["dtype"])

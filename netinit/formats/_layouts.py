"""Weights stored ``(in, out)`` inside PyTorch-layout files: HF GPT-2 ``Conv1D`` and forced layouts.

HF ``transformers`` GPT-2 (and GPT-Neo-era code derived from it) keeps its attention and MLP
projections in a ``Conv1D`` module whose weight is stored ``(in, out)``, the transpose of a
``Linear`` weight, under names ending in ``c_attn.weight``, ``c_proj.weight`` and ``c_fc.weight``.
nanoGPT uses the same names with ``Linear`` layers, stored ``(out, in)``. The two are told apart by
the bias: a ``Conv1D`` (or ``Linear``) bias has the length of the output dimension, which is
``shape[1]`` for a ``Conv1D`` weight and ``shape[0]`` for a ``Linear`` one. A square weight
(GPT-2's ``attn.c_proj``, ``768 x 768``) or one without a bias follows the verdict of the
checkpoint's other weights of those names; when they disagree or none decides, the file is read
as stored and a ``layout`` mapping must say which.

:class:`AxisLayout` is the general stored -> PyTorch mapping (a transpose, optional flips, a
reshape) that the Keras and Flax readers use for their ``(in, out)`` / ``(kh, kw, in, out)`` kernels.

The safetensors, sharded and PyTorch readers call :func:`stored_in_out` once per file and show
the weights it returns transposed to the canonical ``(out, in)``; their writers transpose a
replacement back with :func:`to_stored`. This module is the only place that decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from netinit.errors import FormatError, ShapeError
from netinit.formats.base import TensorInfo

__all__ = ["CONV1D_NAME", "LAYOUTS", "AxisLayout", "stored_in_out", "canonical_info", "to_canonical", "to_stored"]

#: names of HF GPT-2 ``Conv1D`` weights (stored ``(in, out)``)
CONV1D_NAME = re.compile(r"(^|\.)(c_attn|c_proj|c_fc)\.weight$")
#: the values a ``layout`` mapping may give
LAYOUTS = ("in_out", "out_in")


@dataclass(frozen=True)
class AxisLayout:
    """Stored -> PyTorch layout: transpose by ``perm``, flip ``flip`` axes, reshape to ``shape``."""

    perm: tuple[int, ...]
    shape: tuple[int, ...]
    flip: tuple[int, ...] = ()

    def to_canonical(self, a: np.ndarray) -> np.ndarray:
        b = a.transpose(self.perm)
        if self.flip:
            b = np.flip(b, self.flip)
        return np.ascontiguousarray(b).reshape(self.shape)

    def to_stored(self, c: np.ndarray, stored: tuple[int, ...]) -> np.ndarray:
        b = c.reshape(tuple(stored[i] for i in self.perm))
        if self.flip:
            b = np.flip(b, self.flip)
        return np.ascontiguousarray(b.transpose(np.argsort(self.perm)))


def _compile(layout: Mapping[str, str], where: str) -> list[tuple[re.Pattern, str, str]]:
    rules = []
    for pattern, value in layout.items():
        if value not in LAYOUTS:
            raise FormatError(f"{where}: layout {value!r} for {pattern!r} is not one of {', '.join(LAYOUTS)}")
        try:
            rules.append((re.compile(pattern), pattern, value))
        except re.error as exc:
            raise FormatError(f"{where}: invalid layout regex {pattern!r} ({exc})") from None
    return rules


def _bias_verdict(name: str, shape: tuple[int, ...], shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    bias = shapes.get(name[: -len("weight")] + "bias")
    if bias is None or len(bias) != 1 or shape[0] == shape[1]:
        return None
    if bias[0] == shape[1]:
        return "in_out"
    if bias[0] == shape[0]:
        return "out_in"
    return None


def stored_in_out(
    shapes: Mapping[str, tuple[int, ...]],
    layout: Mapping[str, str] | None = None,
    *,
    where: str = "",
) -> dict[str, str]:
    """The 2-D tensors stored ``(in, out)``, which readers show transposed.

    Parameters
    ----------
    shapes : mapping
        Stored shape of every tensor of the checkpoint, by name (biases included: they decide).
    layout : mapping, optional
        ``{regex: "in_out" | "out_in"}``: forces the orientation of the 2-D tensors whose name
        matches (``re.search``, first matching pattern wins; tensors of other ranks are left
        alone); other tensors are decided as described in the module docstring.
    where : str
        The file, for error messages.

    Returns
    -------
    dict
        name -> why it is taken as ``(in, out)`` (``"in_out (GPT-2 Conv1D)"``,
        ``"in_out (layout 'regex')"``), for :attr:`Checkpoint.converted`.

    Raises
    ------
    FormatError
        An invalid ``layout`` (unknown value, bad regex, a pattern that matches no 2-D tensor),
        or GPT-2 style weights whose orientation the biases contradict.
    """
    rules = _compile(layout or {}, where)
    out: dict[str, str] = {}
    forced: set[str] = set()
    used: set[str] = set()
    for name, shape in shapes.items():
        if len(shape) != 2:
            continue
        for rx, pattern, value in rules:
            if rx.search(name):
                forced.add(name)
                used.add(pattern)
                if value == "in_out":
                    out[name] = f"in_out (layout {pattern!r})"
                break
    unused = [pattern for _, pattern, _ in rules if pattern not in used]
    if unused:
        raise FormatError(f"{where}: the layout pattern {unused[0]!r} matches no 2-D tensor "
                          f"(layouts apply to 2-D weights only)")
    candidates = [n for n, s in shapes.items() if n not in forced and len(s) == 2 and CONV1D_NAME.search(n)]
    verdicts = {n: _bias_verdict(n, tuple(shapes[n]), shapes) for n in candidates}
    decided = set(v for v in verdicts.values() if v is not None)
    if len(decided) > 1:
        a = next(n for n, v in verdicts.items() if v == "in_out")
        b = next(n for n, v in verdicts.items() if v == "out_in")
        raise FormatError(
            f"{where}: GPT-2 style weights disagree on their orientation ({a!r} is stored (in, out), "
            f"{b!r} (out, in), judging by their biases); say which with layout= "
            f"(--layout REGEX=in_out|out_in)"
        )
    if decided == {"in_out"}:
        for n in candidates:
            out[n] = "in_out (GPT-2 Conv1D)"
    return out


def canonical_info(info: TensorInfo) -> TensorInfo:
    """``info`` of a tensor stored ``(in, out)``, with the shape shown ``(out, in)``."""
    return TensorInfo(info.name, (info.shape[1], info.shape[0]), info.dtype)


def to_canonical(stored: np.ndarray) -> np.ndarray:
    """The ``(out, in)`` matrix of a weight stored ``(in, out)`` (a contiguous copy)."""
    return np.ascontiguousarray(stored.T)


def to_stored(value: np.ndarray, stored_shape: tuple[int, ...], where: str) -> np.ndarray:
    """A canonical ``(out, in)`` replacement in the stored ``(in, out)`` orientation.

    Raises
    ------
    ShapeError
        ``value`` is not ``(out, in)`` for the stored ``(in, out)`` shape.
    """
    value = np.asarray(value)
    want = (stored_shape[1], stored_shape[0])
    if tuple(value.shape) != want:
        raise ShapeError(f"{where}: replacement has shape {tuple(value.shape)}, expected {want} "
                         f"(stored transposed as {tuple(stored_shape)})")
    return np.ascontiguousarray(value.T)

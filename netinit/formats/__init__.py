"""Checkpoint formats: a registry that recognises a file by its bytes, then by its suffix.

>>> from netinit.formats import available_formats
>>> {"npz", "onnx", "safetensors", "sharded", "torch", "torchscript"} <= {f.name for f in available_formats()}
True

:func:`load_checkpoint` sniffs the first bytes of a file, so a file with the wrong suffix still
reads; when no format recognises the content, the suffix picks the reader, whose error then says
what is wrong (truncated, corrupt). :func:`save_checkpoint` writes a copy with some tensors
replaced, in the format the checkpoint was read from, atomically and never over its input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from netinit._io import check_not_input
from netinit.errors import CorruptFileError, FormatError, NetinitError, UnknownFormatError
from netinit.formats.base import FLOAT_DTYPES, Checkpoint, Format, TensorInfo, corrupt
from netinit.formats.limits import Limits, current_limits, limits

__all__ = [
    "Checkpoint",
    "Format",
    "TensorInfo",
    "FLOAT_DTYPES",
    "register_format",
    "available_formats",
    "get_format",
    "detect_format",
    "load_checkpoint",
    "save_checkpoint",
    "Limits",
    "current_limits",
    "limits",
]

_REGISTRY: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    """Add ``fmt`` to the registry (replacing a format of the same name)."""
    if not fmt.name or not fmt.suffixes:
        raise ValueError("a format needs a name and at least one suffix")
    _REGISTRY[fmt.name] = fmt
    return fmt


#: built-in format modules, in sniffing order (more specific first); each defines ``FORMAT``
#: and keeps heavy imports (onnx, h5py, msgpack, ...) inside its functions.
_BUILTIN = ("safetensors", "folder", "sharded", "torchscript", "torch", "npz", "keras", "onnx", "flax", "gguf")


def _register_builtin() -> None:
    import importlib
    import importlib.util

    for mod in _BUILTIN:
        full = f"netinit.formats.{mod}"
        if importlib.util.find_spec(full) is None:
            continue
        register_format(importlib.import_module(full).FORMAT)


_register_builtin()


def available_formats() -> list[Format]:
    """The registered formats."""
    return list(_REGISTRY.values())


def get_format(name: str) -> Format:
    """The registered format called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownFormatError(f"unknown format {name!r}; valid: {', '.join(sorted(_REGISTRY))}") from None


def _suffixes_text() -> str:
    return ", ".join(s for f in _REGISTRY.values() for s in f.suffixes)


def detect_format(path: os.PathLike | str) -> Format:
    """The format of the file at ``path``: by content first, then by suffix.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    UnknownFormatError
        Neither content nor suffix matches a registered format.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        for fmt in _REGISTRY.values():
            if fmt.sniff_dir(p):
                return fmt
        raise UnknownFormatError(f"{p}: is a folder, not a checkpoint file (nor a folder of checkpoint shards)")
    with open(p, "rb") as f:
        head = f.read(64)
    if not head:
        raise CorruptFileError(f"{p}: the file is empty")
    for fmt in _REGISTRY.values():
        if fmt.sniff(head, p):
            return fmt
    suffix = p.suffix.lower()
    for fmt in _REGISTRY.values():
        if suffix in fmt.suffixes:
            return fmt
    raise UnknownFormatError(
        f"{p}: unknown checkpoint format (suffix {suffix or 'none'!r}, content not recognised); "
        f"supported: {_suffixes_text()}"
    )


def load_checkpoint(
    path: os.PathLike | str,
    *,
    format: str | None = None,
    key: str | None = None,
    layout: Mapping[str, str] | None = None,
) -> Checkpoint:
    """Open a checkpoint lazily.

    Parameters
    ----------
    path : path-like
        A checkpoint file (PyTorch ``.pt/.pth/.bin/.ckpt``, safetensors, ``.npz``, ONNX,
        TorchScript), or the index of a sharded checkpoint (``*.safetensors.index.json``,
        ``*.bin.index.json``) or the folder that holds it.
    format : str, optional
        Force a format by registry name instead of detecting it.
    key : str, optional
        For PyTorch files holding several weight sets (``{"model": ..., "ema": ...}``): the key
        of the one to use.
    layout : dict, optional
        Stored orientation of 2-D weights, by regular expression on tensor names
        (``re.search``; the first matching pattern wins): ``"in_out"`` for weights stored
        ``(in, out)`` (HF GPT-2 ``Conv1D``), which are shown transposed to ``(out, in)`` and
        written back as stored; ``"out_in"`` for weights already in PyTorch layout. Without it,
        GPT-2 ``Conv1D`` weights (``c_attn``, ``c_proj``, ``c_fc``) are recognised by their
        bias (:mod:`netinit.formats._layouts`). For safetensors, sharded and PyTorch files.

    Returns
    -------
    Checkpoint
        Lists tensors without loading them; :meth:`Checkpoint.load` loads one.

    Raises
    ------
    UnknownFormatError, CorruptFileError, UnsafeCheckpointError
        The file is not a checkpoint netinit reads, is damaged, or holds pickled code.
    FormatError
        An option the format does not take, or a ``layout`` that does not apply.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "w.npz")
    >>> np.savez(p, fc=np.ones((2, 3), dtype=np.float32))
    >>> ckpt = load_checkpoint(p)
    >>> ckpt.format, ckpt.info("fc").shape
    ('npz', (2, 3))
    """
    p = Path(path)
    fmt = get_format(format) if format is not None else detect_format(p)
    options = {k: v for k, v in (("key", key), ("layout", layout)) if v is not None}
    for opt in options:
        if opt not in fmt.options:
            takes = [f.name for f in _REGISTRY.values() if opt in f.options]
            raise FormatError(f"{p}: {opt}= applies to {', '.join(takes)} checkpoints, not {fmt.name}")
    try:
        return fmt.open(p, **options)
    except NetinitError:
        raise
    except Exception as exc:  # any other failure on the file's bytes: one line that names the file
        raise corrupt(p, f"cannot read as {fmt.name}", exc) from None


def save_checkpoint(ckpt: Checkpoint, out: os.PathLike | str, replacements: Mapping[str, np.ndarray]) -> Path:
    """Write ``ckpt`` to ``out`` in its own format with ``replacements`` put in place.

    Each replacement has the shape :meth:`Checkpoint.info` reports (PyTorch layout); the format
    converts it to the stored layout and dtype. Every other tensor and the metadata are kept.
    Each file is written atomically (temporary file, then rename) and never over an input file.
    For a sharded checkpoint ``out`` is the new index file (``*.safetensors.index.json``,
    ``*.bin.index.json``) or a folder; the new shards are written beside the index
    (:mod:`netinit.formats.sharded`).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    OutputError
        ``out`` is the input file or its folder does not exist.
    LayerError
        A replacement names a tensor the checkpoint does not hold.
    """
    out_p = Path(out)
    check_not_input(out_p, ckpt.path)
    unknown = sorted(set(replacements) - set(ckpt.names()))
    if unknown:
        from netinit.errors import LayerError

        raise LayerError(f"{ckpt.path}: no tensor named {unknown[0]!r} to replace")
    fmt = get_format(ckpt.format)
    try:
        fmt.save(ckpt, replacements, out_p)
    except (NetinitError, OSError):  # OSError: the output side (netinit._io names the output path)
        raise
    except Exception as exc:  # a damaged input found only while copying it (a bad CRC, ...)
        raise corrupt(ckpt.path, f"cannot rewrite as {fmt.name}", exc) from None
    return out_p

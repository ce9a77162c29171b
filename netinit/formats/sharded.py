"""Sharded checkpoints: an index JSON naming the shard that holds each tensor.

Large checkpoints ship as several shards beside an index, as Hugging Face ``transformers`` writes
them: safetensors shards with ``model.safetensors.index.json``, or PyTorch shards
(``torch.save`` state dicts) with ``pytorch_model.bin.index.json``::

    {"metadata": {"total_size": 497759232},
     "weight_map": {"h.0.attn.c_attn.weight": "model-00001-of-00002.safetensors", ...}}

:func:`~netinit.formats.load_checkpoint` takes the index file or the folder that holds it (which
must hold exactly one index, ``*.safetensors.index.json`` or ``*.bin.index.json``). The shards'
suffix says their kind: all ``.safetensors``, or all PyTorch (``.bin``, ``.pt``, ``.pth``,
``.ckpt``). Tensor names come from the index alone; a shard is opened the first time one of its
tensors is asked about:

- a safetensors shard is a :class:`~netinit.formats.safetensors.SafetensorsCheckpoint`: its header
  is read when it is opened and a tensor's bytes only when it is loaded, so reading every tensor
  keeps memory near the largest one;
- a PyTorch shard is a :class:`~netinit.formats.torch.TorchCheckpoint`, read with
  ``torch.load(weights_only=True)`` (memory-mapped; no stored code ever runs) and taking each
  tensor under its stored name (no prefix removed). One PyTorch shard is open at a time (opening
  another closes it), so memory stays near one shard.

Tensors a shard holds that the index does not name are not shown (as in ``transformers``), but
are kept by the writer.

Writing
-------
``out`` is either the path of the new index (a name ending in ``.json``) or a folder:

- an index path ``DIR/NAME.safetensors.index.json`` for safetensors shards,
  ``DIR/NAME.bin.index.json`` for PyTorch shards: the shards are written beside it as
  ``NAME-00001-of-0000N.safetensors`` (``.bin``; ``NAME`` is the index name less that suffix),
  one new shard per input shard, numbered in the order of the input shards' names. Any other
  ``.json`` name (``foo.json``; a ``.safetensors.index.json`` name for PyTorch shards, or the
  reverse) is refused with :class:`~netinit.errors.OutputError` before anything is written, as
  :func:`find_index` would not find it in its folder (:func:`check_index_name`);
- a folder (created if missing; its parent must exist): the shards and the index keep their
  input names inside it.

Each new shard is written atomically by its own format's writer: a safetensors shard is a byte
copy of its input shard with the replaced tensors' bytes overwritten
(:func:`~netinit.formats.safetensors.write_copy`); a PyTorch shard is its input object with the
replaced tensors put in place, in their stored dtype and shape, and everything else kept
(:meth:`~netinit.formats.torch.TorchFormat.write`). The index, with its ``metadata`` and every
other key kept and the ``weight_map`` naming the new shards, is written last. No output file may
be one of the input files. On an error the shards already written are removed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from netinit.errors import CorruptFileError, DtypeError, FormatError, OutputError
from netinit.formats import _layouts
from netinit.formats.base import Checkpoint, Format, TensorInfo, replacement
from netinit.formats.safetensors import SafetensorsCheckpoint, write_copy
from netinit.formats.torch import FORMAT as _TORCH
from netinit.formats.torch import TorchCheckpoint

__all__ = ["ShardedFormat", "ShardedCheckpoint", "ShardKind", "SHARD_KINDS", "INDEX_SUFFIX",
           "TORCH_INDEX_SUFFIX", "find_index", "check_index_name", "is_index_path"]

INDEX_SUFFIX = ".safetensors.index.json"
TORCH_INDEX_SUFFIX = ".bin.index.json"
_MAX_INDEX = 256 * 1024 * 1024


@dataclass(frozen=True)
class ShardKind:
    """How the shards of one kind are recognised, opened and written."""

    name: str
    #: what the checkpoint is, for messages
    title: str
    #: the suffix of its index file
    index_suffix: str
    #: shard suffixes read; the first names new shards
    suffixes: tuple[str, ...]
    #: how many shards are kept open at once (``None``: every shard opened so far)
    max_open: int | None
    #: ``open(path, in_out)``: the shard, with the tensors stored ``(in, out)`` already decided
    open: Callable[[Path, Mapping[str, str]], Checkpoint]
    #: ``write(shard, replacements, out)``: the shard with its replacements, to ``out``
    write: Callable[[Checkpoint, Mapping[str, np.ndarray], Path], None]


SHARD_KINDS = (
    ShardKind("safetensors", "sharded safetensors", INDEX_SUFFIX, (".safetensors",), None,
              lambda path, in_out: SafetensorsCheckpoint(path, in_out=in_out), write_copy),
    ShardKind("torch", "sharded PyTorch", TORCH_INDEX_SUFFIX, (".bin", ".pt", ".pth", ".ckpt"), 1,
              lambda path, in_out: TorchCheckpoint(path, in_out=in_out, names_as_stored=True), _TORCH.write),
)


def find_index(folder: Path) -> Path:
    """The one shard index (``*.safetensors.index.json`` or ``*.bin.index.json``) in ``folder``.

    Raises
    ------
    FormatError
        The folder holds none, or several.
    """
    by_kind = {k.title: sorted(folder.glob("*" + k.index_suffix)) for k in SHARD_KINDS}
    found = [p for paths in by_kind.values() for p in paths]
    if not found:
        raise FormatError(f"{folder}: no shard index in the folder "
                          f"({' or '.join('*' + k.index_suffix for k in SHARD_KINDS)})")
    kinds = {title: paths for title, paths in by_kind.items() if paths}
    if len(kinds) > 1:
        both = " and ".join(f"a {title} index ({', '.join(p.name for p in paths)})" for title, paths in kinds.items())
        raise FormatError(f"{folder}: holds {both}; pass the index file of the one to read")
    if len(found) > 1:
        raise FormatError(f"{folder}: holds several shard indexes ({', '.join(p.name for p in found)}); "
                          f"pass the index file itself")
    return found[0]


def _shard_kind(index_path: Path, shards: list[str]) -> ShardKind:
    """The kind of the shards named by an index, from their suffixes."""
    def kind_of(shard: str) -> ShardKind:
        for kind in SHARD_KINDS:
            if shard.lower().endswith(kind.suffixes):
                return kind
        known = ", ".join(s for k in SHARD_KINDS for s in k.suffixes)
        raise FormatError(f"{index_path}: shard {shard!r} is neither a safetensors nor a PyTorch file "
                          f"(netinit reads shards ending in {known})")

    kinds = {shard: kind_of(shard) for shard in shards}
    if len({k.name for k in kinds.values()}) > 1:
        a = next(s for s, k in kinds.items() if k.name == "safetensors")
        b = next(s for s, k in kinds.items() if k.name != "safetensors")
        raise FormatError(f"{index_path}: mixes safetensors and PyTorch shards ({a!r}, {b!r})")
    if kinds:
        return next(iter(kinds.values()))
    return next((k for k in SHARD_KINDS if index_path.name.endswith(k.index_suffix)), SHARD_KINDS[0])


def _read_index(path: Path) -> dict:
    if path.stat().st_size > _MAX_INDEX:
        raise CorruptFileError(f"{path}: shard index of {path.stat().st_size} bytes, too large to be one")
    try:
        index = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{path}: malformed shard index JSON ({exc})") from None
    if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        raise CorruptFileError(f"{path}: malformed shard index (no \"weight_map\" object of tensor -> shard file)")
    for name, shard in index["weight_map"].items():
        if not isinstance(shard, str) or not shard:
            raise CorruptFileError(f"{path}: malformed shard index (tensor {name!r} maps to {shard!r})")
        if Path(shard).is_absolute() or ".." in Path(shard).parts:
            raise CorruptFileError(f"{path}: shard {shard!r} of tensor {name!r} is outside the index's folder")
    if not isinstance(index.get("metadata", {}), dict):
        raise CorruptFileError(f"{path}: malformed shard index (\"metadata\" is not an object)")
    return index


class ShardedCheckpoint(Checkpoint):
    """Lazy view of a sharded checkpoint (``path`` is its index file; :attr:`kind` its shards' kind)."""

    def __init__(self, path: Path, *, layout: Mapping[str, str] | None = None) -> None:
        index_path = find_index(path) if path.is_dir() else path
        index = _read_index(index_path)
        meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in index.get("metadata", {}).items()}
        super().__init__(path=index_path, format="sharded", metadata=meta)  # converted: {} so far
        self.index = index
        self._shard_of: dict[str, str] = dict(index["weight_map"])
        self.shards: list[str] = sorted(set(self._shard_of.values()))
        self.kind = _shard_kind(index_path, self.shards)
        for shard in self.shards:
            if not (index_path.parent / shard).is_file():
                raise CorruptFileError(f"{index_path}: shard {shard!r} named by the index is missing")
        self._held: dict[str, list[str]] = {}  # shard -> the tensors the index puts in it
        for name, shard in self._shard_of.items():
            self._held.setdefault(shard, []).append(name)
        self._stored: dict[str, TensorInfo] = {}  # stored shape and dtype, recorded when a shard opens
        self._open: dict[str, Checkpoint] = {}
        self.converted = self._decide_layouts(layout)
        for shard, ckpt in self._open.items():
            ckpt.converted = self._converted_in(shard)

    def _decide_layouts(self, layout: Mapping[str, str] | None) -> dict[str, str]:
        """Which tensors are stored ``(in, out)``, opening only the shards concerned."""
        rules = [re.compile(p) for p in (layout or {}) if _valid_regex(p)]
        relevant = {n for n in self._shard_of
                    if _layouts.CONV1D_NAME.search(n) or any(r.search(n) for r in rules)}
        relevant |= {n[: -len("weight")] + "bias" for n in relevant if n.endswith("weight")} & set(self._shard_of)
        shapes = {n: self.stored_info(n).shape for n in self._shard_of if n in relevant}
        return _layouts.stored_in_out(shapes, layout, where=str(self.path))

    def _converted_in(self, shard: str) -> dict[str, str]:
        return {n: r for n, r in self.converted.items() if self._shard_of[n] == shard}

    def _shard(self, shard: str) -> Checkpoint:
        if shard not in self._open:
            if self.kind.max_open is not None:
                while len(self._open) >= self.kind.max_open:  # close the oldest
                    del self._open[next(iter(self._open))]
            ckpt = self.kind.open(self.path.parent / shard, self._converted_in(shard))
            held = ckpt._name_set()
            self._stored.update({n: ckpt.stored_info(n) for n in self._held.get(shard, ()) if n in held})
            self._open[shard] = ckpt
        return self._open[shard]

    def shard_of(self, name: str) -> Checkpoint:
        """The shard holding tensor ``name`` (opened on first use)."""
        ckpt = self._shard(self._shard_of[name])
        if name not in ckpt._name_set():
            raise CorruptFileError(f"{self.path}: the index puts {name!r} in shard "
                                   f"{self._shard_of[name]!r}, which does not hold it")
        return ckpt

    def names(self) -> list[str]:
        return list(self._shard_of)

    def stored_info(self, name: str) -> TensorInfo:
        """Shape and dtype of tensor ``name`` as stored in its shard."""
        if name not in self._stored:
            self.shard_of(name)  # opening the shard records the stored info of its tensors
        return self._stored[name]

    def info(self, name: str) -> TensorInfo:
        info = self.stored_info(name)
        return _layouts.canonical_info(info) if name in self.converted else info

    def _load(self, name: str) -> np.ndarray:
        return self.shard_of(name).load(name)

    def close(self) -> None:
        self._open.clear()


def _valid_regex(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False  # reported by _layouts.stored_in_out with the file's name
    return True


def is_index_path(out: Path) -> bool:
    """Whether the output ``out`` names a new index file (a ``.json`` name) rather than a folder."""
    return out.suffix.lower() == ".json"


def check_index_name(out: Path, kind: ShardKind) -> None:
    """Refuse an index path ``out`` whose name does not end with ``kind``'s index suffix.

    Raises
    ------
    OutputError
        The name does not end with ``kind.index_suffix`` (``.safetensors.index.json`` or
        ``.bin.index.json``), or has nothing before it.
    """
    if out.name.endswith(kind.index_suffix) and len(out.name) > len(kind.index_suffix):
        return
    raise OutputError(
        f"{out}: the index of a {kind.title} checkpoint must be named NAME{kind.index_suffix} "
        f"(its shards are written beside it as NAME-00001-of-0000N{kind.suffixes[0]}, and a folder "
        f"is read back by that suffix); or give a folder"
    )


def _output_paths(ckpt: ShardedCheckpoint, out: Path) -> tuple[Path, dict[str, Path]]:
    """The new index path and the new path of each input shard."""
    if is_index_path(out):
        index, kind = out, ckpt.kind
        check_index_name(out, kind)
        if not out.parent.is_dir():
            raise OutputError(f"{out}: the folder {out.parent} does not exist")
        stem = out.name[: -len(kind.index_suffix)]
        n = len(ckpt.shards)
        return index, {s: out.parent / f"{stem}-{i + 1:05d}-of-{n:05d}{kind.suffixes[0]}"
                       for i, s in enumerate(ckpt.shards)}
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder (a sharded checkpoint is written as an "
                          f"index NAME{ckpt.kind.index_suffix} or a folder)")
    if not out.parent.is_dir():
        raise OutputError(f"{out}: the folder {out.parent} does not exist")
    return out / ckpt.path.name, {s: out / Path(s).name for s in ckpt.shards}


class ShardedFormat(Format):
    name = "sharded"
    description = "sharded safetensors or PyTorch .bin: *.safetensors.index.json, *.bin.index.json or its folder"
    suffixes = (".json",)
    options = ("layout",)

    def sniff(self, head: bytes, path: Path) -> bool:
        return head.lstrip()[:1] == b"{" and (path.name.endswith(".index.json") or b'"weight_map"' in head)

    def sniff_dir(self, path: Path) -> bool:
        return any(any(path.glob("*" + kind.index_suffix)) for kind in SHARD_KINDS)

    def open(self, path: Path, *, layout: Mapping[str, str] | None = None) -> ShardedCheckpoint:
        return ShardedCheckpoint(path, layout=layout)

    def write(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
        """Write to ``out`` (an index path or a folder), non-atomically: use :meth:`save`."""
        self.save(ckpt, replacements, out)

    def save(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> Path:
        from netinit._io import atomic_path, check_not_input

        assert isinstance(ckpt, ShardedCheckpoint)
        index_out, shard_out = _output_paths(ckpt, out)
        inputs = [ckpt.path] + [ckpt.path.parent / s for s in ckpt.shards]
        for target in [index_out, *shard_out.values()]:
            check_not_input(target, *inputs)
        by_shard: dict[str, dict[str, Any]] = {}
        for name, value in replacements.items():  # every check before a byte is written
            info = ckpt.info(name)
            replacement(f"{ckpt.path}: tensor {name!r}", value, info.shape, stored=True)
            if info.dtype.startswith("float8"):
                raise DtypeError(f"{ckpt.path}: writing {info.dtype} tensors is not supported")
            by_shard.setdefault(ckpt._shard_of[name], {})[name] = value
        if not is_index_path(out):
            out.mkdir(exist_ok=True)
        written: list[Path] = []
        try:
            for shard in ckpt.shards:
                with atomic_path(shard_out[shard]) as tmp:
                    ckpt.kind.write(ckpt._shard(shard), by_shard.get(shard, {}), tmp)
                written.append(shard_out[shard])
            index = dict(ckpt.index)
            index["weight_map"] = {n: shard_out[s].name for n, s in ckpt._shard_of.items()}
            with atomic_path(index_out) as tmp:
                tmp.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        except BaseException:
            for w in written:
                w.unlink(missing_ok=True)
            raise
        return index_out


FORMAT = ShardedFormat()

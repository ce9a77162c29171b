"""PyTorch checkpoints (``.pt``, ``.pth``, ``.bin``, ``.ckpt``): state dicts, loaded as data only.

Files are read with ``torch.load(weights_only=True)``, memory-mapped where the file allows, so no
code stored in a checkpoint ever runs: a pickled whole model or any object that needs a class is
refused with :class:`~netinit.errors.UnsafeCheckpointError`. A file is read as PyTorch whatever its
name: ``torch.load`` itself would hand a path ending in ``.safetensors`` to the safetensors reader,
so such a file is given to it as an open file object (read whole, not memory-mapped). The writer
always writes a ``torch.save`` file, whatever the name of ``out``.

Where the weights are
---------------------
Besides a flat state dict, checkpoints in the wild wrap the weights: PyTorch Lightning keeps them
under ``"state_dict"``, training scripts under ``"model"``, ``"module"``, ``"model_state_dict"``,
... beside optimizer states. The weights are taken from the one such container found (optimizer
and scheduler states are never taken for layers); with several candidates the caller chooses
with ``key=``. Nested dicts are flattened with ``.``; the prefixes ``module.`` (DataParallel/DDP)
and ``_orig_mod.`` (``torch.compile``) are removed when every name carries them. The writer puts
tensors back where they were found, so the rest of the file (epochs, hyper-parameters, optimizer
states) is saved unchanged.

HF GPT-2 ``Conv1D`` weights (``pytorch_model.bin``), stored ``(in, out)``, are shown transposed to
``(out, in)`` and written back as stored (:mod:`netinit.formats._layouts`; ``layout=`` forces it).
TorchScript archives (``torch.jit.save``) are read by :mod:`netinit.formats.torchscript`; sharded
checkpoints (``pytorch_model.bin.index.json`` beside ``.bin`` shards) by :mod:`netinit.formats.sharded`,
one shard at a time through this reader.
"""

from __future__ import annotations

import copy
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from netinit.errors import CorruptFileError, FormatError, UnsafeCheckpointError
from netinit.formats import _layouts
from netinit.formats.base import ZIP_ERRORS, Checkpoint, Format, TensorInfo, check_inflation, numpy_dtype_name, replacement, zip_entries
from netinit.formats.torchscript import is_torchscript_archive

__all__ = ["TorchFormat", "TorchCheckpoint", "CONTAINER_KEYS"]

#: keys under which training code commonly stores the weights, in order of preference
CONTAINER_KEYS = (
    "state_dict", "model_state_dict", "model_state", "model", "module", "net", "network",
    "weights", "params", "ema", "ema_state_dict", "model_ema",
)
_IGNORED = re.compile(r"(optim|scheduler|scaler|callbacks|loops|lr_)", re.I)
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
_PREFIXES = ("module.", "_orig_mod.")
#: names that ``torch.load`` dispatches to another reader by suffix alone (see :func:`_misleads_torch`)
_TORCH_DISPATCH_SUFFIXES = (".safetensors",)


def _torch():
    import torch

    return torch


def _count_tensors(obj: Any, depth: int = 0) -> int:
    torch = _torch()
    if isinstance(obj, torch.Tensor):
        return 1
    if depth > 8:
        return 0
    if isinstance(obj, Mapping):
        return sum(_count_tensors(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_count_tensors(v, depth + 1) for v in obj)
    return 0


def _flatten(obj: Any, prefix: tuple, out: dict[tuple, Any], depth: int = 0, *, ignore: bool = True) -> None:
    torch = _torch()
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif depth > 8:
        return
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            if ignore and depth == 0 and not prefix and isinstance(k, str) and _IGNORED.search(k):
                continue
            _flatten(v, prefix + (k,), out, depth + 1, ignore=ignore)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _flatten(v, prefix + (i,), out, depth + 1, ignore=ignore)


def _find_container(obj: Any, path: Path, key: str | None) -> tuple[Any, str | None]:
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            have = list(obj.keys())[:10] if isinstance(obj, Mapping) else type(obj).__name__
            raise FormatError(f"{path}: no key {key!r} in the checkpoint (top-level keys: {have})")
        return obj[key], key
    if not isinstance(obj, Mapping):
        return obj, None
    torch = _torch()
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, None
    candidates = [
        k for k in obj
        if isinstance(k, str) and k in CONTAINER_KEYS and isinstance(obj[k], Mapping)
        and _count_tensors(obj[k]) > 0
    ]
    if len(candidates) > 1:
        raise FormatError(
            f"{path}: holds several weight sets ({', '.join(candidates)}); choose one with key= "
            f"(--key on the command line)"
        )
    if candidates:
        return obj[candidates[0]], candidates[0]
    return obj, None


def _strip_prefixes(names: list[str]) -> tuple[list[str], str]:
    stripped = ""
    changed = True
    while changed and names:
        changed = False
        for p in _PREFIXES:
            if all(n.startswith(p) for n in names):
                names = [n[len(p):] for n in names]
                stripped += p
                changed = True
    return names, stripped


def _first_line(msg: str) -> str:
    lines = msg.strip().splitlines()
    return lines[0][:160] if lines else "no detail"


def _translate_error(exc: BaseException, path: Path) -> FormatError:
    msg = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in msg:
        found = re.search(r"(Unsupported global: GLOBAL [\w.]+|Unsupported operand \d+|"
                          r"[Uu]nsupported class [\w.]+)", msg)
        detail = found.group(1) if found else _first_line(msg)
        return UnsafeCheckpointError(
            f"{path}: the checkpoint holds pickled Python objects that need code to load "
            f"({detail}); netinit loads tensors only. Save the weights with "
            f"torch.save(model.state_dict(), PATH) and analyse that file"
        )
    if isinstance(exc, EOFError) or "central directory" in msg or "failed reading" in msg.lower():
        return CorruptFileError(f"{path}: truncated or corrupt PyTorch checkpoint ({_first_line(msg)})")
    return CorruptFileError(f"{path}: cannot read PyTorch checkpoint ({type(exc).__name__}: {_first_line(msg)})")


def _looks_like_safetensors(head: bytes, path: Path) -> bool:
    """Whether a file starts like safetensors: an 8-byte little-endian header length, then ``{``."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= path.stat().st_size - 8


def _misleads_torch(path: Path) -> bool:
    """Whether ``torch.load(path)`` would take the file for another format by its name.

    ``torch.load`` hands a path whose name ends in ``.safetensors`` to ``safetensors.torch.load_file``
    without looking at its bytes (``torch/serialization.py``: ``fspath.endswith(".safetensors")``).
    """
    return any(str(path).endswith(s) for s in _TORCH_DISPATCH_SUFFIXES)


def _torch_load(path: Path, *, mappable: bool = True) -> Any:
    """``torch.load(weights_only=True)`` of the PyTorch file at ``path``, whatever its name.

    Memory-mapped when the file allows it (zip serialization with every member stored, a name
    torch does not dispatch on); a legacy (pre-1.6) file is read whole. A zip whose members are
    compressed (``mappable=False``) is read whole too, through decompression: ``torch.load(mmap=True)``
    would map a deflated record's compressed bytes as the tensor and return them as weights. A
    file whose name would make ``torch.load`` read it as another format (:func:`_misleads_torch`)
    is passed as an open file object, which ``torch.load`` cannot memory-map, so it is read whole
    as well.
    """
    torch = _torch()
    if _misleads_torch(path) or not mappable:
        with open(path, "rb") as f:
            return torch.load(f, map_location="cpu", weights_only=True)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


class TorchCheckpoint(Checkpoint):
    """A PyTorch checkpoint loaded with ``weights_only=True`` (memory-mapped when possible).

    Parameters
    ----------
    path : Path
        The file.
    key : str, optional
        The container holding the weights, when the file holds several.
    layout : mapping, optional
        ``{regex: "in_out" | "out_in"}`` (:func:`netinit.formats._layouts.stored_in_out`).
    in_out : mapping, optional
        The tensors stored ``(in, out)`` (name -> reason), already decided by the caller (a
        sharded checkpoint decides over all its shards); ``layout`` is then ignored.
    names_as_stored : bool
        Take every tensor under the name it is stored under: no ``module.`` / ``_orig_mod.``
        prefix removed and no top-level key ignored (the shard of a sharded checkpoint, whose
        index names its tensors).
    """

    def __init__(self, path: Path, *, key: str | None = None, layout: Mapping[str, str] | None = None,
                 in_out: Mapping[str, str] | None = None, names_as_stored: bool = False) -> None:
        torch = _torch()
        with open(path, "rb") as f:
            head = f.read(9)
        try:
            is_zip = zipfile.is_zipfile(path)
        except ZIP_ERRORS:  # a damaged end-of-directory record (is_zipfile lets some through)
            is_zip = False
        if is_zip:
            try:
                with zipfile.ZipFile(path) as z:
                    entries = z.namelist()
                    members = z.infolist()
            except ZIP_ERRORS as exc:
                raise CorruptFileError(f"{path}: truncated or corrupt PyTorch checkpoint (a zip archive that "
                                       f"cannot be read: {type(exc).__name__}: {_first_line(str(exc))})") from None
            for info in members:
                check_inflation(info, path)
            mappable = all(i.compress_type == zipfile.ZIP_STORED for i in members)
        if not is_zip and head.startswith(b"PK"):
            raise CorruptFileError(f"{path}: truncated or corrupt PyTorch checkpoint (a zip archive whose "
                                   f"directory cannot be read)")
        if not is_zip and _looks_like_safetensors(head, path):  # its header length may begin with 0x80
            raise CorruptFileError(f"{path}: not a PyTorch checkpoint (its bytes are a safetensors file)")
        if not is_zip and not head.startswith(b"\x80"):
            raise CorruptFileError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
        if is_zip and is_torchscript_archive(entries):
            raise UnsafeCheckpointError(
                f"{path}: is a TorchScript archive (torch.jit.save), which torch.load cannot read "
                f"without running its code; read it as format 'torchscript' (detected "
                f"automatically when no format is forced)"
            )
        try:
            obj = _torch_load(path, mappable=not is_zip or mappable)
        except Exception as exc:  # every torch.load failure becomes one clear FormatError
            raise _translate_error(exc, path) from None
        weights, container = _find_container(obj, path, key)
        flat: dict[tuple, Any] = {}
        if isinstance(weights, torch.Tensor):
            flat[("tensor",)] = weights
        else:
            _flatten(weights, (), flat, ignore=not names_as_stored)
        raw_names = [".".join(str(p) for p in k) for k in flat]
        names, stripped = (raw_names, "") if names_as_stored else _strip_prefixes(raw_names)
        meta = {"prefix_removed": stripped} if stripped else {}
        super().__init__(path=path, format="torch", metadata=meta, container=container)
        self._root = obj
        self._container_key = container
        self._paths = dict(zip(names, flat.keys()))
        self._tensors = dict(zip(names, flat.values()))
        if in_out is None:
            in_out = _layouts.stored_in_out(
                {n: tuple(t.shape) for n, t in self._tensors.items()}, layout, where=str(path))
        self.converted = dict(in_out)

    def names(self) -> list[str]:
        return list(self._tensors)

    def stored_info(self, name: str) -> TensorInfo:
        """Shape and dtype of tensor ``name`` as stored in the file."""
        t = self._tensors[name]
        return TensorInfo(name, tuple(int(d) for d in t.shape), numpy_dtype_name(t.dtype))

    def info(self, name: str) -> TensorInfo:
        info = self.stored_info(name)
        return _layouts.canonical_info(info) if name in self.converted else info

    def tensor(self, name: str):
        """The stored ``torch.Tensor`` itself, in the stored layout (read-only use)."""
        return self._tensors[name]

    def _load(self, name: str) -> np.ndarray:
        torch = _torch()
        t = self._tensors[name].detach()
        if t.dtype == torch.bfloat16:
            t = t.to(torch.float32)
        try:
            arr = t.cpu().numpy().copy()
        except (TypeError, RuntimeError) as exc:
            from netinit.errors import DtypeError

            raise DtypeError(f"{self.path}: tensor {name!r} of dtype {t.dtype} has no numpy form ({exc})") from None
        return _layouts.to_canonical(arr) if name in self.converted else arr

    def replaced_object(self, replacements: Mapping[str, np.ndarray]) -> Any:
        """The loaded object with ``replacements`` put back where their tensors were found."""
        torch = _torch()
        root = copy.copy(self._root)
        for name, value in replacements.items():
            old = self._tensors[name]
            value = np.asarray(value)
            if name in self.converted:
                value = _layouts.to_stored(value, tuple(old.shape), f"{self.path}: tensor {name!r}")
            value = replacement(f"{self.path}: tensor {name!r}", value, tuple(old.shape), stored=True)
            new = torch.from_numpy(np.ascontiguousarray(value)).to(dtype=old.dtype, device=old.device)
            keys = ((self._container_key,) if self._container_key is not None else ()) + self._paths[name]
            parent = root
            for k in keys[:-1]:  # copy each container on the way down, never mutate the loaded one
                if isinstance(parent, tuple):
                    raise FormatError(f"{self.path}: cannot replace {name!r} inside a tuple")
                child = copy.copy(parent[k])
                parent[k] = child
                parent = child
            if isinstance(parent, tuple):
                raise FormatError(f"{self.path}: cannot replace {name!r} inside a tuple")
            parent[keys[-1]] = new
        return root


class TorchFormat(Format):
    name = "torch"
    description = "PyTorch state dict or training checkpoint, torch.load(weights_only=True)"
    suffixes = (".pt", ".pth", ".bin", ".ckpt")
    options = ("key", "layout")

    def sniff(self, head: bytes, path: Path) -> bool:
        if head.startswith(_LEGACY_MAGIC):
            return True
        names = zip_entries(head, path)
        if names is None:
            return False
        return any(n.endswith("data.pkl") for n in names) and not is_torchscript_archive(names)

    def open(self, path: Path, *, key: str | None = None,
             layout: Mapping[str, str] | None = None) -> TorchCheckpoint:
        return TorchCheckpoint(path, key=key, layout=layout)

    def write(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
        assert isinstance(ckpt, TorchCheckpoint)
        with ckpt.path.open("rb") as f:
            legacy = f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC
        # through a file object: torch.save names a zip archive's inner folder after a path's
        # file name (here a random temporary name), after nothing for a file object ("archive/"),
        # so the same input, replacements and seed give the same bytes
        obj = ckpt.replaced_object(replacements)
        with open(out, "wb") as f:
            _torch().save(obj, f, _use_new_zipfile_serialization=not legacy)


FORMAT = TorchFormat()

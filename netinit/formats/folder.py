"""Model folders: what ``transformers``' ``save_pretrained`` writes and the Hugging Face cache holds.

Three layouts are read, offline, as one checkpoint:

* a ``save_pretrained`` folder: ``config.json`` beside ``model.safetensors`` (or
  ``pytorch_model.bin``), or beside a shard index (``model.safetensors.index.json``,
  ``pytorch_model.bin.index.json``) and its shards;
* a cache snapshot folder ``models--ORG--NAME/snapshots/REVISION/`` (the same files, as links
  into the cache's ``blobs/``);
* the cache's model folder ``models--ORG--NAME/``, resolved through ``refs/main`` to the
  snapshot of that revision.

The weights are read by their own format (safetensors, PyTorch, sharded), which
:attr:`FolderCheckpoint.inner` is; the folder's ``config.json``, when present, is parsed into
:attr:`FolderCheckpoint.config` (its ``quantization_config`` taken from AutoGPTQ/GPTQModel's
``quantize_config.json`` or AutoAWQ's ``quant_config.json`` where config.json has none) and
summarised by :meth:`FolderCheckpoint.model_info` (model type, number of blocks, experts,
quantization). The config may guide decisions about
layouts; a config that contradicts the tensors (more or fewer blocks than it says, an expert
stack of another size) is an error, never a guess.

Writing (``netinit rewire FOLDER -o OUT``) makes ``OUT`` a folder of the same layout: the
weights rewritten by their format, every other file of the source folder (config,
tokenizer, generation config, ...) copied byte for byte, links resolved.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from netinit.errors import CorruptFileError, FormatError, OutputError
from netinit.formats.base import Checkpoint, Format, TensorInfo

__all__ = ["FolderCheckpoint", "FolderFormat", "resolve_folder", "FORMAT", "WEIGHT_FILES"]

#: single-file weights a model folder may hold, in order of preference
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pt", "pytorch_model.pt")
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_MAX_CONFIG = 16 << 20
#: settings files quantisers write beside the weights instead of config.json's
#: ``quantization_config`` (AutoGPTQ and GPTQModel; AutoAWQ), with the method each implies
QUANT_FILES = (("quantize_config.json", "gptq"), ("quant_config.json", "awq"))


def _cache_model_folder(path: Path) -> bool:
    return (path / "refs").is_dir() and (path / "snapshots").is_dir()


def resolve_folder(path: Path) -> tuple[Path, Path]:
    """``(snapshot folder, weights)`` of a model folder: the weights file, or the folder itself
    when it holds a shard index (the sharded reader takes the folder).

    Raises
    ------
    FormatError
        No weights in the folder, several candidates, or a cache folder whose ``refs/main``
        names a revision it does not hold.
    """
    folder = path
    if _cache_model_folder(path):
        ref = path / "refs" / "main"
        if not ref.is_file():
            raise FormatError(f"{path}: a Hugging Face cache folder without refs/main; pass the snapshot folder "
                              f"(snapshots/REVISION) to read")
        revision = ref.read_text(encoding="utf-8", errors="replace").strip()
        folder = path / "snapshots" / revision
        if not revision or "/" in revision or not folder.is_dir():
            raise FormatError(f"{path}: refs/main names revision {revision[:64]!r}, which snapshots/ does not hold")
    indexes = [i for i in _INDEXES if (folder / i).is_file()]
    if len(indexes) > 1:
        raise FormatError(f"{folder}: holds {' and '.join(indexes)}; pass the index file of the one to read")
    if indexes:
        return folder, folder
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder, folder / name
    singles = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if len(singles) == 1:
        return folder, singles[0]
    if singles:
        raise FormatError(f"{folder}: holds {len(singles)} .safetensors files and no shard index; pass the file to read")
    raise FormatError(f"{folder}: a model folder without weights (no {', '.join(WEIGHT_FILES[:2])} or shard index)")


def _read_json(p: Path, what: str) -> dict[str, Any]:
    if p.stat().st_size > _MAX_CONFIG:
        raise CorruptFileError(f"{p}: {p.stat().st_size} bytes, too large for {what}")
    try:
        config = json.loads(p.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{p}: malformed JSON ({exc})") from None
    if not isinstance(config, dict):
        raise CorruptFileError(f"{p}: not a JSON object")
    return config


def _read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` (empty without one), with the quantiser's own settings file as its
    ``quantization_config`` when config.json has none (:data:`QUANT_FILES`)."""
    p = folder / "config.json"
    config = _read_json(p, "a model config") if p.is_file() else {}
    text = config.get("text_config")
    if isinstance(config.get("quantization_config"), dict) or \
            (isinstance(text, dict) and isinstance(text.get("quantization_config"), dict)):
        return config
    for fname, method in QUANT_FILES:
        q = folder / fname
        if q.is_file():
            quant = _read_json(q, "a quantisation config")
            quant.setdefault("quant_method", method)
            return {**config, "quantization_config": {**quant, "source": fname}}
    return config


def _first_int(config: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def model_info(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a ``config.json`` says about the weights: model type, blocks, experts, quantization."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    merged = {**text, **{k: v for k, v in config.items() if k != "text_config"}}
    quant = merged.get("quantization_config")
    return {
        "model_type": merged.get("model_type") if isinstance(merged.get("model_type"), str) else None,
        "blocks": _first_int(merged, "num_hidden_layers", "n_layer", "num_layers") or _first_int(text, "num_hidden_layers"),
        "experts": _first_int(merged, "num_local_experts", "num_experts", "n_routed_experts") or
        _first_int(text, "num_local_experts", "num_experts"),
        "quantization": quant.get("quant_method") if isinstance(quant, dict) else None,
        "quantization_config": quant if isinstance(quant, dict) else None,
    }


class FolderCheckpoint(Checkpoint):
    """A model folder: the weights of :attr:`inner` and the folder's :attr:`config`.

    ``path`` is the snapshot folder that holds the files; ``model`` what its config says, with
    ``weights``: the weights' file (or shard index) and format.
    """

    def __init__(self, folder: Path, inner: Checkpoint, config: dict[str, Any]) -> None:
        super().__init__(path=folder, format="folder", metadata=inner.metadata,
                         converted=inner.converted, unmapped=inner.unmapped)
        self.inner = inner
        self.config = config
        self.model = {**model_info(config), "weights": f"{inner.path.name} ({inner.format})"}
        self._check_config()

    def _check_config(self) -> None:
        from netinit.naming import block_of

        blocks = self.model["blocks"]
        if blocks is None:
            return
        found = {b for b in (block_of(n) for n in self.inner.names()) if b is not None}
        if found and max(found) + 1 != blocks:
            raise FormatError(f"{self.path / 'config.json'}: says {blocks} blocks (num_hidden_layers), but the "
                              f"weights hold blocks 0 to {max(found)}")

    def names(self) -> list[str]:
        return self.inner.names()

    def info(self, name: str) -> TensorInfo:
        return self.inner.info(name)

    def stored_info(self, name: str) -> TensorInfo:
        stored = getattr(self.inner, "stored_info", None)
        return stored(name) if stored is not None else self.inner.info(name)

    def _load(self, name: str) -> np.ndarray:
        return self.inner.load(name)

    def kind_hint(self, name: str) -> str | None:
        return self.inner.kind_hint(name)

    def close(self) -> None:
        self.inner.close()


class FolderFormat(Format):
    name = "folder"
    description = "model folder (save_pretrained, Hugging Face cache snapshot or model folder) with config.json"
    suffixes = ("/",)
    options = ("layout",)

    def sniff(self, head: bytes, path: Path) -> bool:
        return False

    def sniff_dir(self, path: Path) -> bool:
        if _cache_model_folder(path):
            return True
        return (path / "config.json").is_file() or any((path / n).is_file() for n in WEIGHT_FILES)

    def open(self, path: Path, *, layout: Mapping[str, str] | None = None) -> FolderCheckpoint:
        from netinit.formats import load_checkpoint

        folder, weights = resolve_folder(path)
        inner = load_checkpoint(weights, format="sharded" if weights.is_dir() else None,
                                **({"layout": layout} if layout is not None else {}))
        return FolderCheckpoint(folder, inner, _read_config(folder))

    def write(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
        self.save(ckpt, replacements, out)

    def save(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> Path:
        """Write the folder ``out``: the weights by their own format, the other files copied."""
        from netinit._io import atomic_path
        from netinit.formats import get_format

        assert isinstance(ckpt, FolderCheckpoint)
        src = ckpt.path
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out}: exists and is not a folder (a model folder is written as a folder)")
        if out.resolve() == src.resolve():
            raise OutputError(f"{out}: is the input folder; choose another output folder")
        if not out.parent.is_dir():
            raise OutputError(f"{out}: the folder {out.parent} does not exist")
        inner = ckpt.inner
        out.mkdir(exist_ok=True)
        fmt = get_format(inner.format)
        if inner.format == "sharded":
            fmt.save(inner, replacements, out)
            weight_files = {inner.path.name, *getattr(inner, "shards", [])}
        else:
            fmt.save(inner, replacements, out / inner.path.name)
            weight_files = {inner.path.name}
        for entry in sorted(src.iterdir()):
            if entry.name in weight_files or not entry.is_file() or entry.name.startswith("."):
                continue
            with atomic_path(out / entry.name) as tmp:
                shutil.copyfile(entry, tmp)  # follows the cache's links: the content, not the link
        return out


FORMAT = FolderFormat()

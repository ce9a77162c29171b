"""What every checkpoint format provides: a lazy, read-only view of named tensors.

A :class:`Checkpoint` lists its tensors without loading them (:meth:`Checkpoint.names`,
:meth:`Checkpoint.info`) and loads one at a time (:meth:`Checkpoint.load`), so memory stays near
the largest tensor. Loaded tensors are numpy arrays in PyTorch layout; ``bfloat16`` (which numpy
lacks) is returned as ``float32``, which holds every bfloat16 value exactly, and converted back by
the writer. A :class:`Format` reads a file into a checkpoint and writes a copy with some tensors
replaced, leaving every other tensor and all metadata as they were.

Foreign layouts (an ONNX ``MatMul`` weight stored ``(in, out)``, an HF GPT-2 ``Conv1D`` weight) are
converted by the format's reader, which reports the PyTorch-layout shape in :meth:`Checkpoint.info`
and lists the converted tensors in :attr:`Checkpoint.converted`; its writer converts replacements
back. Weights a reader found but cannot expose as tensors are listed in :attr:`Checkpoint.unmapped`.
"""

from __future__ import annotations

import abc
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from netinit.errors import ShapeError

__all__ = ["TensorInfo", "Checkpoint", "Format", "FLOAT_DTYPES", "ZIP_ERRORS", "check_inflation", "checked_shape", "corrupt", "numel",
           "numpy_dtype_name", "replacement", "zip_entries"]

#: dtypes netinit analyses and rewires; every other dtype is reported as skipped.
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


#: What :mod:`zipfile` raises on a damaged archive: a bad directory, a truncated or corrupt member
#: (``zlib.error``, ``EOFError``), a member name that is not valid UTF-8, an unsupported
#: compression or encryption flag set by a damaged header.
ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, UnicodeDecodeError,
    NotImplementedError, ValueError, KeyError, RuntimeError,
)


def zip_entries(head: bytes, path: Path) -> list[str] | None:
    """Member names of a zip archive whose first bytes are ``head``; ``None`` if it is not one."""
    if head[:4] != b"PK\x03\x04":
        return None
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except ZIP_ERRORS:
        return None


def replacement(where: str, value: Any, want: tuple[int, ...], *, stored: bool = False) -> np.ndarray:
    """``value`` as an array, after checking that its shape is ``want``.

    ``where`` names the tensor (``"PATH: tensor 'x'"``); the error says the shape is the
    ``stored`` one or the ``expected`` one (the shape :meth:`Checkpoint.info` reports).
    """
    value = np.asarray(value)
    if tuple(value.shape) != tuple(want):
        raise ShapeError(f"{where} replacement has shape {tuple(value.shape)}, "
                         f"{'stored' if stored else 'expected'} {tuple(want)}")
    return value


def numpy_dtype_name(dtype: Any) -> str:
    """Canonical dtype name (``float32``, ``bfloat16``, ``int8`` ...) of a numpy or torch dtype."""
    s = str(dtype)
    return s[len("torch."):] if s.startswith("torch.") else np.dtype(dtype).name


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape and dtype of a stored tensor, known without loading it."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES


@dataclass
class Checkpoint(abc.ABC):
    """A read-only view of the named tensors of one checkpoint file.

    Attributes
    ----------
    path : Path
        The file read.
    format : str
        Registry name of the format (``"torch"``, ``"safetensors"``, ``"npz"``).
    metadata : dict
        Format metadata (safetensors header metadata, ...), kept by the writer.
    container : str or None
        Where the tensors were found inside the file (``"state_dict"`` for a Lightning
        checkpoint, ``None`` for a flat file).
    converted : dict
        Tensors stored in a layout other than the PyTorch one that :meth:`load` returns:
        name -> the stored layout (``"in_out (GPT-2 Conv1D)"``, ``"onnx MatMul: stored (in, out) ..."``).
    unmapped : dict
        Weights the reader found but does not expose as tensors, or whose layer it could not
        determine: name -> the reason (an ONNX weight computed by a node, ...).
    """

    path: Path
    format: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    container: str | None = None
    converted: Mapping[str, str] = field(default_factory=dict)
    unmapped: Mapping[str, str] = field(default_factory=dict)

    @abc.abstractmethod
    def names(self) -> list[str]:
        """Names of the tensors, in file order."""

    @abc.abstractmethod
    def info(self, name: str) -> TensorInfo:
        """Shape and dtype of tensor ``name``, without loading it."""

    @abc.abstractmethod
    def _load(self, name: str) -> np.ndarray:
        """Load tensor ``name`` as a numpy array (bfloat16 as float32)."""

    def load(self, name: str) -> np.ndarray:
        """Load tensor ``name`` as a numpy array in PyTorch layout (bfloat16 as float32)."""
        if name not in self._name_set():
            from netinit.errors import LayerError

            raise LayerError(f"{self.path}: no tensor named {name!r}")
        from netinit.errors import NetinitError

        try:
            return self._load(name)
        except NetinitError:
            raise
        except Exception as exc:  # whatever a damaged file makes a parser raise: one line naming it
            raise corrupt(self.path, f"tensor {name!r} cannot be read", exc) from None

    def _name_set(self) -> set[str]:
        cache = self.__dict__.get("_names_cache")
        if cache is None:
            cache = set(self.names())
            self.__dict__["_names_cache"] = cache
        return cache

    def infos(self) -> list[TensorInfo]:
        """Shape and dtype of every tensor, in file order."""
        return [self.info(n) for n in self.names()]

    def kind_hint(self, name: str) -> str | None:
        """Layer kind of tensor ``name`` when the file says it (``"conv_transpose2d"``), else ``None``.

        Formats whose files record the layer classes (a Keras config, Flax module names) report
        the kinds that shape and name cannot tell apart; :func:`netinit.layers.classify` prefers
        them to its guesses. The default knows nothing.
        """
        return None

    def close(self) -> None:
        """Release open file handles (a no-op for formats that hold none)."""

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} format={self.format} tensors={len(self)}>"


class Format(abc.ABC):
    """A checkpoint format: recognises, reads and writes its files."""

    #: registry name, e.g. ``"safetensors"``
    name: str = ""
    #: file suffixes, lower case, with the dot
    suffixes: tuple[str, ...] = ()
    #: what a user needs to install for it, if anything
    requires: str = ""

    #: what the format is, for ``netinit formats``
    description: str = ""
    #: whether :meth:`write` is supported
    writes: bool = True
    #: keyword options :meth:`open` accepts besides the path (``"key"``, ``"layout"``)
    options: tuple[str, ...] = ()

    @abc.abstractmethod
    def sniff(self, head: bytes, path: Path) -> bool:
        """Whether a file whose first bytes are ``head`` is of this format."""

    def sniff_dir(self, path: Path) -> bool:
        """Whether the folder ``path`` is a checkpoint of this format (sharded checkpoints)."""
        return False

    @abc.abstractmethod
    def open(self, path: Path, **options: Any) -> Checkpoint:
        """Read ``path`` lazily. Raises :class:`~netinit.errors.FormatError` subclasses.

        ``options`` are those named in :attr:`options` (the registry passes no others).
        """

    @abc.abstractmethod
    def write(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
        """Write ``ckpt`` to ``out`` with the tensors in ``replacements`` replaced.

        Each replacement has the shape :meth:`Checkpoint.info` reports (the PyTorch layout); it
        is converted to the stored layout and cast to the stored dtype. Every other tensor and
        all metadata are written unchanged. ``out`` is a fresh temporary path (:meth:`save`
        handles atomic renaming; the registry refuses to overwrite the input).
        """

    def save(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> Path:
        """Write ``out`` atomically (a temporary file renamed on success) through :meth:`write`.

        Formats that write several files (an index and its shards, a model and its external
        data) override this, make each file atomic and refuse to write over any input file.
        """
        from netinit._io import atomic_path

        with atomic_path(out) as tmp:
            self.write(ckpt, replacements, tmp)
        return out


def corrupt(path: Any, what: str, exc: BaseException) -> Exception:
    """A :class:`CorruptFileError` for ``path``: ``what`` went wrong, with ``exc`` in one line."""
    from netinit.errors import CorruptFileError

    detail = " ".join(str(exc).split())[:200] or "no detail"
    return CorruptFileError(f"{path}: {what} ({type(exc).__name__}: {detail})")


def checked_shape(shape: Any, where: str) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative Python ints, or a :class:`CorruptFileError`.

    A reader calls it on every shape a file declares, before any size is computed from it:
    booleans, floats, negative numbers and nested lists are refused, and sizes are multiplied in
    Python integers (:func:`numel`), so no product wraps around as an ``int64`` would.
    """
    from netinit.errors import CorruptFileError

    if not isinstance(shape, (list, tuple)) or len(shape) > 64:
        raise CorruptFileError(f"{where}: shape {str(shape)[:60]} is not a list of at most 64 sizes")
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d >= 0 for d in shape):
        raise CorruptFileError(f"{where}: shape {str(shape)[:60]} holds a size that is not a non-negative integer")
    out = tuple(int(d) for d in shape)
    if numel(tuple(d for d in out if d)) >= 2**62:  # numpy cannot make it, even empty
        raise CorruptFileError(f"{where}: shape {str(out)[:60]} is too large for any array")
    return out


def numel(shape: tuple[int, ...]) -> int:
    """Number of elements of ``shape``, in Python integers (never wraps)."""
    n = 1
    for d in shape:
        n *= int(d)
    return n


def check_inflation(info: zipfile.ZipInfo, path: Path) -> None:
    """Refuse a compressed zip member that would inflate beyond :mod:`netinit.formats.limits`.

    A stored member's size is what the file holds; a compressed one may expand (deflate up to
    about 1030 times): above ``inflation_floor`` bytes, at most ``max_inflation`` times its
    compressed size.
    """
    from netinit.errors import CorruptFileError
    from netinit.formats.limits import Limits, current_limits

    lim = current_limits()
    if info.compress_type == zipfile.ZIP_STORED:
        return
    if info.file_size > lim.inflation_floor and info.file_size > lim.max_inflation * max(info.compress_size, 1):
        raise CorruptFileError(
            f"{path}: member {info.filename!r} inflates from {info.compress_size} to {info.file_size} bytes, "
            f"more than max_inflation={lim.max_inflation} times (raise it with "
            f"{Limits.variable('max_inflation')}=N)")

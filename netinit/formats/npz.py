"""NumPy ``.npz`` archives: one ``.npy`` member per tensor, read without pickle.

Members are loaded one at a time with ``allow_pickle=False``; object arrays (which need pickle)
are refused. The writer copies every member it does not replace byte for byte (same compression)
and writes the replaced members as fresh ``.npy`` data of the stored dtype.
"""

from __future__ import annotations

import io
import tokenize
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from netinit.errors import CorruptFileError, NetinitError, UnsafeCheckpointError
from netinit.formats.base import ZIP_ERRORS, Checkpoint, Format, TensorInfo, check_inflation, checked_shape, numel, replacement, zip_entries

__all__ = ["NpzFormat", "NpzCheckpoint"]


def _member(name: str) -> str:
    return name + ".npy"


class NpzCheckpoint(Checkpoint):
    """Lazy view of an ``.npz`` archive."""

    def __init__(self, path: Path) -> None:
        super().__init__(path=path, format="npz")
        try:
            self._zip = zipfile.ZipFile(path)
            members = [m for m in self._zip.namelist() if m.endswith(".npy")]
        except ZIP_ERRORS as exc:
            raise CorruptFileError(f"{path}: truncated or corrupt .npz archive ({exc})") from None
        self._infos: dict[str, TensorInfo] = {}
        for m in members:
            name = m[: -len(".npy")]
            try:
                info = self._zip.getinfo(m)
                with self._zip.open(m) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version in ((2, 0), (3, 0)):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise ValueError(f"unknown .npy format version {version}")
                    header_end = f.tell()
            except ZIP_ERRORS + (SyntaxError, tokenize.TokenError, TypeError) as exc:  # damaged header: tokenize
                raise CorruptFileError(f"{path}: member {m!r} is corrupt ({type(exc).__name__}: "
                                       f"{str(exc)[:120]})") from None
            if dtype.hasobject:
                raise UnsafeCheckpointError(
                    f"{path}: member {name!r} is a pickled object array; netinit loads numeric "
                    f"arrays only (save with np.savez(path, **{{name: array}}) of numeric arrays)"
                )
            shape = checked_shape(shape, f"{path}: member {m!r}")
            # the member must hold exactly the bytes its header declares, so a load allocates no
            # more than the member's size, itself bounded by its compressed size (check_inflation)
            if header_end + numel(shape) * dtype.itemsize != info.file_size:
                raise CorruptFileError(
                    f"{path}: member {m!r} is corrupt (its header declares shape {shape} of {dtype}, "
                    f"{numel(shape) * dtype.itemsize} bytes, and the member holds {info.file_size - header_end})")
            check_inflation(info, path)
            self._infos[name] = TensorInfo(name, shape, dtype.name)

    def names(self) -> list[str]:
        return list(self._infos)

    def info(self, name: str) -> TensorInfo:
        return self._infos[name]

    def _load(self, name: str) -> np.ndarray:
        try:
            with self._zip.open(_member(name)) as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
        except ZIP_ERRORS + (SyntaxError, tokenize.TokenError) as exc:
            raise CorruptFileError(f"{self.path}: member {name!r} is truncated or corrupt ({exc})") from None
        return arr.astype(arr.dtype.newbyteorder("="), copy=False)

    def close(self) -> None:
        self._zip.close()


class NpzFormat(Format):
    name = "npz"
    description = "NumPy archive of arrays (no pickle)"
    suffixes = (".npz",)

    def sniff(self, head: bytes, path: Path) -> bool:
        names = zip_entries(head, path)
        if names is None:
            return False
        return bool(names) and all(n.endswith(".npy") for n in names)

    def open(self, path: Path) -> NpzCheckpoint:
        return NpzCheckpoint(path)

    def write(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
        assert isinstance(ckpt, NpzCheckpoint)
        wanted = {_member(k): k for k in replacements}
        try:
            with zipfile.ZipFile(ckpt.path) as src, zipfile.ZipFile(out, "w") as dst:
                for info in src.infolist():
                    if info.filename in wanted:
                        name = wanted[info.filename]
                        stored = ckpt.info(name)
                        value = replacement(f"{ckpt.path}: member {name!r}", replacements[name], stored.shape,
                                            stored=True)
                        buf = io.BytesIO()
                        np.lib.format.write_array(buf, value.astype(stored.dtype, copy=False), allow_pickle=False)
                        dst.writestr(info, buf.getvalue(), compress_type=info.compress_type)
                    else:
                        dst.writestr(info, src.read(info), compress_type=info.compress_type)
        except NetinitError:
            raise
        except ZIP_ERRORS as exc:  # a member whose bytes fail their CRC shows only when read whole
            raise CorruptFileError(f"{ckpt.path}: the .npz archive is corrupt ({exc})") from None


FORMAT = NpzFormat()

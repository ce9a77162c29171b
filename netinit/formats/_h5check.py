"""A check of HDF5 global-heap collections before HDF5 reads them: the one loop known to hang.

HDF5 stores variable-length strings (Keras' layer names, ``name`` attributes) in global-heap
collections: a ``GCOL`` signature, a version (1), three reserved bytes, the collection size, then
objects laid end to end, each a 16-byte header (index, reference count, reserved, size) and its
data padded to 8 bytes; index 0 is the free space to the end of the collection, its size
counting its header. HDF5 walks the objects with ``p = begin + need`` where ``need`` is
``16 + align8(size)``, or ``size`` itself for index 0 (``H5HG__cache_heap_deserialize``): a free-space
object of size 0, which a changed object size elsewhere in the collection makes HDF5 read from
padding bytes, never advances ``p``, and HDF5 loops forever at 100% CPU, in C, deaf to Ctrl-C.

:func:`check_global_heaps` walks every collection of a file the same way and refuses one that
does not end exactly at its end. It is the cheap first line; the Keras reader also runs its HDF5
walk under a time bound (:mod:`netinit.formats._bounded`) for loops not known here.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from netinit.errors import CorruptFileError

__all__ = ["check_global_heaps"]

_MAGIC = b"\x89HDF\r\n\x1a\n"


def _lengths_size(buf: mmap.mmap, start: int, stop: int) -> int | None:
    """HDF5's "size of lengths" from the superblock (at 0, 512, 1024, ... bytes), or ``None``."""
    at = 0
    while start + at + 16 <= stop:
        if buf[start + at:start + at + 8] == _MAGIC:
            version = buf[start + at + 8]
            return buf[start + at + (14 if version < 2 else 10)]
        at = 512 if at == 0 else at * 2
    return None


def check_global_heaps(path: Path, start: int = 0, size: int | None = None, *, where: Path | None = None) -> None:
    """Refuse an HDF5 file (bytes ``[start, start + size)`` of ``path``) with a global-heap
    collection whose objects do not add up to it: :class:`CorruptFileError` naming ``where``
    (the user's file, when ``path`` is a temporary copy), ``path`` by default."""
    where = path if where is None else where
    with open(path, "rb") as f:
        total = f.seek(0, 2)
        if total == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            stop = total if size is None else min(total, start + size)
            if _lengths_size(buf, start, stop) != 8:  # other layouts: left to the time bound
                return
            at = buf.find(b"GCOL", start, stop)
            while at >= 0:
                _check_collection(buf, at, stop, where, start)
                at = buf.find(b"GCOL", at + 4, stop)


def _check_collection(buf: mmap.mmap, at: int, stop: int, path: Path, base: int) -> None:
    if at + 16 > stop or buf[at + 4] != 1 or buf[at + 5:at + 8] != b"\0\0\0":
        return  # not a collection header (HDF5 refuses a damaged signature or version itself)
    (length,) = struct.unpack_from("<Q", buf, at + 8)
    end = at + length
    if end > stop or length < 16:
        raise CorruptFileError(f"{path}: corrupt HDF5 global heap at byte {at - base} (a collection of "
                               f"{length} bytes does not fit the file)")
    p = at + 16
    while p < end:
        if p + 16 > end:  # too small for an object header: HDF5 takes it as free space
            return
        index, _ = struct.unpack_from("<HH", buf, p)
        (obj,) = struct.unpack_from("<Q", buf, p + 8)
        need = 16 + (obj + 7) // 8 * 8 if index else obj
        if need == 0 or p + need > end:
            raise CorruptFileError(
                f"{path}: corrupt HDF5 global heap at byte {at - base} (object {index} of {obj} bytes at "
                f"byte {p - base} {'never ends' if need == 0 else 'runs past the collection'})")
        p += need

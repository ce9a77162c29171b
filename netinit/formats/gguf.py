"""GGUF files (llama.cpp's format), read through the ``gguf`` package's ``GGUFReader``.

A GGUF file is a header (magic ``GGUF``, version, key-value metadata, one record per tensor:
name, dimensions, type, offset) followed by the aligned tensor data. It is read lazily: the file
is memory-mapped by :class:`gguf.GGUFReader` and a tensor is converted when it is loaded.

**Dimension order.** GGUF lists a tensor's dimensions fastest-varying first: ``ne[0]`` is the
length of a row in memory, so a weight of a linear layer with ``n_in`` inputs and ``n_out``
outputs is listed ``ne = [n_in, n_out]`` and a stack of experts
(``blk.N.ffn_{gate,up,down}_exps.weight``) ``ne = [n_in, n_out, n_experts]``. The bytes are those
of a C-order array of the *reversed* list, so netinit reports and loads ``shape = ne[::-1]``:
``(n_out, n_in)`` for a weight and ``(n_experts, n_out, n_in)`` for an expert stack, the canonical
PyTorch layout, with no data moved. A 1-D tensor (a norm, a bias) is ``(ne[0],)``.

**Types.** Every tensor type that :func:`gguf.quants.dequantize` dequantises is read (F32, F16,
BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, the k-quants Q2_K to Q6_K, the IQ and TQ types, MXFP4, ...),
and F64. :meth:`GGUFCheckpoint.load` returns ``float32`` (F16 and BF16 included; ``float64`` for
F64, the integer types as stored). :meth:`GGUFCheckpoint.info` reports the stored dtype of the float types (``float32``,
``float16``, ``bfloat16``, ``float64``) and ``float32`` for a quantised tensor, the dtype that
netinit analyses; :meth:`GGUFCheckpoint.quantization` names the stored quantisation (``"Q8_0"``,
``None`` for the float types). A quantised type the package cannot dequantise (Q8_1, Q8_K) is
reported with dtype ``gguf_q8_k`` (not a float dtype, so the layer model skips it).

**Q and K rows.** llama.cpp's converter (``convert_hf_to_gguf.py``) permutes the rows of the
query and key projections of llama-family models (``attn_q``, ``attn_k``) for its RoPE kernel
(``permute``: within each head, the interleaved halves are regrouped). Their rows are therefore
not in the Hugging Face order: per-neuron tables of those layers are in GGUF's order, and layer
statistics that do not depend on the row order (degree and strength distributions, spectra) are
unaffected.

**Metadata.** :attr:`GGUFCheckpoint.gguf_metadata` holds the scalar and string key-value fields as
plain Python values, and the arrays of at most 64 items as lists; longer arrays (the tokenizer's
vocabulary, scores, merges) are left out and their lengths listed in
:attr:`GGUFCheckpoint.gguf_array_lengths`. :attr:`Checkpoint.metadata` gives the architecture,
the block count, the expert counts and the file type as strings.

**Writing** copies the file and overwrites the bytes of the replaced tensors, which must be F32,
F16, BF16 or F64; every other byte (metadata, alignment, tensor order, other tensors) is kept. A
quantised tensor is refused: rewire the full-precision checkpoint and quantise after.

**Damaged files.** The header is walked here first, with every count, length, dimension, type
and data range checked against the bytes the file holds (arrays included), before
:class:`gguf.GGUFReader` parses it; the reader is then spared the key-value arrays, which it would
otherwise turn into one numpy view per item (hundreds of bytes for each 4-byte score). Tensor
counts are bounded by ``max_tensors`` and the header's size by ``max_header_bytes``
(:mod:`netinit.formats.limits`). Whatever the reader still raises becomes one
:class:`~netinit.errors.CorruptFileError` line naming the file.
"""

from __future__ import annotations

import functools
import mmap
import shutil
import struct
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from netinit.errors import CorruptFileError, DtypeError, FormatError
from netinit.formats.base import Checkpoint, Format, TensorInfo, checked_shape, corrupt, numel, replacement
from netinit.formats.limits import Limits, current_limits

__all__ = ["GGUFFormat", "GGUFCheckpoint"]

_MAGIC = b"GGUF"
_VERSIONS = (2, 3)
_MAX_DIMS = 4  # GGML_MAX_DIMS
_MAX_NESTING = 8
_SMALL_ARRAY = 64
_DEFAULT_ALIGNMENT = 32

# GGUF value types: id -> (struct code, size); 8 = string, 9 = array
_SCALARS = {0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4), 6: ("f", 4),
            7: ("?", 1), 10: ("Q", 8), 11: ("q", 8), 12: ("d", 8)}
_STRING, _ARRAY = 8, 9

# tensor types stored as plain arrays: type name -> (netinit dtype, numpy dtype)
_PLAIN = {"F32": ("float32", "f4"), "F16": ("float16", "f2"), "F64": ("float64", "f8"), "BF16": ("bfloat16", "u2"),
          "I8": ("int8", "i1"), "I16": ("int16", "i2"), "I32": ("int32", "i4"), "I64": ("int64", "i8")}
_WRITABLE = ("F32", "F16", "BF16", "F64")


def _gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise FormatError("reading GGUF files needs the gguf package: pip install gguf") from None
    return gguf


class _Walker:
    """Reads the header's fields from a buffer, refusing anything that runs past its end."""

    def __init__(self, buf: Any, path: Path, endian: str, limit: int) -> None:
        self.buf, self.path, self.e, self.pos, self.size, self.limit = buf, path, endian, 0, len(buf), limit

    def fail(self, what: str) -> CorruptFileError:
        return CorruptFileError(f"{self.path}: {what}")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"truncated GGUF file ({what} at byte {self.pos} runs past the end, {self.size} bytes)")
        if self.pos + n > self.limit:  # checked as the walk goes, so a huge header costs no time
            raise self.fail(f"GGUF header is larger than max_header_bytes={self.limit} ({what} ends at byte {self.pos + n}; "
                            f"raise it with {Limits.variable('max_header_bytes')}=N)")

    def unpack(self, code: str, what: str) -> Any:
        n = struct.calcsize(code)
        self.need(n, what)
        (v,) = struct.unpack_from(self.e + code, self.buf, self.pos)
        self.pos += n
        return v

    def string(self, what: str) -> str:
        n = self.unpack("Q", what)
        self.need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"corrupt GGUF header ({what} at byte {self.pos - n} is not UTF-8)") from None

    def skip_string(self, what: str) -> None:
        n = self.unpack("Q", what)
        self.need(n, what)
        self.pos += n

    def value(self, vtype: int, what: str, depth: int = 0) -> tuple[Any, int | None]:
        """The value of type ``vtype`` (a long array is skipped: ``(None, its length)``)."""
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype][0], what), None
        if vtype == _STRING:
            return self.string(what), None
        if vtype != _ARRAY:
            raise self.fail(f"corrupt GGUF header ({what} has unknown value type {vtype})")
        if depth >= _MAX_NESTING:
            raise self.fail(f"corrupt GGUF header ({what} nests arrays more than {_MAX_NESTING} deep)")
        itype = self.unpack("I", what)
        n = self.unpack("Q", what)
        least = _SCALARS[itype][1] if itype in _SCALARS else 8 if itype == _STRING else 12 if itype == _ARRAY else None
        if least is None:
            raise self.fail(f"corrupt GGUF header ({what} is an array of unknown value type {itype})")
        self.need(n * least, f"{what} ({n} items)")
        if n <= _SMALL_ARRAY:
            return [self.value(itype, what, depth + 1)[0] for _ in range(n)], None
        if itype in _SCALARS:
            self.pos += n * least
        elif itype == _STRING:
            for _ in range(n):
                self.skip_string(what)
        else:
            for _ in range(n):
                self.value(itype, what, depth + 1)
        return None, n


def _walk(buf: Any, path: Path) -> dict[str, Any]:
    """Check the header of the GGUF file in ``buf``; its fields, tensor records and data start."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    lim = current_limits()
    if len(buf) < 24 or bytes(buf[:4]) != _MAGIC:
        what = "too short for a GGUF header" if len(buf) < 24 and bytes(buf[:4]) == _MAGIC else "wrong magic, not GGUF"
        raise CorruptFileError(f"{path}: {what} ({len(buf)} bytes, starts {bytes(buf[:4])!r})")
    (version,) = struct.unpack_from("<I", buf, 4)
    endian = "<"
    if version & 0xFFFF == 0:  # written on a machine of the other byte order
        (version,), endian = struct.unpack_from(">I", buf, 4), ">"
    if version not in _VERSIONS:
        raise CorruptFileError(f"{path}: GGUF version {version} is not supported (valid: {', '.join(map(str, _VERSIONS))})")
    w = _Walker(buf, path, endian, lim.max_header_bytes)
    w.pos = 8
    n_tensors, n_kv = w.unpack("Q", "tensor count"), w.unpack("Q", "key-value count")
    if n_tensors > lim.max_tensors:
        raise CorruptFileError(f"{path}: GGUF header declares {n_tensors} tensors, more than max_tensors={lim.max_tensors} "
                               f"(raise it with {Limits.variable('max_tensors')}=N)")
    w.need(n_kv * 13 + n_tensors * 24, f"{n_kv} key-value fields and {n_tensors} tensor records")
    fields: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    types: dict[str, int] = {}
    align_at = None
    for i in range(n_kv):
        at = w.pos
        key = w.string(f"key {i}")
        if key == "general.alignment":
            align_at = at
        if key in types:
            raise w.fail(f"corrupt GGUF header (key {key!r} appears twice)")
        vtype = w.unpack("I", f"type of key {key!r}")
        value, n = w.value(vtype, f"value of key {key!r}")
        types[key] = vtype
        if n is None:
            fields[key] = value
        else:
            lengths[key] = n
    kv_end = w.pos
    alignment = fields.get("general.alignment", _DEFAULT_ALIGNMENT)
    if "general.alignment" in fields and (types["general.alignment"] != 4 or alignment == 0 or alignment & (alignment - 1)):
        raise w.fail(f"corrupt GGUF header (general.alignment {alignment!r} is not a power of two stored as UINT32)")
    records = []
    for i in range(n_tensors):
        name = w.string(f"name of tensor {i}")
        where = f"{path}: tensor {name!r}"
        n_dims = w.unpack("I", f"dimension count of tensor {name!r}")
        if n_dims > _MAX_DIMS:
            raise CorruptFileError(f"{where} has {n_dims} dimensions, more than GGUF's {_MAX_DIMS}")
        ne = [w.unpack("Q", f"dimensions of tensor {name!r}") for _ in range(n_dims)]
        raw_type = w.unpack("I", f"type of tensor {name!r}")
        offset = w.unpack("Q", f"offset of tensor {name!r}")
        try:
            qtype = GGMLQuantizationType(raw_type)
        except ValueError:
            raise CorruptFileError(f"{where} has unknown tensor type {raw_type}") from None
        if qtype not in GGML_QUANT_SIZES:
            raise CorruptFileError(f"{where} has tensor type {qtype.name}, whose block size the gguf package does not know")
        shape = checked_shape(tuple(reversed(ne)), where)
        block, type_size = GGML_QUANT_SIZES[qtype]
        if ne and ne[0] % block:
            raise CorruptFileError(f"{where} has rows of {ne[0]} values, not a multiple of the {qtype.name} block ({block})")
        if offset % alignment:
            raise CorruptFileError(f"{where} has data offset {offset}, not a multiple of the alignment {alignment}")
        records.append((name, qtype, shape, offset, numel(shape) // block * type_size))
    header_end = w.pos
    data_start = -(-header_end // alignment) * alignment
    names, spans = set(), []
    for name, qtype, shape, offset, nbytes in records:
        if name in names:
            raise CorruptFileError(f"{path}: tensor {name!r} appears twice in the GGUF header")
        names.add(name)
        if data_start + offset + nbytes > len(buf):
            raise CorruptFileError(f"{path}: truncated GGUF file (tensor {name!r} ends at byte {data_start + offset + nbytes} "
                                   f"of {len(buf)})")
        if nbytes:
            spans.append((offset, offset + nbytes, name))
    spans.sort()
    end, last = 0, ""
    for start, stop, name in spans:
        if start < end:
            raise CorruptFileError(f"{path}: tensors {last!r} and {name!r} share bytes (data ranges overlap at {start})")
        end, last = stop, name
    return {"fields": fields, "lengths": lengths, "records": records, "kv_end": kv_end, "align_at": align_at,
            "data_start": data_start, "endian": endian, "alignment": alignment, "version": version}


def _reader(path: Path, kv_end: int, align_at: int | None) -> Any:
    """A :class:`gguf.GGUFReader` of ``path`` that jumps over the key-value fields (already walked).

    ``GGUFReader`` makes one numpy view per array item; the fields netinit needs were read by
    :func:`_walk`, so the reader parses only ``general.alignment`` (its data offset depends on it).
    """
    gguf = _gguf()

    class _Reader(gguf.GGUFReader):
        def _build_fields(self, offs: int, count: int) -> int:
            if align_at is not None:
                super()._build_fields(align_at, 1)
            return kv_end

    return _Reader(path, "r")


@functools.lru_cache(maxsize=None)
def _dequantisable(qtype: Any) -> bool:
    """Whether :func:`gguf.quants.dequantize` knows ``qtype`` (asked of one zero block)."""
    from gguf import GGML_QUANT_SIZES, quants

    try:
        quants.dequantize(np.zeros((1, GGML_QUANT_SIZES[qtype][1]), np.uint8), qtype)
    except NotImplementedError:
        return False
    return True


def _metadata(fields: Mapping[str, Any], lengths: Mapping[str, int]) -> dict[str, str]:
    arch = fields.get("general.architecture")
    out = {}
    for key in ("general.architecture", "general.name", "general.file_type", f"{arch}.block_count", f"{arch}.expert_count",
                f"{arch}.expert_used_count", f"{arch}.context_length", "general.quantization_version"):
        if key in fields and not isinstance(fields[key], list):
            out[key] = str(fields[key])
    if isinstance(fields.get("general.file_type"), int):
        from gguf import LlamaFileType

        try:
            out["general.file_type_name"] = LlamaFileType(fields["general.file_type"]).name
        except ValueError:
            pass
    return out


class GGUFCheckpoint(Checkpoint):
    """Lazy view of a GGUF file (see the module docstring for the layout and types).

    Attributes
    ----------
    gguf_metadata : dict
        Key-value fields: scalars and strings as Python values, arrays of at most 64 items as lists.
    gguf_array_lengths : dict
        Lengths of the longer arrays (tokenizer vocabulary, scores, merges), whose values are not kept.
    architecture : str or None
        ``general.architecture`` (``"llama"``, ``"qwen3moe"``, ...).
    """

    def __init__(self, path: Path) -> None:
        gguf = _gguf()
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size == 0:
                raise CorruptFileError(f"{path}: the file is empty")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                head = _walk(buf, path)
        try:
            reader = _reader(path, head["kv_end"], head["align_at"])
        except CorruptFileError:
            raise
        except Exception as exc:
            raise corrupt(path, "cannot read as GGUF", exc) from None
        if reader.data_offset != head["data_start"] or len(reader.tensors) != len(head["records"]):
            raise CorruptFileError(f"{path}: corrupt GGUF header (the gguf package places the data at byte "
                                   f"{reader.data_offset}, netinit at {head['data_start']})")
        super().__init__(path=path, format="gguf", metadata=_metadata(head["fields"], head["lengths"]))
        self.gguf_metadata: dict[str, Any] = dict(head["fields"])
        self.gguf_array_lengths: dict[str, int] = dict(head["lengths"])
        self.architecture = head["fields"].get("general.architecture")
        self.alignment: int = head["alignment"]
        self.data_start: int = head["data_start"]
        self._endian: str = head["endian"]
        self._kv = (head["kv_end"], head["align_at"])
        self._reader = reader
        self._tensors = {t.name: t for t in reader.tensors}
        self._records = {r[0]: r for r in head["records"]}
        self._gguf = gguf

    def names(self) -> list[str]:
        return list(self._records)

    def _type(self, name: str) -> str:
        return self._records[name][1].name

    def quantization(self, name: str) -> str | None:
        """The stored quantisation of tensor ``name`` (``"Q8_0"``, ``"Q4_K"``), ``None`` for float and integer types."""
        t = self._type(name)
        return None if t in _PLAIN else t

    def _dequantisable(self, qtype: Any) -> bool:
        return _dequantisable(qtype)

    def info(self, name: str) -> TensorInfo:
        _, qtype, shape, _, _ = self._records[name]
        if qtype.name in _PLAIN:
            dtype = _PLAIN[qtype.name][0]
        else:
            dtype = "float32" if self._dequantisable(qtype) else f"gguf_{qtype.name.lower()}"
        return TensorInfo(name, shape, dtype)

    def byte_range(self, name: str) -> tuple[int, int]:
        """Absolute byte offsets ``[start, stop)`` of tensor ``name``'s data in the file."""
        _, _, _, offset, nbytes = self._records[name]
        return self.data_start + offset, self.data_start + offset + nbytes

    def _load(self, name: str) -> np.ndarray:
        _, qtype, shape, _, nbytes = self._records[name]
        t = self._tensors[name]
        if int(t.data_offset) != self.byte_range(name)[0] or int(t.data.nbytes) != nbytes:
            raise CorruptFileError(f"{self.path}: tensor {name!r}: the gguf package reads bytes other than the header declares")
        kind = qtype.name
        if kind in _PLAIN:
            raw = np.frombuffer(t.data, dtype=np.dtype(_PLAIN[kind][1]).newbyteorder(self._endian))
            if kind == "BF16":
                arr = (raw.astype(np.uint32) << 16).view(np.float32)
            else:  # float16 as float32, as the quantised types; float64 and integers as stored
                arr = raw.astype(np.float32 if kind == "F16" else raw.dtype.newbyteorder("="))
            return arr.reshape(shape)
        where = f"{self.path}: tensor {name!r}"
        if not self._dequantisable(qtype):
            raise DtypeError(f"{where} is quantised ({kind}), which the gguf package cannot dequantise")
        if self._endian != "<":
            raise DtypeError(f"{where} is quantised ({kind}) in a big-endian file, which netinit does not dequantise")
        arr = self._gguf.quants.dequantize(np.asarray(t.data), qtype)
        return np.asarray(arr, dtype=np.float32).reshape(shape)

    def encode(self, name: str, value: Any) -> bytes:
        """Bytes of replacement ``value`` (canonical shape) in tensor ``name``'s stored type."""
        _, qtype, shape, _, _ = self._records[name]
        where = f"{self.path}: tensor {name!r}"
        kind = qtype.name
        if kind not in _WRITABLE:
            if kind in _PLAIN:
                raise DtypeError(f"{where} is an integer tensor ({kind}); netinit writes F32, F16, BF16 and F64 tensors")
            raise DtypeError(f"{where} is quantised ({kind}): rewire the full-precision checkpoint and quantise after")
        value = replacement(where, value, shape)
        if kind == "BF16":
            from netinit.formats.safetensors import float32_to_bf16_bits

            return float32_to_bf16_bits(value).astype(np.dtype("u2").newbyteorder(self._endian)).tobytes()
        return np.ascontiguousarray(value, dtype=np.dtype(_PLAIN[kind][1]).newbyteorder(self._endian)).tobytes()

    def close(self) -> None:
        self._tensors = {}
        self._reader = None


class GGUFFormat(Format):
    name = "gguf"
    description = "GGUF (llama.cpp); quantised tensors dequantised on load, F32/F16/BF16 tensors rewritten"
    suffixes = (".gguf",)
    requires = "gguf"

    def sniff(self, head: bytes, path: Path) -> bool:
        return head[:4] == _MAGIC

    def open(self, path: Path) -> GGUFCheckpoint:
        return GGUFCheckpoint(path)

    def write(self, ckpt: Checkpoint, replacements: Mapping[str, np.ndarray], out: Path) -> None:
        """Copy the file and overwrite the replaced tensors' bytes; check that it reads back."""
        assert isinstance(ckpt, GGUFCheckpoint)
        data = {name: ckpt.encode(name, value) for name, value in replacements.items()}  # refuse before writing
        shutil.copyfile(ckpt.path, out)
        with open(out, "r+b") as f:
            for name, raw in data.items():
                f.seek(ckpt.byte_range(name)[0])
                f.write(raw)
        got = {t.name: t for t in _reader(out, *ckpt._kv).tensors}  # the header is unchanged
        for name, raw in data.items():
            t = got.get(name)
            if t is None or int(t.data_offset) != ckpt.byte_range(name)[0] or t.data.tobytes() != raw:
                raise CorruptFileError(f"{out}: tensor {name!r} does not read back as written")
        del got


FORMAT = GGUFFormat()

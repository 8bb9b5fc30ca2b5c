"""GGUF metadata: the key/value header and tensor shapes, without the weights.

``gguf.GGUFReader`` parses every array element up front (seconds for a
tokenizer with 50k tokens), while show/create only need the scalar keys and
array lengths.  This reader walks the header with the ``gguf`` package's
type constants and materialises an array only when asked to.  Blobs are
immutable, so results are cached per path and file identity.
"""

from __future__ import annotations

import mmap
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, LlamaFileType

GGUF_MAGIC = b"GGUF"
ARRAY_ELIDE_LIMIT = 5
DEFAULT_ALIGNMENT = 32  # GGUF's, unless general.alignment says otherwise

_SCALAR_FORMATS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}


class GGUFError(ValueError):
    """The file is not a readable GGUF."""


@dataclass(frozen=True)
class ElidedArray:
    """Stands in for an array too long to materialise (only its length is kept)."""

    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: str
    shape: tuple[int, ...]


@dataclass
class GGUFInfo:
    """Header of one GGUF file."""

    kv: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    parameter_count: int = 0

    @property
    def architecture(self) -> str:
        return str(self.kv.get("general.architecture", ""))

    def arch_key(self, suffix: str) -> Any:
        return self.kv.get(f"{self.architecture}.{suffix}")

    @property
    def file_type(self) -> str:
        return file_type_name(self.kv.get("general.file_type"), self.tensors)


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        try:
            (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        except struct.error:
            raise GGUFError("truncated GGUF header") from None
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        end = self.pos + length
        if end > len(self.buf):
            raise GGUFError("truncated GGUF header")
        raw = bytes(self.buf[self.pos : end])
        self.pos = end
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.unpack("<Q")
        self.pos += length
        if self.pos > len(self.buf):
            raise GGUFError("truncated GGUF header")

    def value(self, vtype: GGUFValueType, materialise: bool) -> Any:
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            item_type = GGUFValueType(self.unpack("<I"))
            count = self.unpack("<Q")
            if materialise or count <= ARRAY_ELIDE_LIMIT:
                return [self.value(item_type, True) for _ in range(count)]
            self.skip_array(item_type, count)
            return ElidedArray(count)
        fmt = _SCALAR_FORMATS.get(vtype)
        if fmt is None:
            raise GGUFError(f"unknown GGUF value type {vtype}")
        return self.unpack(fmt)

    def skip_array(self, item_type: GGUFValueType, count: int) -> None:
        if item_type == GGUFValueType.STRING:
            for _ in range(count):
                self.skip_string()
        elif item_type == GGUFValueType.ARRAY:
            for _ in range(count):
                self.value(item_type, False)
        else:
            self.pos += struct.calcsize(_SCALAR_FORMATS[item_type]) * count
            if self.pos > len(self.buf):
                raise GGUFError("truncated GGUF header")


def _read(path: Path, materialise: bool) -> GGUFInfo:
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                raise GGUFError(f"{path.name}: not a GGUF file")
            handle.seek(0)
            try:
                buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:
                raise GGUFError(f"{path.name}: empty file") from None
    except OSError as exc:
        raise GGUFError(str(exc)) from None
    try:
        cur = _Cursor(buf)
        cur.pos = 4
        version = cur.unpack("<I")
        if version not in (2, 3):
            raise GGUFError(f"unsupported GGUF version {version}")
        n_tensors = cur.unpack("<Q")
        n_kv = cur.unpack("<Q")
        kv: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string()
            try:
                vtype = GGUFValueType(cur.unpack("<I"))
            except ValueError:
                raise GGUFError("bad GGUF value type") from None
            kv[key] = cur.value(vtype, materialise)
        tensors: list[TensorInfo] = []
        extents: list[tuple[str, int, int]] = []
        params = 0
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.unpack("<I")
            shape = tuple(cur.unpack("<Q") for _ in range(n_dims))
            ttype = cur.unpack("<I")
            offset = cur.unpack("<Q")
            try:
                qtype = GGMLQuantizationType(ttype)
                type_name = qtype.name
            except ValueError:
                qtype, type_name = None, str(ttype)
            count = 1
            for dim in shape:
                count *= dim
            params += count
            tensors.append(TensorInfo(name, type_name, shape))
            if qtype is not None:
                block, size = GGML_QUANT_SIZES[qtype]
                extents.append((name, offset, count // block * size))
        _check_extents(kv, cur.pos, len(buf), extents)
        return GGUFInfo(kv, tensors, params)
    finally:
        buf.close()


def _check_extents(kv: dict[str, Any], header_end: int, file_size: int, extents: list[tuple[str, int, int]]) -> None:
    """Every tensor's data must lie inside the file: a truncated download or copy is refused here,
    with the words llama.cpp's loader uses, instead of when a runner first loads it."""
    alignment = kv.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        alignment = DEFAULT_ALIGNMENT
    data_start = -(-header_end // alignment) * alignment
    for name, offset, nbytes in extents:
        if data_start + offset + nbytes > file_size:
            raise GGUFError(f"tensor '{name}' data is not within the file bounds, model is corrupted or incomplete")


_cache: dict[tuple[str, int, int, bool], GGUFInfo] = {}
_cache_lock = threading.Lock()


def read_gguf(path: Path | str, materialise_arrays: bool = False) -> GGUFInfo:
    """Read a GGUF header; long arrays become ElidedArray unless asked for."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise GGUFError(str(exc)) from None
    key = (str(path), stat.st_size, stat.st_mtime_ns, materialise_arrays)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    info = _read(path, materialise_arrays)
    with _cache_lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = info
    return info


def is_gguf(path: Path | str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def file_type_name(value: Any, tensors: list[TensorInfo] | None = None) -> str:
    """``general.file_type`` as Ollama spells it: ``Q4_K_M``, ``F16``, ``F32``."""
    if isinstance(value, int):
        try:
            name = LlamaFileType(value).name
        except ValueError:
            name = ""
        if name == "ALL_F32":
            return "F32"
        if name.startswith("MOSTLY_"):
            return name[len("MOSTLY_") :]
    if tensors:
        # No file_type key: name it after the most common tensor type.
        counts: dict[str, int] = {}
        for tensor in tensors:
            counts[tensor.type] = counts.get(tensor.type, 0) + 1
        return max(counts, key=lambda k: counts[k])
    return "unknown"


def human_number(count: int) -> str:
    """Parameter count as Ollama prints it: ``135M``, ``134.52M``, ``3.2B``."""
    if count >= 1_000_000_000:
        value = count / 1_000_000_000
        return f"{value:.0f}B" if value == int(value) else f"{value:.1f}B"
    if count >= 1_000_000:
        value = count / 1_000_000
        return f"{value:.0f}M" if value == int(value) else f"{value:.2f}M"
    if count >= 1_000:
        return f"{count / 1_000:.0f}K"
    return str(count)

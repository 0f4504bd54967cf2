"""Safetensors files read and written tensor by tensor, as raw bytes, in bounded memory.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the data. `read_header` parses and checks the header of one
file without reading any tensor; `copy_bytes` streams a byte range in chunks; `write_file` writes
a file whose tensors are given as chunk iterators, so a checkpoint is converted while holding at
most one chunk (not one shard, nor one tensor) in memory. No pickle, no torch needed.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
CHUNK = 64 << 20  # bytes per read/write


class TensorFileError(ValueError):
    """A safetensors file is unreadable or inconsistent; the message names the file (and tensor)."""


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: file, dtype, shape and absolute byte range [start, end)."""

    path: Path
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def row_bytes(self) -> int:
        """Bytes of one row (first axis) of a tensor with at least one axis."""
        n = DTYPE_SIZES[self.dtype]
        for d in self.shape[1:]:
            n *= d
        return n


def read_header(path: str | Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """({name: TensorInfo}, metadata) of one safetensors file; checks every range against the file size."""
    path = Path(path)
    if not path.is_file():
        raise TensorFileError(f"{path}: safetensors file not found")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise TensorFileError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100 << 20):
            raise TensorFileError(f"{path}: not a safetensors file (header length {n} exceeds the file)")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TensorFileError(f"{path}: safetensors header is not JSON ({e})") from e
    if not isinstance(header, dict):
        raise TensorFileError(f"{path}: safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    base = 8 + n
    out: dict[str, TensorInfo] = {}
    for name, d in header.items():
        try:
            dtype, shape, (a, b) = d["dtype"], tuple(int(x) for x in d["shape"]), d["data_offsets"]
        except (KeyError, TypeError, ValueError) as e:
            raise TensorFileError(f"{path}: tensor {name!r}: bad header entry {d!r}") from e
        if dtype not in DTYPE_SIZES:
            raise TensorFileError(f"{path}: tensor {name!r}: unknown dtype {dtype!r}")
        count = 1
        for s in shape:
            count *= s
        if not (0 <= a <= b and base + b <= size and b - a == count * DTYPE_SIZES[dtype]):
            raise TensorFileError(f"{path}: tensor {name!r}: byte range [{a}, {b}) does not fit its shape {list(shape)} "
                                  f"{dtype} or the file ({size} bytes; truncated?)")
        out[name] = TensorInfo(path, name, dtype, shape, base + a, base + b)
    return out, {str(k): str(v) for k, v in meta.items()}


def copy_bytes(path: Path, start: int, nbytes: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """The bytes [start, start + nbytes) of `path`, in chunks of at most `chunk` bytes."""
    with open(path, "rb") as f:
        f.seek(start)
        left = nbytes
        while left > 0:
            b = f.read(min(chunk, left))
            if not b:
                raise TensorFileError(f"{path}: ended {left} bytes early (truncated?)")
            left -= len(b)
            yield b


@dataclass(frozen=True)
class OutTensor:
    """One tensor to write: name, dtype, shape and a function returning its bytes as chunks."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    chunks: Callable[[], Iterable[bytes]]

    @property
    def nbytes(self) -> int:
        n = DTYPE_SIZES[self.dtype]
        for s in self.shape:
            n *= s
        return n


def write_file(path: str | Path, tensors: list[OutTensor], metadata: dict[str, str] | None = None) -> Path:
    """Write a safetensors file (tensors in the given order), streaming each tensor's chunks."""
    path = Path(path)
    header: dict[str, object] = {"__metadata__": dict(metadata or {})} if metadata else {}
    off = 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [off, off + t.nbytes]}
        off += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for t in tensors:
            got = 0
            for b in t.chunks():
                f.write(b)
                got += len(b)
            if got != t.nbytes:
                raise TensorFileError(f"{path}: tensor {t.name!r}: got {got} bytes, expected {t.nbytes}")
        f.flush()
        os.fsync(f.fileno())
    return path

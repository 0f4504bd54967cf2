"""Atomic file writes that honour the user's umask: the one place the package writes outputs.

Every writer goes through :func:`atomic_path`: the content is written to a hidden temporary file
next to the target (``.{name}.{pid}-{random}.tmp``), flushed to disk, given the mode a plain
``open`` would give (0o666 minus the umask; ``tempfile.mkstemp`` and the safetensors writer make
0o600 files, which collaborators on a shared file system cannot read), then renamed over the
target with ``os.replace``. A reader therefore sees the old file or the new one, never half of one; an
interrupted write leaves only the hidden temporary file, which nothing reads (safe to delete).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["umask", "apply_umask", "atomic_path", "write_text", "write_bytes", "write_tsv", "write_safetensors", "tmp_siblings"]


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def tmp_siblings(path: str | os.PathLike[str]) -> list[Path]:
    """Unfinished temporary files of ``path`` (left by an interrupted write)."""
    p = Path(path)
    return sorted(p.parent.glob(f".{p.name}.*.tmp")) if p.parent.is_dir() else []


def umask() -> int:
    """The process umask, read without changing it where Linux tells it (/proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not atomic, hence the above first)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    The temporary file does not exist yet when yielded: any writer can create it (``open``,
    pandas, safetensors, PyAV); its mode is then set to 0o666 minus the umask.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(target)
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def apply_umask(folder: str | os.PathLike[str]) -> None:
    """Give every file under ``folder`` the mode a plain ``open`` would (for writers such as
    ``save_pretrained`` whose safetensors files come out 0o600)."""
    mode = 0o666 & ~umask()
    for p in Path(folder).rglob("*"):
        if p.is_file() and not p.is_symlink():
            os.chmod(p, mode)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_tsv(df: Any, path: str | os.PathLike[str], **to_csv: Any) -> Path:
    """Write a pandas DataFrame as TSV (no index) atomically; ``to_csv`` adds pandas options."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, **to_csv)
    return Path(path)


def write_safetensors(path: str | os.PathLike[str], tensors: Mapping[str, Any], metadata: dict[str, str] | None = None) -> Path:
    """Save numpy arrays with ``safetensors.numpy.save_file`` atomically (no pickle)."""
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata=metadata)
    return Path(path)

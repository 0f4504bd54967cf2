"""Shard dumps of reduced model passes: one safetensors file per shard, written atomically.

Keys are `"{video_id}/{pass}/{name}"`; the header (str -> str) holds the provenance written by
`vidsme.passes.run_shard` plus the format fields checked on reading (`format`, `videos`,
`n_tensors`). No pickle anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vidsme.atomic import tmp_siblings, write_safetensors

FORMAT = "vidsme-dump/1"
Entries = dict[str, dict[str, dict[str, np.ndarray]]]


class DumpError(ValueError):
    """A dump file is missing, incomplete or not a vid-sme dump; the message names the file."""


def _check_part(what: str, s: str) -> None:
    if not isinstance(s, str) or not s or "/" in s:
        raise ValueError(f"dump {what} {s!r} must be a non-empty string without '/'")


def write_shard(path: str | Path, entries: Entries, header: dict[str, str]) -> Path:
    """Write `entries` and `header` to `path` atomically (`vidsme.atomic`)."""
    path = Path(path)
    for k, v in header.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError(f"dump header must map str to str; key {k!r} has {type(v).__name__} (JSON-encode it)")
    tensors: dict[str, np.ndarray] = {}
    for vid, passes in entries.items():
        _check_part("video id", vid)
        for pname, arrays in passes.items():
            _check_part("pass name", pname)
            for name, arr in arrays.items():
                _check_part("array name", name)
                a = np.asarray(arr)
                if a.dtype == object:
                    raise ValueError(f"dump array {vid}/{pname}/{name} has dtype object")
                tensors[f"{vid}/{pname}/{name}"] = np.ascontiguousarray(a)
    meta = dict(header)
    meta.update(format=FORMAT, videos=json.dumps(sorted(entries)), n_tensors=str(len(tensors)))
    return write_safetensors(path, tensors, meta)


def read_header(path: str | Path) -> dict[str, str]:
    """The validated header of a dump (cheap: tensors are not read)."""
    return _open(Path(path))[0]


def _open(path: Path) -> tuple[dict[str, str], list[str]]:
    from safetensors import safe_open

    if path.name.endswith(".tmp"):
        raise DumpError(f"{path}: a .tmp file is an unfinished write and is never read")
    if not path.exists():
        extra = " (an unfinished write, .tmp, is there: the run that made it did not finish)" if \
            tmp_siblings(path) else ""
        raise DumpError(f"{path}: dump not found{extra}")
    try:
        with safe_open(str(path), framework="np") as f:
            meta = dict(f.metadata() or {})
            keys = list(f.keys())
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise DumpError(f"{path}: not a readable safetensors dump (truncated or corrupt): {e}") from e
    if meta.get("format") != FORMAT:
        raise DumpError(f"{path}: header format {meta.get('format')!r} is not {FORMAT!r}")
    try:
        videos = set(json.loads(meta["videos"]))
        n = int(meta["n_tensors"])
    except (KeyError, ValueError) as e:
        raise DumpError(f"{path}: header lacks a valid 'videos'/'n_tensors' field") from e
    if n != len(keys) or {k.split("/", 1)[0] for k in keys} != videos or any(k.count("/") != 2 for k in keys):
        raise DumpError(f"{path}: tensors do not match the header (expected {n} tensors for {len(videos)} videos)")
    return meta, keys


def read_shard(path: str | Path) -> tuple[dict[str, str], Entries]:
    """Read a dump: (header, {video_id: {pass: {name: array}}}); rejects incomplete files."""
    from safetensors import safe_open

    path = Path(path)
    meta, keys = _open(path)
    entries: Entries = {v: {} for v in json.loads(meta["videos"])}
    try:
        with safe_open(str(path), framework="np") as f:
            for k in keys:
                vid, pname, name = k.split("/")
                entries[vid].setdefault(pname, {})[name] = f.get_tensor(k)
    except Exception as e:
        raise DumpError(f"{path}: could not read tensors (truncated or corrupt): {e}") from e
    return meta, entries

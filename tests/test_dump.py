"""Dump format: round trip, atomic writes, rejection of incomplete or foreign files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidsme import dump
from vidsme.dump import DumpError, read_header, read_shard, write_shard


def _entries(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        vid: {p: {"logz": rng.normal(size=7).astype(np.float32), "top": rng.integers(0, 9, (7, 3))}
              for p in ("natural", "reversed")}
        for vid in ("v1", "clip_2.mp4")
    }


def test_round_trip(tmp_path):
    e = _entries()
    path = write_shard(tmp_path / "d" / "shard0.safetensors", e, {"model_id": "m", "spec": json.dumps({"a": 1})})
    header, back = read_shard(path)
    assert header["model_id"] == "m" and json.loads(header["spec"]) == {"a": 1}
    assert set(back) == set(e)
    for vid in e:
        for p in e[vid]:
            for k, arr in e[vid][p].items():
                np.testing.assert_array_equal(back[vid][p][k], arr)
                assert back[vid][p][k].dtype == arr.dtype
    assert read_header(path)["format"] == dump.FORMAT
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["shard0.safetensors"]  # no temporary file left


def test_header_must_be_strings_and_names_clean(tmp_path):
    with pytest.raises(ValueError, match="frames"):
        write_shard(tmp_path / "a.safetensors", _entries(), {"frames": 16})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="a/b"):
        write_shard(tmp_path / "a.safetensors", {"a/b": {"natural": {"x": np.zeros(2)}}}, {})


def test_stale_tmp_and_missing_file_rejected(tmp_path):
    path = tmp_path / "s.safetensors"
    tmp = tmp_path / ".s.safetensors.123-0a1b2c3d.tmp"  # what vidsme.atomic leaves when a write is killed
    tmp.write_bytes(b"half")
    with pytest.raises(DumpError, match="unfinished"):
        read_shard(path)
    with pytest.raises(DumpError, match=r"\.tmp"):
        read_shard(tmp)


def test_truncated_file_rejected(tmp_path):
    path = write_shard(tmp_path / "s.safetensors", _entries(), {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DumpError, match="s.safetensors"):
        read_shard(path)


def test_foreign_safetensors_rejected(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "f.safetensors"
    save_file({"a/natural/x": np.zeros(3, np.float32)}, str(path), metadata={"model_id": "m"})
    with pytest.raises(DumpError, match="format"):
        read_shard(path)
    # header claims more tensors than the file holds
    save_file({"a/natural/x": np.zeros(3, np.float32)}, str(path),
              metadata={"format": dump.FORMAT, "videos": '["a"]', "n_tensors": "2"})
    with pytest.raises(DumpError, match="do not match"):
        read_shard(path)


def test_failed_write_leaves_previous_dump(tmp_path, monkeypatch):
    path = write_shard(tmp_path / "s.safetensors", _entries(0), {"run": "first"})

    def boom(*a, **k):
        raise OSError("disk full")

    import safetensors.numpy

    monkeypatch.setattr(safetensors.numpy, "save_file", boom)
    with pytest.raises(OSError):
        write_shard(path, _entries(1), {"run": "second"})
    assert read_header(path)["run"] == "first"

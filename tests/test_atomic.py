"""vidsme.atomic: outputs follow the user's umask (issue 14.7) and an interrupted write leaves the old
file intact and no temporary file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vidsme import atomic


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_umask_is_read_without_changing_it(umask: int) -> None:
    assert atomic.umask() == umask
    assert atomic.umask() == umask


def test_every_writer_follows_the_umask(umask: int, tmp_path: Path) -> None:
    want = 0o666 & ~umask  # what a plain open() gives: 0o644, 0o664, 0o600
    paths = [
        atomic.write_text(tmp_path / "a" / "t.txt", "x\n"),
        atomic.write_bytes(tmp_path / "b.bin", b"\0"),
        atomic.write_tsv(pd.DataFrame({"a": [1]}), tmp_path / "c.tsv"),
        atomic.write_safetensors(tmp_path / "d.safetensors", {"x": np.zeros(3)}, {"k": "v"}),  # safetensors alone: 0o600
    ]
    assert {p.name: _mode(p) for p in paths} == {p.name: want for p in paths}
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["b.bin", "c.tsv", "d.safetensors", "t.txt"]


def test_frames_dumps_and_tables_follow_the_umask(umask: int, tmp_path: Path) -> None:
    from vidsme.dump import write_shard
    from vidsme.frames import extract_shard
    from vidsme.qr import qr_table

    extract_shard([("gone", tmp_path / "missing.mp4")], 4, tmp_path / "f.npz", tmp_path / "f.tsv")
    write_shard(tmp_path / "d.safetensors", {"v": {"nat": {"x": np.ones(2)}}}, {})
    (tmp_path / "s.tsv").write_text("video_id\tn_decoded\tk1\tk3\tstatus\treason\na\t8\t1.0\t2.0\tok\t\nb\t8\t3.0\t1.0\tok\t\n")
    qr_table([tmp_path / "s.tsv"], tmp_path / "qr.tsv", tmp_path / "skipped.tsv")
    for name in ("f.npz", "f.tsv", "d.safetensors", "qr.tsv", "skipped.tsv"):
        assert _mode(tmp_path / name) == 0o666 & ~umask, name


def test_apply_umask_fixes_a_saved_model_folder(umask: int, tmp_path: Path) -> None:
    (tmp_path / "m" / "sub").mkdir(parents=True)
    for p in (tmp_path / "m" / "model.safetensors", tmp_path / "m" / "sub" / "x.json"):
        p.write_text("{}")
        p.chmod(0o600)
    atomic.apply_umask(tmp_path / "m")
    assert {_mode(p) for p in (tmp_path / "m").rglob("*") if p.is_file()} == {0o666 & ~umask}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = atomic.write_text(tmp_path / "out.tsv", "old\n")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            assert atomic.tmp_siblings(target) == [tmp]
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.tsv"]

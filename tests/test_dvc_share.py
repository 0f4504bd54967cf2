"""Sharing a finished run with DVC: a collaborator's clone reruns no model pass and no training,
and a changed K reruns only aggregation onward (vidsme/share.py, docs/sharing.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, copy_workflow, moving_square_clip, planned_jobs, snakemake
from test_workflow import _config, _sheet
from vidsme import share

ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONHASHSEED="0")


def run(cwd: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def dvc(cwd: Path, *args: str) -> str:
    return run(cwd, sys.executable, "-m", "dvc", *args)


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_artifact_list_names_missing_pieces(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="results/t"):
        share.artifact_paths(tmp_path, "t")
    (tmp_path / "results" / "t" / "frames").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="dumps"):
        share.artifact_paths(tmp_path, "t")
    (tmp_path / "results" / "t" / "dumps").mkdir()
    (tmp_path / "results" / "t" / "dumps.dvc").write_text("")
    with pytest.raises(FileNotFoundError, match="videos"):
        share.artifact_paths(tmp_path, "t", inputs=("videos",))
    with pytest.raises(ValueError, match="inside"):
        share.artifact_paths(tmp_path, "t", inputs=("../videos",))
    assert share.artifact_paths(tmp_path, "t") == [Path("results/t/dumps"), Path("results/t/frames"), share.SHARE]
    with pytest.raises(FileNotFoundError, match="run the workflow"):
        share.snapshot(tmp_path, [])
    with pytest.raises(FileNotFoundError, match="dvc pull"):
        share.restore(tmp_path)


def test_snapshot_and_restore_keep_metadata_and_time_order(tmp_path: Path) -> None:
    meta = tmp_path / share.METADATA
    meta.mkdir(parents=True)
    (meta / "a").write_text("1")
    (meta / "b").write_text("2")
    data = tmp_path / "results" / "t"
    data.mkdir(parents=True)
    names = ["x", "y", "z", "w"]
    for name, t in zip(names, (300, 100, 200, 100)):  # w and y written at the same time
        (data / name).write_text(name)
        os.utime(data / name, ns=(t * 10**9, t * 10**9))
    share.snapshot(tmp_path, [Path("results/t"), share.SHARE])
    for name in names:  # what a pull does: fresh times in an unrelated order
        os.utime(data / name, ns=(time.time_ns(),) * 2)
    (data / "y").unlink()  # not pulled: skipped
    (meta / "a").unlink()
    (tmp_path / share.SNAPSHOT / "b").chmod(0o444)  # DVC may check out read-only links
    before = time.time_ns()
    records, timed = share.restore(tmp_path)
    assert records == 2 and timed == 4  # x, z, w and the folder
    assert (meta / "a").read_text() == "1" and os.access(meta / "b", os.W_OK)
    t = {n: (data / n).stat().st_mtime_ns for n in ("x", "z", "w")}
    assert t["w"] < t["z"] < t["x"] and all(v >= before - 10 * share.STEP_NS for v in t.values())


def test_dvc_add_refuses_git_ignored_dvc_files(tmp_path: Path) -> None:
    run(tmp_path, "git", "init", "-q")
    (tmp_path / ".gitignore").write_text("/results/*\n")
    (tmp_path / "results" / "t" / "dumps").mkdir(parents=True)
    (tmp_path / share.METADATA).mkdir(parents=True)
    with pytest.raises(RuntimeError, match=r"results/t/dumps\.dvc"):
        share.dvc_add(tmp_path, "t")
    assert not (tmp_path / share.SHARE).exists()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A producer repo that ran the tiny workflow and pushed it, and a consumer clone that pulled it."""
    base = tmp_path_factory.mktemp("dvc")
    prod = copy_workflow(base / "producer")
    shutil.copy2(ROOT / ".gitignore", prod / ".gitignore")
    (prod / "videos").mkdir()
    for i in range(8):
        moving_square_clip(prod / "videos" / f"v{i:05d}.mp4", speed=0.5 + i, flicker=0.05 * (i % 3), seed=i)
    _sheet(prod / "sheet.tsv", 8)
    _config(prod)
    run(prod, "git", "init", "-q")
    run(prod, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init")
    snakemake(prod, "--cores", "2", "--configfile", "test.yaml")

    remote = base / "remote"
    dvc(prod, "init", "-q")
    dvc(prod, "config", "core.analytics", "false")
    dvc(prod, "remote", "add", "-d", "local", str(remote))
    t0 = time.monotonic()
    run(prod, sys.executable, "-m", "vidsme.share", "add", "-e", "test", "-i", "videos")
    run(prod, "git", "add", "-A")
    run(prod, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "results of the tiny run")
    dvc(prod, "push", "-q")
    t_push = time.monotonic() - t0

    cons = base / "consumer"
    run(base, "git", "clone", "-q", str(prod), str(cons))
    assert not (cons / "results" / "test" / "dumps").exists() and not (cons / ".snakemake").exists()
    t0 = time.monotonic()
    dvc(cons, "pull", "-q")
    run(cons, sys.executable, "-m", "vidsme.share", "restore")
    t_pull = time.monotonic() - t0
    print(f"\nDVC: remote {du(remote) / 1e6:.2f} MB ({du(prod / 'results' / 'test' / 'dumps') / 1e6:.2f} MB dumps), "
          f"add+commit+push {t_push:.1f} s, pull+restore {t_pull:.1f} s")
    return prod, cons


@pytest.mark.slow
def test_consumer_reruns_no_model_pass_and_no_training(shared: tuple[Path, Path]) -> None:
    prod, cons = shared
    git_files = run(prod, "git", "ls-files").split()
    assert "results/test/dumps.dvc" in git_files and "share.dvc" in git_files and "videos.dvc" in git_files
    assert not any(f.endswith(".safetensors") for f in git_files)  # the data lives in DVC, not git
    dumps = sorted(p.relative_to(cons) for p in (cons / "results" / "test" / "dumps").rglob("*.safetensors"))
    assert len(dumps) == 2 and all((cons / d).read_bytes() == (prod / d).read_bytes() for d in dumps)
    out = snakemake(cons, "-n", "--configfile", "test.yaml").stdout
    assert planned_jobs(out) == {}, out[-3000:]
    # as if every file were big (> --max-checksum-file-size, no checksum): the restored time order decides
    out = snakemake(cons, "-n", "--configfile", "test.yaml", "--max-checksum-file-size", "0").stdout
    assert planned_jobs(out) == {}, out[-3000:]


@pytest.mark.slow
def test_consumer_k_change_reruns_aggregation_onward_only(shared: tuple[Path, Path]) -> None:
    _, cons = shared
    _config(cons, scoring={"k_grid": [0.0, 0.1, 0.2, 1.0]})  # main_k (0.1) stays in the grid
    jobs = planned_jobs(snakemake(cons, "-n", "--configfile", "test.yaml", "--max-checksum-file-size", "0").stdout)
    assert {"aggregate", "metrics", "tables"} <= set(jobs)
    assert not {"extract_frames", "video_stats", "adaptive_qr", "model_pass", "position_series", "tiny_target", "train_target"} & set(jobs)

"""Cluster profiles: dry runs that always run, and the tiny workflow on a real single-node SLURM.

The real run needs SLURM (`bash .ci/slurm.sh install`, root on Debian/Ubuntu); the fixture starts
it with `.ci/slurm.sh start` and skips with that script's own message when it cannot.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_workflow, moving_square_clip, planned_jobs, snakemake
from test_workflow import _config, _sheet

SLURM_SH = ROOT / ".ci" / "slurm.sh"


def _workdir(tmp: Path, videos: bool = False) -> Path:
    wd = copy_workflow(tmp / "wf")
    shutil.copytree(ROOT / "profiles", wd / "profiles", dirs_exist_ok=True)  # (copy_workflow copies it too)
    _sheet(wd / "sheet.tsv", 8)
    _config(wd)
    if videos:
        (wd / "videos").mkdir()
        for i in range(8):
            moving_square_clip(wd / "videos" / f"v{i:05d}.mp4", speed=0.5 + i, flicker=0.05 * (i % 3), seed=i)
    return wd


def job_resources(dry_run_output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) for every job printed by a dry run."""
    jobs = []
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", dry_run_output):
        m = re.match(r"\s*(?:local)?rule (\w+):", block)
        r = re.search(r"^\s+resources: (.*)$", block, re.M)
        if m and r:
            jobs.append((m.group(1), dict(kv.split("=", 1) for kv in r.group(1).split(", "))))
    return jobs


def test_slurm_profile_plans_gpu_only_for_model_pass(tmp_path: Path) -> None:
    wd = _workdir(tmp_path)
    out = snakemake(wd, "-n", "--profile", "profiles/slurm", "--configfile", "test.yaml").stdout
    assert planned_jobs(out)["model_pass"] == 2
    jobs = job_resources(out)
    assert {rule for rule, _ in jobs} >= {"extract_frames", "model_pass", "aggregate", "tables"}
    for rule, res in jobs:
        if rule == "model_pass":
            assert res.get("gpu") == "1", res
            assert int(res["mem_mb"]) >= 8000 and int(res["runtime"]) >= 120
        else:
            assert res.get("gpu", "0") == "0" and "gres" not in res, (rule, res)
            assert "mem_mb" in res and "runtime" in res, (rule, res)


def test_local_profile_plans_the_workflow(tmp_path: Path) -> None:
    wd = _workdir(tmp_path)
    profile = yaml.safe_load((wd / "profiles" / "local" / "config.yaml").read_text())
    assert profile["rerun-incomplete"] is True and profile["keep-going"] is False
    out = snakemake(wd, "-n", "--profile", "profiles/local", "--configfile", "test.yaml").stdout
    assert planned_jobs(out)["model_pass"] == 2


def _slurm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SLURM_SH), *args], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node SLURM; stopped afterwards if this fixture started it."""
    was_up = shutil.which("sinfo") is not None and subprocess.run(["sinfo"], capture_output=True).returncode == 0
    if not was_up:
        started = _slurm("start")
        if started.returncode != 0:
            why = (started.stderr.strip() or started.stdout.strip()).splitlines()
            pytest.skip(f"no SLURM: sinfo {'fails' if shutil.which('sinfo') else 'not found'} and "
                        f".ci/slurm.sh start failed: {why[-1] if why else started.returncode}")
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    cluster = re.search(r"ClusterName\s*=\s*(\S+)", config)
    if not cluster or cluster.group(1) != "vidsme":  # never submit test jobs to a real site cluster
        pytest.skip(f"SLURM cluster {cluster.group(1) if cluster else '?'} is not the throwaway one from .ci/slurm.sh")
    yield
    if not was_up:
        _slurm("stop")


def _site_profile(wd: Path, partition: str) -> Path:
    """profiles/slurm with its placeholders filled in for the local test cluster."""
    prof = yaml.safe_load((wd / "profiles" / "slurm" / "config.yaml").read_text())
    prof["default-resources"]["slurm_partition"] = partition
    prof["set-resources"]["model_pass"]["mem_mb"] = 4000  # the test node is small
    prof.update({
        "slurm-no-account": True,
        "slurm-status-command": "squeue",  # no accounting database (slurmdbd) on the test node
        "slurm-init-seconds-before-status-checks": 2,
        "latency-wait": 5,
        "keep-going": False,
    })
    site = wd / "profiles" / "site"
    site.mkdir()
    (site / "config.yaml").write_text(yaml.safe_dump(prof))
    return site


def _slurm_jobs(wd: Path) -> list[dict[str, str]]:
    """Jobs the controller still knows about (MinJobAge 600 s) that ran in ``wd``."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True).stdout
    jobs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.strip()]
    return [j for j in jobs if j.get("WorkDir") == str(wd)]


@pytest.mark.slow
def test_tiny_workflow_runs_through_slurm(slurm_cluster, tmp_path: Path) -> None:
    wd = _workdir(tmp_path, videos=True)
    partition = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()[0].rstrip("*")
    _site_profile(wd, partition)
    start = time.monotonic()
    snakemake(wd, "--profile", "profiles/site", "--configfile", "test.yaml", timeout=600)
    elapsed = time.monotonic() - start
    res = wd / "results" / "test"
    assert "AUC" in (res / "tables" / "main.md").read_text()
    assert (res / "figures" / "roc.png").stat().st_size > 1000 and (res / "provenance.json").is_file()

    jobs = _slurm_jobs(wd)
    # the comment names the rule (or the group: "tail" bundles aggregation to tables, see the profile)
    rules = ["tail" if j["Comment"].startswith("rule_tail_") else re.sub(r"^rule_(\w+?)(_wildcards_.*)?$", r"\1", j["Comment"]) for j in jobs]
    assert {"samples", "tiny_target", "extract_frames", "video_stats", "adaptive_qr", "model_pass", "position_series", "tail"} <= set(rules), rules
    # one "tail" job per scored slice: video positions and answer tokens (on in config/config.yaml)
    assert rules.count("model_pass") == rules.count("extract_frames") == 2 and rules.count("tail") == 2, rules
    assert all(j["JobState"] == "COMPLETED" and j["Partition"] == partition for j in jobs), jobs
    assert len({j["JobName"] for j in jobs}) == 1  # one workflow run
    for rule, job in zip(rules, jobs):
        asks_gpu = "gpu" in job.get("TresPerJob", "") + job.get("TresPerNode", "")
        assert asks_gpu == (rule == "model_pass"), (rule, job)
    print(f"SLURM run: {len(jobs)} sbatch jobs in {elapsed:.0f} s")

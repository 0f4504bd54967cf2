"""Shared fixtures: a copy of the workflow in a temp folder and a Snakemake runner."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # benchmarks/fastpath.py: the tests' independent cross-check of PassStats
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config", "report", "profiles", "requirements.lock", ".test")


def pytest_collection_modifyitems(config, items):
    """GPU tests are skipped, with the reason shown, when no CUDA device is present."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An untrained tiny model of every family, saved like a hub checkpoint (shared by the model tests)."""
    from vidsme.tiny import FAMILIES, build_tiny

    root = tmp_path_factory.mktemp("tiny")
    return {f: build_tiny(f, root / f) for f in FAMILIES}


@pytest.fixture(scope="session")
def loaded(tiny_dirs: dict[str, Path]) -> dict:
    """The tiny models loaded through the one loading path (tests must not modify them in place)."""
    from vidsme.models import load_model

    return {f: load_model({"id": str(d)}) for f, d in tiny_dirs.items()}


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not results) into ``dest`` so a test runs in isolation."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(wd: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run Snakemake in ``wd`` with this interpreter; the package is found through PYTHONPATH."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=wd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table (empty when nothing is to be done)."""
    m = re.search(r"Job stats:\n(.*?)\ntotal\s+\d+", output, re.S)
    if not m:
        return {}
    jobs = {}
    for line in m.group(1).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            jobs[parts[0]] = int(parts[1])
    return jobs


def moving_square_clip(path: Path, n: int = 24, size: int = 48, speed: float = 1.0, flicker: float = 0.0, seed: int = 0) -> Path:
    """A small mp4: a bright square moving over a texture, optional brightness flicker."""
    import av

    rng = np.random.default_rng(seed)
    bg = rng.integers(40, 120, (size, size, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=8, options={"crf": "18"})
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for i in range(n):
            f = bg.copy()
            x = int(4 + speed * i) % (size - 10)
            f[10:20, x : x + 10] = 230
            if flicker:
                f = np.clip(f.astype(float) * (1 + flicker * (-1) ** i), 0, 255).astype(np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path

"""Benchmark: dry run (`snakemake -n`) of the whole DAG for a generated 10,000-video sample sheet.

Run on demand: `python benchmarks/bench_dag.py [--videos 10000] [--shard-size 64] [--out FILE]`.
Prints the wall and CPU time of the dry run (and the 1-minute load average before it: the machine may
be shared) and the number of planned jobs, in total and per rule; writes `--out` (default benchmarks/out/dag.json).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import copy_workflow, planned_jobs, snakemake  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--shard-size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "dag.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wd = copy_workflow(Path(tmp) / "wf")
        rows = "".join(f"v{i:06d}\tvideos/v{i:06d}.mp4\t{i % 2}\n" for i in range(a.videos))
        (wd / "sheet.tsv").write_text("video_id\tpath\tlabel\n" + rows)
        (wd / "b.yaml").write_text(
            f"experiment: bench\ndataset: {{kind: sheet, samples: sheet.tsv, shard_size: {a.shard_size}}}\nmodel: {{source: tiny}}\n"
            "scoring: {answer_slice: {enabled: false}}\n"  # the sheet has no questions (checked at parse time)
        )
        load = os.getloadavg()[0]
        c0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        out = snakemake(wd, "-n", "--configfile", "b.yaml")
        dt, c1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    jobs = planned_jobs(out.stdout)
    res = {"videos": a.videos, "shard_size": a.shard_size, "dry_run_s": round(dt, 2),
           "dry_run_cpu_s": round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 2), "loadavg_1m": round(load, 2), "jobs": sum(jobs.values()), "jobs_by_rule": jobs}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()

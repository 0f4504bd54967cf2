"""Where a workflow run's time went: per rule, the jobs, wall seconds, CPU seconds and peak memory
from Snakemake's `benchmark:` files (benchmarks/out/{experiment}/), plus the run's wall time.

    python benchmarks/run_summary.py -c config/config.yaml --wall 412 [--out FILE]

`make reproduce` calls it with the measured wall time of the Snakemake command; it writes
benchmarks/out/{experiment}/run_summary.json (copy it to results/expected/benchmarks/ to cite it).
Summed job seconds exceed the wall time when jobs run in parallel.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def summarise(bench_dir: Path, wall: float | None = None, not_after: float | None = None) -> dict:
    """Per rule (first folder under `bench_dir`, or the file's stem): jobs, wall s, CPU s, max RSS MB.
    `not_after` (a time stamp): ignore benchmark files written later (a later run's jobs)."""
    rules: dict[str, dict[str, float]] = {}
    for f in sorted(bench_dir.rglob("*.tsv")):
        if not_after is not None and f.stat().st_mtime > not_after:
            continue
        rel = f.relative_to(bench_dir)
        rule = rel.parts[0] if len(rel.parts) > 1 else f.stem
        try:
            t = pd.read_csv(f, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if t.empty or "s" not in t:
            continue
        r = rules.setdefault(rule, {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0, "max_rss_mb": 0.0})
        r["jobs"] += 1
        r["wall_s"] += float(t["s"].iloc[-1])
        r["cpu_s"] += float(pd.to_numeric(t.get("cpu_time", pd.Series([0.0])), errors="coerce").fillna(0).iloc[-1])
        r["max_rss_mb"] = max(r["max_rss_mb"], float(pd.to_numeric(t.get("max_rss", pd.Series([0.0])), errors="coerce").fillna(0).iloc[-1]))
    for r in rules.values():
        r["wall_s"], r["cpu_s"], r["max_rss_mb"] = round(r["wall_s"], 1), round(r["cpu_s"], 1), round(r["max_rss_mb"], 0)
    out = {"rules": dict(sorted(rules.items(), key=lambda kv: -kv[1]["wall_s"])),
           "jobs_with_benchmark": sum(int(r["jobs"]) for r in rules.values()),
           "cpu_s_total": round(sum(r["cpu_s"] for r in rules.values()), 1),
           "cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}
    if wall is not None:
        out["wall_s"] = round(float(wall), 1)
    return out


if __name__ == "__main__":
    from vidsme.check import _experiment_of

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--configfile", default=None)
    ap.add_argument("-e", "--experiment", default=None)
    ap.add_argument("--wall", type=float, default=None, help="wall time of the run, seconds")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="the workflow's folder (default: here)")
    ap.add_argument("--not-after", type=Path, default=None, help="ignore benchmark files newer than this file")
    a = ap.parse_args()
    exp = a.experiment or _experiment_of(a.configfile)
    bench = a.root / "benchmarks" / "out" / exp
    if not bench.is_dir():
        sys.exit(f"{bench}: no benchmark files (run the workflow first)")
    s = {"experiment": exp, **summarise(bench, a.wall, a.not_after.stat().st_mtime if a.not_after else None)}
    out = a.out or bench / "run_summary.json"
    out.write_text(json.dumps(s, indent=1) + "\n")
    top = ", ".join(f"{k} {v['wall_s']:.0f} s" for k, v in list(s["rules"].items())[:4])
    print(f"{exp}: {s.get('wall_s', '?')} s wall; longest rules (summed job time): {top}; {out}")
    print(f"Tables: results/{exp}/tables/  Figures: results/{exp}/figures/  README of outputs: results/README.md")

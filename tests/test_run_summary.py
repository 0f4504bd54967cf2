"""benchmarks/run_summary.py: per-rule time and memory of a run from Snakemake's benchmark files."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _load():
    spec = importlib.util.spec_from_file_location("run_summary", ROOT / "benchmarks" / "run_summary.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sums_jobs_per_rule_and_keeps_the_peak_memory(tmp_path: Path) -> None:
    (tmp_path / "model_pass" / "F16").mkdir(parents=True)
    (tmp_path / "model_pass" / "F16" / "shard0000.tsv").write_text(HEADER + "10.5\t0:00:10\t800\t0\t0\t0\t0\t0\t90\t9.0\n")
    (tmp_path / "model_pass" / "F16" / "shard0001.tsv").write_text(HEADER + "4.5\t0:00:04\t1200\t0\t0\t0\t0\t0\t90\t4.0\n")
    (tmp_path / "embedded_data.tsv").write_text(HEADER + "2.0\t0:00:02\t300\t0\t0\t0\t0\t0\t50\t1.5\n")
    (tmp_path / "broken.tsv").write_text("")  # a job killed before it wrote its record: ignored
    s = _load().summarise(tmp_path, wall=30)
    assert s["rules"]["model_pass"] == {"jobs": 2, "wall_s": 15.0, "cpu_s": 13.0, "max_rss_mb": 1200.0}
    assert s["rules"]["embedded_data"]["jobs"] == 1 and list(s["rules"]) == ["model_pass", "embedded_data"]
    assert s["jobs_with_benchmark"] == 3 and s["wall_s"] == 30.0 and s["cpu_s_total"] == 14.5
    import os
    os.utime(tmp_path / "embedded_data.tsv", (2e9, 2e9))  # written after the run: a later run's job
    assert "embedded_data" not in _load().summarise(tmp_path, not_after=1.9e9)["rules"]


def test_cli_names_a_missing_run(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_summary.py"), "-e", "no_such_exp"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode != 0 and "no_such_exp: no benchmark files" in out.stderr
    assert not json.dumps(out.stdout).count("wall")

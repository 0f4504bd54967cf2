"""Run every benchmark (on demand, not in the test suite); each writes JSON to benchmarks/out/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    quick = ["--quick"] if "--quick" in sys.argv else []
    failed = []
    for bench in sorted(HERE.glob("bench_*.py")):
        print(f"== {bench.name}", flush=True)
        args = quick if bench.name != "bench_dag.py" else []
        if subprocess.run([sys.executable, str(bench), *args]).returncode:
            failed.append(bench.name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")

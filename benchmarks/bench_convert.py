"""Benchmark of the LongVA converter's memory: a 7B-shaped checkpoint converts in bounded memory.

Run on demand: ``python benchmarks/bench_convert.py [--quick] [--workdir DIR]``.

Writes a random-weight checkpoint in the LongVA layout at LongVA-7B's width (Qwen2 hidden 3584,
intermediate 18944, 28 heads / 4 KV heads, vocabulary 152,064 rows for a 151,646-token tokenizer,
bfloat16; CLIP-L/14-336 width: hidden 1024, 576 patches) but reduced depth (2 language and 2
vision layers; ``--quick``: 1 and 1), in shards of at most 2 GB, then converts it with
``vidsme.longva.convert`` in a child process and reads that child's peak resident memory
(``ru_maxrss``). A second child that only imports the same modules gives the baseline; the bar
is peak <= largest shard + 2 GB. Both checkpoints (~3 GB each) live in ``--workdir`` (default:
a temporary folder, removed). Writes ``benchmarks/out/convert.json`` (``convert_quick.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vidsme.longva_synth import SEVEN_B_LAYERS, write_longva_checkpoint  # noqa: E402

CHILD = """
import sys, time, resource
sys.path.insert(0, {root!r})
import transformers, torch  # noqa: F401  (the converter imports them too)
from vidsme import longva
t0 = time.perf_counter()
if {convert!r}:
    longva.convert({src!r}, {dst!r})
print(time.perf_counter() - t0)
"""


def child(src: Path, dst: Path, convert: bool) -> tuple[float, int]:
    """(seconds, peak RSS bytes) of a fresh process that imports the converter and maybe converts."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), src=str(src), dst=str(dst), convert=convert)],
                         check=True, capture_output=True, text=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux: max over children so far
    if peak <= before and convert:
        raise RuntimeError("could not read the child's peak RSS (a previous child was larger)")
    return float(out.stdout.strip().splitlines()[-1]), peak * 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 language and 1 vision layer")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    sizes = dataclasses.replace(SEVEN_B_LAYERS, num_layers=1, vision_layers=1) if a.quick else SEVEN_B_LAYERS
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench-convert-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        src = write_longva_checkpoint(work / "src", sizes, seed=0)
        t_write = time.perf_counter() - t0
        shards = {p.name: p.stat().st_size for p in src.glob("*.safetensors")}
        # the baseline runs first: RUSAGE_CHILDREN keeps the largest child so far
        _, base = child(src, work / "unused", convert=False)
        secs, peak = child(src, work / "dst", convert=True)
        out_bytes = sum(p.stat().st_size for p in (work / "dst").glob("*.safetensors"))
        largest = max(shards.values())
        res = {
            "sizes": dataclasses.asdict(sizes), "source_shards_bytes": shards, "source_total_bytes": sum(shards.values()),
            "output_total_bytes": out_bytes, "write_source_s": round(t_write, 1), "convert_s": round(secs, 1),
            "peak_rss_bytes": peak, "baseline_rss_bytes": base, "extra_over_baseline_bytes": peak - base,
            "largest_shard_bytes": largest, "peak_minus_largest_shard_bytes": peak - largest,
            "bar": "peak_rss <= largest_shard + 2 GB", "bar_met": peak <= largest + 2 * 10**9,
        }
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "benchmarks" / "out" / ("convert_quick.json" if a.quick else "convert.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0 if res["bar_met"] else 1


if __name__ == "__main__":
    sys.exit(main())

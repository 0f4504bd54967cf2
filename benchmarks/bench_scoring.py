"""Benchmark the per-position scoring at the paper's scale, all methods side by side in ONE process.

Run on demand: `python benchmarks/bench_scoring.py [--quick] [--compile] [--positions 2304] [--vocab 152064]`.
Random-but-realistic float32 logits (shared token preferences + per-position noise, a third of the
positions sharply peaked) for two passes (natural, reversed), torch threads = 2. Methods:

- `released_loop`: the released code's structure: a per-position Python loop in float64 over the full
  vocabulary computing its per-position quantities (entropies, Renyi, gap, modified entropies, SME);
  timed on `--subset` positions per pass and extrapolated (the full loop is too slow on CPU);
- `floor`: one `torch.logsumexp` over the same logits (one exp per element: the floor);
- `fast_eager` / `fast_compiled`: `position_quantities` (every per-position quantity, one (q, r));
- `reduce_f64` / `reduce_f32` (eager, subset + extrapolation) and `reduce_f32_compiled` (full): the dump.

Each method runs once per pass after a warm-up on a few rows (compile time reported separately); wall
and CPU seconds (this process, all threads: steadier on a shared machine) both give a ratio to the floor.
Peak extra memory: the process's RSS high-water mark is reset (/proc/self/clear_refs) before each
method and read after it (VmHWM - VmRSS before). Writes benchmarks/out/scoring.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastpath import position_quantities  # noqa: E402
from vidsme.reduce import ReduceSpec, reduce_logits  # noqa: E402
from vidsme.sme import sme_reference  # noqa: E402


def make_logits(p: int, v: int, seed: int) -> torch.Tensor:
    """Shared preferences (Zipf-ish scale) + noise; every third position gets one dominant token."""
    g = torch.Generator().manual_seed(seed)
    pref = -1.2 * torch.log(torch.arange(1, v + 1, dtype=torch.float32))[torch.randperm(v, generator=g)]
    x = torch.randn(p, v, generator=g, dtype=torch.float32).mul_(1.5).add_(pref)
    rows = torch.arange(0, p, 3)
    x[rows, torch.randint(0, v, (len(rows),), generator=g)] += 25.0
    return x


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return -1


def measure(fn: Callable[[], Any]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, peak extra bytes above the RSS at the start)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        base = _status("VmRSS")
    except OSError:
        base = -1
    t, c = time.perf_counter(), time.process_time()
    fn()
    dt, dc = time.perf_counter() - t, time.process_time() - c
    peak = _status("VmHWM") - base if base >= 0 else math.nan
    return dt, dc, float(peak)


def released_loop(logits: torch.Tensor, q: float, r: float) -> None:
    """Per-position float64 loop over the full vocabulary, like the released evaluation script."""
    probs = torch.softmax(logits, -1)
    logp = torch.log_softmax(logits, -1)
    for i in range(logits.shape[0]):
        p = probs[i].to(torch.float64)
        lp = logp[i].to(torch.float64)
        ps = p.clamp(1e-10, 1 - 1e-10)
        _ = -(p * lp).sum().item()
        _ = 2.0 * torch.log(torch.sum(ps**0.5)).item()
        _ = -torch.log(torch.sum(ps**2)).item()
        mx = lp.max().item()
        _ = mx - lp[lp != lp.max()].max().item()
        y = int(lp.argmax())
        py = ps[y].item()
        _ = (-(1 - py) * math.log(py) - (p * torch.log(1 - ps)).sum().item() + py * math.log(1 - py))
        rest = torch.cat((ps[:y], ps[y + 1:]))
        for a in (0.5, 2.0):
            b = abs(1 - a)
            _ = -(1 / b) * ((1 - py) * py**b - (1 - py) + torch.sum(rest * (1 - rest) ** b) - torch.sum(rest)).item()
        _ = sme_reference(p, q, r, logits=False).item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--compile", action="store_true", help="also time the torch.compile'd kernels")
    ap.add_argument("--positions", type=int, default=2304)
    ap.add_argument("--vocab", type=int, default=152_064)
    ap.add_argument("--subset", type=int, default=16, help="positions per pass for the slow methods")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "scoring.json")
    a = ap.parse_args()
    if a.quick:
        a.positions, a.vocab, a.subset = 48, 4096, 8
    torch.set_num_threads(2)
    load = os.getloadavg()[0]  # the machine may be shared: recorded with the results
    q, r = 1.37, 1.06
    passes = {"nat": make_logits(a.positions, a.vocab, 0), "rev": make_logits(a.positions, a.vocab, 1)}
    p, v, sub = a.positions, a.vocab, min(a.subset, a.positions)
    f32 = ReduceSpec(compute_dtype="float32")
    methods: dict[str, tuple[Callable[[torch.Tensor], Any], bool]] = {  # name: (fn(logits), on a subset?)
        "floor": (lambda x: torch.logsumexp(x, -1), False),
        "released_loop": (lambda x: released_loop(x, q, r), True),
        "fast_eager": (lambda x: position_quantities(x, q, r), False),
        "reduce_f64": (lambda x: reduce_logits(x, ReduceSpec()), True),
        "reduce_f32": (lambda x: reduce_logits(x, f32), True),
    }
    compile_s: dict[str, float] = {}
    if a.compile:
        methods["fast_compiled"] = (lambda x: position_quantities(x, q, r, compile=True), False)
        methods["reduce_f32_compiled"] = (lambda x: reduce_logits(x, f32, compile=True), False)
        warm = passes["nat"][:min(128, p)].contiguous()  # one compiled chunk (the default compiled chunk size)
        for name, kw in (("fast_compiled", {}), ("reduce_f32_compiled", {})):
            t = time.perf_counter()
            methods[name][0](warm)
            compile_s[name] = time.perf_counter() - t
    for name, (fn, _) in methods.items():  # warm-up (allocator, kernels) on a few rows
        if "compiled" not in name:  # (compiled ones warmed up above: a new shape would recompile)
            fn(passes["nat"][:4].contiguous())
    res: dict[str, dict[str, float]] = {}
    for name, (fn, on_subset) in methods.items():
        secs, cpu, peak = 0.0, 0.0, 0.0
        for x in passes.values():
            xs = x[:sub].contiguous() if on_subset else x
            dt, dc, pk = measure(lambda: fn(xs))
            secs += dt * (p / sub if on_subset else 1.0)
            cpu += dc * (p / sub if on_subset else 1.0)
            peak = max(peak, pk)
        res[name] = {"seconds_both_passes": secs, "cpu_seconds_both_passes": cpu, "peak_extra_bytes": peak,
                     "extrapolated_from": sub if on_subset else p}
    floor, floor_cpu = res["floor"]["seconds_both_passes"], res["floor"]["cpu_seconds_both_passes"]
    for d in res.values():
        d["ratio_vs_floor"] = d["seconds_both_passes"] / floor
        d["cpu_ratio_vs_floor"] = d["cpu_seconds_both_passes"] / floor_cpu
    spec = ReduceSpec()
    d = reduce_logits(passes["nat"][:4], spec)
    per_pos = sum(t.element_size() * t[0].numel() for k, t in d.items() if k not in ("mean_probs", "tail_nodes"))
    dump_bytes = p * per_pos + v * 4 + spec.n_nodes * 8
    out = {"positions": p, "vocab": v, "threads": 2, "q": q, "r": r, "loadavg_1m": round(load, 2), "methods": res,
           "compile_seconds": compile_s, "dump_bytes_per_pass": dump_bytes,
           "dump_bytes_per_position": per_pos, "logits_bytes_per_pass": p * v * 4, "reduce_spec": spec.to_dict()}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    print(f"{p} positions x {v} vocab, 2 passes, float32 logits ({p * v * 4 / 1e9:.2f} GB per pass)")
    print(f"{'method':22s} {'seconds':>10s} {'x floor':>8s} {'CPU x floor':>12s} {'peak extra MB':>14s}  note")
    for name, d in res.items():
        note = f"extrapolated from {d['extrapolated_from']} positions/pass" if d["extrapolated_from"] != p else ""
        print(f"{name:22s} {d['seconds_both_passes']:10.2f} {d['ratio_vs_floor']:8.2f} {d['cpu_ratio_vs_floor']:12.2f} "
              f"{d['peak_extra_bytes'] / 1e6:14.1f}  {note}")
    if compile_s:
        print("compile seconds:", {k: round(s, 1) for k, s in compile_s.items()})
    print(f"dump per pass: {dump_bytes / 1e6:.2f} MB ({per_pos} B/position + mean probs {v * 4 / 1e6:.2f} MB)")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

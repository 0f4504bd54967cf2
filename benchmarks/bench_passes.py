"""Benchmark the model passes: batching of orders, scored-rows-only lm_head, where the reduction runs.

Run on demand: `python benchmarks/bench_passes.py [--quick] [--device cpu|cuda] [--vocab 32000]`.
A tiny LLaVA-NeXT-Video (padded to a realistic vocabulary) runs both passes of one video under:

- `batched`  : natural + reversed as one batch of 2, lm_head on scored rows, reduce on device (default);
- `separate` : the two orders as two batch-1 forwards;
- `full`     : lm_head on every position, scored rows sliced afterwards;
- `host`     : logits moved to the host and reduced there;
- `answer`   : `batched` plus the answer slice (untruncated prompt, a short answer + eos appended and
               reduced too), the embedded default's setting;
- `companion`: `answer` as a reference model's passes: the target (a second model of the same size)
               runs on the same inputs and the exact cross terms are reduced too (`ratios` gives it
               against `batched`; divide by the `answer` ratio for the cost over a plain reference pass).

Reports median wall time per video (both passes, forward + reduce; and forward alone), variants
interleaved within each repeat so that a shared CPU slows them alike, and the peak memory of one
video's passes above the loaded model, measured in a fresh subprocess per variant (CPU: peak RSS;
CUDA: `max_memory_allocated`), plus the bytes of full logits vs the reduced arrays.
Writes benchmarks/out/passes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = {"system": "Carefully watch this video and pay attention to every detail.", "text": "Describe the video."}
THREADS = 0  # torch CPU threads (0: torch default); set by --threads, passed to the workers by environment
VARIANTS = {
    "batched": dict(batch_orders=True, full_logits=False, reduce_on_host=False),
    "separate": dict(batch_orders=False, full_logits=False, reduce_on_host=False),
    "full": dict(batch_orders=True, full_logits=True, reduce_on_host=False),
    "host": dict(batch_orders=True, full_logits=False, reduce_on_host=True),
    "answer": dict(batch_orders=True, full_logits=False, reduce_on_host=False, answer="(B) the red circle moves left",
                   append_eos=True),
    "companion": dict(batch_orders=True, full_logits=False, reduce_on_host=False, answer="(B) the red circle moves left",
                      append_eos=True, companion=True),
}


def _with_companion(kw: dict, model_dir: str, device: str) -> dict:
    """The variant's keyword arguments, `companion=True` replaced by a second loaded model."""
    from vidsme.models import load_model

    kw = dict(kw)
    if kw.pop("companion", False):
        kw["companion"] = load_model({"id": model_dir, "device": device, "dtype": "float32"})
    return kw


def _rss_mib() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20


def _setup(model_dir: str, device: str, frames: int, size: int):
    import numpy as np
    import torch

    from vidsme.models import load_model

    torch.manual_seed(0)
    if THREADS:
        torch.set_num_threads(THREADS)
    lm = load_model({"id": model_dir, "device": device, "dtype": "float32"})
    fr = np.random.default_rng(0).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    return lm, fr, sync


def _forward_only(lm, fr, kw) -> None:
    import torch

    from vidsme.models import append_answer, build_inputs
    from vidsme.passes import forward_scored

    answer = kw.get("answer")
    with torch.inference_mode():
        groups = [[fr, fr[::-1].copy()]] if kw["batch_orders"] else [[fr], [fr[::-1].copy()]]
        for g in groups:
            inputs, pos = build_inputs(lm, g, PROMPT, truncate=answer is None)
            if answer is not None:
                inputs, _, ans_pos = append_answer(lm, inputs, answer, eos=kw["append_eos"])
                pos = torch.cat([pos, ans_pos])
            lg = forward_scored(lm, inputs, pos, full_logits=kw["full_logits"])
            if kw.get("companion") is not None:
                forward_scored(kw["companion"], inputs, pos, full_logits=kw["full_logits"])
            if kw["reduce_on_host"]:
                lg.cpu()


def peak_worker(model_dir: str, device: str, variant: str, frames: int, size: int) -> dict:
    """Peak memory of one video's passes above the loaded model (run in a fresh process)."""
    import torch

    from vidsme.passes import video_passes
    from vidsme.reduce import ReduceSpec

    lm, fr, sync = _setup(model_dir, device, frames, size)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    kw = _with_companion(VARIANTS[variant], model_dir, device)
    base_rss = _rss_mib()
    ent, scored, _ = video_passes(lm, fr, PROMPT, ReduceSpec(), **kw)
    sync()
    peak = ((torch.cuda.max_memory_allocated() - base) / 2**20 if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_rss)
    vocab = lm.model.config.text_config.vocab_size
    return {"variant": variant, "peak_mib": round(float(peak), 1), "positions": int(scored.numel()), "vocab": vocab,
            "full_logits_mib": round(2 * scored.numel() * vocab * 4 / 2**20, 2),
            "reduced_mib": round(sum(a.nbytes for p in ent.values() for a in p.values()) / 2**20, 3)}


def timings(model_dir: str, device: str, frames: int, size: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median times per variant, variants interleaved in each repeat (fair under a shared CPU)."""
    import numpy as np

    from vidsme.passes import video_passes
    from vidsme.reduce import ReduceSpec

    lm, fr, sync = _setup(model_dir, device, frames, size)
    spec = ReduceSpec()
    variants = {v: _with_companion(kw, model_dir, device) for v, kw in VARIANTS.items()}
    tot: dict[str, list[float]] = {v: [] for v in VARIANTS}
    fwd: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for v, kw in variants.items():  # warm-up
        _forward_only(lm, fr, kw)
    for _ in range(repeats):
        for v, kw in variants.items():
            t = time.perf_counter()
            _forward_only(lm, fr, kw)
            sync()
            fwd[v].append(time.perf_counter() - t)
            t = time.perf_counter()
            video_passes(lm, fr, PROMPT, spec, **kw)
            sync()
            tot[v].append(time.perf_counter() - t)
    return {v: {"total_s": float(np.median(tot[v])), "forward_s": float(np.median(fwd[v]))} for v in VARIANTS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 repeat (smoke test)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("VIDSME_BENCH_THREADS", "0")),
                    help="torch CPU threads (default: torch's choice); 1 is steadier on a shared machine")
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "passes.json")
    a = ap.parse_args()
    global THREADS
    THREADS = a.threads
    os.environ["VIDSME_BENCH_THREADS"] = str(a.threads)
    if a.worker:
        d, dev, var, f, s = a.worker
        print(json.dumps(peak_worker(d, dev, var, int(f), int(s))))
        return
    from vidsme.tiny import build_tiny

    sizes = dict(image_size=64, hidden_size=256, intermediate_size=512, num_layers=4, pad_vocab_to=a.vocab)
    frames, repeats = a.frames, a.repeats
    if a.quick:
        sizes.update(image_size=32, hidden_size=64, intermediate_size=128, num_layers=2, pad_vocab_to=4000)
        frames, repeats = 8, 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny("llava_next_video", Path(tmp) / "m", **sizes))
        for v in VARIANTS:
            cmd = [sys.executable, __file__, "--worker", model_dir, a.device, v, str(frames), str(sizes["image_size"])]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        times = timings(model_dir, a.device, frames, sizes["image_size"], repeats)
    for r in rows:
        r.update(times[r["variant"]])
        print(json.dumps(r))
    base = rows[0]
    ratios = {r["variant"]: {"total_time_vs_batched": round(r["total_s"] / base["total_s"], 2),
                             "forward_time_vs_batched": round(r["forward_s"] / base["forward_s"], 2),
                             "peak_mem_vs_batched": round(r["peak_mib"] / max(base["peak_mib"], 1e-9), 2)}
              for r in rows[1:]}
    out = {"device": a.device, "threads": a.threads, "frames": frames, "sizes": sizes, "repeats": repeats, "rows": rows, "ratios": ratios}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()

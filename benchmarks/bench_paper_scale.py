"""Paper-scale benchmark: 7B-shaped models of the four families through the real passes.

Run on demand: `python benchmarks/bench_paper_scale.py [--device auto|cpu|cuda] [--quick]`.
Per family: encoded videos (one synthetic H.264 clip, copied per video) are decoded at F frames
(`vidsme.frames.sample_frames`), then `vidsme.passes.run_shard` runs both passes on all of them under
these variants, one after another on one model (ratios are taken within one run):

- `base`        : one video per forward, prefetch 1, SDPA attention, eager reduction, base dtype;
- `no_prefetch` : processor work on the critical path (prefetch 0);
- `batch`       : `--batch` videos per forward;
- `eager_attn`  : eager attention instead of SDPA;
- `compile`     : the reduction fused with torch.compile (compiled on a warm-up video first);
- `dtype`       : bfloat16 on a CPU (float32 base), float32 on a GPU (bfloat16 base).

Reported per variant: videos/min for both passes (passes alone and including the measured decoding,
done sequentially before them), peak device memory (CUDA `max_memory_allocated`; CPU: peak RSS above
the loaded model, sampled every 5 ms), achieved FLOP/s (the forward FLOPs of `vidsme.flops.forward_flops`
over the time the device computes: wall minus the time spent waiting for inputs) and the fraction of
the time the device waits for inputs (`wait_fraction`; `wait_fraction_inline_decode` if decoding
were on the same critical path, as in a serving engine). On a CPU the model has reduced depth
(`--layers`, default 1, and 1 vision layer, full width, real vocabulary) and the JSON adds a projection
to full depth: forward time scaled by the FLOP ratio at the same achieved FLOP/s, plus the measured
reduction and preprocessing time, which do not depend on depth. On a GPU the default is full depth.
`--quick`: one family at scaled-down widths (smoke test of the script). Writes benchmarks/out/paper_scale.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = {"system": "Carefully watch this video and pay attention to every detail. Based on your observations, "
                    "select the best option that accurately addresses the question.",
          "text": "Only give the best option.", "assistant_prefix": "Best Option: "}
FAMILIES = ("llava_next_video", "qwen2_5_vl", "video_llava", "llava_onevision")
VARIANTS = ("base", "no_prefetch", "batch", "eager_attn", "compile", "dtype")


class PeakMemory:
    """Peak device memory of a block: CUDA max_memory_allocated above the start, or sampled peak RSS."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.peak_bytes = 0

    def __enter__(self) -> PeakMemory:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        import psutil

        self._p = psutil.Process()
        self._base = self._peak = self._p.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._p.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated() - self._base
        else:
            self._stop.set()
            self._t.join()
            self.peak_bytes = self._peak - self._base


def make_clips(out: Path, n: int, height: int, width: int, seconds: float = 10.0, fps: int = 30) -> list[Path]:
    """One smooth synthetic H.264 clip (yuv420p, like most source videos), copied `n` times."""
    import av

    t = np.arange(int(seconds * fps))
    yy, xx = np.mgrid[0:height, 0:width]
    first = out / "clip0.mp4"
    with av.open(str(first), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in t:
            img = np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, ((xx + yy) // 2 + i) % 256], -1).astype(np.uint8)
            x0 = (5 * i) % max(1, width - 64)
            img[40:104, x0:x0 + 64] = 255
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    paths = [first]
    for k in range(1, n):
        paths.append(out / f"clip{k}.mp4")
        shutil.copyfile(first, paths[-1])
    return paths


def decode(paths: list[Path], frames: int) -> tuple[dict[str, np.ndarray], float]:
    from vidsme.frames import sample_frames

    t = time.perf_counter()
    out = {f"v{k}": sample_frames(p, frames).frames for k, p in enumerate(paths)}
    return out, time.perf_counter() - t


def quick_shape(shape: Any) -> Any:
    """Scaled-down widths (real vocabulary, real frame geometry) for the smoke test."""
    text = dict(shape.text, hidden_size=256, num_heads=4, num_kv_heads=4, intermediate_size=512, num_layers=2)
    if "mrope_section" in text:
        text["mrope_section"] = [16, 8, 8]
    vision = dict(shape.vision, hidden_size=64, num_heads=2, intermediate_size=128, num_layers=2)
    return dataclasses.replace(shape, text=text, vision=vision)


def run_variant(lm: Any, frames: dict[str, np.ndarray], device: str, tmp: Path, **kw: Any) -> dict[str, Any]:
    from vidsme.passes import run_shard
    from vidsme.reduce import ReduceSpec

    with PeakMemory(device) as mem:
        s = run_shard(lm, frames, PROMPT, ReduceSpec(), tmp / "dump.safetensors", **kw)
    f = s["feed"]
    return {"wall_s": f["wall_s"], "wait_s": f["wait_s"], "wait_fraction": f["wait_fraction"],
            "videos_per_forward": f["videos_per_forward"], "halvings": f["halvings"],
            "peak_mem_gib": round(mem.peak_bytes / 2**30, 3)}


def forward_only_s(lm: Any, fr: np.ndarray, sync: Any) -> float:
    """Seconds of one forward of both passes of one video (inputs prepared beforehand)."""
    import torch

    from vidsme.passes import forward_scored, prepare_passes

    fw = prepare_passes(lm, [fr], PROMPT)[0]
    with torch.inference_mode():
        forward_scored(lm, fw.inputs, fw.keep)
        sync()
        t = time.perf_counter()
        forward_scored(lm, fw.inputs, fw.keep)
        sync()
    return time.perf_counter() - t


def bench_family(family: str, a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import torch

    from vidsme.flops import forward_flops, param_count
    from vidsme.models import build_inputs
    from vidsme.shapes import build_shaped, read_shape

    cuda = a.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    shape = read_shape(family)
    if a.quick:
        shape = quick_shape(shape)
    layers = None if a.layers == 0 else a.layers
    vlayers = None if layers is None else 1
    base_dtype = "bfloat16" if cuda else "float32"
    paths = make_clips(tmp, a.videos, a.height, a.width)
    frames, decode_s = decode(paths, a.frames)
    t = time.perf_counter()
    lm = build_shaped(shape, num_layers=layers, vision_layers=vlayers, device=a.device, dtype=base_dtype)
    build_s = time.perf_counter() - t
    inputs, scored = build_inputs(lm, [frames["v0"]], PROMPT)
    seq, pos = int(inputs["input_ids"].shape[1]), int(scored.numel())
    fr = next(iter(frames.values()))
    h, w = fr.shape[1], fr.shape[2]
    fl = forward_flops(shape, a.frames, h, w, seq, pos, layers, vlayers)
    fl_full = forward_flops(shape, a.frames, h, w, seq, pos)
    per_video = 2 * fl["total"]  # both passes
    n = len(frames)
    variants = {"base": {}, "no_prefetch": {"prefetch": 0}, "batch": {"videos_per_forward": a.batch},
                "eager_attn": {}, "compile": {"compile_reduce": True}, "dtype": {}}
    if a.variants:
        variants = {k: variants[k] for k in ["base", *[v for v in a.variants if v != "base"]]}
    elif a.quick:
        variants = {k: variants[k] for k in ("base", "no_prefetch", "batch")}
    rows: dict[str, Any] = {}
    run_variant(lm, {"warm": fr}, a.device, tmp)  # warm-up (kernels, allocator)
    for name, kw in variants.items():
        if name == "eager_attn":
            lm.model.set_attn_implementation("eager")
        if name == "compile":
            run_variant(lm, {"warm": fr}, a.device, tmp, **kw)  # compile outside the timing
        if name == "dtype":
            other = "float32" if cuda else "bfloat16"
            lm.model.to(getattr(torch, other))
            lm.dtype = other
            run_variant(lm, {"warm": fr}, a.device, tmp)
        r = run_variant(lm, frames, a.device, tmp, **kw)
        if name == "eager_attn":
            lm.model.set_attn_implementation("sdpa")
        busy = max(r["wall_s"] - r["wait_s"], 1e-9)
        r.update(videos_per_min=round(60 * n / r["wall_s"], 3),
                 videos_per_min_incl_decode=round(60 * n / (r["wall_s"] + decode_s), 3),
                 achieved_tflops=round(n * per_video / busy / 1e12, 4),
                 wait_fraction_inline_decode=round((r["wait_s"] + decode_s) / (r["wall_s"] + decode_s), 4))
        if name == "dtype":
            r["dtype"] = lm.dtype
        rows[name] = r
        print(json.dumps({"family": family, "variant": name, **r}), flush=True)
    out: dict[str, Any] = {
        "hub_id": shape.hub_id, "depth": {"text_layers": layers or shape.text["num_layers"],
                                          "vision_layers": vlayers or shape.vision["num_layers"]},
        "full_depth": layers is None, "quick_widths": a.quick, "base_dtype": base_dtype,
        "params": param_count(shape, layers, vlayers)["total"], "params_full_depth": param_count(shape)["total"],
        "frames": a.frames, "frame_hw": [int(h), int(w)], "videos": n, "seq_len": seq, "positions_per_pass": pos,
        "flops_per_video": per_video, "flops_per_video_full_depth": 2 * fl_full["total"],
        "decode_s_per_video": round(decode_s / n, 4), "build_s": round(build_s, 2), "variants": rows,
        "ratios_vs_base": {k: round(v["wall_s"] / rows["base"]["wall_s"], 3) for k, v in rows.items()},
    }
    if layers is not None:  # projection of the base variant to full depth at the same achieved FLOP/s
        lm.model.to(getattr(torch, base_dtype))
        lm.dtype = base_dtype
        fwd = forward_only_s(lm, fr, sync)
        base = rows["base"]
        other = max(base["wall_s"] / n - fwd, 0.0)  # preprocessing wait + reduction + host copies, per video
        proj = fwd * fl_full["total"] / fl["total"] + other
        out["projection_full_depth"] = {
            "forward_s_per_video_measured": round(fwd, 4), "other_s_per_video_measured": round(other, 4),
            "s_per_video": round(proj, 3), "videos_per_min": round(60 / proj, 4),
            "videos_per_min_incl_decode": round(60 / (proj + decode_s / n), 4),
            "assumes": "forward time scales with FLOPs at the measured FLOP/s; reduction/preprocessing do not"}
    out["flops_needed_for_200_videos_per_min"] = 2 * fl_full["total"] * 200 / 60
    del lm
    if cuda:
        torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    ap.add_argument("--families", nargs="+", default=None, choices=FAMILIES)
    ap.add_argument("--frames", type=int, default=None, help="frames per video (default 16 on GPU, 4 on CPU)")
    ap.add_argument("--videos", type=int, default=None, help="videos per family (default 32 on GPU, 2 on CPU)")
    ap.add_argument("--batch", type=int, default=None, help="videos per forward in the batch variant (GPU 8, CPU 2)")
    ap.add_argument("--layers", type=int, default=None, help="decoder layers (0 = full depth; GPU default 0, CPU 1)")
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--variants", nargs="+", default=None, choices=VARIANTS, help="variants to run (base always)")
    ap.add_argument("--quick", action="store_true", help="one family, scaled-down widths, 3 variants (smoke test)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "paper_scale.json")
    a = ap.parse_args(argv)
    import torch

    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_paper_scale: CUDA requested but not available", file=sys.stderr)
        return 2
    if a.threads:
        torch.set_num_threads(a.threads)
    gpu = a.device.startswith("cuda")
    a.frames = a.frames or (16 if gpu else 4)
    a.videos = a.videos or (32 if gpu else 2)
    a.batch = a.batch or (8 if gpu else 2)
    a.layers = (0 if gpu else 1) if a.layers is None else a.layers
    fams = a.families or (["llava_next_video"] if a.quick else list(FAMILIES))
    if a.quick:
        a.frames, a.videos, a.layers, a.height, a.width = 2, 2, 1, 120, 160
    t0 = time.time()
    res: dict[str, Any] = {"device": a.device, "gpu_name": torch.cuda.get_device_name(0) if gpu else None,
                           "torch": torch.__version__, "threads": torch.get_num_threads(),
                           "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
                           "families": {}}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for fam in fams:  # the JSON is rewritten after each family: a run cut short keeps what it measured
        with tempfile.TemporaryDirectory() as tmp:
            res["families"][fam] = bench_family(fam, a, Path(tmp))
        res["total_s"] = round(time.time() - t0, 1)
        a.out.write_text(json.dumps(res, indent=1))
    print(f"wrote {a.out} ({res['total_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

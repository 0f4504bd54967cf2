"""Benchmark of the blind baseline at scale: 1,000 videos of the embedded default's size.

Run on demand: ``python benchmarks/bench_blind.py [--quick] [--videos 1000] [--run-seconds 306] [--out FILE]``.

Builds, outside the timing, what the workflow would have for N embedded-size videos (procedural
scenes of `vidsme.scenes`, 64x64, 16 sampled frames, in shards of 16 with manifests, a (q, r)
table and a sheet with captions and QA), then times `vidsme.blind.baseline_step` with the default
`blind` settings: feature extraction alone, and the whole step (features, cross-fitted gradient
boosting, permutation importances, bootstrap metrics). Times are this process's CPU seconds (all
threads). The bar (issue 11): under 10% of the default run's wall time, given as ``--run-seconds``
(default 306 s, the README's measured `make reproduce` run). Writes ``benchmarks/out/blind.json``
(``blind_quick.json`` with ``--quick``) and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidsme import blind  # noqa: E402
from vidsme.frames import CONTAINER_COLUMNS, MANIFEST_COLUMNS, read_manifest  # noqa: E402
from vidsme.scenes import describe, render, sample_params  # noqa: E402


def build(tmp: Path, n: int, size: int = 64, frames: int = 16, shard: int = 16) -> dict[str, object]:
    """Frames shards, manifests, (q, r) table and sheet for n videos (members and non-members alternate)."""
    rng = np.random.default_rng(0)
    ids = [f"v{i:05d}" for i in range(n)]
    idx = np.linspace(0, 31, frames).astype(int)
    npzs, mans, sheet = [], [], []
    for s in range(0, n, shard):
        arrays, rows = {}, []
        for v in ids[s:s + shard]:
            params = sample_params(rng, size, 32)
            caption, qa = describe(params, rng)
            arrays[v] = render(params, 2.0)[idx]
            facts = (size, size, 8.0, 32, 4.0, int(rng.integers(50_000, 200_000)), int(rng.integers(100_000, 400_000)), "h264", "yuv444p")
            rows.append("\t".join(map(str, (v, 32, ",".join(map(str, idx)), "ok", "", *facts))))
            sheet.append({"video_id": v, "path": f"{v}.mp4", "label": int(v[-1]) % 2, "split": "eval", "caption": caption,
                          "question": qa[0]["question"], "options": json.dumps(qa[0]["options"]), "answer": qa[0]["answer"]})
        np.savez_compressed(tmp / f"shard{s // shard:04d}.npz", **arrays)
        (tmp / f"shard{s // shard:04d}.tsv").write_text("\t".join(MANIFEST_COLUMNS + CONTAINER_COLUMNS) + "\n" + "\n".join(rows) + "\n")
        npzs.append(str(tmp / f"shard{s // shard:04d}.npz"))
        mans.append(str(tmp / f"shard{s // shard:04d}.tsv"))
    pd.DataFrame({"video_id": ids, "n_decoded": 32, "k1": rng.exponential(size=n), "k3": rng.random(n) * 10, "q": 1 + rng.random(n),
                  "r": 1 + rng.random(n) / 10}).to_csv(tmp / "qr.tsv", sep="\t", index=False)
    pd.DataFrame(sheet).to_csv(tmp / "sheet.tsv", sep="\t", index=False)
    return {"frames_npzs": npzs, "manifests": mans, "qr_tsv": str(tmp / "qr.tsv"), "sheet_tsv": str(tmp / "sheet.tsv")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="200 videos")
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--run-seconds", type=float, default=306.0, help="wall time of the default run to compare with")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/out/blind.json (blind_quick.json with --quick)")
    a = ap.parse_args()
    n = 200 if a.quick else a.videos
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        inputs = build(tmp, n)
        setup = time.perf_counter() - t0
        qr = pd.read_csv(inputs["qr_tsv"], sep="\t", dtype={"video_id": str})
        sheet = pd.read_csv(inputs["sheet_tsv"], sep="\t", dtype=str, keep_default_na=False)
        man = {m.video_id: (m.n_decoded, m.container) for p in inputs["manifests"] for m in read_manifest(p)}
        c0 = time.process_time()
        x = blind.feature_table(blind._frames(inputs["frames_npzs"]), man, qr, sheet, blind.config({}))
        features = time.process_time() - c0
        c0, w0 = time.process_time(), time.perf_counter()
        m = blind.baseline_step(**inputs, cfg={}, seed=0, fprs=[0.05, 0.01, 0.001], n_boot=1000, nonfinite="lowest",
                                out_scores=str(tmp / "s.tsv"), out_metrics=str(tmp / "m.tsv"), out_importances=str(tmp / "i.csv"))
        step, step_wall = time.process_time() - c0, time.perf_counter() - w0
    out = {"videos": n, "features": int(x.shape[1]), "setup_s": round(setup, 1), "features_cpu_s": round(features, 2),
           "step_cpu_s": round(step, 2), "step_wall_s": round(step_wall, 2), "run_seconds": a.run_seconds,
           "features_fraction_of_run": round(features / a.run_seconds, 4), "step_fraction_of_run": round(step / a.run_seconds, 4),
           "blind_auc": round(m["auc"], 3), "blind_auc_ci": [round(m["auc_lo"], 3), round(m["auc_hi"], 3)]}
    path = a.out or ROOT / "benchmarks" / "out" / ("blind_quick.json" if a.quick else "blind.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Numeric dispatch: does the CPU kernel choice change what the embedded default computes, and does pinning fix it?

Each setting runs one fresh process that generates a small embedded data set, trains a tiny target
(pretraining + instruction tuning, as the workflow does), runs both passes on a few videos, and hashes
the decoded frames, k1, the trained weights, the memorisation summary and the dump. Settings: the
machine's default dispatch, PyTorch forced to its generic or AVX2 kernels, MKL's SSE2 path, and the
pinned configuration (`vidsme.numerics`) started from each of those environments. Also the wall time
of each, so the pinning's cost is a ratio measured in one run.

    python benchmarks/bench_numerics.py [--quick] [--out benchmarks/out/numerics.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# unpinned environments that select other kernels on an x86-64 machine with AVX2 (and AVX-512)
SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "aten_default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "mkl_compatible": {"MKL_CBWR": "COMPATIBLE"},
}
SMALL = {"synth": {"n_eval": 24, "n_val": 0, "n_pretrain": 16, "size": 32, "n_frames": 12, "real_clips": False},
         "train": {"num_frames": 4, "pretrain_epochs": 1, "epochs": 6, "batch_size": 4},
         "tiny": {"hidden_size": 64, "num_layers": 2, "intermediate_size": 128, "vocab_size": 400},
         "frames": 4, "n_pass": 4}
QUICK = {**SMALL, "synth": {**SMALL["synth"], "n_eval": 12, "n_pretrain": 8}, "train": {**SMALL["train"], "epochs": 3}}


def probe(cfg: dict, pin: bool) -> dict:
    """Run in a fresh process: pin (or not) before any numeric import, then train and pass; hashes."""
    if pin:
        from vidsme.numerics import apply_in_process, pin_environment

        pin_environment(threads=1)
    import hashlib
    import tempfile

    import numpy as np

    if pin:
        apply_in_process()
    import torch

    from vidsme import synth
    from vidsme.attacks import aggregate, position_series
    from vidsme.frames import sample_frames
    from vidsme.metrics import evaluate
    from vidsme.passstats import PassStats
    from vidsme.models import load_model
    from vidsme.passes import video_passes
    from vidsme.reduce import ReduceSpec
    from vidsme.stats import motion_k1
    from vidsme.tiny import build_tiny
    from vidsme.train import train

    def h(b: bytes) -> str:
        return hashlib.sha256(b).hexdigest()[:16]

    t0 = time.perf_counter()
    out: dict = {"torch_capability": torch.backends.cpu.get_cpu_capability(), "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        sheet = synth.generate_dataset(d / "data", dict(cfg["synth"], seed=0))
        decoded = [sample_frames(d / "data" / p, cfg["frames"]).frames for p in sheet.path]
        out["decoded"] = h(np.concatenate([f.ravel() for f in decoded]).tobytes())
        out["k1"] = h(np.array([motion_k1(f) for f in decoded]).tobytes())
        init = build_tiny("llava_next_video", d / "init", corpus=synth.corpus(cfg["synth"]), seed=0, **cfg["tiny"])
        summary = train(init, sheet, d / "model", dict(cfg["train"], seed=0), video_root=d / "data",
                        pretrain=synth.pretrain_frames(cfg["synth"]))
        t_train = time.perf_counter() - t0
        from safetensors.numpy import load_file

        w = load_file(str(d / "model" / "model.safetensors"))
        out["weights"] = h(b"".join(w[k].tobytes() for k in sorted(w)))
        out["memorisation_auc"] = summary["eval"]["auc"]
        out["member_loss"] = summary["eval"]["member_loss"]
        loaded = load_model({"id": str(d / "model")})
        t1 = time.perf_counter()
        prompt = {"system": "Carefully watch this video.", "text": "Only give the best option.", "assistant_prefix": "Best Option: "}
        dumps, scores = [], []
        for f in decoded[: cfg["n_pass"]]:
            ent, _, _ = video_passes(loaded, f, prompt, ReduceSpec())
            dumps += [ent[p][k].tobytes() for p in sorted(ent) for k in sorted(ent[p])]
            series = position_series(PassStats(ent["nat"]), PassStats(ent["rev"]), 1.37, 1.04)
            scores += [s for _, _, s in aggregate(series)]
        out["dump"] = h(b"".join(dumps))
        out["scores"] = h(np.array(scores).tobytes())  # every attack of the registry (numpy on the host)
        rng = np.random.default_rng(0)
        m = evaluate(rng.normal(size=200) + np.r_[np.zeros(100), 0.3 * np.ones(100)], np.r_[np.zeros(100), np.ones(100)])
        out["metrics"] = h(json.dumps(m, sort_keys=True).encode())  # ROC, AUC, bootstrap CIs
        out["seconds_train"] = round(t_train, 2)
        out["seconds_passes"] = round(time.perf_counter() - t1, 2)
    return out


def run(setting: dict[str, str], pin: bool, cfg: dict, emulate: str | None = None) -> dict:
    """One probe in a fresh process; `emulate` runs it under QEMU user mode as that CPU (e.g. Haswell: Intel, AVX2, no AVX-512)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **setting)
    for k in ("VIDSME_NUMERICS_PIN", "VIDSME_NUMERICS_THREADS"):
        env.pop(k, None)
    code = ("import json, sys; sys.path.insert(0, %r); from bench_numerics import probe; "
            "print('RESULT ' + json.dumps(probe(json.loads(sys.argv[1]), sys.argv[2] == '1')))") % str(ROOT / "benchmarks")
    t0 = time.perf_counter()
    prefix = ["qemu-x86_64", "-cpu", emulate] if emulate else []
    p = subprocess.run([*prefix, sys.executable, "-c", code, json.dumps(cfg), "1" if pin else "0"], env=env, capture_output=True,
                       text=True, timeout=7200)
    if p.returncode != 0:
        raise RuntimeError(f"probe failed ({setting}, pin={pin}):\n{p.stderr[-3000:]}")
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return {**json.loads(line[7:]), "seconds_total": round(time.perf_counter() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller training (CI smoke)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "numerics.json"))
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS), help=f"subset of {list(SETTINGS)}")
    ap.add_argument("--emulate", default=None, metavar="CPU",
                    help="also run each probe under `qemu-x86_64 -cpu CPU` (Debian's qemu-user; e.g. Haswell)")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved repeats of every setting (for the time ratio)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else SMALL
    rows = []
    for rep in range(args.repeats):
        for name in args.settings:
            for pin in (False, True):
                for cpu in [None] + ([args.emulate] if args.emulate and rep == 0 else []):
                    r = run(SETTINGS[name], pin, cfg, emulate=cpu)
                    rows.append({"setting": name, "pinned": pin, "cpu": cpu or "host", "repeat": rep, **r})
                    print(json.dumps(rows[-1]), flush=True)
    host = [r for r in rows if r["cpu"] == "host"]
    pinned = {r["weights"] for r in rows if r["pinned"]}
    unpinned = {r["weights"] for r in rows if not r["pinned"]}
    t_pin = [r["seconds_train"] + r["seconds_passes"] for r in host if r["pinned"] and r["setting"] == "default"]
    t_def = [r["seconds_train"] + r["seconds_passes"] for r in host if not r["pinned"] and r["setting"] == "default"]
    summary = {"config": cfg, "rows": rows, "distinct_unpinned_weights": len(unpinned), "distinct_pinned_weights": len(pinned),
               "pinned_over_default_time": round(min(t_pin) / min(t_def), 3) if t_pin and t_def else None}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    cols = ["setting", "pinned", "cpu", "repeat", "torch_capability", "decoded", "k1", "weights", "member_loss", "dump", "scores",
            "metrics", "seconds_train", "seconds_passes"]
    with open(Path(args.out).with_suffix(".csv"), "w") as f:  # one row per probe: the table docs/numerics.md shows
        f.write(",".join(cols) + "\n")
        for r in rows:
            f.write(",".join(str(r.get(c, "")) for c in cols) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

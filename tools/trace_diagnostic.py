"""Where a video-position trace is, read straight from a model's dumps (no scoring code): a diagnostic
of the positive control (docs/controls.md).

Per evaluation video, the raw trace is the mean over video positions of H(reversed) - H(natural),
Shannon entropies from the dumps' `plogp` (higher = member-like, as Vid-SME's sign). Prints its AUC
overall, per frame, for real clips vs synthetic videos, and the members' and non-members' spread.

    python tools/trace_diagnostic.py --root . --experiment embedded --model embedded-positive_control
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def entropies(dump_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """video id -> (natural, reversed) per-position Shannon entropy (nats)."""
    out = {}
    for f in sorted(dump_dir.glob("shard*.safetensors")):
        if f.stem.endswith("_answer"):
            continue
        d = load_file(str(f))
        for k in d:
            if k.endswith("/nat/plogp"):
                v = k.split("/")[0]
                out[v] = (-d[k].astype(np.float64), -d[f"{v}/rev/plogp"].astype(np.float64))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="the workflow's directory")
    ap.add_argument("--experiment", default="embedded")
    ap.add_argument("--model", default="embedded-positive_control")
    ap.add_argument("--frames", type=int, default=16)
    a = ap.parse_args()
    root = Path(a.root)
    sheet = pd.read_csv(root / "data" / a.experiment / "samples.tsv", sep="\t", dtype={"video_id": str})
    ev = sheet[sheet["split"] == "eval"].set_index("video_id")
    h = entropies(root / "results" / a.experiment / "dumps" / a.model / f"F{a.frames}")
    ids = [v for v in ev.index if v in h]
    y = ev.loc[ids, "label"].to_numpy(int)
    diff = np.stack([h[v][1] - h[v][0] for v in ids])  # reversed minus natural, per position
    trace = diff.mean(1)
    print(f"{a.model}: {len(ids)} evaluation videos, {y.sum()} members")
    print(f"raw trace AUC {roc_auc_score(y, trace):.3f}")
    per_frame = diff.reshape(len(ids), a.frames, -1).mean(2)
    print("per-frame AUC", " ".join(f"{roc_auc_score(y, per_frame[:, i]):.2f}" for i in range(a.frames)))
    real = np.array([v.startswith("real_") for v in ids])
    for name, m in (("real clips", real), ("synthetic", ~real)):
        if len(set(y[m])) == 2:
            print(f"{name}: n {m.sum()}, AUC {roc_auc_score(y[m], trace[m]):.3f}, mean trace members "
                  f"{trace[m & (y == 1)].mean():.2f} / non-members {trace[m & (y == 0)].mean():.2f}")
    syn_mem, syn_non = trace[~real & (y == 1)], trace[~real & (y == 0)]
    print(f"synthetic members below 1 nat: {(syn_mem < 1).mean():.0%}; synthetic non-members' 90th percentile "
          f"{np.quantile(syn_non, 0.9):.2f}")


if __name__ == "__main__":
    main()

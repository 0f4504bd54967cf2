"""Movement diagnostic: how far fine-tuning moved the target's next-token distributions away from its
reference's (the base target), per video, for members and non-members.

Per video and scored slice (video positions, answer tokens), the mean over positions of the exact
per-position KL(reference || target) of the natural pass (series ``kl_ref_tgt`` of
`vidsme.attacks.reference_series`; KL(target || reference) goes to the CSV too). If members' distributions
moved no further than non-members', the AUC of the mean KL as a membership score is near 50%.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SERIES = {"kl_ref_tgt": "KL(reference || target)", "kl_tgt_ref": "KL(target || reference)"}
SLICE_NAMES = {"video": "video positions", "answer": "answer tokens"}


def per_video(series_files: list[str], sheet_tsv: str) -> pd.DataFrame:
    """One row per video and slice: label, mean KL both ways over the positions, number of positions."""
    from safetensors import safe_open

    sheet = pd.read_csv(sheet_tsv, sep="\t", dtype=str, keep_default_na=False).set_index("video_id")
    rows = []
    for f in series_files:
        with safe_open(f, framework="np") as h:
            slice_name = (h.metadata() or {}).get("slice", "video")
            by_video: dict[str, dict[str, np.ndarray]] = {}
            for key in h.keys():
                vid, name = key.split("/", 1)
                if name in SERIES:
                    by_video.setdefault(vid, {})[name] = h.get_tensor(key)
        for vid, s in by_video.items():
            if set(s) != set(SERIES):
                raise ValueError(f"{f}: video {vid} lacks {sorted(set(SERIES) - set(s))}")
            if vid not in sheet.index:
                raise ValueError(f"{f}: video {vid} is not in the sample sheet {sheet_tsv}")
            rows.append({"video_id": vid, "label": int(sheet.at[vid, "label"]), "slice": slice_name,
                         "n_positions": int(np.isfinite(s["kl_ref_tgt"]).sum()),
                         **{k: float(np.nanmean(v)) if np.isfinite(v).any() else np.nan for k, v in s.items()}})
    if not rows:
        raise ValueError("movement: no series with reference-model KL terms (is a reference model configured?)")
    df = pd.DataFrame(rows)
    order = df["slice"].map({"video": 0, "answer": 1})
    return df.assign(_o=order).sort_values(["_o", "video_id"]).drop(columns="_o").reset_index(drop=True)


def summary(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per slice: members' and non-members' mean and median of the per-video mean KL(reference || target),
    their ratio, the AUC of the mean KL as a membership score (bootstrap CI) and a Mann-Whitney p-value."""
    from scipy.stats import mannwhitneyu

    from vidsme.metrics import evaluate

    out = []
    for name, g in df.groupby("slice", sort=False):
        kl, y = g["kl_ref_tgt"].to_numpy(), g["label"].to_numpy()
        m, n = kl[y == 1], kl[y == 0]
        ev = evaluate(kl, y, n_boot=n_boot, seed=seed, nonfinite="error")
        out.append({"slice": name, "n_members": len(m), "n_nonmembers": len(n),
                    "member_mean": m.mean(), "member_median": np.median(m),
                    "nonmember_mean": n.mean(), "nonmember_median": np.median(n),
                    "ratio_of_means": m.mean() / n.mean() if n.mean() > 0 else np.nan,
                    "auc": ev["auc"], "auc_lo": ev.get("auc_lo", np.nan), "auc_hi": ev.get("auc_hi", np.nan),
                    "mannwhitney_p": float(mannwhitneyu(m, n, alternative="two-sided").pvalue)})
    return pd.DataFrame(out)


def _markdown(t: pd.DataFrame, label: str) -> str:
    lines = [f"**Movement: mean KL({label} || target) per video, natural frame order (nats).** "
             "Members vs non-members; AUC: the mean KL as a membership score (higher = member), 95% bootstrap CI.\n",
             "| slice | members: mean (median) | non-members: mean (median) | members / non-members | AUC | AUC 95% CI | Mann-Whitney p |",
             "|---|---|---|---|---|---|---|"]
    for r in t.itertuples(index=False):
        lines.append(f"| {SLICE_NAMES.get(r.slice, r.slice)} | {r.member_mean:.4g} ({r.member_median:.4g}) | "
                     f"{r.nonmember_mean:.4g} ({r.nonmember_median:.4g}) | {r.ratio_of_means:.3g} | {100 * r.auc:.1f} | "
                     f"[{100 * r.auc_lo:.1f}, {100 * r.auc_hi:.1f}] | {r.mannwhitney_p:.2g} |")
    return "\n".join(lines) + ("\n\nAn AUC whose CI contains 50 means the distributions moved as far for members as for "
                               "non-members at those positions; per-video values (both KL directions): movement.csv.\n")


def _figure(df: pd.DataFrame, path: str, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = list(dict.fromkeys(df["slice"]))
    fig, axes = plt.subplots(1, len(slices), figsize=(4.5 * len(slices), 3.4), squeeze=False)
    for ax, name in zip(axes[0], slices):
        g = df[df["slice"] == name]
        x = np.log10(np.clip(g["kl_ref_tgt"].to_numpy(), 1e-12, None))
        bins = np.histogram_bin_edges(x[np.isfinite(x)], bins=20)
        ax.hist(x[g["label"].to_numpy() == 1], bins=bins, alpha=0.6, label="member")
        ax.hist(x[g["label"].to_numpy() == 0], bins=bins, alpha=0.6, label="non-member")
        ax.set_title(SLICE_NAMES.get(name, name), fontsize=9)
        ax.set_xlabel(f"log10 mean KL({label} || target) per video")
    axes[0][0].set_ylabel("videos")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_movement(series_files: list[str], sheet_tsv: str, md: str, csv: str, figure: str, n_boot: int = 1000,
                   seed: int = 0, label: str = "base target", summary_csv: str | None = None) -> pd.DataFrame:
    """`tables/movement.md` and `summary_csv` (the summary), `tables/movement.csv` (per video) and the
    histograms figure."""
    from vidsme.atomic import atomic_path, write_text

    df = per_video(series_files, sheet_tsv)
    t = summary(df, n_boot=n_boot, seed=seed)
    short = "reference" if label != "base target" else "base"
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    if summary_csv:
        with atomic_path(summary_csv) as tmp:
            t.to_csv(tmp, index=False)
    write_text(md, _markdown(t, short))
    _figure(df, figure, short)
    return t

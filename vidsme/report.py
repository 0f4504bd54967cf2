"""Tables (CSV, Markdown, LaTeX) and figures (ROC, score histograms, (q, r), AUC vs K)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidsme.atomic import atomic_path, write_text


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def main_table(metrics: pd.DataFrame, main_k: float, fprs: list[float]) -> pd.DataFrame:
    """One row per attack: at K = main_k for K-dependent attacks, else its single row; sorted by AUC
    (descending), ties by attack name, so the order never depends on the input's row order."""
    m = metrics.copy()
    m["k"] = m["k"].astype("float64")
    keyed = m[np.isclose(m["k"].fillna(-1.0), main_k)]
    scalar = m[m["k"].isna()]
    t = pd.concat([keyed, scalar]).drop_duplicates("attack")
    cols = {"attack": t["attack"], "K": t["k"]}
    cols["AUC"] = t["auc"]
    cols["AUC 95% CI"] = [f"[{_pct(lo)}, {_pct(hi)}]" for lo, hi in zip(t["auc_lo"], t["auc_hi"])]
    cols["Acc"] = t["acc"]
    for f in fprs[:2]:
        cols[f"TPR@{100 * f:g}%FPR"] = t[f"tpr@{f:g}"]
    t = pd.DataFrame(cols).sort_values("attack", kind="stable")
    return t.sort_values("AUC", ascending=False, kind="stable").reset_index(drop=True)


def coverage(sheet_tsv: str, skipped_tsv: str, metrics_tsv: str) -> str:
    """"N of M videos scored, K skipped (see skipped.tsv)": M evaluated rows of the workflow's sheet,
    K listed in the skipped table, N scored (members + non-members in the metrics)."""
    def rows(path: str) -> int:
        return len(pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False))

    m = pd.read_csv(metrics_tsv, sep="\t")
    n = int((m["n_members"] + m["n_nonmembers"]).max()) if len(m) else 0
    return f"{n} of {rows(sheet_tsv)} videos scored, {rows(skipped_tsv)} skipped (see {skipped_tsv})"


def _missing_at_main_k(metrics: pd.DataFrame, table: pd.DataFrame, main_k: float) -> str:
    """A note naming the attacks that have no row at K = main_k (e.g. Min-K% Prob stops at 90%)."""
    missing = sorted(set(metrics["attack"]) - set(table["attack"]))
    return f" Not defined at K = {100 * main_k:g}% (not shown): {', '.join(missing)}." if missing else ""


def _shown(t: pd.DataFrame) -> pd.DataFrame:
    """The main table as displayed: values in %, K as a percentage (blank for K-free attacks)."""
    shown = t.copy()
    for c in shown.columns:
        if c not in ("attack", "K") and not c.endswith("CI"):
            shown[c] = shown[c].map(_pct)
    shown["K"] = [("" if (isinstance(k, float) and math.isnan(k)) else f"{100 * k:g}%") for k in t["K"]]
    return shown


def _header(metrics: pd.DataFrame, t: pd.DataFrame, main_k: float, title: str = "", coverage: str = "") -> str:
    """`title`, `coverage` (see :func:`coverage`), the member counts and the attacks not defined at `main_k`."""
    n1, n0 = int(metrics["n_members"].iloc[0]), int(metrics["n_nonmembers"].iloc[0])
    return (f"**{title}.** " if title else "") + (f"{coverage}. " if coverage else "") + \
        f"Members: {n1}, non-members: {n0}. Scores: higher = member. Values in %." + _missing_at_main_k(metrics, t, main_k) + "\n\n"


def markdown_table(metrics: pd.DataFrame, main_k: float, fprs: list[float], title: str = "", verdict: str = "",
                   coverage: str = "") -> str:
    """The main table in Markdown, as in `tables/main.md`: headed by `_header`; `verdict` (the blind
    baseline's line, `blind_header`) follows the header."""
    t = main_table(metrics, main_k, fprs)
    return _header(metrics, t, main_k, title, coverage) + verdict + _markdown(_shown(t)) + "\n"


def with_blind(metrics: pd.DataFrame, blind_tsv: str | None) -> pd.DataFrame:
    """The attacks' metrics plus the blind baseline's row (attack ``blind``, same columns), if given."""
    if not blind_tsv:
        return metrics
    blind = pd.read_csv(blind_tsv, sep="\t")
    if list(blind["attack"]) != ["blind"]:
        raise ValueError(f"{blind_tsv}: expected one row, attack 'blind'; got {list(blind['attack'])}")
    return pd.concat([metrics, blind], ignore_index=True)


def blind_header(blind_tsv: str | None, margin: float) -> str:
    """The verdict line on the split (`vidsme.blind.verdict`), as a Markdown paragraph; empty without a blind row."""
    if not blind_tsv:
        return ""
    from vidsme.blind import verdict

    b = pd.read_csv(blind_tsv, sep="\t").iloc[0]
    return verdict(float(b["auc"]), float(b.get("auc_lo", math.nan)), float(b.get("auc_hi", math.nan)), margin)[1] + "\n\n"


def write_tables(metrics_tsv: str, md: str, csv: str, tex: str, k_sweep: str, main_k: float, fprs: list[float],
                 title: str = "", blind_tsv: str | None = None, verdict_margin: float = 0.02,
                 base: dict[str, Any] | None = None, coverage: str = "") -> pd.DataFrame:
    """The main table in three formats, and the AUC-versus-K sweep; `title` heads the Markdown, and
    `coverage` (see :func:`coverage`) heads the Markdown and the LaTeX.

    With `blind_tsv` the blind baseline is a row of the table and its verdict a line of the header.
    `base` (keyword arguments of `add_base_columns` but the table and K) adds the base-target columns."""
    metrics = pd.read_csv(metrics_tsv, sep="\t")
    rows = with_blind(metrics, blind_tsv)
    t = main_table(rows, main_k, fprs)
    if base:
        t = add_base_columns(t, main_k, **base)
    with atomic_path(csv) as tmp:
        t.to_csv(tmp, index=False)
    shown = _shown(t)
    if base:
        shown = show_base_columns(shown, t)
    legend = base_legend(base.get("label", "base target"), int(base.get("n_boot", 1000)), int(base.get("seed", 0))) if base else ""
    write_text(md, _header(rows, t, main_k, title, coverage) + blind_header(blind_tsv, verdict_margin) + _markdown(shown) + "\n" + legend)
    write_text(tex, (f"% {coverage}\n" if coverage else "") + _latex(shown))
    sweep = metrics[metrics["k"].notna()].pivot_table(index="attack", columns="k", values="auc")
    sweep.columns = [f"K={100 * k:g}%" for k in sweep.columns]
    with atomic_path(k_sweep) as tmp:
        sweep.to_csv(tmp)
    return t


def _scores_at(scores: pd.DataFrame, attack: str, main_k: float) -> pd.Series:
    """One attack's per-video scores at K = main_k (or its single K), indexed by video id."""
    g = _pick(scores, attack, main_k)
    return g.set_index(g["video_id"].astype(str))[["label", "score"]]


def add_base_columns(table: pd.DataFrame, main_k: float, scores: str, base_scores: str, base_metrics: str,
                     n_boot: int = 1000, seed: int = 0, nonfinite: str = "lowest", label: str = "base target") -> pd.DataFrame:
    """Base-target control: each attack's AUC on the base target (or the user's reference model), on the
    same videos, and the tuned-minus-base AUC difference with a PAIRED bootstrap 95% CI
    (`vidsme.metrics.paired_auc_diff`: one resample of videos scores both models). Attacks the base
    has no score for (the reference-model attacks) get NaN. Videos or labels that differ between the
    two score files are an error naming them."""
    from vidsme.metrics import paired_auc_diff

    tgt, ref = pd.read_csv(scores, sep="\t"), pd.read_csv(base_scores, sep="\t")
    bm = _at_main_k(pd.read_csv(base_metrics, sep="\t"), main_k).drop_duplicates("attack").set_index("attack")
    cols: dict[str, list[Any]] = {"base AUC": [], "base AUC 95% CI": [], "tuned - base": [], "tuned - base 95% CI": []}
    for attack in table["attack"]:
        if attack not in bm.index:
            for c, v in zip(cols, (math.nan, "n/a", math.nan, "n/a")):
                cols[c].append(v)
            continue
        a, b = _scores_at(tgt, attack, main_k), _scores_at(ref, attack, main_k)
        if set(a.index) != set(b.index):
            diff = sorted(set(a.index) ^ set(b.index))
            raise ValueError(f"{attack}: the target ({scores}) and the {label} ({base_scores}) scored different videos, "
                             f"e.g. {diff[:3]}; the paired comparison needs the same videos")
        b = b.loc[a.index]
        if not (a["label"].to_numpy() == b["label"].to_numpy()).all():
            raise ValueError(f"{attack}: labels differ between {scores} and {base_scores}")
        d = paired_auc_diff(a["score"].to_numpy(), b["score"].to_numpy(), a["label"].to_numpy(), n_boot=n_boot, seed=seed,
                            nonfinite=nonfinite)
        cols["base AUC"].append(float(bm.at[attack, "auc"]))
        cols["base AUC 95% CI"].append(f"[{_pct(bm.at[attack, 'auc_lo'])}, {_pct(bm.at[attack, 'auc_hi'])}]")
        cols["tuned - base"].append(d["diff"])
        cols["tuned - base 95% CI"].append(f"[{100 * d['diff_lo']:+.1f}, {100 * d['diff_hi']:+.1f}]")
    return table.assign(**cols)


def show_base_columns(shown: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Display form: the base AUC marked with a dagger when its 95% CI excludes 50, a signed
    difference; the base AUC's own CI is left to the CSV."""
    out = shown.drop(columns=["base AUC 95% CI"])
    marks = []
    for v, ci in zip(table["base AUC"], table["base AUC 95% CI"]):
        lo_hi = [float(x) for x in ci.strip("[]").split(",")] if ci != "n/a" else []
        away = bool(lo_hi) and (lo_hi[0] > 50 or lo_hi[1] < 50)
        marks.append(_pct(v) + (" †" if away else ""))
    out["base AUC"] = marks
    out["tuned - base"] = ["n/a" if math.isnan(x) else f"{100 * x:+.1f}" for x in table["tuned - base"]]
    return out


def base_legend(label: str, n_boot: int, seed: int) -> str:
    """What the base-target columns mean (Markdown, below the table)."""
    who = (f"the {label}, the target before instruction tuning, which never saw these videos" if label == "base target"
           else f"the {label} (`model.reference`, e.g. the checkpoint the target was fine-tuned from)")
    return (f"\n`base AUC`: the same attack on {who}, on the same videos. `tuned - base`: the target's AUC minus it, "
            f"95% CI from a paired bootstrap ({n_boot} resamples of the videos, each scoring both models; seed {seed}). "
            f"**An attack whose base AUC is away from 50 measures the split, not membership** († marks a base AUC whose "
            f"95% CI excludes 50); only the part of its AUC above the base's can come from the fine-tuning. "
            f"Reference-model attacks (`ref_*`) are calibrated by the {label} itself and have no base value (n/a), "
            f"nor has the blind baseline, which queries no model.\n")


def _markdown(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _latex(df: pd.DataFrame) -> str:
    esc = lambda s: str(s).replace("%", r"\%").replace("_", r"\_").replace("#", r"\#").replace("†", r"$^\dagger$")
    lines = [r"\begin{tabular}{l" + "r" * (len(df.columns) - 1) + "}", r"\toprule", " & ".join(esc(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _save_auc_plot(fig, ax, xlabel: str, path: str) -> None:
    """Finish an AUC-against-a-setting plot (chance line, labels, legend) and save it."""
    import matplotlib.pyplot as plt

    ax.axhline(0.5, color="k", ls=":", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("AUC")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pick(scores: pd.DataFrame, attack: str, main_k: float) -> pd.DataFrame:
    g = scores[scores.attack == attack]
    if g["k"].notna().any():
        g = g[np.isclose(g["k"].fillna(-1.0), main_k)]
    return g


def write_figures(scores_tsv: str, metrics_tsv: str, qr_tsv: str, roc: str, hist: str, qr: str, auc_k: str, main_k: float, top: int = 6) -> None:
    """ROC (linear and log-log), member/non-member score histograms, (q, r) histograms, AUC vs K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    scores = pd.read_csv(scores_tsv, sep="\t")
    table = main_table(pd.read_csv(metrics_tsv, sep="\t"), main_k, [0.05, 0.01])
    # the paper's attack always, then the strongest others
    best = list(dict.fromkeys([a for a in ("vid_sme",) if a in set(table["attack"])] + list(table["attack"][: top - 1])))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for a in best:
        g = _pick(scores, a, main_k)
        s = np.nan_to_num(g.score.to_numpy(), nan=-np.inf)
        fpr, tpr, _ = roc_curve(g.label, np.clip(s, np.min(s[np.isfinite(s)], initial=0), np.max(s[np.isfinite(s)], initial=0)))
        auc = float(table.loc[table.attack == a, "AUC"].iloc[0])
        for ax in axes:
            ax.plot(fpr, tpr, label=f"{a} (AUC {auc:.2f})")
    for ax, scale in zip(axes, ("linear", "log")):
        ax.plot([1e-3, 1], [1e-3, 1], "k:", lw=0.8)
        ax.set_xscale(scale)
        ax.set_yscale(scale)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        if scale == "log":
            ax.set_xlim(1e-3, 1)
            ax.set_ylim(1e-3, 1)
    axes[0].set_title("ROC")
    axes[1].set_title("ROC, log-log (low-FPR view)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(roc, dpi=120)
    plt.close(fig)

    n = min(len(best), 4)
    fig, axes = plt.subplots(1, max(n, 1), figsize=(3.5 * max(n, 1), 3.2), squeeze=False)
    for ax, a in zip(axes[0], best[:n]):
        g = _pick(scores, a, main_k)
        s = g.score.to_numpy()
        bins = np.histogram_bin_edges(s[np.isfinite(s)], bins=20)
        ax.hist(s[g.label == 1], bins=bins, alpha=0.6, label="member")
        ax.hist(s[g.label == 0], bins=bins, alpha=0.6, label="non-member")
        ax.set_title(a, fontsize=8)
        ax.set_xlabel("score (higher = member)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(hist, dpi=120)
    plt.close(fig)

    t = pd.read_csv(qr_tsv, sep="\t")
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    axes[0].hist(t["q"], bins=20)
    axes[0].set_xlabel("q")
    axes[1].hist(t["r"], bins=20)
    axes[1].set_xlabel("r")
    fig.suptitle("adaptive (q, r) over the evaluation set")
    fig.tight_layout()
    fig.savefig(qr, dpi=120)
    plt.close(fig)

    m = pd.read_csv(metrics_tsv, sep="\t")
    m = m[m["k"].notna()]
    fig, ax = plt.subplots(figsize=(6, 4))
    for a, g in m.groupby("attack"):
        if a in best or g["auc"].max() == m["auc"].max():
            g = g.sort_values("k")
            ax.plot(100 * g["k"], g["auc"], marker="o", label=a)
    _save_auc_plot(fig, ax, "K (%)", auc_k)


def _at_main_k(df: pd.DataFrame, main_k: float) -> pd.DataFrame:
    """Rows of K-dependent attacks at K = main_k, plus the rows of attacks without K."""
    k = df["k"].astype("float64")
    return df[k.isna() | np.isclose(k.fillna(-1.0), main_k)]


def terciles_table(scores_tsv: str, qr_tsv: str, out: str, main_k: float) -> pd.DataFrame:
    """AUC of every attack within motion (k1) and illumination (k3) terciles of the evaluation set."""
    from sklearn.metrics import roc_auc_score

    scores = _at_main_k(pd.read_csv(scores_tsv, sep="\t"), main_k)
    qr = pd.read_csv(qr_tsv, sep="\t", dtype={"video_id": str})[["video_id", "k1", "k3"]]
    df = scores.merge(qr, on="video_id")
    rows = []
    for factor, col in (("motion", "k1"), ("illumination", "k3")):
        per_video = df.drop_duplicates("video_id")[["video_id", col]]
        cut = pd.qcut(per_video[col].rank(method="first"), 3, labels=["low", "mid", "high"])
        tercile = dict(zip(per_video.video_id, cut))
        for (attack, t), g in df.assign(tercile=df.video_id.map(tercile)).groupby(["attack", "tercile"], observed=True):
            s = np.nan_to_num(g.score.to_numpy(dtype=float), nan=-np.inf, posinf=1e300, neginf=-1e300)
            auc = roc_auc_score(g.label, s) if g.label.nunique() == 2 else float("nan")
            rows.append({"attack": attack, "factor": factor, "tercile": t, "n": len(g), "auc": auc})
    t = pd.DataFrame(rows)
    t.to_csv(out, index=False)
    return t


def frames_ablation(metrics_files: list[str], frames: list[int], table: str, figure: str, main_k: float,
                    answer_files: list[str] | None = None) -> pd.DataFrame:
    """AUC and TPR@5%FPR of every attack against the number of sampled frames.

    With `answer_files` the answer-token slice is tabulated too (column `slice`) and its perplexity
    (the answer loss) and Vid-SME are drawn dashed next to the six best video-position attacks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = [("video", metrics_files)] + ([("answer", answer_files)] if answer_files else [])
    parts = [_at_main_k(pd.read_csv(f, sep="\t"), main_k).assign(frames=n, slice=name)
             for name, files in slices for f, n in zip(files, frames, strict=True)]
    df = pd.concat(parts)
    df = df[[c for c in ("slice", "attack", "frames", "auc", "auc_lo", "auc_hi", "acc", "tpr@0.05") if c in df.columns]]
    df.to_csv(table, index=False)
    video = df[df.slice == "video"]
    best = video.groupby("attack").auc.mean().sort_values(ascending=False).index[:6]
    fig, ax = plt.subplots(figsize=(6, 4))
    for a in best:
        g = video[video.attack == a].sort_values("frames")
        ax.plot(g.frames, g.auc, marker="o", label=a)
    for a in ("perplexity", "vid_sme") if answer_files else ():
        g = df[(df.slice == "answer") & (df.attack == a)].sort_values("frames")
        ax.plot(g.frames, g.auc, marker="s", ls="--", label=f"{a} (answer tokens)")
    ax.set_xscale("log", base=2)
    _save_auc_plot(fig, ax, "frames sampled (F)", figure)
    return df


def targets_ablation(metrics_files: list[str], memorisation_files: list[str], variants: list[str], table: str, main_k: float,
                     answer_files: list[str] | None = None) -> pd.DataFrame:
    """Every attack's AUC and TPR@5%FPR on each target variant, next to its memorisation evidence.

    One row per variant, scored slice ("video"; "answer" too when `answer_files` are given) and attack."""
    import json

    slices = [("video", metrics_files)] + ([("answer", answer_files)] if answer_files else [])
    rows = []
    for name, files in slices:
        for f, mf, v in zip(files, memorisation_files, variants, strict=True):
            ev = json.loads(Path(mf).read_text()).get("eval", {})
            m = _at_main_k(pd.read_csv(f, sep="\t"), main_k)
            for r in m.to_dict("records"):
                rows.append({"variant": v, "slice": name, "attack": r["attack"], "auc": r["auc"], "tpr@0.05": r["tpr@0.05"],
                             "answer_loss_gap": ev.get("gap"), "answer_loss_auc": ev.get("auc")})
    df = pd.DataFrame(rows)
    df.to_csv(table, index=False)
    return df

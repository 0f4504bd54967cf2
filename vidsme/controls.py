"""Tables of the two controls (`snakemake controls`): the positive control and the shift control.

- Positive control (`tables/positive_control.{md,csv}`): every attack on the main target and on the
  ARTIFICIAL `positive_control` target (trained with a video-position trace for members in natural
  order, `vidsme.positive_control`), AUC with its bootstrap CI, for each scored slice. It says whether
  the scoring path can see a video-position trace when one exists.
- Shift control (`tables/shift_control.{md,csv}`): every attack on the exchangeable (random) split and
  on the shifted split (`vidsme.shift`), each with the pretrained-only base target and the tuned
  target, next to the blind baseline (no model). The base target never saw any evaluation video, so
  its AUC on the shifted split minus that on the random split is the AUC an attack gains from the
  shift alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from vidsme.atomic import atomic_path, write_text
from vidsme.report import _at_main_k, _markdown

# Attacks built on natural minus reversed (Vid-SME and its ablations that keep the difference).
NAT_MINUS_REV = ("vid_sme", "vid_sme_mean", "vid_sme_fixed", "vid_sme_seq")
BAR_AUC = 0.90  # positive control: Vid-SME and the natural-minus-reversed ablations should reach it


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _cell(auc: float, lo: float, hi: float) -> str:
    return "n/a" if auc is None or math.isnan(auc) else f"{_pct(auc)} [{_pct(lo)}, {_pct(hi)}]"


def _aucs(metrics_tsv: str | Path, main_k: float) -> pd.DataFrame:
    """attack -> auc, auc_lo, auc_hi at K = main_k (attacks without K: their single row)."""
    m = _at_main_k(pd.read_csv(metrics_tsv, sep="\t"), main_k)
    for col in ("attack", "auc", "auc_lo", "auc_hi"):
        if col not in m.columns:
            raise ValueError(f"{metrics_tsv}: no column {col!r} (not a metrics file of the workflow)")
    return m.drop_duplicates("attack").set_index("attack")[["auc", "auc_lo", "auc_hi"]]


# ----------------------------------------------------------------------------- positive control

def positive_control_table(metrics: dict[str, dict[str, str]], memorisation: dict[str, str], main_k: float,
                           md: str | Path, csv: str | Path, main: str = "main") -> pd.DataFrame:
    """Every attack's AUC [CI] per target and slice, with the bars of the positive control checked.

    `metrics`: {target: {slice: metrics.tsv}} (the same slices for every target; `main` is the
    reference target); `memorisation`: {target: memorisation.json}. Writes the long CSV (target,
    slice, attack, auc, auc_lo, auc_hi) and a Markdown report with one table per slice.
    """
    if main not in metrics:
        raise ValueError(f"positive control table: no metrics for the main target {main!r}")
    targets = list(metrics)
    slices = list(metrics[main])
    rows = []
    for t in targets:
        if list(metrics[t]) != slices:
            raise ValueError(f"positive control table: target {t!r} has slices {list(metrics[t])}, main has {slices}")
        for s, f in metrics[t].items():
            for attack, r in _aucs(f, main_k).iterrows():
                rows.append({"target": t, "slice": s, "attack": attack, "auc": r.auc, "auc_lo": r.auc_lo,
                             "auc_hi": r.auc_hi})
    long = pd.DataFrame(rows)
    with atomic_path(csv) as tmp:
        long.to_csv(tmp, index=False)

    intro = ("The `positive_control` target is trained like the main target plus a loss at the video positions: "
             "low entropy for member videos in natural frame order, high entropy for them reversed and for as many "
             "pretraining-pool videos (docs/controls.md). It is not a model anyone would train; it checks that the "
             "scoring path sees a video-position trace when one exists. AUC in % with the bootstrap 95% CI; K = "
             f"{100 * main_k:g}% for K-dependent attacks; higher score = member.")
    lines = ["# Positive control (ARTIFICIAL target)", "", intro, ""]
    ceilings = []
    for t in targets:
        mem = json.loads(Path(memorisation[t]).read_text()) if t in memorisation else {}
        ev = mem.get("eval", {})
        lines.append(f"- `{t}`: answer-loss AUC {_pct(ev.get('auc'))}, member / non-member answer loss "
                     f"{ev.get('member_loss', float('nan')):.4f} / {ev.get('nonmember_loss', float('nan')):.4f} nats")
        if "video_loss_excluded" in mem and ev.get("n_member"):
            n_ex, n_mem = int(mem.get("video_loss_excluded_by_split", {}).get("eval", 0)), int(ev["n_member"])
            ceilings.append(f"- `{t}`: {n_ex} of the {n_mem} evaluation members carry no planted trace (their "
                            "reversal is a member video too, so no natural-order-only trace can exist for them; "
                            f"`vidsme.positive_control.reversal_members`): with a perfect trace on the others and these "
                            f"ranking like non-members, AUC {_pct(trace_ceiling(n_ex, n_mem))}; an attack exceeds "
                            "that only if these members outrank non-members for another reason.")
    lines += [""] + (ceilings + [""] if ceilings else [])
    lines += _bar_lines(long, main, [t for t in targets if t != main], slices)
    for s in slices:
        sub = long[long.slice == s]
        wide = sub.pivot(index="attack", columns="target", values="auc")
        order = wide[targets[-1]].sort_values(ascending=False).index
        table = pd.DataFrame({"attack": order})
        for t in targets:
            g = sub[sub.target == t].set_index("attack")
            table[t] = [_cell(*g.loc[a, ["auc", "auc_lo", "auc_hi"]]) if a in g.index else "n/a" for a in order]
        lines += ["", f"## {s} slice", "", _markdown(table)]
    write_text(md, "\n".join(lines) + "\n")
    return long


def trace_ceiling(n_untraced: int, n_members: int) -> float:
    """Expected AUC when every traced member outranks every non-member and the `n_untraced` members
    rank like non-members (each wins half its pairs): 1 - n_untraced / (2 n_members)."""
    if n_members <= 0 or not 0 <= n_untraced <= n_members:
        raise ValueError(f"trace ceiling: need 0 <= untraced ({n_untraced}) <= members ({n_members}), members > 0")
    return 1.0 - n_untraced / (2.0 * n_members)


def _bar_lines(long: pd.DataFrame, main: str, controls: list[str], slices: list[str]) -> list[str]:
    """The positive control's bars, measured: natural-minus-reversed attacks at the video positions reach
    `BAR_AUC`; answer-token attacks stay inside the main target's CI."""
    out = []
    for t in controls:
        if "video" in slices:
            v = long[(long.target == t) & (long.slice == "video") & long.attack.isin(NAT_MINUS_REV)]
            ok = bool(len(v)) and bool((v.auc >= BAR_AUC).all())
            cells = ", ".join(f"{a} {_pct(x)}" for a, x in zip(v.attack, v.auc))
            out.append(f"- **{t}, video positions**: natural-minus-reversed attacks {cells}: "
                       f"{'all' if ok else 'NOT all'} >= {100 * BAR_AUC:g}.")
        if "answer" in slices:
            a = long[(long.slice == "answer") & (long.target.isin([main, t]))].pivot(
                index="attack", columns="target", values=["auc", "auc_lo", "auc_hi"])
            inside = (a[("auc", t)] >= a[("auc_lo", main)]) & (a[("auc", t)] <= a[("auc_hi", main)])
            out_of = sorted(a.index[~inside])
            out.append(f"- **{t}, answer tokens**: {int(inside.sum())} of {len(inside)} attacks inside the main "
                       f"target's CI" + (f"; outside: {', '.join(out_of)}." if out_of else "."))
    return out


# ----------------------------------------------------------------------------- shift control

SHIFT_COLUMNS = (("random", "base"), ("random", "tuned"), ("shifted", "base"), ("shifted", "tuned"))


def shift_control_table(metrics: dict[tuple[str, str, str], str], blind: dict[str, str], main_k: float,
                        md: str | Path, csv: str | Path, verdict_margin: float = 0.02) -> pd.DataFrame:
    """Every attack's AUC on the random vs the shifted split, base vs tuned target, next to the blind baseline.

    `metrics`: {(split, target, slice): metrics.tsv} with split in {random, shifted}, target in
    {base, tuned}; `blind`: {split: blind metrics.tsv (attack `blind`)}, both splits. Writes a long CSV (split, target, slice,
    attack, auc, auc_lo, auc_hi; blind rows with target `none`) and a Markdown report whose blind
    lines give the main tables' verdict on each split (`vidsme.blind.verdict`, `verdict_margin`).
    """
    from vidsme.blind import verdict

    rows = []
    for (split, target, s), f in metrics.items():
        for attack, r in _aucs(f, main_k).iterrows():
            rows.append({"split": split, "target": target, "slice": s, "attack": attack, "auc": r.auc,
                         "auc_lo": r.auc_lo, "auc_hi": r.auc_hi})
    blind_auc: dict[str, pd.Series] = {}
    if set(blind) != {"random", "shifted"}:
        raise ValueError(f"shift control table: blind metrics of both splits needed, got {sorted(blind)}")
    for split, f in blind.items():
        b = _aucs(f, main_k)
        if "blind" not in b.index:
            raise ValueError(f"{f}: no row for attack 'blind'")
        blind_auc[split] = b.loc["blind"]
        rows.append({"split": split, "target": "none", "slice": "", "attack": "blind", **b.loc["blind"].to_dict()})
    long = pd.DataFrame(rows)
    with atomic_path(csv) as tmp:
        long.to_csv(tmp, index=False)

    intro = ("Random split: the embedded default (one distribution, exchangeable labels). Shifted split: "
             "members are real clips and the fastest synthetic scenes, non-members the slowest synthetic "
             "scenes (vidsme/shift.py). `base`: the pretrained-only target, which saw none of these videos; "
             "`tuned`: instruction-tuned on the split's members. `gain from shift` = shifted base - random "
             "base: AUC an attack gets from the shift alone. AUC in % with the bootstrap 95% CI; K = "
             f"{100 * main_k:g}%; higher score = member.")
    lines = ["# Shift control: membership or a shifted split?", "", intro, ""]
    for split in ("random", "shifted"):
        b = blind_auc[split]
        v = verdict(float(b.auc), float(b.auc_lo), float(b.auc_hi), verdict_margin)[0]
        flag = {"shifted": "flags the split as shifted", "exchangeable": "does not flag a shift"}.get(v, "no verdict (no CI)")
        lines.append(f"- Blind baseline (no model), {split} split: AUC {_cell(b.auc, b.auc_lo, b.auc_hi)}: "
                     f"{flag} (the main tables' rule: CI lower bound above {100 * (0.5 + verdict_margin):g}).")
    attacks = long[long.attack != "blind"]
    for s in dict.fromkeys(attacks["slice"]):
        sub = attacks[attacks.slice == s]
        aucs = {k: g.set_index("attack") for k, g in sub.groupby(["split", "target"])}
        names = list(dict.fromkeys(sub.attack))
        gain = [_gain(aucs, a) for a in names]
        table = pd.DataFrame({"attack": names, "gain": gain}).sort_values("gain", ascending=False, na_position="last")
        out = pd.DataFrame({"attack": table["attack"]})
        for split, target in SHIFT_COLUMNS:
            g = aucs.get((split, target))
            out[f"{split}, {target}"] = [_cell(*g.loc[a, ["auc", "auc_lo", "auc_hi"]]) if g is not None and a in g.index
                                         else "n/a" for a in table["attack"]]
        out["gain from shift"] = [("n/a" if math.isnan(x) else f"{100 * x:+.1f}") for x in table["gain"]]
        blind_row = {"attack": "**blind** (no model)", "gain from shift": _blind_gain(blind_auc)}
        for split, target in SHIFT_COLUMNS:
            b = blind_auc[split]
            blind_row[f"{split}, {target}"] = _cell(b.auc, b.auc_lo, b.auc_hi)
        out = pd.concat([pd.DataFrame([blind_row])[list(out.columns)], out], ignore_index=True)
        lines += ["", f"## {s} slice", "", _markdown(out)]
    write_text(md, "\n".join(lines) + "\n")
    return long


def _gain(aucs: dict[tuple[str, str], pd.DataFrame], attack: str) -> float:
    r, s = aucs.get(("random", "base")), aucs.get(("shifted", "base"))
    if r is None or s is None or attack not in r.index or attack not in s.index:
        return float("nan")
    return float(s.loc[attack, "auc"] - r.loc[attack, "auc"])


def _blind_gain(blind_auc: dict[str, pd.Series]) -> str:
    return f"{100 * (blind_auc['shifted'].auc - blind_auc['random'].auc):+.1f}"


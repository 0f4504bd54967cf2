"""Attack registry: per-position series from the natural / reversed passes, aggregation, sign.

Every attack = (series, aggregation, transform, sign). raw = transform(aggregate(series)) follows the
released code (where a LOWER raw value means member, for every attack); the stored score is
`sign * raw` with sign = -1, so that everywhere in the package a HIGHER score means MORE LIKELY A MEMBER.

Min-K%: sort ascending, k = max(1, int(n * K)), mean of the first k (K = 0: the minimum, K = 1: the
mean). Max-K%: the same from the top. "mean" is the NaN-ignoring mean; "scalar" a length-1 series.

Non-finite positions: positions flagged `nonfinite` in a pass (NaN / +inf logits) are dropped from
every series that uses that pass (both passes for the deltas); `n_excluded` counts them. NaN values
left in a series are ignored by the aggregation.

Reference-model attacks (`ref_*`, `reference_series`) need the passes of a reference model on the same
inputs, with the cross terms its dump holds; without a reference they are simply absent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vidsme.passstats import CrossStats, PassStats

K_GRID: tuple[float, ...] = (0.0, 0.05, 0.1, 0.3, 0.6, 0.9, 1.0)
FIXED_Q, FIXED_R = 1.5, 1.05  # fixed-(q, r) ablation: midpoints of the adaptive ranges [1, 2] x [1, 1.1]


@dataclass(frozen=True)
class Attack:
    name: str
    series: str
    aggregation: str  # "min_k" | "max_k" | "mean" | "scalar"
    sign: int
    description: str
    transform: str = ""  # "" | "neg" | "exp": applied to the aggregate to get the released raw value
    k_max: float = 1.0  # largest K used (Min-K% Prob stops at 90% in the released code)


def _a(name: str, series: str, agg: str, desc: str, transform: str = "", k_max: float = 1.0) -> Attack:
    return Attack(name, series, agg, -1, desc, transform, k_max)


_LIST = [
    _a("vid_sme", "sme_delta", "min_k", "Vid-SME: Min-K% of SME_nat - SME_rev at the video's adaptive (q, r)"),
    _a("vid_sme_mean", "sme_delta", "mean", "ablation: mean of the SME delta instead of Min-K%"),
    _a("vid_sme_nat", "sme_nat", "min_k", "ablation: natural pass only, Min-K% of SME"),
    _a("vid_sme_rev", "sme_rev", "min_k", "ablation: reversed pass only, Min-K% of SME"),
    _a("vid_sme_fixed", "sme_delta_fixed", "min_k", "ablation: fixed (q, r) instead of adaptive"),
    _a("vid_sme_seq", "seq_sme_delta", "scalar", "released 'sequence' score: SME of mean probs, nat - rev"),
    _a("perplexity", "target_logp", "mean", "exp(mean(-log p_y))", "exp"),
    _a("min_k_prob", "target_logp", "min_k", "Min-K% Prob: -mean of the smallest K% log p_y", "neg", 0.9),
    _a("min_k_pp", "minkpp", "min_k", "Min-K%++: -mean of the smallest K% z-scores", "neg", 0.9),
    _a("mod_entropy", "mod_entropy", "mean", "modified entropy, mean over positions"),
    _a("mod_renyi_0.5", "mod_renyi_0.5", "mean", "modified Renyi alpha = 0.5, mean over positions"),
    _a("mod_renyi_2", "mod_renyi_2", "mean", "modified Renyi alpha = 2, mean over positions"),
    _a("max_prob_gap", "gap", "mean", "-mean(max log p - second log p)", "neg"),
]
for _al in ("0.5", "1", "2", "inf"):
    _LIST.append(_a(f"max_renyi_{_al}", f"renyi_{_al}", "max_k", f"MaxRenyi-K%: mean of the largest K% Renyi-{_al}"))
    _LIST.append(_a(f"min_renyi_{_al}", f"renyi_{_al}", "min_k", f"MinRenyi-K%: mean of the smallest K% Renyi-{_al}"))

# Reference-model attacks (a reference model's dump with cross terms; `reference_series`): calibrated by
# what the target's reference (the base target, or `model.reference`) does at the same position.
_LIST += [
    _a("ref_logp", "ref_logp", "mean", "Ref: mean of log p_target(y) - log p_reference(y), y the target's token", "neg"),
    _a("ref_sme", "ref_sme", "min_k", "Min-K% of SME_target - SME_reference (natural pass, the video's (q, r))"),
    _a("ref_vid_sme", "ref_sme_delta", "min_k", "Min-K% of the target's SME_nat - SME_rev minus the reference's"),
]
for _al in ("0.5", "1", "2", "inf"):
    _LIST.append(_a(f"ref_renyi_{_al}", f"ref_renyi_{_al}", "min_k", f"Min-K% of Renyi-{_al} of the target minus the reference's"))
_LIST += [
    _a("ref_kl_rt", "kl_ref_tgt", "max_k", "Max-K% of KL(reference || target) per position (K = 100%: the mean)", "neg"),
    _a("ref_kl_tr", "kl_tgt_ref", "max_k", "Max-K% of KL(target || reference) per position", "neg"),
]
REFERENCE_ATTACKS = tuple(a.name for a in _LIST if a.name.startswith("ref_"))

ATTACKS: dict[str, Attack] = {a.name: a for a in _LIST}


def n_excluded(nat: PassStats, rev: PassStats) -> int:
    """Positions dropped from the delta series (non-finite in either pass)."""
    return int((nat.nonfinite | rev.nonfinite).sum())


def position_series(
    nat: PassStats, rev: PassStats, q: float, r: float, cfg: dict | None = None
) -> dict[str, np.ndarray]:
    """Every per-position series of every attack (float64 1-D arrays; seq_sme_delta has length 1)."""
    if nat.n_positions != rev.n_positions:
        raise ValueError(f"natural pass has {nat.n_positions} positions, reversed {rev.n_positions}: they must align")
    cfg = cfg or {}
    fq, fr = float(cfg.get("fixed_q", FIXED_Q)), float(cfg.get("fixed_r", FIXED_R))
    ok_n = ~nat.nonfinite
    ok_b = ok_n & ~rev.nonfinite
    sn, sr = nat.sme(q, r), rev.sme(q, r)
    out = {
        "sme_delta": (sn - sr)[ok_b],
        "sme_nat": sn[ok_n],
        "sme_rev": sr[~rev.nonfinite],
        "sme_delta_fixed": (nat.sme(fq, fr) - rev.sme(fq, fr))[ok_b],
        "target_logp": nat.target_logp[ok_n],
        "gap": nat.gap[ok_n],
        "mod_entropy": nat.mod_entropy[ok_n],
        "mod_renyi_0.5": nat.mod_renyi(0.5)[ok_n],
        "mod_renyi_2": nat.mod_renyi(2.0)[ok_n],
        "minkpp": nat.minkpp[ok_n],
    }
    for al, a in (("0.5", 0.5), ("1", 1.0), ("2", 2.0), ("inf", math.inf)):
        out[f"renyi_{al}"] = nat.renyi(a)[ok_n]
    if nat.mean_probs is not None and rev.mean_probs is not None:
        out["seq_sme_delta"] = np.array([nat.seq_sme(q, r) - rev.seq_sme(q, r)])
    return out


def reference_series(nat: PassStats, rev: PassStats, ref_nat: PassStats, ref_rev: PassStats, x_nat: CrossStats,
                     q: float, r: float) -> dict[str, np.ndarray]:
    """Series of the reference-model attacks: the target's passes (`nat`, `rev`) against the reference's
    (`ref_nat`, `ref_rev`) on the same inputs, with the cross terms `x_nat` of the natural pass. Positions
    non-finite in either model are dropped."""
    n = nat.n_positions
    if not (rev.n_positions == ref_nat.n_positions == ref_rev.n_positions == x_nat.n_positions == n):
        raise ValueError(f"target ({n}, {rev.n_positions}) and reference ({ref_nat.n_positions}, {ref_rev.n_positions}) "
                         "passes have different numbers of positions: they must align")
    ok = ~nat.nonfinite & ~ref_nat.nonfinite
    ok_b = ok & ~rev.nonfinite & ~ref_rev.nonfinite
    sn, rsn = nat.sme(q, r), ref_nat.sme(q, r)
    out = {
        "ref_logp": (nat.target_logp - x_nat.ref_logp_y)[ok],
        "ref_sme": (sn - rsn)[ok],
        "ref_sme_delta": ((sn - rev.sme(q, r)) - (rsn - ref_rev.sme(q, r)))[ok_b],
        "kl_ref_tgt": x_nat.kl_ref_tgt[ok],
        "kl_tgt_ref": x_nat.kl_tgt_ref[ok],
    }
    for al, a in (("0.5", 0.5), ("1", 1.0), ("2", 2.0), ("inf", math.inf)):
        out[f"ref_renyi_{al}"] = (nat.renyi(a) - ref_nat.renyi(a))[ok]
    return out


def min_k(x: np.ndarray, k: float) -> float:
    """Mean of the smallest max(1, int(n * k)) values (NaN if empty)."""
    x = np.sort(x[~np.isnan(x)])
    return float(np.mean(x[: max(1, int(len(x) * k))])) if len(x) else math.nan


def max_k(x: np.ndarray, k: float) -> float:
    """Mean of the largest max(1, int(n * k)) values (NaN if empty)."""
    x = np.sort(x[~np.isnan(x)])
    return float(np.mean(x[len(x) - max(1, int(len(x) * k)):])) if len(x) else math.nan


def raw_value(attack: Attack, x: np.ndarray, k: float | None = None) -> float:
    """The released code's raw value of one attack (lower = member)."""
    x = np.asarray(x, dtype=np.float64)
    if attack.aggregation == "min_k":
        v = min_k(x, float(k))
    elif attack.aggregation == "max_k":
        v = max_k(x, float(k))
    elif attack.aggregation == "mean":
        v = float(np.nanmean(x)) if np.any(~np.isnan(x)) else math.nan
    elif attack.aggregation == "scalar":
        if x.size != 1:
            raise ValueError(f"attack {attack.name}: 'scalar' series must have length 1, got {x.size}")
        v = float(x[0])
    else:
        raise ValueError(f"attack {attack.name}: unknown aggregation {attack.aggregation!r}")
    if attack.transform == "neg":
        return -v
    if attack.transform == "exp":
        return math.exp(-v)  # perplexity from the mean target log-prob
    return v


def aggregate(
    series: dict[str, np.ndarray], k_grid: list[float] | tuple[float, ...] = K_GRID
) -> list[tuple[str, float | None, float]]:
    """(attack, K or None, score) for every registered attack whose series is present; higher = member."""
    for k in k_grid:
        if not 0.0 <= k <= 1.0:
            raise ValueError(f"k_grid: K must be in [0, 1], got {k}")
    rows: list[tuple[str, float | None, float]] = []
    for a in ATTACKS.values():
        if a.series not in series:
            continue
        x = series[a.series]
        if a.aggregation in ("min_k", "max_k"):
            rows += [(a.name, float(k), a.sign * raw_value(a, x, k)) for k in k_grid if k <= a.k_max]
        else:
            rows.append((a.name, None, a.sign * raw_value(a, x)))
    return rows

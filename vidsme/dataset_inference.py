"""Dataset inference: was a SET of videos in the fine-tuning data? (after Maini et al., "LLM Dataset
Inference", 2024, github.com/pratyushmaini/llm_dataset_inference, `linear_di.py`).

Per-video attack scores are weak; a set-level test can still be decisive. Given a suspect set and a
set of known non-members (each a matrix: videos x attack scores):

1. each set is split at random into halves A and B;
2. on A only: every feature is clipped to its [clip, 1 - clip] quantiles and standardised (both
   with A's pooled statistics), and an L2-regularised logistic regression learns to tell suspect
   from non-member (weights learnt on one half); by default its weights are kept non-negative
   (every attack score is oriented higher = member, so only that direction is evidence of
   membership; ``signs: free`` lets them take any sign, as Maini et al.);
3. on B: the same clipping, scaling and weights give one combined score per video, and a
   one-sided Welch t-test asks whether the suspect half scores higher (p-value).

Nothing of B is used before the test, so under the null (the suspect set is exchangeable with the
non-members) the p-value is valid whatever the combiner learnt. Differences from Maini et al.: the
clipping and scaling statistics come from half A only (they normalise with the whole suspect
set), the weights are non-negative by default, the t-test is Welch's (theirs assumes equal
variances), and the combiner is fitted to convergence by Newton's method (theirs: 1,000 Adam steps).

:func:`resampling_study` measures, by seeded resampling, the power (member suspect sets) and the
false-positive rate (non-member suspect sets) at several set sizes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("vidsme.dataset_inference")

DEFAULTS: dict[str, Any] = {
    "set_sizes": [10, 25, 50, 100],
    "resamples": 1000,
    "alpha": 0.05,
    "min_half": 5,
    "clip": 0.025,
    "C": 1.0,
    "signs": "nonnegative",
}


class DIError(ValueError):
    """Sets too small or features unusable for dataset inference; the message names the cause."""


def fit_logistic(x: np.ndarray, y: np.ndarray, C: float = 1.0, iters: int = 50, tol: float = 1e-10) -> tuple[np.ndarray, float]:
    """Weights and intercept minimising ``sum(log loss) + ||w||^2 / (2 C)`` (intercept not penalised),
    by Newton's method: sklearn's ``LogisticRegression(C=C)`` objective, solved exactly."""
    n, d = x.shape
    xa = np.hstack([x, np.ones((n, 1))])
    reg = np.full(d + 1, 1.0 / C)
    reg[-1] = 0.0
    beta = np.zeros(d + 1)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ beta, -500, 500)))
        grad = xa.T @ (p - y) + reg * beta
        hess = (xa * (p * (1 - p))[:, None]).T @ xa + np.diag(reg) + 1e-12 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < tol:
            break
    return beta[:-1], float(beta[-1])


def welch_greater(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """One-sided Welch t-test, H1: mean(a) > mean(b): (t, p); p = NaN when both samples are constant.

    The same numbers as ``scipy.stats.ttest_ind(a, b, equal_var=False, alternative="greater")``,
    without its per-call overhead (this runs thousands of times per study)."""
    from scipy.special import stdtr

    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se2 = va + vb
    if se2 <= 0:
        return math.nan, math.nan
    t = (a.mean() - b.mean()) / math.sqrt(se2)
    df = se2**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(t), float(stdtr(df, -t))


@dataclass(frozen=True)
class DIResult:
    """One suspect-vs-non-member test."""

    p_value: float
    t: float
    weights: np.ndarray  # per feature, on A's standardised scale (0 for a feature constant on A)


def check_sizes(n_suspect: int, n_reference: int, min_half: int) -> None:
    """Each set is split in two halves of at least ``min_half`` videos: smaller sets are an error."""
    for name, n in (("suspect", n_suspect), ("known non-member", n_reference)):
        if n < 2 * min_half:
            raise DIError(f"dataset inference: the {name} set has {n} videos; it is split into two halves of at least "
                          f"{min_half} (dataset_inference.min_half), so it needs at least {2 * min_half}")


def fit_combiner(z: np.ndarray, y: np.ndarray, C: float, signs: str) -> tuple[np.ndarray, float]:
    """Weights (one per column of ``z``) and intercept of the logistic combination.

    ``signs="nonnegative"``: every attack score is oriented higher = member, so only a non-negative
    weight is evidence of membership; columns whose weight comes out negative are dropped and the
    rest refitted until no weight is negative (all dropped: all-zero weights). ``"free"``: as
    Maini et al., any sign (the test then flags a set that differs in ANY direction)."""
    if signs not in ("nonnegative", "free"):
        raise ValueError(f"config key dataset_inference.signs: {signs!r}; expected 'nonnegative' or 'free'")
    active = np.ones(z.shape[1], dtype=bool)
    w = np.zeros(z.shape[1])
    while active.any():
        w_a, b = fit_logistic(z[:, active], y, C)
        if signs == "free" or (w_a >= 0).all():
            w[active] = w_a
            return w, b
        active[np.flatnonzero(active)[w_a < 0]] = False
    return w, 0.0


def split_half_test(suspect: np.ndarray, reference: np.ndarray, rng: np.random.Generator, *, clip: float = 0.025, C: float = 1.0,
                    min_half: int = 5, signs: str = "nonnegative") -> DIResult:
    """Split, learn the combination on half A, one-sided Welch t-test (suspect > non-member) on half B.

    ``suspect``, ``reference``: (videos, features) arrays of finite attack scores (higher = member);
    ``signs``: see :func:`fit_combiner`. No usable combination (nothing varies on A, or every weight
    negative under ``nonnegative``) gives p = 1: the set cannot be flagged."""
    s, r = np.asarray(suspect, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if s.ndim != 2 or r.ndim != 2 or s.shape[1] != r.shape[1] or s.shape[1] == 0:
        raise DIError(f"dataset inference: suspect {s.shape} and non-member {r.shape} must be (videos, features) with the same features")
    if not (np.isfinite(s).all() and np.isfinite(r).all()):
        raise DIError("dataset inference: non-finite attack scores (clean them first, as `vidsme.metrics.clean_scores` does)")
    check_sizes(len(s), len(r), min_half)
    ps, pr = rng.permutation(len(s)), rng.permutation(len(r))
    sa, sb = s[ps[: len(s) // 2]], s[ps[len(s) // 2:]]
    ra, rb = r[pr[: len(r) // 2]], r[pr[len(r) // 2:]]
    a = np.vstack([sa, ra])
    lo, hi = np.quantile(a, clip, axis=0), np.quantile(a, 1 - clip, axis=0)
    a = np.clip(a, lo, hi)
    mu, sd = a.mean(axis=0), a.std(axis=0)
    use = sd > 0
    w = np.zeros(s.shape[1])
    if not use.any():  # nothing varies on A: no combination can be learnt; the test cannot reject
        return DIResult(1.0, math.nan, w)
    z = (a[:, use] - mu[use]) / sd[use]
    y = np.r_[np.ones(len(sa)), np.zeros(len(ra))]
    w_use, b = fit_combiner(z, y, C, signs)
    w[use] = w_use
    if not w_use.any():
        return DIResult(1.0, math.nan, w)

    def score(x: np.ndarray) -> np.ndarray:
        return ((np.clip(x, lo, hi)[:, use] - mu[use]) / sd[use]) @ w_use + b

    t, p = welch_greater(score(sb), score(rb))
    if not math.isfinite(p):  # both halves constant: no evidence either way
        return DIResult(1.0, math.nan, w)
    return DIResult(float(p), float(t), w)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial CI of k successes in n trials."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Experiment:
    """A resampling experiment: suspect sets drawn from ``suspect`` pool, non-member sets from ``reference``.

    ``disjoint``: both pools are the same videos; each resample draws two disjoint sets from them."""

    name: str
    description: str
    suspect: pd.DataFrame  # rows = videos, columns = attack features
    reference: pd.DataFrame
    disjoint: bool = False


def resampling_study(experiments: Sequence[Experiment], feature_sets: Mapping[str, Sequence[str]], cfg: Mapping[str, Any],
                     seed: int) -> pd.DataFrame:
    """Detection rate at p < alpha for every experiment, feature set and set size (seeded).

    Within one experiment and set size, every feature set is tested on the same drawn sets and
    halves (paired). A size the pools cannot supply is a row with no rate and the reason."""
    rows = []
    for e_i, e in enumerate(experiments):
        for n in cfg["set_sizes"]:
            pool_s, pool_r = len(e.suspect), len(e.reference)
            need_r = 2 * n if e.disjoint else n
            base = {"experiment": e.name, "description": e.description, "set_size": n}
            short = (f"the pool has {pool_s} videos, two disjoint sets of {n} need {2 * n}" if e.disjoint and pool_s < 2 * n else
                     f"the suspect pool has {pool_s} videos" if pool_s < n else
                     f"the non-member pool has {pool_r} videos" if pool_r < need_r else
                     f"a set of {n} cannot be split into halves of {cfg['min_half']}" if n < 2 * int(cfg["min_half"]) else "")
            if short:
                rows += [{**base, "features": f, "note": short} for f in feature_sets]
                continue
            rng = np.random.default_rng([seed, e_i, n])
            if list(e.suspect.columns) != list(e.reference.columns):
                raise DIError(f"dataset inference, {e.name}: suspect and non-member pools have different attack columns")
            sus, ref = e.suspect.to_numpy(float), e.reference.to_numpy(float)
            cols_of = {f: [e.suspect.columns.get_loc(c) for c in cols] for f, cols in feature_sets.items()}
            detected = {f: 0 for f in feature_sets}
            pvals: dict[str, list[float]] = {f: [] for f in feature_sets}
            for _ in range(int(cfg["resamples"])):
                if e.disjoint:
                    idx = rng.permutation(pool_s)[: 2 * n]
                    si, ri = idx[:n], idx[n:]
                else:
                    si, ri = rng.permutation(pool_s)[:n], rng.permutation(pool_r)[:n]
                split_seed = int(rng.integers(2**63))
                s_set, r_set = sus[si], ref[ri]
                for f, cols in cols_of.items():
                    res = split_half_test(s_set[:, cols], r_set[:, cols], np.random.default_rng(split_seed), clip=float(cfg["clip"]),
                                          C=float(cfg["C"]), min_half=int(cfg["min_half"]), signs=str(cfg["signs"]))
                    detected[f] += res.p_value < float(cfg["alpha"])
                    pvals[f].append(res.p_value)
            for f in feature_sets:
                k, m = detected[f], int(cfg["resamples"])
                lo, hi = clopper_pearson(k, m)
                rows.append({**base, "features": f, "resamples": m, "detected": k, "rate": k / m, "rate_lo": lo, "rate_hi": hi,
                             "median_p": float(np.median(pvals[f])), "note": ""})
    cols = ["experiment", "description", "features", "set_size", "resamples", "detected", "rate", "rate_lo", "rate_hi", "median_p", "note"]
    return pd.DataFrame(rows).reindex(columns=cols)


def config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """`dataset_inference` settings: DEFAULTS overridden by ``cfg``; unknown keys are an error."""
    out = {**DEFAULTS, **(cfg or {})}
    unknown = sorted(set(out) - set(DEFAULTS) - {"enabled"})
    if unknown:
        raise ValueError(f"unknown config key dataset_inference.{unknown[0]}; known: {sorted(DEFAULTS)}")
    return out


def attack_features(scores_tsvs: Mapping[str, str], main_k: float, nonfinite: str) -> tuple[pd.DataFrame, pd.Series]:
    """(videos x ``slice:attack`` scores at K = main_k, labels) from score files keyed by slice name.

    Non-finite scores follow the metrics' policy (`vidsme.metrics.clean_scores`) per column. The
    reference-model attacks (`vidsme.attacks.REFERENCE_ATTACKS`) are left out: they exist only where a
    reference model's passes ran (the evaluation videos), and the false-positive experiments need every
    feature on the validation videos too."""
    from vidsme.attacks import REFERENCE_ATTACKS
    from vidsme.metrics import clean_scores
    from vidsme.report import _at_main_k

    parts, labels = [], []
    for name, path in scores_tsvs.items():
        s = _at_main_k(pd.read_csv(path, sep="\t", dtype={"video_id": str}), main_k)
        s = s[~s["attack"].isin(REFERENCE_ATTACKS)]
        parts.append(s.pivot_table(index="video_id", columns="attack", values="score", aggfunc="first", dropna=False).add_prefix(f"{name}:"))
        labels.append(s.drop_duplicates("video_id").set_index("video_id")["label"])
    x = pd.concat(parts, axis=1, join="inner")
    for c in x.columns:
        x[c] = clean_scores(x[c].to_numpy(float), nonfinite)[0]
    return x, labels[0].reindex(x.index).astype(int)


def audit(scores_tsvs: Mapping[str, str], suspect: Sequence[str], nonmembers: Sequence[str], *, main_k: float = 0.1,
                     features: str = "video + answer", cfg: Mapping[str, Any] | None = None, seed: int = 0,
                     nonfinite: str = "lowest") -> DIResult:
    """One audit: is the ``suspect`` set of video ids a member set, against the known ``nonmembers``?

    ``scores_tsvs``: slice name ("video", "answer") -> a workflow scores file holding both sets' videos
    (labels in it are ignored); ``features``: a key of :func:`feature_sets`. Returns the p-value and weights."""
    c = config(cfg)
    x, _ = attack_features(scores_tsvs, main_k, nonfinite)
    missing = [v for v in [*suspect, *nonmembers] if v not in x.index]
    if missing:
        raise DIError(f"dataset inference: video {missing[0]!r} has no scores in {', '.join(scores_tsvs.values())}")
    both = sorted(set(suspect) & set(nonmembers))
    if both:
        raise DIError(f"dataset inference: video {both[0]!r} is in the suspect and the non-member set")
    sets = feature_sets(list(x.columns))
    if features not in sets:
        raise DIError(f"dataset inference: feature set {features!r} not available; have {sorted(sets)}")
    cols = sets[features]
    return split_half_test(x.loc[list(suspect), cols].to_numpy(), x.loc[list(nonmembers), cols].to_numpy(), np.random.default_rng(seed),
                           clip=float(c["clip"]), C=float(c["C"]), min_half=int(c["min_half"]), signs=str(c["signs"]))


def feature_sets(columns: Sequence[str]) -> dict[str, list[str]]:
    """The combinations tested: all video-position attacks, all answer-token attacks, both, Vid-SME alone."""
    video = [c for c in columns if c.startswith("video:")]
    answer = [c for c in columns if c.startswith("answer:")]
    sets = {"video attacks": video, "answer attacks": answer, "video + answer": video + answer,
            "vid_sme alone": [c for c in video if c == "video:vid_sme"]}
    return {k: v for k, v in sets.items() if v and not (k == "video + answer" and not answer)}


def markdown(table: pd.DataFrame, cfg: Mapping[str, Any]) -> str:
    """The study as a Markdown table: rate in % with its Clopper-Pearson 95% CI per set size."""
    sizes = list(cfg["set_sizes"])
    intro = (f"**Dataset inference** (after Maini et al. 2024): {int(cfg['resamples'])} seeded resamples per cell; a set is "
             f"detected when the one-sided Welch t-test on the held-out halves gives p < {cfg['alpha']:g}. Power: suspect sets "
             "of members; false-positive rate (FPR): suspect sets of non-members, which must stay at or below "
             f"{100 * float(cfg['alpha']):g}%. Values in % [Clopper-Pearson 95% CI over the resamples; resamples share videos, "
             "so the CI is conditional on these pools].\n")
    lines = [intro,
             "| experiment | features | " + " | ".join(f"n = {n}" for n in sizes) + " |", "|---|---|" + "---|" * len(sizes)]
    for (exp, feats), g in table.groupby(["experiment", "features"], sort=False):
        cells = []
        for n in sizes:
            r = g[g.set_size == n]
            if r.empty or pd.isna(r.rate.iloc[0]):
                cells.append("n/a")
            else:
                cells.append(f"{100 * r.rate.iloc[0]:.1f} [{100 * r.rate_lo.iloc[0]:.1f}, {100 * r.rate_hi.iloc[0]:.1f}]")
        lines.append(f"| {exp} | {feats} | " + " | ".join(cells) + " |")
    notes = table[table.note.fillna("") != ""].drop_duplicates(["experiment", "set_size"])
    lines += ["", "Experiments: " + "; ".join(f"**{e}**: {d}" for e, d in table.drop_duplicates("experiment")[["experiment", "description"]].itertuples(index=False)) + "."]
    if len(notes):
        lines += ["", "n/a: " + "; ".join(f"{e}, n = {n}: {t}" for e, n, t in notes[["experiment", "set_size", "note"]].itertuples(index=False)) + "."]
    return "\n".join(lines) + "\n"


def inference_step(eval_scores: Mapping[str, str], val_scores: Mapping[str, str], main_k: float, cfg: Mapping[str, Any] | None,
                   seed: int, nonfinite: str, out_csv: str, out_md: str) -> pd.DataFrame:
    """The workflow step: power and measured false-positive rate of dataset inference (see module doc).

    ``eval_scores`` / ``val_scores``: slice name ("video", "answer") -> scores TSV of the evaluation /
    validation videos (``val_scores`` may be empty: no validation split, the val-vs-eval FPR is n/a)."""
    c = config(cfg)
    x, y = attack_features(eval_scores, main_k, nonfinite)
    members, nonmembers = x[y == 1], x[y == 0]
    exps = [Experiment("power", "suspect = evaluation members, non-members = evaluation non-members", members, nonmembers)]
    if val_scores:
        xv, yv = attack_features(val_scores, main_k, nonfinite)
        val_non = xv[yv == 0].reindex(columns=x.columns)
        exps.append(Experiment("FPR, val vs eval", "suspect = validation non-members (scored with the evaluation set's (q, r) map), "
                               "non-members = evaluation non-members", val_non, nonmembers))
    else:
        log.warning("dataset inference: no validation videos; the val-vs-eval false-positive rate is not measured")
    exps.append(Experiment("FPR, eval vs eval", "suspect and non-member sets drawn disjoint from the evaluation non-members",
                           nonmembers, nonmembers, disjoint=True))
    sets = feature_sets(list(x.columns))
    log.info("dataset inference: %d members, %d non-members; feature sets %s",
             len(members), len(nonmembers), {k: len(v) for k, v in sets.items()})
    table = resampling_study(exps, sets, c, seed)
    from vidsme.atomic import atomic_path, write_text

    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text(out_md, markdown(table, c))
    return table

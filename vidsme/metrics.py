"""Membership-inference metrics: ROC, AUC, best balanced accuracy, TPR at low FPR, bootstrap CIs,
and the paired bootstrap of an AUC difference (two attacks, or one attack on two models, same videos).

Convention: a HIGHER score means MORE LIKELY A MEMBER (label 1).

Non-finite scores (`nonfinite=`, one of `NONFINITE_POLICIES`):
- "lowest" (default, also the workflow's `metrics.nonfinite` default): as "clip", and NaN -> below
  every finite score (least member-like). A video whose every position had non-finite logits gets a
  NaN score; it stays in the evaluation as the least member-like video (counted in `n_nonfinite`
  and logged) instead of stopping the run after its model passes.
- "clip" (the released code): +inf -> largest finite score, -inf -> smallest; NaN -> ValueError
  naming how many.
- "error": any non-finite score -> ValueError.
"""

from __future__ import annotations

import numpy as np

NONFINITE_POLICIES = ("lowest", "clip", "error")
NONFINITE_DEFAULT = "lowest"


def roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, descending, starting at (0, 0) with +inf.

    Predict member when score >= threshold. Same points as sklearn's roc_curve(drop_intermediate=False).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    return fpr, tpr, np.r_[np.inf, s[last]]


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Trapezoidal area under the ROC."""
    return float(np.trapezoid(tpr, fpr))


def tpr_at(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """TPR at the last point of the full ROC whose FPR < target (= best TPR with FPR < target).

    The released code reads it off sklearn's default ROC, which drops collinear points and can
    therefore report a lower TPR when such a point is the last one below the target.
    """
    return float(tpr[np.nonzero(fpr < target)[0][-1]])


def balanced_acc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """max over thresholds of 1 - (FPR + 1 - TPR) / 2."""
    return float(np.max(1.0 - (fpr + (1.0 - tpr)) / 2.0))


def clean_scores(scores: np.ndarray, policy: str = NONFINITE_DEFAULT) -> tuple[np.ndarray, int]:
    """Apply the non-finite policy (module doc); returns (finite scores, number of non-finite inputs)."""
    s = np.asarray(scores, dtype=np.float64).copy()
    bad = ~np.isfinite(s)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return s, 0
    if policy not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite={policy!r}: expected one of {', '.join(NONFINITE_POLICIES)}")
    n_nan = int(np.isnan(s).sum())
    if policy == "error" or (policy == "clip" and n_nan):
        raise ValueError(f"scores: {n_bad} non-finite values ({n_nan} NaN) under nonfinite={policy!r}")
    fin = s[~bad]
    if fin.size == 0:
        raise ValueError("scores: no finite value at all")
    lo, hi = fin.min(), fin.max()
    s[np.isposinf(s)] = hi
    s[np.isneginf(s)] = lo
    if n_nan:
        s[np.isnan(s)] = lo - max(1.0, abs(lo))  # strictly below every finite score
    return s, n_bad


def _point(scores: np.ndarray, labels: np.ndarray, fprs: tuple[float, ...]) -> list[float]:
    fpr, tpr, _ = roc(scores, labels)
    return [auc(fpr, tpr), balanced_acc(fpr, tpr)] + [tpr_at(fpr, tpr, f) for f in fprs]


def resamples(labels: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """Stratified bootstrap indices [n_boot, n]: members and non-members resampled separately (seeded).

    `evaluate` and `paired_auc_diff` draw the same indices for the same labels, seed and n_boot."""
    y = np.asarray(labels).astype(int)
    rng = np.random.default_rng(seed)
    pos, neg = np.nonzero(y == 1)[0], np.nonzero(y == 0)[0]
    out = np.empty((n_boot, len(y)), dtype=np.int64)
    for b in range(n_boot):
        out[b] = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
    return out


def _check_binary(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    s, y = np.asarray(scores), np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1 or len(s) != len(y):
        raise ValueError(f"scores {s.shape} and labels {y.shape}: expected two 1-D arrays of equal length")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError(f"labels: expected only 0/1, got {sorted(set(np.unique(y).tolist()))[:5]}")
    y = y.astype(int)
    n_mem, n_non = int((y == 1).sum()), int((y == 0).sum())
    if n_mem < 2 or n_non < 2:
        raise ValueError(f"labels: need >= 2 members and >= 2 non-members, got {n_mem} and {n_non}")
    return y


def auc_diffs(a: np.ndarray, b: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """AUC(a) - AUC(b) on each resample (rows of `idx`): the same videos for both score vectors."""
    a, b, y = np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(labels).astype(int)
    out = np.empty(len(idx))
    for i, ix in enumerate(idx):
        out[i] = auc(*roc(a[ix], y[ix])[:2]) - auc(*roc(b[ix], y[ix])[:2])
    return out


def paired_auc_diff(a: np.ndarray, b: np.ndarray, labels: np.ndarray, n_boot: int = 1000, seed: int = 0,
                    nonfinite: str = "clip") -> dict[str, float]:
    """AUC(a) - AUC(b) for two score vectors on the same videos, with a PAIRED stratified-bootstrap 95% CI.

    Each resample draws one set of videos (`resamples`) and scores both attacks on it, so what the two
    AUCs share (which videos happen to be drawn) cancels in the difference. Returns auc_a, auc_b,
    diff, diff_lo, diff_hi (the CI is NaN when n_boot = 0)."""
    y = _check_binary(a, labels)
    if np.shape(b) != np.shape(a):
        raise ValueError(f"paired scores must have the same shape, got {np.shape(a)} and {np.shape(b)}")
    sa, _ = clean_scores(a, nonfinite)
    sb, _ = clean_scores(b, nonfinite)
    auc_a, auc_b = auc(*roc(sa, y)[:2]), auc(*roc(sb, y)[:2])
    out = {"auc_a": auc_a, "auc_b": auc_b, "diff": auc_a - auc_b, "diff_lo": float("nan"), "diff_hi": float("nan")}
    if n_boot > 0:
        lo, hi = np.percentile(auc_diffs(sa, sb, y, resamples(y, n_boot, seed)), [2.5, 97.5])
        out["diff_lo"], out["diff_hi"] = float(lo), float(hi)
    return out


def evaluate(
    scores: np.ndarray,
    labels: np.ndarray,
    fprs: tuple[float, ...] = (0.05, 0.01, 0.001),
    n_boot: int = 1000,
    seed: int = 0,
    nonfinite: str = NONFINITE_DEFAULT,
) -> dict[str, float]:
    """AUC, accuracy and TPR@FPR with stratified-bootstrap 95% CIs (seeded, deterministic)."""
    y = _check_binary(scores, labels)
    n_mem, n_non = int((y == 1).sum()), int((y == 0).sum())
    s, n_bad = clean_scores(np.asarray(scores), nonfinite)
    names = ["auc", "acc"] + [f"tpr@{f:g}" for f in fprs]
    point = _point(s, y, fprs)
    out: dict[str, float] = dict(zip(names, point))
    if n_boot > 0:
        boot = np.empty((n_boot, len(names)))
        for b, idx in enumerate(resamples(y, n_boot, seed)):
            boot[b] = _point(s[idx], y[idx], fprs)
        lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
        for i, k in enumerate(names):
            if k != "acc":
                out[f"{k}_lo"], out[f"{k}_hi"] = float(lo[i]), float(hi[i])
    out.update(n_members=n_mem, n_nonmembers=n_non, n_nonfinite=n_bad)
    return out

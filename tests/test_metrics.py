"""Metrics vs scikit-learn and hand-made cases; bootstrap determinism; non-finite policy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score, roc_curve

from vidsme.metrics import auc, balanced_acc, clean_scores, evaluate, roc, tpr_at


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), n=st.integers(4, 300), decimals=st.sampled_from([0, 1, 3]))
def test_roc_and_auc_match_sklearn(seed: int, n: int, decimals: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = (rng.normal(size=n) + 0.7 * y).round(decimals)  # rounding creates ties
    fpr, tpr, thr = roc(s, y)
    f2, t2, th2 = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2)
    np.testing.assert_allclose(tpr, t2)
    np.testing.assert_allclose(thr[1:], th2[1:])
    assert auc(fpr, tpr) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    # sklearn's default drops collinear points: same AUC and accuracy (a maximum of a linear function
    # sits at a segment end); TPR@FPR on the full ROC is >= (it may use a dropped interior point)
    f3, t3, _ = roc_curve(y, s)
    assert balanced_acc(fpr, tpr) == pytest.approx(np.max(1 - (f3 + (1 - t3)) / 2))
    assert tpr_at(fpr, tpr, 0.05) == pytest.approx(t2[np.where(f2 < 0.05)[0][-1]])
    assert tpr_at(fpr, tpr, 0.05) >= t3[np.where(f3 < 0.05)[0][-1]] - 1e-12
    # = the best TPR over thresholds whose FPR < 5%
    assert tpr_at(fpr, tpr, 0.05) == pytest.approx(max(t for f, t in zip(fpr, tpr) if f < 0.05))


def test_hand_made_cases() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.arange(8.0)  # members score higher: perfect
    m = evaluate(s, y, n_boot=0)
    assert m["auc"] == 1.0 and m["acc"] == 1.0 and m["tpr@0.05"] == 1.0
    assert evaluate(-s, y, n_boot=0)["auc"] == 0.0
    # one non-member above all members: FPR 0.25 before any TP
    s2 = np.array([0, 1, 2, 9, 4, 5, 6, 7.0])
    fpr, tpr, _ = roc(s2, y)
    assert tpr_at(fpr, tpr, 0.05) == 0.0 and tpr_at(fpr, tpr, 0.3) == 1.0
    assert auc(fpr, tpr) == pytest.approx(0.75)
    assert balanced_acc(fpr, tpr) == pytest.approx(1 - (0.25 + 0) / 2)


def test_accuracy_is_best_balanced_threshold() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    brute = max(0.5 * (np.mean(s[y == 1] >= t) + np.mean(s[y == 0] < t)) for t in np.r_[s, np.inf])
    assert evaluate(s, y, n_boot=0)["acc"] == pytest.approx(brute)


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    s = rng.normal(size=300) + 0.8 * y
    a, b, c = evaluate(s, y, n_boot=200, seed=0), evaluate(s, y, n_boot=200, seed=0), evaluate(s, y, n_boot=200, seed=1)
    assert a == b and a["auc_lo"] != c["auc_lo"]
    assert a["auc_lo"] < a["auc"] < a["auc_hi"]
    assert a["tpr@0.05_lo"] <= a["tpr@0.05"] <= a["tpr@0.05_hi"]
    assert a["n_members"] + a["n_nonmembers"] == 300


def test_nonfinite_policy() -> None:
    s = np.array([0.1, np.inf, -np.inf, 0.5, 0.3, 0.2])
    c, n = clean_scores(s, "clip")
    assert n == 2 and c[1] == 0.5 and c[2] == 0.1
    with pytest.raises(ValueError, match="1 non-finite values \\(1 NaN\\)"):
        clean_scores(np.array([0.0, np.nan, 1.0]), "clip")
    low, _ = clean_scores(np.array([0.0, np.nan, 1.0]), "lowest")
    assert low[1] < 0.0
    with pytest.raises(ValueError, match="non-finite"):
        evaluate(s, np.array([0, 1, 0, 1, 0, 1]), nonfinite="error")
    m = evaluate(s, np.array([0, 1, 0, 1, 0, 1]), n_boot=0)
    assert m["n_nonfinite"] == 2 and np.isfinite(m["auc"])


def test_bad_labels() -> None:
    with pytest.raises(ValueError, match="2 members"):
        evaluate(np.arange(5.0), np.array([1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="0/1"):
        evaluate(np.arange(4.0), np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="equal length"):
        evaluate(np.arange(4.0), np.array([0, 1, 1]))


def test_auc_diffs_by_hand() -> None:
    """AUC(a) - AUC(b) on explicit resamples, each worked out by hand (pairs member > non-member)."""
    from vidsme.metrics import auc_diffs, paired_auc_diff

    a = np.array([0.9, 0.8, 0.3, 0.1])
    b = np.array([0.2, 0.8, 0.3, 0.9])
    y = np.array([1, 1, 0, 0])
    # whole sample: AUC(a) = 4/4, AUC(b) = 1/4 (only 0.8 > 0.3)
    assert paired_auc_diff(a, b, y, n_boot=0)["diff"] == pytest.approx(0.75)
    idx = np.array([[0, 0, 2, 3],   # b: {0.2, 0.2} vs {0.3, 0.9}: 0/4   -> 1 - 0
                    [1, 1, 3, 3],   # b: {0.8, 0.8} vs {0.9, 0.9}: 0/4   -> 1 - 0
                    [0, 1, 2, 2],   # b: {0.2, 0.8} vs {0.3, 0.3}: 2/4   -> 1 - 0.5
                    [0, 1, 3, 2]])  # the sample itself                  -> 1 - 0.25
    np.testing.assert_allclose(auc_diffs(a, b, y, idx), [1.0, 1.0, 0.5, 0.75])
    # a tie between a member and a non-member counts one half: b' = {0.3, 0.8} vs {0.3, 0.9}: (0.5 + 0 + 1 + 0)/4
    np.testing.assert_allclose(auc_diffs(a, np.array([0.3, 0.8, 0.3, 0.9]), y, idx[3:]), [1.0 - 0.375])


def test_paired_bootstrap_resamples_the_same_videos() -> None:
    """A monotone transform of the same scores has the same AUC on every resample: a paired CI is
    exactly [0, 0]; drawing the two attacks' videos independently would not be."""
    from vidsme.metrics import auc_diffs, paired_auc_diff, resamples

    rng = np.random.default_rng(3)
    y = np.r_[np.ones(30), np.zeros(30)].astype(int)
    a = rng.normal(size=60) + 0.5 * y
    p = paired_auc_diff(a, 2 * a + 1, y, n_boot=300, seed=0)
    assert p["diff"] == 0 and p["diff_lo"] == 0 and p["diff_hi"] == 0
    idx = resamples(y, 300, 0)
    unpaired = np.array([auc(*roc(a[i], y[i])[:2]) for i in idx]) - np.array([auc(*roc(a[i], y[i])[:2]) for i in resamples(y, 300, 1)])
    assert np.percentile(unpaired, 97.5) - np.percentile(unpaired, 2.5) > 0.05
    # seeded: same seed, same CI; the resamples are the ones evaluate() uses for its own CI
    b = rng.normal(size=60)
    assert paired_auc_diff(a, b, y, n_boot=200, seed=5) == paired_auc_diff(a, b, y, n_boot=200, seed=5)
    assert paired_auc_diff(a, b, y, n_boot=200, seed=5) != paired_auc_diff(a, b, y, n_boot=200, seed=6)
    diffs = auc_diffs(a, b, y, resamples(y, 200, 5))
    m = paired_auc_diff(a, b, y, n_boot=200, seed=5)
    assert (m["diff_lo"], m["diff_hi"]) == tuple(np.percentile(diffs, [2.5, 97.5]))
    boot_a = auc_diffs(a, np.zeros(60), y, resamples(y, 200, 5)) + 0.5  # AUC of a constant is 1/2
    ev = evaluate(a, y, n_boot=200, seed=5)
    assert (ev["auc_lo"], ev["auc_hi"]) == pytest.approx(tuple(np.percentile(boot_a, [2.5, 97.5])))
    with pytest.raises(ValueError, match="same shape"):
        paired_auc_diff(a, b[:-1], y)

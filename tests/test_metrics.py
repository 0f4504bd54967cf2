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

"""Dataset inference: the exact combiner, the split-half Welch test, power / false-positive study, bad input;
and the (q, r) of videos outside the evaluation set (how the validation videos get their scores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vidsme import dataset_inference as di
from vidsme.qr import map_qr, map_qr_from, qr_table, qr_table_from


def test_fit_logistic_matches_sklearn() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    y = (x[:, 0] + rng.normal(size=40) > 0).astype(float)
    for C in (0.1, 1.0, 10.0):
        w, b = di.fit_logistic(x, y, C)
        ref = LogisticRegression(C=C, tol=1e-12, max_iter=10000).fit(x, y)
        assert np.allclose(w, ref.coef_[0], atol=1e-5) and b == pytest.approx(ref.intercept_[0], abs=1e-5)


def test_welch_matches_scipy() -> None:
    from scipy.stats import ttest_ind

    rng = np.random.default_rng(5)
    for n, m, shift in ((5, 5, 0.0), (12, 30, 0.8), (50, 7, -0.5)):
        a, b = rng.normal(shift, 1.0, n), rng.normal(0.0, 2.0, m)
        ref = ttest_ind(a, b, equal_var=False, alternative="greater")
        t, p = di.welch_greater(a, b)
        assert t == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-9)
    assert np.isnan(di.welch_greater(np.ones(4), np.ones(5))[1])


def test_planted_difference_is_detected() -> None:
    rng = np.random.default_rng(1)
    suspect = rng.normal(size=(50, 4))
    suspect[:, 2] += 1.0
    res = di.split_half_test(suspect, rng.normal(size=(50, 4)), np.random.default_rng(0))
    assert res.p_value < 0.01 and np.argmax(np.abs(res.weights)) == 2


def test_only_the_member_direction_counts_unless_signs_are_free() -> None:
    """A suspect set that scores LOWER than the non-members (less member-like) is not flagged by default."""
    rng = np.random.default_rng(6)
    lower = rng.normal(size=(60, 2))
    lower[:, 0] -= 1.5
    ref = rng.normal(size=(60, 2))
    default = di.split_half_test(lower, ref, np.random.default_rng(0))
    assert default.p_value > 0.2 and (default.weights >= 0).all()
    assert di.split_half_test(lower, ref, np.random.default_rng(0), signs="free").p_value < 0.001
    w, _ = di.fit_combiner(np.c_[np.r_[np.zeros(10), np.ones(10)], np.r_[np.ones(10), np.zeros(10)]], np.r_[np.zeros(10), np.ones(10)], 1.0, "nonnegative")
    assert w[0] > 0 and w[1] == 0  # the feature pointing away from membership is dropped, the other refitted


def test_null_sets_reject_at_about_alpha() -> None:
    """Suspect and non-members from one distribution: the split-half test's p-values are valid."""
    rng = np.random.default_rng(2)
    p = np.array([di.split_half_test(rng.normal(size=(20, 5)), rng.normal(size=(20, 5)), rng).p_value for _ in range(400)])
    rate = (p < 0.05).mean()
    assert 0.02 <= rate <= 0.085  # binomial 400 x 0.05: mean 20, SD 4.4
    assert 0.4 < np.median(p) < 0.6


def test_weights_use_half_a_only() -> None:
    """Changing the held-out half B changes the p-value, never the learnt combination."""
    rng = np.random.default_rng(3)
    s, r = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    split = np.random.default_rng(7)
    ps, pr = split.permutation(20), split.permutation(20)
    s2, r2 = s.copy(), r.copy()
    s2[ps[10:]] += 5.0  # B halves only
    r2[pr[10:]] -= 5.0
    a, b = di.split_half_test(s, r, np.random.default_rng(7)), di.split_half_test(s2, r2, np.random.default_rng(7))
    assert np.array_equal(a.weights, b.weights) and a.p_value != b.p_value


def test_too_small_sets_are_an_error_naming_them() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(di.DIError, match="the suspect set has 9 videos.*at least 10"):
        di.split_half_test(rng.normal(size=(9, 2)), rng.normal(size=(20, 2)), rng, min_half=5)
    with pytest.raises(di.DIError, match="the known non-member set has 7 videos"):
        di.split_half_test(rng.normal(size=(20, 2)), rng.normal(size=(7, 2)), rng, min_half=5)
    with pytest.raises(di.DIError, match="non-finite"):
        di.split_half_test(np.full((10, 2), np.nan), rng.normal(size=(10, 2)), rng)


def test_constant_features_cannot_reject() -> None:
    res = di.split_half_test(np.ones((10, 2)), np.ones((10, 2)), np.random.default_rng(0))
    assert res.p_value == 1.0 and not res.weights.any()


def test_clopper_pearson_known_values() -> None:
    lo, hi = di.clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-9)
    lo, hi = di.clopper_pearson(10, 10)
    assert lo == pytest.approx(0.025 ** (1 / 10), rel=1e-9) and hi == 1.0


def _pools(n_mem: int, n_non: int, shift: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cols = ["video:vid_sme", "video:perplexity", "answer:perplexity"]
    mem = pd.DataFrame(rng.normal(size=(n_mem, 3)), columns=cols)
    mem["answer:perplexity"] += shift
    return mem, pd.DataFrame(rng.normal(size=(n_non, 3)), columns=cols)


def test_resampling_study_power_fpr_and_infeasible_sizes() -> None:
    mem, non = _pools(60, 60, shift=1.5)
    sets = di.feature_sets(list(mem.columns))
    assert sets == {"video attacks": ["video:vid_sme", "video:perplexity"], "answer attacks": ["answer:perplexity"],
                    "video + answer": ["video:vid_sme", "video:perplexity", "answer:perplexity"], "vid_sme alone": ["video:vid_sme"]}
    cfg = {**di.DEFAULTS, "set_sizes": [10, 30, 50], "resamples": 60}
    exps = [di.Experiment("power", "p", mem, non), di.Experiment("FPR", "f", non, non, disjoint=True)]
    t = di.resampling_study(exps, sets, cfg, seed=0)
    power = t[(t.experiment == "power")].set_index(["features", "set_size"])
    assert power.loc[("answer attacks", 50), "rate"] > 0.9 and power.loc[("video attacks", 50), "rate"] < 0.3
    assert power.loc[("answer attacks", 10), "rate"] < power.loc[("answer attacks", 50), "rate"]
    fpr = t[(t.experiment == "FPR")].set_index(["features", "set_size"])
    assert fpr.loc[("video + answer", 30), "rate"] <= 0.15
    assert fpr.loc[("video + answer", 50), "note"] == "the pool has 60 videos, two disjoint sets of 50 need 100"
    assert np.isnan(fpr.loc[("video + answer", 50), "rate"])
    again = di.resampling_study(exps, sets, cfg, seed=0)
    pd.testing.assert_frame_equal(t, again)  # seeded
    md = di.markdown(t, cfg)
    assert "| FPR | video + answer |" in md and "n/a" in md and "FPR, n = 50: the pool has 60 videos" in md


def test_inference_step_from_score_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)

    def scores(path: Path, ids: list[str], labels: list[int], shift: float) -> str:
        rows = []
        for v, y in zip(ids, labels):
            for attack, k in (("vid_sme", 0.1), ("vid_sme", 0.3), ("perplexity", np.nan)):
                rows.append({"video_id": v, "label": y, "split": "eval", "attack": attack, "k": k,
                             "score": rng.normal() + shift * y * (attack == "perplexity")})
        pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
        return str(path)

    ids = [f"e{i}" for i in range(80)]
    lab = [i % 2 for i in range(80)]
    ev = {"video": scores(tmp_path / "v.tsv", ids, lab, 0.0), "answer": scores(tmp_path / "a.tsv", ids, lab, 2.0)}
    vids = [f"w{i}" for i in range(100)]
    va = {"video": scores(tmp_path / "vv.tsv", vids, [0] * 100, 0.0), "answer": scores(tmp_path / "va.tsv", vids, [0] * 100, 0.0)}
    t = di.inference_step(ev, va, 0.1, {"set_sizes": [10, 25], "resamples": 40}, 0, "lowest", str(tmp_path / "o.csv"), str(tmp_path / "o.md"))
    assert set(t.experiment) == {"power", "FPR, val vs eval", "FPR, eval vs eval"}
    p = t.set_index(["experiment", "features", "set_size"])
    assert p.loc[("power", "answer attacks", 25), "rate"] > 0.9
    assert p.loc[("FPR, val vs eval", "answer attacks", 25), "rate"] <= 0.2  # 40 overlapping resamples: loose
    assert "Dataset inference" in (tmp_path / "o.md").read_text()
    members, non = [v for v, y in zip(ids, lab) if y], [v for v, y in zip(ids, lab) if not y]
    assert di.audit(ev, members[:30], non[:30], features="answer attacks").p_value < 0.01
    with pytest.raises(di.DIError, match="the suspect set has 8 videos"):
        di.audit(ev, members[:8], non[:30])
    with pytest.raises(di.DIError, match="'e1' is in the suspect and the non-member set"):
        di.audit(ev, members[:30], non[:30] + ["e1"])
    x, y = di.attack_features(ev, 0.1, "lowest")
    assert list(x.columns) == ["video:perplexity", "video:vid_sme", "answer:perplexity", "answer:vid_sme"] and y.sum() == 40
    # the evaluation videos' reference-model attacks (absent on the validation videos) are left out
    with_ref = pd.read_csv(ev["video"], sep="\t")
    with_ref = pd.concat([with_ref, with_ref[with_ref.attack == "perplexity"].assign(attack="ref_logp")])
    with_ref.to_csv(tmp_path / "vr.tsv", sep="\t", index=False)
    x2, _ = di.attack_features({"video": str(tmp_path / "vr.tsv"), "answer": ev["answer"]}, 0.1, "lowest")
    assert list(x2.columns) == list(x.columns)
    t2 = di.inference_step({"video": str(tmp_path / "vr.tsv"), "answer": ev["answer"]}, va, 0.1, {"set_sizes": [10], "resamples": 5},
                           0, "lowest", str(tmp_path / "o2.csv"), str(tmp_path / "o2.md"))
    assert t2.rate.notna().all()


# ----------------------------------------------------------------------------- (q, r) outside the evaluation set


@pytest.mark.parametrize("mode", ["minmax", "rank"])
def test_map_qr_from_reproduces_the_reference_and_clips(mode: str) -> None:
    rng = np.random.default_rng(0)
    k1, k3 = rng.exponential(size=30), rng.random(30)
    k1[5] = k1[9]  # a tie
    q, r = map_qr(k1, k3, mode=mode)
    q2, r2 = map_qr_from(k1, k3, k1, k3, mode=mode)
    assert np.array_equal(q, q2) and np.array_equal(r, r2)
    qo, ro = map_qr_from(k1, k3, [k1.max() + 5, k1.min() - 1], [k3.min() - 1, k3.max() + 5], mode=mode)
    assert qo.tolist() == [1.0, 2.0] and ro.tolist() == [1.0, 1.1]
    if mode == "minmax":  # inside the range: the reference's min-max map, linear
        mid = (k1.min() + k1.max()) / 2
        assert map_qr_from(k1, k3, [mid], [k3.min()])[0][0] == pytest.approx(1.5)


def test_map_qr_from_fixed_and_tied_reference() -> None:
    q, r = map_qr_from([1.0, 1.0], [2.0, 2.0], [0.0, 9.0], [0.0, 9.0])
    assert q.tolist() == [1.5, 1.5] and r.tolist() == [1.05, 1.05]
    q, r = map_qr_from([1.0, 2.0], [1.0, 2.0], [5.0], [5.0], mode="fixed", fixed_q=1.3, fixed_r=1.01)
    assert q.tolist() == [1.3] and r.tolist() == [1.01]


def test_qr_table_from_leaves_the_evaluation_table_alone(tmp_path: Path) -> None:
    def stats(path: Path, ids: list[str], k1: list[float]) -> Path:
        lines = ["video_id\tn_decoded\tk1\tk3\tstatus\treason"] + [f"{v}\t32\t{a}\t{a / 2}\tok\t" for v, a in zip(ids, k1)]
        path.write_text("\n".join(lines) + "\n")
        return path

    ev = stats(tmp_path / "e.tsv", ["a", "b", "c"], [0.0, 1.0, 2.0])
    qr_table([ev], tmp_path / "qr.tsv", tmp_path / "sk.tsv")
    before = (tmp_path / "qr.tsv").read_bytes()
    val = stats(tmp_path / "v.tsv", ["x", "y"], [0.5, 4.0])
    out = qr_table_from(tmp_path / "qr.tsv", [val], tmp_path / "vqr.tsv", tmp_path / "vsk.tsv")
    assert (tmp_path / "qr.tsv").read_bytes() == before
    assert out.q.tolist() == [1.75, 1.0] and out.r.tolist() == pytest.approx([1.025, 1.1])
    with pytest.raises(ValueError, match="'a' is in the reference set"):
        qr_table_from(tmp_path / "qr.tsv", [ev], tmp_path / "x.tsv", tmp_path / "y.tsv")

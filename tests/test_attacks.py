"""Attack registry: series, Min/Max-K% aggregation, sign convention (higher = member)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidsme.attacks import ATTACKS, K_GRID, REFERENCE_ATTACKS, aggregate, max_k, min_k, n_excluded, position_series, raw_value
from vidsme.passstats import PassStats
from vidsme.reduce import ReduceSpec, reduce_logits
from vidsme.sme import sme_from_logits


def _stats(x: torch.Tensor) -> PassStats:
    return PassStats.from_tensors(reduce_logits(x, ReduceSpec()))


def _video(seed: int, confidence_nat: float, confidence_rev: float, p: int = 40, v: int = 400):
    """A video's two passes: same token preferences, logits scaled by a confidence factor per pass."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(p, v, generator=g, dtype=torch.float64)
    return _stats(base * confidence_nat), _stats(base * confidence_rev)


def test_registry_is_consistent() -> None:
    nat, rev = _video(0, 2.0, 1.0)
    series = position_series(nat, rev, 1.4, 1.05)
    for a in ATTACKS.values():
        assert a.sign == -1 and a.aggregation in ("min_k", "max_k", "mean", "scalar")
        assert (a.series in series) != (a.name in REFERENCE_ATTACKS), a.name  # ref_*: series from reference_series
    rows = aggregate(series, K_GRID)
    keys = [(n, k) for n, k, _ in rows]
    assert len(keys) == len(set(keys))
    assert {n for n, _, _ in rows} == set(ATTACKS) - set(REFERENCE_ATTACKS)
    assert max(k for n, k, _ in rows if n == "min_k_prob") == 0.9  # released grid stops at 90%
    assert sorted(k for n, k, _ in rows if n == "vid_sme") == sorted(K_GRID)
    assert all(np.isfinite(s) for _, _, s in rows)


def test_min_max_k_semantics() -> None:
    x = np.array([5.0, 1.0, 4.0, 2.0, 3.0, np.nan])
    assert min_k(x, 0.0) == 1.0 and max_k(x, 0.0) == 5.0  # K = 0: single extreme
    assert min_k(x, 1.0) == 3.0 == max_k(x, 1.0)  # K = 1: the mean (NaN ignored)
    assert min_k(x, 0.5) == 1.5  # int(5 * 0.5) = 2 values
    assert max_k(x, 0.3) == 5.0  # int(1.5) = 1
    assert math.isnan(min_k(np.array([np.nan]), 0.5))


def test_scores_are_sign_flipped_raw_values() -> None:
    nat, rev = _video(1, 1.5, 1.0)
    series = position_series(nat, rev, 1.2, 1.1)
    for name, k, score in aggregate(series):
        a = ATTACKS[name]
        assert score == pytest.approx(-raw_value(a, series[a.series], k), rel=1e-12)
    # released raw values for a few attacks, recomputed by hand
    lp = series["target_logp"]
    by = {(n, k): s for n, k, s in aggregate(series)}
    assert by[("perplexity", None)] == pytest.approx(-math.exp(-lp.mean()))
    assert by[("min_k_prob", 0.1)] == pytest.approx(np.sort(lp)[: int(len(lp) * 0.1)].mean())
    d = np.sort(series["sme_delta"])
    assert by[("vid_sme", 0.3)] == pytest.approx(-d[: int(len(d) * 0.3)].mean())
    assert by[("vid_sme_mean", None)] == pytest.approx(-d.mean())
    assert by[("max_prob_gap", None)] == pytest.approx(series["gap"].mean())


def test_series_use_the_videos_q_r_and_fixed_ablation() -> None:
    g = torch.Generator().manual_seed(3)
    xn, xr = torch.randn(10, 300, generator=g) * 2, torch.randn(10, 300, generator=g)
    nat, rev = _stats(xn), _stats(xr)
    s = position_series(nat, rev, 1.7, 1.08, {"fixed_q": 1.1, "fixed_r": 1.0})
    want = (sme_from_logits(xn, 1.7, 1.08) - sme_from_logits(xr, 1.7, 1.08)).numpy()
    np.testing.assert_allclose(s["sme_delta"], want, rtol=1e-6)
    want_f = (sme_from_logits(xn, 1.1, 1.0) - sme_from_logits(xr, 1.1, 1.0)).numpy()
    np.testing.assert_allclose(s["sme_delta_fixed"], want_f, rtol=1e-6)
    np.testing.assert_allclose(s["sme_nat"], sme_from_logits(xn, 1.7, 1.08).numpy(), rtol=1e-6)
    assert s["seq_sme_delta"].shape == (1,)


def test_member_outscores_nonmember() -> None:
    """Toy truth: a member's natural pass is more confident than its reversed pass (and than a
    non-member's); a non-member's two passes are equally confident. Higher score = member."""
    for seed in range(3):
        m_nat, m_rev = _video(seed, 3.0, 1.0)
        n_nat, n_rev = _video(seed + 100, 1.0, 1.0)
        sm = {(a, k): s for a, k, s in aggregate(position_series(m_nat, m_rev, 1.5, 1.05))}
        sn = {(a, k): s for a, k, s in aggregate(position_series(n_nat, n_rev, 1.5, 1.05))}
        for key in [("vid_sme", 0.3), ("vid_sme", 1.0), ("vid_sme_fixed", 0.3), ("vid_sme_nat", 0.3),
                    ("perplexity", None), ("min_k_prob", 0.3), ("max_renyi_1", 0.3), ("min_renyi_2", 0.3),
                    ("mod_entropy", None), ("max_prob_gap", None), ("vid_sme_seq", None)]:
            assert sm[key] > sn[key], key


def test_nonfinite_positions_excluded_and_counted() -> None:
    g = torch.Generator().manual_seed(4)
    xn, xr = torch.randn(8, 200, generator=g), torch.randn(8, 200, generator=g)
    xn[2, 5] = math.nan
    xr[6, 0] = math.inf
    nat, rev = _stats(xn), _stats(xr)
    s = position_series(nat, rev, 1.5, 1.05)
    assert n_excluded(nat, rev) == 2
    assert len(s["sme_delta"]) == 6 and len(s["target_logp"]) == 7 and len(s["sme_rev"]) == 7
    assert all(np.all(np.isfinite(v)) for v in s.values())
    assert all(np.isfinite(sc) for _, _, sc in aggregate(s))


def test_bad_input() -> None:
    nat, _ = _video(0, 1.0, 1.0, p=10)
    rev, _ = _video(0, 1.0, 1.0, p=11)
    with pytest.raises(ValueError, match="positions"):
        position_series(nat, rev, 1.5, 1.0)
    with pytest.raises(ValueError, match="K must be"):
        aggregate({"sme_delta": np.zeros(3)}, [1.5])
    with pytest.raises(ValueError, match="q="):
        position_series(nat, nat, 5.0, 1.0)

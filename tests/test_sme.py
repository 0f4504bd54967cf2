"""Sharma-Mittal entropy: exact form vs closed forms and limits; the released code's reference numerics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidsme.sme import EPS_REF, renyi_from_logits, sme_from_logits, sme_reference

V_PAPER = 152_064


def _logits(seed: int, p: int = 3, v: int = 500, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(p, v, generator=g, dtype=torch.float64) * scale


def _closed(x: torch.Tensor, q: float, r: float) -> np.ndarray:
    """Textbook SME in float64 from probabilities, with the textbook limit for each case."""
    p = torch.softmax(x, -1)
    s = (p**q).sum(-1)
    h_shannon = -(p * torch.log(p)).sum(-1)
    if q == 1 and r == 1:
        out = h_shannon
    elif q == 1:
        out = torch.expm1((1 - r) * h_shannon) / (1 - r)
    elif r == 1:
        out = torch.log(s) / (1 - q)
    elif r == q:
        out = (s - 1) / (1 - q)
    else:
        out = (s ** ((1 - r) / (1 - q)) - 1) / (1 - r)
    return out.numpy()


def _peaked(v: int = V_PAPER, pmax: float = 0.999, seed: int = 0) -> torch.Tensor:
    """One Zipf-like row over v tokens whose top probability is pmax."""
    g = torch.Generator().manual_seed(seed)
    lz = -1.1 * torch.log(torch.arange(1, v + 1, dtype=torch.float64))
    lz = lz[torch.randperm(v, generator=g)]
    lp = torch.log_softmax(lz, -1)
    j = int(torch.argmax(lp))
    rest = torch.logsumexp(torch.cat([lp[:j], lp[j + 1:]]), 0)
    lp[j] = rest + math.log(pmax / (1 - pmax))
    return torch.log_softmax(lp, -1)[None]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    q=st.sampled_from([0.3, 0.5, 0.9, 1.0, 1.3, 2.0, 3.0]),
    r=st.sampled_from([0.5, 1.0, 1.05, 1.1, 2.0]),
    scale=st.sampled_from([0.1, 1.0, 5.0]),
)
def test_matches_closed_forms(seed: int, q: float, r: float, scale: float) -> None:
    x = _logits(seed, scale=scale)
    got = sme_from_logits(x, q, r).numpy()
    np.testing.assert_allclose(got, _closed(x, q, r), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("q,r", [(1.0, 1.05), (1.0, 1.0), (1.5, 1.0), (1.5, 1.5), (1.0, 0.5)])
def test_limits_are_continuous(q: float, r: float) -> None:
    """The limits are ordinary points: a 1e-7 step in q or r changes SME by ~1e-7 relative."""
    x = _logits(1)
    at = sme_from_logits(x, q, r).numpy()
    for dq, dr in [(1e-7, 0), (-1e-7, 0), (0, 1e-7), (0, -1e-7)]:
        near = sme_from_logits(x, q + dq, r + dr).numpy()
        np.testing.assert_allclose(near, at, rtol=1e-5)
    np.testing.assert_allclose(at, _closed(x, q, r), rtol=1e-10)


def test_uniform_closed_form() -> None:
    v = 1000
    x = torch.zeros(2, v)
    for q in (0.5, 1.0, 2.0):
        for r in (0.5, 1.0, 1.1):
            want = math.log(v) if r == 1 else math.expm1((1 - r) * math.log(v)) / (1 - r)
            np.testing.assert_allclose(sme_from_logits(x, q, r).numpy(), want, rtol=1e-12)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_vocabulary_order_invariance(seed: int) -> None:
    x = _logits(seed)
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(seed + 1))
    for q, r in [(1.0, 1.0), (1.4, 1.07), (2.5, 0.5)]:
        np.testing.assert_allclose(sme_from_logits(x[:, perm], q, r), sme_from_logits(x, q, r), rtol=1e-12)


def test_float32_matches_float64_within_input_rounding() -> None:
    """float32 logits differ from float64 ones by rounding only; SME agrees to 1e-6 relative."""
    x = _logits(3, scale=4.0)
    for q, r in [(1.0, 1.0), (1.2, 1.05), (2.0, 1.1)]:
        a = sme_from_logits(x.float(), q, r)
        b = sme_from_logits(x.float().double(), q, r)
        np.testing.assert_array_equal(a, b)  # computed in float64 internally either way
        np.testing.assert_allclose(a, sme_from_logits(x, q, r), rtol=1e-6)


def test_masked_tokens_are_dropped() -> None:
    x = _logits(4)
    xm = torch.cat([x, torch.full((x.shape[0], 7), -math.inf, dtype=x.dtype)], 1)
    for q, r in [(0.5, 2.0), (1.0, 1.0), (1.7, 1.02)]:
        np.testing.assert_allclose(sme_from_logits(xm, q, r), sme_from_logits(x, q, r), rtol=1e-12)


def test_per_position_parameters() -> None:
    x = _logits(5, p=3)
    q, r = torch.tensor([1.0, 1.5, 2.0]), torch.tensor([1.1, 1.0, 1.05])
    got = sme_from_logits(x, q, r)
    for i in range(3):
        np.testing.assert_allclose(got[i], sme_from_logits(x[i:i + 1], float(q[i]), float(r[i]))[0], rtol=1e-14)


def test_renyi_special_orders() -> None:
    x = _logits(6)
    p = torch.softmax(x, -1)
    np.testing.assert_allclose(renyi_from_logits(x, math.inf), -torch.log(p.max(-1).values), rtol=1e-12)
    np.testing.assert_allclose(renyi_from_logits(x, 2.0), -torch.log((p**2).sum(-1)), rtol=1e-12)
    np.testing.assert_allclose(renyi_from_logits(x, 1.0), -(p * torch.log(p)).sum(-1), rtol=1e-12)


def test_peaked_paper_scale_is_exact() -> None:
    """p_max = 0.999 over 152,064 tokens: S - 1 is ~1e-3, the regime where naive forms cancel."""
    lp = _peaked()
    p = torch.exp(lp)
    h = float(-(p * lp).sum())
    np.testing.assert_allclose(float(sme_from_logits(lp, 1.0, 1.0)[0]), h, rtol=1e-12)
    np.testing.assert_allclose(float(sme_from_logits(lp, 1.0, 1.05)[0]), math.expm1(-0.05 * h) / -0.05, rtol=1e-12)
    s2 = float((p**2).sum())
    np.testing.assert_allclose(float(sme_from_logits(lp, 2.0, 1.0)[0]), -math.log(s2), rtol=1e-10)


def test_bad_input_is_named() -> None:
    x = _logits(0)
    with pytest.raises(ValueError, match="q"):
        sme_from_logits(x, 0.0, 1.0)
    with pytest.raises(ValueError, match="r"):
        sme_from_logits(x, 1.0, -1.0)
    with pytest.raises(ValueError, match="q"):
        sme_from_logits(x, torch.tensor([1.0, 2.0]), 1.0)  # 3 positions, 2 values
    with pytest.raises(ValueError, match="logits"):
        sme_from_logits(x[0], 1.0, 1.0)


# --- reference (released-code) numerics -------------------------------------------------------


def _reference_transcription(p_row: np.ndarray, q: float, r: float) -> float:
    """METHOD.md section 6, one position, written independently with plain numpy."""
    eps = 1e-10
    p = np.clip(p_row.astype(np.float64), eps, 1 - eps)
    s = float(np.sum(np.clip(p, eps, None) ** q))
    if abs(q - r) < eps:
        return (1 / (1 - q + eps)) * (s - 1)
    if abs(r - 1) < eps:
        return (1 / (1 - q + eps)) * math.log(max(s, eps))
    e = (1 - r) / (1 - q + eps)
    if abs(e) > 100:
        e = float(np.clip(np.float32(e), -100, 100))
    return (1 / (1 - r + eps)) * (max(s, eps) ** e - 1)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    qr=st.sampled_from([(1.3, 1.3), (1.3, 1.0), (1.5, 1.05), (0.5, 2.0), (1.0, 1.0), (1.0, 1.05),
                        (1.0 + 1e-5, 1.1), (2.0, 1.0 + 5e-11)]),
)
def test_reference_matches_transcription(seed: int, qr: tuple[float, float]) -> None:
    q, r = qr
    x = _logits(seed, p=4, v=300)
    p = torch.softmax(x, -1)
    got = sme_reference(p, q, r, logits=False).numpy()
    want = np.array([_reference_transcription(row, q, r) for row in p.numpy()])
    # near q = 1 the reference divides a sum's rounding error by ~1e-10: compare loosely there
    rtol = 1e-4 if abs(q - 1) < 1e-3 else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-5 if rtol > 1e-12 else 0)
    np.testing.assert_allclose(sme_reference(x, q, r).numpy(), want, rtol=rtol, atol=1e-5 if rtol > 1e-12 else 0)


def test_reference_is_wrong_near_q1_exact_is_right() -> None:
    """METHOD.md: on a peaked 152k distribution, reference(1, 1.05) ~ 2.0e-2 vs exact ~ 2.4e-3; q=r=1 ~ 1e5."""
    lp = _peaked()
    exact = float(sme_from_logits(lp, 1.0, 1.05)[0])
    ref = float(sme_reference(lp, 1.0, 1.05)[0])
    p = torch.exp(lp)
    h = float(-(p * lp).sum())
    assert exact == pytest.approx(math.expm1(-0.05 * h) / -0.05, rel=1e-12)
    assert abs(ref - exact) > 0.5 * abs(exact)  # reference is off by O(100%)
    assert abs(float(sme_reference(lp, 1.0, 1.0)[0]) - h) > 0.5 * h
    # steep tail (most tokens below the 1e-10 clamp): at q = r = 1 the reference returns ~ the number
    # of clamped tokens (about 1e5 at 152k tokens), the exact value is the Shannon entropy
    g = torch.Generator().manual_seed(0)
    steep = torch.randn(1, V_PAPER, generator=g, dtype=torch.float64) - 40.0
    steep[0, 0] = 0.0
    n_clamped = int((torch.softmax(steep, -1) < EPS_REF).sum())
    ref11 = float(sme_reference(steep, 1.0, 1.0)[0])
    assert n_clamped > 1e5 and ref11 == pytest.approx(n_clamped, rel=0.05)
    ps = torch.softmax(steep, -1)
    assert float(sme_from_logits(steep, 1.0, 1.0)[0]) == pytest.approx(float(-(ps * torch.log(ps)).sum()), rel=1e-10)
    # away from q = 1 the reference agrees with the exact value (up to its clamp)
    assert float(sme_reference(lp, 2.0, 1.1)[0]) == pytest.approx(float(sme_from_logits(lp, 2.0, 1.1)[0]), rel=1e-6)
    assert EPS_REF == 1e-10

"""Sharma-Mittal entropy of next-token distributions: exact (stable) and the released code's numerics.

SME_{q,r}(p) = [(sum_i p_i^q)^((1-r)/(1-q)) - 1] / (1 - r), natural logs.

Exact form used here (no 1/(1-q) or 1/(1-r) blow-up anywhere), with l = log p and delta = q - 1:

    A(delta) = sum_i p_i * expm1(delta * l_i) / delta        (= sum p l at delta = 0)
    H_q      = -log1p(delta * A) / delta                     (Renyi entropy of order q)
    SME_q,r  = H_q * phi((1 - r) * H_q),   phi(x) = expm1(x) / x,  phi(0) = 1

r = 1 gives Renyi, r = q Tsallis, q = 1 the Gaussian entropy, q = r = 1 Shannon, all as
ordinary points of the same formula. `sme_reference` reproduces the released code instead.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

EPS_REF = 1e-10  # the released code's epsilon (clamp, branch tests, denominators)
_TINY = 1e-12  # |x| below which phi / log1p-ratio use their series


def phi(x: Tensor) -> Tensor:
    """expm1(x) / x with phi(0) = 1, stable for every finite x."""
    small = x.abs() < _TINY
    safe = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, 1.0 + 0.5 * x, torch.expm1(safe) / safe)


def log1p_ratio(x: Tensor) -> Tensor:
    """log1p(x) / x with value 1 at x = 0 (x > -1)."""
    small = x.abs() < _TINY
    safe = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, 1.0 - 0.5 * x, torch.log1p(safe) / safe)


def _as_param(v: float | Tensor, n: int, name: str) -> Tensor:
    """Broadcast a scalar or per-position parameter to a float64 column [n, 1]; must be > 0."""
    t = torch.as_tensor(v, dtype=torch.float64).flatten()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"{name}: expected a scalar or {n} per-position values, got {t.numel()}")
    if not bool(torch.all(torch.isfinite(t) & (t > 0))):
        raise ValueError(f"{name}: every value must be finite and > 0, got {t.tolist()[:5]}...")
    return t.reshape(n, 1)


def tilt_sum(logp: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
    """(A, S) per row (float64): A = sum_i p_i expm1((q-1) l_i)/(q-1) (exact incl. q -> 1), S = sum p^q.

    `logp` [n, V] float64 log-probabilities (-inf allowed), `q` [n, 1] float64.
    """
    delta = q - 1.0
    finite = torch.isfinite(logp)
    l = torch.where(finite, logp, torch.zeros_like(logp))
    x = delta * l
    p = torch.exp(l)
    pq = torch.where(finite, torch.exp(q * l), torch.zeros_like(l))
    d = torch.where(delta == 0, torch.ones_like(delta), delta)
    near = x.abs() <= 1.0  # expm1 form: no cancellation; elsewhere (p^q - p)/d: no overflow
    term = torch.where(near, p * l * phi(x), (pq - p) / d)
    return torch.where(finite, term, torch.zeros_like(term)).sum(-1), pq.sum(-1)


def renyi_from_tilt(a: Tensor, q: Tensor, s: Tensor | None = None) -> Tensor:
    """Renyi entropy H_q from A (and S = 1 + (q-1) A, used directly when far from 1)."""
    d = q - 1.0
    h = -a * log1p_ratio(d * a)
    if s is None:
        return h
    far = -torch.log(s) / torch.where(d == 0, torch.ones_like(d), d)
    return torch.where((d * a).abs() < 0.5, h, far)


def sme_from_tilt(a: Tensor, q: Tensor, r: Tensor, s: Tensor | None = None) -> Tensor:
    """SME_{q,r} = H_q * phi((1 - r) H_q) from A(q) (and S); all float64, same shape."""
    h = renyi_from_tilt(a, q, s)
    return h * phi((1.0 - r) * h)


def _chunks(n: int, chunk: int) -> list[slice]:
    return [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]


def _check_logits(logits: Tensor) -> None:
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        raise ValueError(f"logits: expected a 2-D tensor [positions, vocab], got {getattr(logits, 'shape', type(logits))}")
    if logits.shape[1] == 0:
        raise ValueError("logits: vocabulary dimension is empty")


def sme_from_logits(
    logits: Tensor, q: float | Tensor, r: float | Tensor, chunk: int = 16
) -> Tensor:
    """Exact Sharma-Mittal entropy per position, float64 [P]; q, r > 0 scalar or per-position."""
    _check_logits(logits)
    n = logits.shape[0]
    qc, rc = _as_param(q, n, "q").to(logits.device), _as_param(r, n, "r").to(logits.device)
    out = torch.empty(n, dtype=torch.float64, device=logits.device)
    for s in _chunks(n, chunk):
        lp = torch.log_softmax(logits[s].to(torch.float64), dim=-1)
        a, ssum = tilt_sum(lp, qc[s])
        out[s] = sme_from_tilt(a, qc[s, 0], rc[s, 0], ssum)
    return out


def renyi_from_logits(logits: Tensor, alpha: float, chunk: int = 16) -> Tensor:
    """Renyi entropy of order alpha > 0 (alpha = 1: Shannon, alpha = inf: -max log p), float64 [P]."""
    _check_logits(logits)
    if alpha == math.inf:
        out = [
            -torch.log_softmax(logits[s].to(torch.float64), -1).max(-1).values
            for s in _chunks(logits.shape[0], chunk)
        ]
        return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)
    return sme_from_logits(logits, alpha, 1.0, chunk)


def shannon_from_logits(logits: Tensor, chunk: int = 16) -> Tensor:
    """Shannon entropy -sum p log p per position, float64 [P]."""
    return renyi_from_logits(logits, 1.0, chunk)


def sme_reference(x: Tensor, q: float, r: float, *, logits: bool = True) -> Tensor:
    """The released code's SME numerics, vectorised over positions (float64 [P]).

    `x` are logits (softmax taken in their own dtype, like the released code) or, with
    `logits=False`, probabilities. p is cast to float64 and clamped to [eps, 1 - eps] without
    renormalising, eps = 1e-10; then, in this order: q == r: (S-1)/(1-q+eps); r == 1:
    log(max(S, eps))/(1-q+eps); otherwise e = (1-r)/(1-q+eps), clamped to +-100 (via float32,
    as released) when |e| > 100, and (max(S, eps)^e - 1)/(1-r+eps). Wrong near q = 1 by design.
    """
    if x.dim() == 1:
        x = x[None]
    p = torch.softmax(x, dim=-1) if logits else x
    p = p.to(torch.float64).clamp(EPS_REF, 1 - EPS_REF)
    q, r = float(q), float(r)
    s = torch.pow(p, q).sum(-1)
    if abs(q - r) < EPS_REF:
        return (1.0 / (1.0 - q + EPS_REF)) * (s - 1.0)
    s = s.clamp(min=EPS_REF)
    if abs(r - 1.0) < EPS_REF:
        return (1.0 / (1.0 - q + EPS_REF)) * torch.log(s)
    e = (1.0 - r) / (1.0 - q + EPS_REF)
    if abs(e) > 100:
        e = float(torch.tensor(e, dtype=torch.float32).clamp(-100, 100))
    return (1.0 / (1.0 - r + EPS_REF)) * (s**e - 1.0)

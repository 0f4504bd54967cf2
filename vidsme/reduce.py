"""Compact, exact per-position summaries of next-token distributions (the content of a dump).

A model pass produces logits [P, V] (V ~ 152k). `reduce_logits` keeps, per position, only what every
attack needs, so that changing (q, r) or beta1/beta2 never reruns the model:

- `top_logp` [P, M]: the M largest log-probabilities, exact, sorted descending (argmax in `argmax`);
- the tail (all other tokens) as its log-mass g1 = log sum_tail p and, at Chebyshev nodes q_k in
  [q_min, q_max], the smooth divided difference h(q) = (log sum_tail p^q - g1) / (q - 1)
  (= the tail's mean log-prob at q = 1). h is bounded by the tail's log-prob range and analytic,
  so barycentric interpolation reconstructs sum_tail p^q = exp(g1 + (q-1) h(q)) with a small
  *relative* error at every q, including q -> 1 where the Renyi / Sharma-Mittal limits live;
- scalars for the baselines: sum p l, sum p (l - mu)^2, sum_{j != y} p log(1-p),
  sum_{j != y} p (sqrt(1-p) - 1), sum_{j != y} p^2, sum p^2, sum sqrt p; and `nonfinite` flags;
- optionally the mean of the softmax rows (float32 [V]) for the released code's "sequence" score.

`vidsme.passstats.PassStats` reconstructs every per-position quantity from these arrays (numpy,
float64). `benchmarks/fastpath.py` computes the same quantities for one known (q, r) in one pass (the
independent cross-check of the tests and the speed reference of the benchmarks).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from vidsme.reducespec import ReduceSpec  # re-exported: its home is torch-free (read at parse time)
from vidsme.sme import log1p_ratio, phi

_LOW = -1e5  # finite stand-in for log 0 (-inf logits): exp(q * _LOW) == 0 for every q >= 0.01


def _phi_cd(x: Tensor) -> Tensor:
    """phi(x) = expm1(x)/x in x's dtype. float32: a degree-8 series for |x| < 1/2 (error < 1e-8)
    and (exp(x) - 1)/x elsewhere, all vectorisable when compiled; float64: `sme.phi` (expm1)."""
    if x.dtype == torch.float64:
        return phi(x)
    small = x.abs() < 0.5
    xs = torch.where(small, x, torch.zeros_like(x))
    c = [1.0 / math.factorial(k + 1) for k in range(9)]  # 1, 1/2, 1/6, ... 1/9!
    poly = torch.full_like(xs, c[8])
    for ck in reversed(c[:8]):
        poly = poly * xs + ck
    xl = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, poly, (torch.exp(xl) - 1.0) / xl)


def _sqrt(t: Tensor) -> Tensor:
    """Square root, the same bits on every x86-64 CPU: PyTorch's CPU `sqrt` calls MKL's vector math, whose
    result depends on the CPU vendor (measured: not correctly rounded on an AMD EPYC, exact on Intel AVX2);
    exp(log(t) / 2) uses kernels that agree across vendors. CUDA's sqrt is IEEE-exact."""
    return torch.sqrt(t) if t.is_cuda else torch.exp(0.5 * torch.log(t))


def _sum64(t: Tensor) -> Tensor:
    """Row sums accumulated in float64 (a free upcast inside compiled kernels)."""
    return t.sum(-1, dtype=torch.float64)


def _common(x: Tensor, cd: torch.dtype, k: int) -> dict[str, Tensor]:
    """Shared part of both kernels for finite rows x [c, V] (compute dtype cd).

    z = x - max is exact for bf16 inputs; log Z is kept in float64 and never rounded into z.
    Returns top-k of z, log Z, p (cd), p without the argmax (pr), and the float64 baseline sums.
    """
    z = x.to(cd)
    z = (z - z.amax(-1, keepdim=True)).clamp(min=_LOW)
    e = torch.exp(z)
    zsum = _sum64(e)[:, None]
    logz = torch.log(zsum)  # float64 [c, 1]
    y = z.argmax(-1, keepdim=True)  # the first maximal index, on every device (topk's tie order is not)
    if k == 2:  # the runner-up without a sort (fuses when compiled)
        isy = torch.arange(z.shape[1], device=z.device)[None, :] == y
        topz, idx = torch.stack([z.gather(-1, y)[:, 0], torch.where(isy, -math.inf, z).amax(-1)], -1), y
    else:
        topz, idx = torch.topk(z, k, dim=-1, sorted=True)
    c = _sum64(e * z)[:, None] / zsum  # mean of z under p
    var = _sum64(e * (z - c.to(cd)).square()) / zsum[:, 0]
    p = e * (1.0 / zsum).to(cd)
    pr = p.scatter(-1, y, 0.0)
    return {
        "z": z, "logz": logz, "topz": topz, "idx": idx, "y": y[:, 0], "p": p, "pr": pr,
        "plogp": c[:, 0] - logz[:, 0],
        "var_logp": var,
        "mod_ent_rest": _sum64(pr * torch.log1p(-pr)),
        "mod_ren_rest": -_sum64(pr.square() / (1.0 + _sqrt(1.0 - pr))),  # sum p (sqrt(1-p) - 1)
        "p2_rest": _sum64(pr.square()),
        "sqrt_rest": _sum64(_sqrt(pr)),
    }


def _reduce_kernel(x: Tensor, nodes: list[float], top_m: int, cd: torch.dtype) -> dict[str, Tensor]:
    """All dump summaries for a chunk of finite rows."""
    s = _common(x, cd, min(top_m, x.shape[1]))
    z, logz, idx = s["z"], s["logz"], s["idx"]
    top = s["topz"].to(torch.float64) - logz
    py = torch.exp(top[:, 0])
    zt = z.scatter(-1, idx, _LOW)  # tail (top M removed)
    et = torch.exp(zt)
    tsum = _sum64(et)  # tail mass * Z
    g1 = torch.log(tsum) - logz[:, 0]  # log tail mass
    w = et * (1.0 / tsum).to(cd)[:, None]  # tail-normalised probabilities
    lt = zt - logz.to(cd)  # tail log-probs (rounded to cd; used only near q = 1)
    hs = []
    for qk in nodes:
        dk = qk - 1.0
        if abs(dk) < 0.25:  # h = log1p(d B)/d, B = sum w expm1(d l)/d: no cancellation near q = 1
            ltc = lt.clamp(min=-300.0)
            b = _sum64(w * ltc * _phi_cd(dk * ltc)) if dk != 0 else _sum64(w * ltc)
            hs.append(b * log1p_ratio(dk * b))
        else:  # h = (log sum_tail p^q - g1)/d with p^q = exp(q z) / Z^q, log Z in float64
            hs.append((torch.log(_sum64(torch.exp(qk * zt))) - qk * logz[:, 0] - g1) / dk)
    return {
        "top_logp": top,
        "argmax": s["y"],
        "plogp": s["plogp"],
        "var_logp": s["var_logp"],
        "mod_ent_rest": s["mod_ent_rest"],
        "mod_ren_rest": s["mod_ren_rest"],
        "p2_rest": s["p2_rest"],
        "sum_p2": s["p2_rest"] + py.square(),
        "sum_sqrtp": s["sqrt_rest"] + _sqrt(py),
        "tail_logmass": g1,
        "tail_h": torch.stack(hs, -1),
        "_p_sum": s["p"].sum(0, dtype=torch.float64),
    }


_COMPILED: dict[str, Any] = {}


def _maybe_compiled(name: str, fn: Any, compile: bool) -> Any:
    """torch.compile'd kernel (fused, one pass over the chunk) or the eager one."""
    if not compile:
        return fn
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile(fn, dynamic=False)
    return _COMPILED[name]


def _check(logits: Tensor) -> None:
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits: expected a 2-D tensor [positions, vocab >= 2], got {getattr(logits, 'shape', type(logits))}")
    if not logits.dtype.is_floating_point:
        raise ValueError(f"logits: expected a floating dtype, got {logits.dtype}")


def _chunk_rows(logits: Tensor, i: int, chunk: int) -> tuple[slice, Tensor, Tensor]:
    """(slice, rows with non-finite rows zeroed, nonfinite flags): NaN, +inf or all -inf."""
    s = slice(i, min(i + chunk, logits.shape[0]))
    x = logits[s]
    bad = ~torch.isfinite(x.amax(-1))
    if bool(bad.any()):
        x = torch.where(bad[:, None], torch.zeros_like(x), x)
    return s, x, bad


def reduce_logits(logits: Tensor, spec: ReduceSpec | None = None, chunk: int | None = None,
                  compile: bool = False) -> dict[str, Tensor]:
    """Reduce logits [P, V] (any float dtype, any device) to per-position summaries (see module doc).

    Works chunk-wise on `logits.device` (`chunk` positions at a time: 8, or 128 when compiled; never
    all P x V upcast at once); elementwise work in
    `spec.compute_dtype`, every sum accumulated in float64. Rows with NaN / +inf logits, or all -inf,
    are flagged in `nonfinite` and filled with NaN (argmax -1). `compile=True` fuses each chunk's
    work with torch.compile (same numbers up to rounding; first call compiles for a minute on CPU).
    """
    spec = spec or ReduceSpec()
    _check(logits)
    chunk = chunk or (128 if compile else 8)  # compiled kernels amortise their call overhead on big chunks
    n, v = logits.shape
    m = min(spec.top_m, v)
    dev = logits.device
    cd = getattr(torch, spec.compute_dtype)
    nodes = spec.nodes().tolist()
    kern = _maybe_compiled("reduce", _reduce_kernel, compile)
    f64 = dict(dtype=torch.float64, device=dev)
    out: dict[str, Tensor] = {
        "top_logp": torch.full((n, m), math.nan, **f64),
        "argmax": torch.full((n,), -1, dtype=torch.int64, device=dev),
        "tail_logmass": torch.full((n,), math.nan, **f64),
        "tail_h": torch.full((n, spec.n_nodes), math.nan, **f64),
    }
    for key in ("plogp", "var_logp", "mod_ent_rest", "mod_ren_rest", "p2_rest", "sum_p2", "sum_sqrtp"):
        out[key] = torch.full((n,), math.nan, **f64)
    nonfinite = torch.zeros(n, dtype=torch.bool, device=dev)
    psum = torch.zeros(v, **f64)
    for i in range(0, n, chunk):
        s, x, bad = _chunk_rows(logits, i, chunk)
        nonfinite[s] = bad
        stats = kern(x, nodes, spec.top_m, cd)
        p_sum = stats.pop("_p_sum")
        if bool(bad.any()):  # exclude flagged rows from the mean of the softmax rows
            p_sum = torch.exp(torch.log_softmax(x[~bad].to(cd), -1)).sum(0, dtype=torch.float64)
        psum += p_sum
        for key, val in stats.items():
            out[key][s] = torch.where(bad.reshape(-1, *[1] * (val.dim() - 1)), out[key][s], val.to(out[key].dtype))
    empty = out["tail_logmass"] < 0.5 * _LOW  # no tail mass (V <= M): tail terms vanish
    out["tail_logmass"] = torch.where(empty, torch.full_like(out["tail_logmass"], -math.inf), out["tail_logmass"])
    out["tail_h"] = torch.where(empty[:, None], torch.zeros_like(out["tail_h"]), out["tail_h"])
    out["nonfinite"] = nonfinite
    out["tail_nodes"] = torch.as_tensor(spec.nodes(), **f64)
    if spec.mean_probs:
        n_ok = int((~nonfinite).sum())
        out["mean_probs"] = (psum / max(n_ok, 1)).to(torch.float32)
    return out


# Cross terms between two models' distributions on identical inputs (reference-model attacks). The
# pass's own model is the reference (p); its companion, run on the same inputs, is the target (c).
CROSS = ("x_kl_ref_tgt", "x_kl_tgt_ref", "x_ref_logp_y", "x_tgt_argmax", "x_tgt_plogp")


def cross_terms(logits: Tensor, companion: Tensor, target_ids: Tensor | None = None, spec: ReduceSpec | None = None,
                chunk: int = 8) -> dict[str, Tensor]:
    """Exact per-position terms that need both full distributions at once (V ~ 152k: no dump holds them).

    `logits` [P, V] are the reference's, `companion` [P, V] the target's at the same positions of the same
    inputs. Returns float64 [P] arrays (int64 for the argmax):

    - ``x_kl_ref_tgt`` = KL(p || c) = sum_j p_j (log p_j - log c_j), ``x_kl_tgt_ref`` = KL(c || p);
    - ``x_ref_logp_y`` = log p(y), y the target's scored token: its argmax (first maximal index, as
      `reduce_logits`), or `target_ids` (answer slice, true tokens);
    - ``x_tgt_argmax``, ``x_tgt_plogp`` (= sum c log c): the target's own argmax and negative entropy,
      which the scoring step checks against the target's dump (same model, same inputs).

    Terms with p_j = 0 (or c_j = 0) contribute 0; p_j > 0 = c_j gives an infinite KL. Rows non-finite
    in either model are NaN (argmax -1). Elementwise work in `spec.compute_dtype`, sums in float64.
    """
    spec = spec or ReduceSpec()
    _check(logits)
    _check(companion)
    if logits.shape != companion.shape:
        raise ValueError(f"cross_terms: reference logits {tuple(logits.shape)} and target logits "
                         f"{tuple(companion.shape)} differ: the two models need the same vocabulary and positions")
    n = logits.shape[0]
    if target_ids is not None and tuple(target_ids.shape) != (n,):
        raise ValueError(f"cross_terms: target_ids must have shape ({n},), got {tuple(target_ids.shape)}")
    cd = getattr(torch, spec.compute_dtype)
    f64 = dict(dtype=torch.float64, device=logits.device)
    out = {k: torch.full((n,), math.nan, **f64) for k in CROSS if k != "x_tgt_argmax"}
    out["x_tgt_argmax"] = torch.full((n,), -1, dtype=torch.int64, device=logits.device)
    for i in range(0, n, chunk):
        s, x, bad_p = _chunk_rows(logits, i, chunk)
        _, c, bad_c = _chunk_rows(companion.to(logits.device), i, chunk)
        bad = bad_p | bad_c
        lp, lc = torch.log_softmax(x.to(cd), -1), torch.log_softmax(c.to(cd), -1)
        pp, pc = torch.exp(lp), torch.exp(lc)
        y = c.to(cd).argmax(-1) if target_ids is None else target_ids[s].to(logits.device)
        vals = {
            "x_kl_ref_tgt": _sum64(torch.where(pp > 0, pp * (lp - lc), 0.0)),
            "x_kl_tgt_ref": _sum64(torch.where(pc > 0, pc * (lc - lp), 0.0)),
            "x_ref_logp_y": lp.gather(-1, y[:, None])[:, 0].to(torch.float64),
            "x_tgt_plogp": _sum64(torch.where(pc > 0, pc * lc, 0.0)),
        }
        for k, v in vals.items():
            out[k][s] = torch.where(bad, out[k][s], v)
        out["x_tgt_argmax"][s] = torch.where(bad, out["x_tgt_argmax"][s], c.to(cd).argmax(-1))
    return out

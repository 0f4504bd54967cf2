"""Fast path: every per-position quantity for ONE known (q, r), in one chunked pass over the logits.

Not used by the workflow (a dump stays valid for any (q, r), so changing them never reruns a model);
kept next to the benchmarks as their speed reference (`bench_scoring.py`) and as the tests'
independent cross-check of `vidsme.passstats.PassStats` (tests/test_reduce.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vidsme.reduce import _check, _chunk_rows, _common, _maybe_compiled, _phi_cd, _sum64
from vidsme.sme import _as_param, sme_from_tilt


def _fast_kernel(x: Tensor, q: Tensor, r: Tensor, cd: torch.dtype, near: bool) -> dict[str, Tensor]:
    """Every per-position quantity for (q, r) per row (float64 [c, 1]); finite rows.

    near (all |q - 1| < 1/4): A = sum p l phi((q-1) l), l clamped at -300 (no float32 overflow; p^q
    underflows there anyway). Otherwise S = sum exp(q z) / Z^q directly (log Z in float64), A = (S-1)/(q-1).
    """
    s = _common(x, cd, 2)
    z, logz, p = s["z"], s["logz"], s["p"]
    ly = s["topz"][:, 0].to(torch.float64) - logz[:, 0]
    py = torch.exp(ly)
    d64 = q - 1.0
    if near:
        l = (z - logz.to(cd)).clamp(min=-300.0)
        a = _sum64(p * l * _phi_cd(d64.to(cd) * l))
        ssum = 1.0 + d64[:, 0] * a
    else:
        ssum = torch.exp(torch.log(_sum64(torch.exp(q.to(cd) * z))) - q[:, 0] * logz[:, 0])
        a = (ssum - 1.0) / d64[:, 0]
    mu, var = s["plogp"], s["var_logp"]
    sd = torch.sqrt(var.clamp(min=0.0))
    return {
        "sme": sme_from_tilt(a, q[:, 0], r[:, 0], ssum),
        "renyi_0.5": 2.0 * torch.log(s["sqrt_rest"] + torch.sqrt(py)),
        "renyi_1": -mu,
        "renyi_2": -torch.log(s["p2_rest"] + py.square()),
        "renyi_inf": -ly,
        "target_logp": ly,
        "gap": (s["topz"][:, 0] - s["topz"][:, 1]).to(torch.float64),
        "mod_entropy": torch.expm1(ly) * ly - s["mod_ent_rest"],
        "mod_renyi_0.5": -2.0 * (-torch.expm1(ly) * torch.expm1(0.5 * ly) + s["mod_ren_rest"]),
        "mod_renyi_2": torch.expm1(ly).square() + s["p2_rest"],
        "minkpp": torch.where(sd > 0, (ly - mu) / torch.where(sd > 0, sd, torch.ones_like(sd)), torch.zeros_like(sd)),
    }


def position_quantities(
    logits: Tensor, q: float | Tensor, r: float | Tensor, chunk: int | None = None,
    compute_dtype: str = "float32", compile: bool = False,
) -> dict[str, Tensor]:
    """Fast path: every per-position quantity for ONE known (q, r), float64 [P] each, one chunked pass.

    Keys: sme, renyi_0.5, renyi_1, renyi_2, renyi_inf, target_logp, gap, mod_entropy, mod_renyi_0.5,
    mod_renyi_2, minkpp, nonfinite. Elementwise work in `compute_dtype`, sums in float64.
    """
    _check(logits)
    chunk = chunk or (128 if compile else 16)
    n = logits.shape[0]
    dev = logits.device
    qc, rc = _as_param(q, n, "q").to(dev), _as_param(r, n, "r").to(dev)
    cd = getattr(torch, compute_dtype)
    kern = _maybe_compiled("fast", _fast_kernel, compile)
    out: dict[str, Tensor] = {}
    nonfinite = torch.zeros(n, dtype=torch.bool, device=dev)
    for i in range(0, n, chunk):
        s, x, bad = _chunk_rows(logits, i, chunk)
        nonfinite[s] = bad
        qs = qc[s]
        near = bool(((qs - 1.0).abs() < 0.25).all())
        if not near and bool(((qs - 1.0).abs() < 0.25).any()):  # mixed rows: one row at a time
            vals = [kern(x[j:j + 1], qs[j:j + 1], rc[s][j:j + 1], cd, bool(abs(float(qs[j, 0]) - 1.0) < 0.25))
                    for j in range(x.shape[0])]
            res = {k: torch.cat([v[k] for v in vals]) for k in vals[0]}
        else:
            res = kern(x, qs, rc[s], cd, near)
        for k, val in res.items():
            if k not in out:
                out[k] = torch.full((n,), math.nan, dtype=torch.float64, device=dev)
            out[k][s] = torch.where(bad, torch.full_like(val, math.nan), val)
    out["nonfinite"] = nonfinite
    return out

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

`PassStats` reconstructs every per-position quantity from these arrays (numpy, float64).
`position_quantities` is the fast path computing the same quantities for one known (q, r).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidsme.sme import _as_param, log1p_ratio, phi, sme_from_tilt

_LOW = -1e5  # finite stand-in for log 0 (-inf logits): exp(q * _LOW) == 0 for every q >= 0.01


@dataclass(frozen=True)
class ReduceSpec:
    """What `reduce_logits` keeps. Defaults meet 1e-4 relative SME accuracy for q in [0.5, 3]."""

    q_min: float = 0.5
    q_max: float = 3.0
    n_nodes: int = 24
    top_m: int = 16
    mean_probs: bool = True
    compute_dtype: str = "float64"  # elementwise precision ("float32": faster, ~1e-6 relative); sums always float64

    def __post_init__(self) -> None:
        if not (0.01 <= self.q_min < self.q_max) or not math.isfinite(self.q_max):
            raise ValueError(f"ReduceSpec: need 0.01 <= q_min < q_max < inf, got q_min={self.q_min}, q_max={self.q_max}")
        if self.n_nodes < 2:
            raise ValueError(f"ReduceSpec: n_nodes must be >= 2, got {self.n_nodes}")
        if self.compute_dtype not in ("float32", "float64"):
            raise ValueError(f"ReduceSpec: compute_dtype must be 'float32' or 'float64', got {self.compute_dtype!r}")
        if self.top_m < 2:
            raise ValueError(f"ReduceSpec: top_m must be >= 2, got {self.top_m}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ReduceSpec":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"ReduceSpec: unknown keys {sorted(unknown)}")
        return cls(**d)

    def nodes(self) -> np.ndarray:
        """Chebyshev points of the second kind mapped to [q_min, q_max] (ascending, float64)."""
        k = np.arange(self.n_nodes)
        x = -np.cos(np.pi * k / (self.n_nodes - 1))
        return 0.5 * (self.q_min + self.q_max) + 0.5 * (self.q_max - self.q_min) * x


def _bary_weights(n: int) -> np.ndarray:
    w = (-1.0) ** np.arange(n)
    w[0] *= 0.5
    w[-1] *= 0.5
    return w


def bary_interp(nodes: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Barycentric interpolation at Chebyshev-Lobatto nodes; values [P, n], x [P] -> [P]."""
    w = _bary_weights(len(nodes))
    d = x[:, None] - nodes[None, :]
    exact = d == 0
    d = np.where(exact, 1.0, d)
    c = w[None, :] / d
    with np.errstate(invalid="ignore"):
        out = (c * values).sum(1) / c.sum(1)
    hit = exact.any(1)
    if hit.any():
        out[hit] = values[hit][exact[hit]]
    return out


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
        "mod_ren_rest": -_sum64(pr.square() / (1.0 + torch.sqrt(1.0 - pr))),  # sum p (sqrt(1-p) - 1)
        "p2_rest": _sum64(pr.square()),
        "sqrt_rest": _sum64(torch.sqrt(pr)),
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
        "sum_sqrtp": s["sqrt_rest"] + torch.sqrt(py),
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


class PassStats:
    """Per-position quantities of one model pass, reconstructed from `reduce_logits` arrays (numpy).

    Every accessor returns float64 [P]; positions flagged `nonfinite` give NaN. The target y of the
    target-based quantities (`target_logp`, `mod_entropy`, `mod_renyi`, `minkpp`) is the argmax
    (video positions, METHOD section 8) unless the arrays carry true targets, `target_ids` and
    `target_logp` (the answer slice); the stored sums over j != argmax are then moved to j != y.
    """

    REQUIRED = ("top_logp", "argmax", "tail_logmass", "tail_h", "tail_nodes", "plogp", "var_logp",
                "mod_ent_rest", "mod_ren_rest", "p2_rest", "sum_p2", "sum_sqrtp", "nonfinite")

    def __init__(self, d: dict[str, np.ndarray]) -> None:
        missing = [k for k in self.REQUIRED if k not in d]
        if missing:
            raise ValueError(f"PassStats: missing arrays {missing}")
        a = {k: np.asarray(v) for k, v in d.items()}
        self.top_logp = a["top_logp"].astype(np.float64)
        n = self.top_logp.shape[0]
        for k in self.REQUIRED:
            if k != "tail_nodes" and a[k].shape[:1] != (n,):
                raise ValueError(f"PassStats: array {k!r} has {a[k].shape[:1]} rows, expected {n}")
        self.argmax = a["argmax"].astype(np.int64)
        self.nonfinite = a["nonfinite"].astype(bool)
        self.tail_logmass = a["tail_logmass"].astype(np.float64)
        self.tail_h = a["tail_h"].astype(np.float64)
        self.nodes = a["tail_nodes"].astype(np.float64)
        if self.tail_h.shape[1:] != self.nodes.shape:
            raise ValueError(f"PassStats: tail_h has {self.tail_h.shape[1:]} nodes, tail_nodes {self.nodes.shape}")
        self.q_min, self.q_max = float(self.nodes[0]), float(self.nodes[-1])
        self._s = {k: a[k].astype(np.float64) for k in
                   ("plogp", "var_logp", "mod_ent_rest", "mod_ren_rest", "p2_rest", "sum_p2", "sum_sqrtp")}
        self.mean_probs = a["mean_probs"].astype(np.float64) if "mean_probs" in a else None
        self.target_ids: np.ndarray | None = None
        self._ly = self.top_logp[:, 0]
        if ("target_ids" in a) != ("target_logp" in a):
            raise ValueError("PassStats: target_ids and target_logp come together")
        if "target_ids" in a:
            if a["target_ids"].shape != (n,) or a["target_logp"].shape != (n,):
                raise ValueError(f"PassStats: target_ids/target_logp must have shape ({n},)")
            self.target_ids = a["target_ids"].astype(np.int64)
            self._ly = np.where(self.nonfinite, np.nan, a["target_logp"].astype(np.float64))
            self._retarget()

    def _retarget(self) -> None:
        """Move the sums over j != argmax to j != y where the true target y is not the argmax:
        rest_y = rest_argmax + t(p_argmax) - t(p_y) for each summand t. 1 - p_argmax is taken as the
        mass of every other token (accurate when p_argmax ~ 1); p_y <= 1/2 there, so 1 - p_y is too."""
        other = self.target_ids != self.argmax
        if not other.any():
            return
        la, ly = self.top_logp[other, 0], self._ly[other]
        with np.errstate(divide="ignore", invalid="ignore"):
            log1m_a = np.logaddexp(np.logaddexp.reduce(self.top_logp[other, 1:], axis=1), self.tail_logmass[other])
            log1m_y = np.log(-np.expm1(ly))
        pa, py = np.exp(la), np.exp(ly)
        s = self._s
        s["mod_ent_rest"][other] += pa * log1m_a - py * log1m_y
        s["mod_ren_rest"][other] += pa * np.expm1(0.5 * log1m_a) - py * np.expm1(0.5 * log1m_y)
        s["p2_rest"][other] += pa**2 - py**2

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> "PassStats":
        return cls(d)

    @classmethod
    def from_tensors(cls, d: dict[str, Tensor]) -> "PassStats":
        return cls({k: v.detach().cpu().numpy() for k, v in d.items()})

    @property
    def n_positions(self) -> int:
        return int(self.top_logp.shape[0])

    def _q(self, q: float | np.ndarray) -> np.ndarray:
        qa = np.broadcast_to(np.asarray(q, dtype=np.float64), (self.n_positions,)).copy()
        tol = 1e-12 * max(1.0, self.q_max)
        bad = ~np.isfinite(qa) | (qa < self.q_min - tol) | (qa > self.q_max + tol)
        if bad.any():
            raise ValueError(f"q={float(qa[bad][0])!r} outside the dump's range [{self.q_min}, {self.q_max}] (ReduceSpec q_min/q_max)")
        return np.clip(qa, self.q_min, self.q_max)

    def tilt(self, q: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A, S): A = sum p expm1((q-1) l)/(q-1) = (S-1)/(q-1) and S = sum p^q, per position."""
        qa = self._q(q)
        d = qa - 1.0
        top = torch.from_numpy(self.top_logp)
        dt = torch.from_numpy(d)[:, None]
        a_top = (torch.exp(top) * top * phi(dt * top)).sum(-1).numpy()
        s_top = torch.exp(torch.from_numpy(qa)[:, None] * top).sum(-1).numpy()
        h = bary_interp(self.nodes, self.tail_h, qa)
        g1 = self.tail_logmass
        with np.errstate(invalid="ignore", over="ignore"):
            pt = np.exp(g1)  # tail mass (0 when empty)
            a_tail = pt * h * phi(torch.from_numpy(d * h)).numpy()
            a_tail = np.where(pt > 0, a_tail, 0.0)
            s_tail = np.where(pt > 0, np.exp(g1 + d * h), 0.0)
        return a_top + a_tail, s_top + s_tail

    def renyi(self, alpha: float | np.ndarray) -> np.ndarray:
        """Renyi entropy of order alpha: 1 (Shannon) and inf exact; 0.5, 2 exact; others from the tail model."""
        if np.isscalar(alpha):
            a = float(alpha)
            if a == 1.0:
                return -self._s["plogp"]
            if a == math.inf:
                return -self.top_logp[:, 0]
            if a == 2.0:
                return -np.log(self._s["sum_p2"])
            if a == 0.5:
                return 2.0 * np.log(self._s["sum_sqrtp"])
        qa = self._q(alpha)
        A, S = self.tilt(qa)
        d = qa - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            near = -A * log1p_ratio(torch.from_numpy(d * A)).numpy()
            far = -np.log(S) / np.where(d == 0, 1.0, d)
        return np.where(np.abs(d * A) < 0.5, near, far)

    def sme(self, q: float | np.ndarray, r: float | np.ndarray) -> np.ndarray:
        """Sharma-Mittal entropy SME_{q,r} per position (q, r scalar or per-position, q in the dump's range)."""
        ra = np.broadcast_to(np.asarray(r, dtype=np.float64), (self.n_positions,))
        if not np.all(np.isfinite(ra) & (ra > 0)):
            raise ValueError(f"r must be finite and > 0, got {np.asarray(r).ravel()[:5]}")
        h = self.renyi(self._q(q))
        return h * phi(torch.from_numpy((1.0 - ra) * h)).numpy()

    @property
    def target_logp(self) -> np.ndarray:
        """log p_y of the target: the argmax (video positions) or the true token (answer slice)."""
        return self._ly

    @property
    def gap(self) -> np.ndarray:
        """Largest minus second-largest log-probability."""
        return self.top_logp[:, 0] - self.top_logp[:, 1]

    @property
    def mod_entropy(self) -> np.ndarray:
        """-(1-p_y) log p_y - sum_{j != y} p_j log(1 - p_j)."""
        ly = self._ly
        return np.expm1(ly) * ly - self._s["mod_ent_rest"]

    def mod_renyi(self, alpha: float) -> np.ndarray:
        """Modified Renyi (METHOD section 8) for |1 - alpha| in {0.5, 1} (alpha 0.5 and 2):

        -1/a [(1-p_y)(p_y^a - 1) + sum_{j != y} p_j ((1-p_j)^a - 1)],  a = |1 - alpha|.
        """
        a = abs(1.0 - float(alpha))
        if a == 0.5:
            rest = self._s["mod_ren_rest"]
        elif a == 1.0:
            rest = -self._s["p2_rest"]
        else:
            raise ValueError(f"mod_renyi: alpha={alpha} unsupported; the dump stores |1-alpha| in {{0.5, 1}} (alpha 0.5, 2)")
        ly = self._ly
        return -(1.0 / a) * (-np.expm1(ly) * np.expm1(a * ly) + rest)

    @property
    def minkpp(self) -> np.ndarray:
        """Min-K%++ per-position z-score (log p_y - mu) / sigma; 0 where sigma = 0."""
        mu, var = self._s["plogp"], np.maximum(self._s["var_logp"], 0.0)
        sd = np.sqrt(var)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (self._ly - mu) / sd
        return np.where(sd > 0, z, np.where(np.isnan(sd), np.nan, 0.0))

    def seq_sme(self, q: float, r: float) -> float:
        """SME of the renormalised mean softmax row (the released code's secondary "sequence" score)."""
        if self.mean_probs is None:
            raise ValueError("seq_sme: this dump has no mean_probs (ReduceSpec.mean_probs=False)")
        from vidsme.sme import sme_from_logits

        mp = torch.from_numpy(self.mean_probs)
        if not bool(torch.isfinite(mp).all()) or float(mp.sum()) <= 0:
            return math.nan
        lp = torch.log(mp / mp.sum())[None]
        return float(sme_from_logits(lp, q, r)[0])


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

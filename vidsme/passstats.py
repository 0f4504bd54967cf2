"""Per-position quantities of one model pass, reconstructed on the host from a dump's arrays.

`PassStats` takes the arrays `vidsme.reduce.reduce_logits` keeps per position (top log-probs, the
tail's log-mass and its divided differences at Chebyshev nodes, baseline sums) and gives every
quantity the attacks need in float64: Sharma-Mittal and Renyi entropies at any (q, r) in the dump's
range, target log-probs, the max-probability gap, modified entropies and Min-K%++ z-scores.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from vidsme.sme import log1p_ratio, phi


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


class CrossStats:
    """Cross terms stored in a reference model's pass (`vidsme.reduce.cross_terms`), float64 [P] each.

    `kl_ref_tgt` = KL(reference || target), `kl_tgt_ref` = KL(target || reference) per position,
    `ref_logp_y` = the reference's log-prob at the target's token (argmax, or the true answer token),
    and the target's own argmax and sum p log p, which `check_target` compares with the target's dump.
    """

    def __init__(self, d: dict[str, np.ndarray]) -> None:
        from vidsme.reduce import CROSS

        missing = [k for k in CROSS if k not in d]
        if missing:
            raise ValueError(f"CrossStats: no cross terms {missing}: the reference's passes ran without the target "
                             "as companion (the workflow's model_pass adds it for the reference model key)")
        self.kl_ref_tgt = np.asarray(d["x_kl_ref_tgt"], np.float64)
        self.kl_tgt_ref = np.asarray(d["x_kl_tgt_ref"], np.float64)
        self.ref_logp_y = np.asarray(d["x_ref_logp_y"], np.float64)
        self.tgt_argmax = np.asarray(d["x_tgt_argmax"], np.int64)
        self.tgt_plogp = np.asarray(d["x_tgt_plogp"], np.float64)

    @property
    def n_positions(self) -> int:
        return int(self.kl_ref_tgt.shape[0])

    def check_target(self, target: PassStats, where: str, atol: float = 1e-3) -> None:
        """The companion run must be the target's own pass: same positions, same sum p log p (within
        `atol` nats) and the same argmax except at near-ties (top-2 gap < `atol`). `where` names the
        video and pass in the error."""
        if target.n_positions != self.n_positions:
            raise ValueError(f"{where}: the target's dump has {target.n_positions} positions, the reference's "
                             f"cross terms {self.n_positions}: the two dumps are not of the same inputs")
        ok = ~target.nonfinite & np.isfinite(self.tgt_plogp)
        dev = np.abs(self.tgt_plogp[ok] + target.renyi(1.0)[ok])  # Shannon entropy = -sum p log p
        tie = target.gap < atol
        flip = ok & (self.tgt_argmax != target.argmax) & ~tie
        if (dev.size and dev.max() > atol) or flip.any():
            worst = float(dev.max()) if dev.size else 0.0
            raise ValueError(f"{where}: the target run beside the reference does not match the target's dump "
                             f"(max |sum p log p| difference {worst:.3g} nats, {int(flip.sum())} argmax changes): "
                             "the target changed after the reference's passes; rerun them")

"""reduce_logits / PassStats: every per-position quantity from a compact dump equals the full-logits value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastpath import position_quantities
from vidsme.passstats import PassStats
from vidsme.reduce import ReduceSpec, reduce_logits
from vidsme.sme import sme_from_logits, sme_from_tilt, tilt_sum

V_PAPER = 152_064
Q_GRID = [0.5, 0.75, 1.0, 1.0 + 1e-7, 1.05, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0]
R_GRID = [0.5, 1.0, 1.05, 1.1, 2.0]


def _flat(p: int, v: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(p, v, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.5


def _zipf(p: int, v: int, pmax: float, seed: int = 0) -> torch.Tensor:
    """Zipf-like rows (exponent 1.1, shuffled) whose top probability is pmax."""
    g = torch.Generator().manual_seed(seed)
    base = -1.1 * torch.log(torch.arange(1, v + 1, dtype=torch.float64))
    rows = []
    for _ in range(p):
        lp = torch.log_softmax(base[torch.randperm(v, generator=g)], -1)
        j = int(torch.argmax(lp))
        rest = torch.logsumexp(torch.cat([lp[:j], lp[j + 1:]]), 0)
        lp[j] = rest + math.log(pmax / (1 - pmax))
        rows.append(torch.log_softmax(lp, -1))
    return torch.stack(rows)


def _bimodal(p: int, v: int, seed: int = 0) -> torch.Tensor:
    """A few hundred plausible tokens 8 nats above a flat floor."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p, v, generator=g, dtype=torch.float64) * 0.3 - 8.0
    for i in range(p):
        idx = torch.randperm(v, generator=g)[:200]
        x[i, idx] += torch.randn(200, generator=g, dtype=torch.float64) * 0.3 + 8.0
    return x


def _exact_sme_grid(x: torch.Tensor) -> dict[tuple[float, float], np.ndarray]:
    lp = torch.log_softmax(x, -1)
    out = {}
    for q in Q_GRID:
        qc = torch.full((x.shape[0], 1), q, dtype=torch.float64)
        a, s = tilt_sum(lp, qc)
        for r in R_GRID:
            out[(q, r)] = sme_from_tilt(a, qc[:, 0], torch.full_like(a, r), s).numpy()
    return out


def _worst_rel(x: torch.Tensor, spec: ReduceSpec) -> float:
    ps = PassStats.from_tensors(reduce_logits(x, spec))
    return max(float(np.max(np.abs(ps.sme(q, r) - ex) / np.abs(ex))) for (q, r), ex in _exact_sme_grid(x).items())


@pytest.mark.parametrize("kind", ["flat", "zipf0.999", "zipf0.9", "bimodal"])
def test_dump_sme_within_1e4_at_paper_vocab(kind: str) -> None:
    x = {"flat": lambda: _flat(2, V_PAPER), "zipf0.999": lambda: _zipf(2, V_PAPER, 0.999),
         "zipf0.9": lambda: _zipf(1, V_PAPER, 0.9), "bimodal": lambda: _bimodal(2, V_PAPER)}[kind]()
    assert _worst_rel(x, ReduceSpec()) < 1e-4


def test_fewer_nodes_are_worse() -> None:
    """The accuracy comes from the Chebyshev tail model: too few nodes must be visibly worse."""
    x = _bimodal(2, 20_000)
    assert _worst_rel(x, ReduceSpec(n_nodes=8)) > 10 * _worst_rel(x, ReduceSpec())


def _direct(x: torch.Tensor, target: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Baseline quantities straight from METHOD.md section 8, full vocabulary, float64 (y = argmax or `target`)."""
    lp = torch.log_softmax(x, -1)
    p = torch.exp(lp)
    y = p.argmax(-1, keepdim=True) if target is None else target[:, None]
    py = p.gather(-1, y)[:, 0]
    ly = lp.gather(-1, y)[:, 0]
    rest = p.scatter(-1, y, 0.0)
    srt = torch.sort(lp, -1, descending=True).values
    mu = (p * lp).sum(-1)
    sd = torch.sqrt((p * (lp - mu[:, None]) ** 2).sum(-1))
    mod_r = {}
    for alpha in (0.5, 2.0):
        a = abs(1 - alpha)
        mod_r[alpha] = -(1 / a) * ((1 - py) * py**a - (1 - py) + (rest * (1 - rest) ** a).sum(-1) - rest.sum(-1))
    return {
        "target_logp": ly.numpy(),
        "gap": (srt[:, 0] - srt[:, 1]).numpy(),
        "mod_entropy": (-(1 - py) * ly - (rest * torch.log(1 - rest)).sum(-1)).numpy(),
        "mod_renyi_0.5": mod_r[0.5].numpy(),
        "mod_renyi_2": mod_r[2.0].numpy(),
        "minkpp": ((ly - mu) / sd).numpy(),
        "renyi_0.5": (2 * torch.log(torch.sqrt(p).sum(-1))).numpy(),
        "renyi_1": (-mu).numpy(),
        "renyi_2": (-torch.log((p**2).sum(-1))).numpy(),
        "renyi_inf": (-srt[:, 0]).numpy(),
    }


def _from_stats(ps: PassStats) -> dict[str, np.ndarray]:
    return {"target_logp": ps.target_logp, "gap": ps.gap, "mod_entropy": ps.mod_entropy,
            "mod_renyi_0.5": ps.mod_renyi(0.5), "mod_renyi_2": ps.mod_renyi(2), "minkpp": ps.minkpp,
            "renyi_0.5": ps.renyi(0.5), "renyi_1": ps.renyi(1), "renyi_2": ps.renyi(2), "renyi_inf": ps.renyi(math.inf)}


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([0.3, 2.0, 6.0]))
def test_baseline_quantities_match_full_logits(seed: int, scale: float) -> None:
    x = torch.randn(5, 3000, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    got, want = _from_stats(PassStats.from_tensors(reduce_logits(x))), _direct(x)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_baselines_on_peaked_rows() -> None:
    x = _zipf(2, 50_000, 0.999)
    got, want = _from_stats(PassStats.from_tensors(reduce_logits(x))), _direct(x)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-8, err_msg=k)


@pytest.mark.parametrize("kind", ["flat", "peaked"])
def test_true_targets_move_the_target_based_quantities(kind: str) -> None:
    """Answer slice: with target_ids/target_logp every target-based quantity uses the true token."""
    x = _flat(6, 4000, seed=3) * 6 if kind == "flat" else _zipf(6, 20_000, 0.9999, seed=4)
    lp = torch.log_softmax(x, -1)
    order = torch.argsort(lp, -1, descending=True)
    target = torch.stack([order[0, 0], order[1, 1], order[2, 7], order[3, 30], order[4, 3000], order[5, -1]])
    arrays = {k: v.numpy() for k, v in reduce_logits(x, ReduceSpec(top_m=8)).items()}
    arrays.update(target_ids=target.numpy(), target_logp=lp.gather(-1, target[:, None])[:, 0].numpy())
    got, want = _from_stats(PassStats.from_arrays(arrays)), _direct(x, target)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-8, atol=1e-10, err_msg=k)
    plain = _from_stats(PassStats.from_arrays({k: v for k, v in arrays.items() if not k.startswith("target_")}))
    assert np.isclose(got["target_logp"][0], plain["target_logp"][0], rtol=1e-9) and got["target_logp"][5] < plain["target_logp"][5] - 1
    np.testing.assert_array_equal(got["renyi_2"], plain["renyi_2"])  # target-free quantities are unchanged
    with pytest.raises(ValueError, match="come together"):
        PassStats.from_arrays({k: v for k, v in arrays.items() if k != "target_logp"})


def test_fast_path_matches_dump_and_exact() -> None:
    """position_quantities works in float32 with float64 sums: 2e-5 relative on SME, 1e-4 on the rest."""
    for x in (_flat(3, 20_000), _zipf(3, 20_000, 0.999), _bimodal(3, 20_000)):
        x32 = x.float()
        ps = PassStats.from_tensors(reduce_logits(x32))
        ref = _from_stats(ps)
        for q, r in [(1.0, 1.0), (1.3, 1.05), (2.0, 1.1), (0.5, 2.0), (3.0, 0.5)]:
            fq = position_quantities(x32, q, r)
            np.testing.assert_allclose(fq["sme"].numpy(), sme_from_logits(x32, q, r).numpy(), rtol=2e-5)
        for k, v in ref.items():
            np.testing.assert_allclose(fq[k].numpy(), v, rtol=1e-4, atol=1e-9, err_msg=k)


def test_near_equal_passes_keep_their_difference() -> None:
    """Natural and reversed logits differing by 1e-3: the dump's delta matches the exact delta."""
    x = _zipf(4, 30_000, 0.99)
    y = x + 1e-3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    a, b = PassStats.from_tensors(reduce_logits(x)), PassStats.from_tensors(reduce_logits(y))
    for q, r in [(1.0, 1.0), (1.37, 1.06), (2.0, 1.1)]:
        exact = (sme_from_logits(x, q, r) - sme_from_logits(y, q, r)).numpy()
        assert np.all(np.abs(exact) > 0)
        np.testing.assert_allclose(a.sme(q, r) - b.sme(q, r), exact, rtol=1e-3)


def test_per_position_q_and_seq_sme() -> None:
    x = _bimodal(4, 5000).float()
    ps = PassStats.from_tensors(reduce_logits(x))
    q = np.array([1.0, 1.2, 1.6, 2.0])
    np.testing.assert_allclose(ps.sme(q, 1.05), sme_from_logits(x, torch.from_numpy(q), 1.05).numpy(), rtol=1e-6)
    mp = torch.softmax(x.double(), -1).mean(0)
    want = float(sme_from_logits(torch.log(mp / mp.sum())[None], 1.3, 1.05)[0])
    assert ps.seq_sme(1.3, 1.05) == pytest.approx(want, rel=1e-6)


def test_nonfinite_rows_flagged_not_fatal() -> None:
    x = _flat(5, 1000).float()
    bad = x.clone()
    bad[1, 3] = math.nan
    bad[2, 0] = math.inf
    bad[3] = -math.inf
    bad[4, :10] = -math.inf  # masked tokens are fine
    d = reduce_logits(bad)
    assert d["nonfinite"].tolist() == [False, True, True, True, False]
    ps = PassStats.from_tensors(d)
    assert np.all(np.isnan(ps.sme(1.5, 1.05)[1:4])) and np.all(np.isnan(ps.target_logp[1:4]))
    good = PassStats.from_tensors(reduce_logits(bad[[0, 4]]))
    np.testing.assert_allclose(ps.sme(1.5, 1.05)[[0, 4]], good.sme(1.5, 1.05), rtol=1e-12)
    np.testing.assert_allclose(d["mean_probs"].numpy(), reduce_logits(bad[[0, 4]])["mean_probs"].numpy(), rtol=1e-6)
    fq = position_quantities(bad, 1.5, 1.05)
    assert fq["nonfinite"].tolist() == [False, True, True, True, False] and bool(torch.isnan(fq["sme"][1:4]).all())


def test_chunking_dtype_and_determinism() -> None:
    x = _bimodal(7, 3000).float()
    d1, d2, d3 = reduce_logits(x, chunk=1), reduce_logits(x, chunk=3), reduce_logits(x, chunk=3)
    for k in d1:
        torch.testing.assert_close(d1[k], d2[k], rtol=1e-13, atol=1e-13)
        assert torch.equal(d2[k], d3[k])
    xb = x.bfloat16()
    db, du = reduce_logits(xb), reduce_logits(xb.float())
    for k in db:
        assert torch.equal(db[k], du[k])


def test_small_vocab_and_tiny_tail() -> None:
    """V <= top_m: no tail at all; everything still exact."""
    x = torch.randn(3, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ps = PassStats.from_tensors(reduce_logits(x, ReduceSpec(top_m=16)))
    for q, r in [(0.5, 2.0), (1.0, 1.0), (2.5, 1.1)]:
        np.testing.assert_allclose(ps.sme(q, r), sme_from_logits(x, q, r).numpy(), rtol=1e-12)


def test_size_at_paper_scale() -> None:
    """Per-position arrays x 2,304 positions + the float32 mean-probs vector must stay under 2 MB."""
    d = reduce_logits(_flat(4, 2000).float())
    per_pos = sum(v.element_size() * v[0].numel() for k, v in d.items() if k not in ("mean_probs", "tail_nodes"))
    total = 2304 * per_pos + V_PAPER * 4 + d["tail_nodes"].numel() * 8
    assert total <= 2_000_000, total


def test_spec_roundtrip_and_validation() -> None:
    s = ReduceSpec(q_min=0.8, q_max=2.2, n_nodes=20, top_m=8, mean_probs=False)
    assert ReduceSpec.from_dict(s.to_dict()) == s
    nodes = s.nodes()
    assert nodes[0] == pytest.approx(0.8) and nodes[-1] == pytest.approx(2.2) and np.all(np.diff(nodes) > 0)
    with pytest.raises(ValueError, match="q_min"):
        ReduceSpec(q_min=2.0, q_max=1.0)
    with pytest.raises(ValueError, match="unknown"):
        ReduceSpec.from_dict({"q_mn": 1.0})
    assert "mean_probs" not in reduce_logits(torch.randn(2, 50), s)


def test_passstats_errors_are_named() -> None:
    d = {k: v.numpy() for k, v in reduce_logits(torch.randn(3, 100)).items()}
    ps = PassStats.from_arrays(d)
    with pytest.raises(ValueError, match="q=3.5"):
        ps.sme(3.5, 1.0)
    with pytest.raises(ValueError, match="r must be"):
        ps.sme(1.5, 0.0)
    with pytest.raises(ValueError, match="mod_renyi"):
        ps.mod_renyi(3.0)
    with pytest.raises(ValueError, match="tail_h"):
        PassStats.from_arrays({k: v for k, v in d.items() if k != "tail_h"})
    with pytest.raises(ValueError, match="logits"):
        reduce_logits(torch.randn(5))


def test_float32_compute_meets_accuracy_goal() -> None:
    """compute_dtype='float32' (elementwise float32, float64 sums) still meets 1e-4 on SME."""
    spec = ReduceSpec(compute_dtype="float32")
    for x in (_flat(2, 20_000), _zipf(2, 20_000, 0.999), _bimodal(2, 20_000)):
        assert _worst_rel(x, spec) < 1e-4
    with pytest.raises(ValueError, match="compute_dtype"):
        ReduceSpec(compute_dtype="float16")


@pytest.mark.slow
def test_compiled_kernels_match_eager() -> None:
    x = _bimodal(8, 5000).float()
    for spec in (ReduceSpec(), ReduceSpec(compute_dtype="float32")):
        a, b = reduce_logits(x, spec), reduce_logits(x, spec, compile=True)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-9)
    fa, fb = position_quantities(x, 1.3, 1.05), position_quantities(x, 1.3, 1.05, compile=True)
    for k in fa:
        torch.testing.assert_close(fa[k], fb[k], rtol=1e-5, atol=1e-9)


def test_benchmark_quick_mode_runs(tmp_path) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "scoring.json"
    subprocess.run([sys.executable, str(root / "benchmarks" / "bench_scoring.py"), "--quick", "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    res = json.loads(out.read_text())
    assert {"floor", "released_loop", "fast_eager", "reduce_f64"} <= set(res["methods"])
    assert res["methods"]["floor"]["ratio_vs_floor"] == 1.0 and res["dump_bytes_per_position"] > 0


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    """On the model's device (CUDA, bf16 logits) the dump equals the CPU one up to rounding."""
    x = _bimodal(6, 20_000).bfloat16()
    for spec in (ReduceSpec(), ReduceSpec(compute_dtype="float32")):
        a, b = reduce_logits(x, spec), reduce_logits(x.cuda(), spec)
        for k in a:
            assert b[k].device.type == "cuda"
            torch.testing.assert_close(b[k].cpu(), a[k], rtol=1e-5, atol=1e-7)
    fa, fb = position_quantities(x, 1.3, 1.05), position_quantities(x.cuda(), 1.3, 1.05)
    for k in fa:
        torch.testing.assert_close(fb[k].cpu(), fa[k], rtol=1e-5, atol=1e-7)


def test_ties_take_the_first_maximal_token() -> None:
    x = torch.zeros(2, 50)
    x[0, [7, 3, 30]] = 5.0  # three-way tie
    x[1, 12] = 1.0
    d = reduce_logits(x)
    assert d["argmax"].tolist() == [3, 12]
    ps = PassStats.from_tensors(d)
    assert ps.gap[0] == 0.0 and ps.gap[1] == pytest.approx(1.0)
    np.testing.assert_allclose(position_quantities(x, 1.5, 1.0)["gap"].numpy(), ps.gap, atol=1e-7)

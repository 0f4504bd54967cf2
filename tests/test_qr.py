"""Adaptive (q, r): min-max formula, ties, rank robustness, fixed mode, the shard-table step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidsme.qr import map_qr, qr_table, unit_position

feature = st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=40)


def test_minmax_formula_by_hand() -> None:
    k1, k3 = [0.0, 5.0, 10.0, 2.5], [3.0, 1.0, 2.0, 5.0]
    q, r = map_qr(k1, k3)
    np.testing.assert_allclose(q, [2.0, 1.5, 1.0, 1.75])  # highest motion -> q = 1 exactly
    np.testing.assert_allclose(r, [1.05, 1.0, 1.025, 1.1])
    assert q[2] == 1.0
    q, r = map_qr(k1, k3, beta1=0.5, beta2=0.4)
    np.testing.assert_allclose(q, [1.5, 1.25, 1.0, 1.375])
    np.testing.assert_allclose(r, [1.2, 1.0, 1.1, 1.4])


@given(k1=feature, k3=feature, mode=st.sampled_from(["minmax", "rank"]))
def test_ranges_and_monotonicity(k1: list[float], k3: list[float], mode: str) -> None:
    n = min(len(k1), len(k3))
    a1, a3 = np.array(k1[:n]), np.array(k3[:n])
    q, r = map_qr(a1, a3, mode=mode)  # type: ignore[arg-type]
    assert np.all((q >= 1) & (q <= 2)) and np.all((r >= 1) & (r <= 1.1))
    i, j = np.argsort(a1, kind="stable")[[0, -1]]
    assert q[i] >= q[j]  # more motion, smaller q
    i, j = np.argsort(a3, kind="stable")[[0, -1]]
    assert r[i] <= r[j]  # more illumination change, larger r
    for a, b in zip(*np.triu_indices(n, 1)):
        if a1[a] == a1[b]:
            assert q[a] == q[b]  # ties get equal q
    if a1.max() > a1.min():
        assert q[np.argmax(a1)] == 1.0 and q[np.argmin(a1)] == 2.0


@pytest.mark.parametrize("mode", ["minmax", "rank"])
def test_max_equals_min_gives_midpoint(mode: str) -> None:
    q, r = map_qr([3.0, 3.0, 3.0], [7.0, 7.0, 7.0], beta1=1.0, beta2=0.1, mode=mode)  # type: ignore[arg-type]
    np.testing.assert_array_equal(q, 1.5)
    np.testing.assert_array_equal(r, 1.05)
    q, r = map_qr([4.0], [1.0], beta1=0.6, beta2=0.2, mode=mode)  # type: ignore[arg-type]
    assert q.tolist() == [1.3] and r.tolist() == [1.1]
    q, r = map_qr([0.0, 1.0], [2.0, 2.0], mode=mode)  # type: ignore[arg-type]
    assert q.tolist() == [2.0, 1.0] and r.tolist() == [1.05, 1.05]  # only the tied feature degenerates


def test_outlier_squeezes_minmax_not_rank() -> None:
    k1 = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1e6])
    k3 = np.arange(6.0)
    qm, _ = map_qr(k1, k3, mode="minmax")
    qk, _ = map_qr(k1, k3, mode="rank")
    assert np.ptp(qm[:5]) < 1e-5  # five ordinary videos squeezed against q = 2
    np.testing.assert_allclose(qk, [2.0, 1.8, 1.6, 1.4, 1.2, 1.0])  # evenly spread
    k1_no = k1[:5]
    np.testing.assert_allclose(map_qr(k1_no, k3[:5], mode="rank")[0], [2.0, 1.75, 1.5, 1.25, 1.0])


def test_rank_average_ties() -> None:
    u = unit_position(np.array([5.0, 1.0, 5.0, 3.0]), "rank")
    np.testing.assert_allclose(u, [1.0, 0.0, 1.0, 1 / 2.5])  # average ranks 2.5, 0, 2.5, 1
    np.testing.assert_allclose(unit_position(np.array([2.0, 2.0, 2.0, 9.0]), "rank"), [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(unit_position(np.array([1.0, 4.0, 4.0, 4.0, 8.0]), "rank"), [0.0, 0.5, 0.5, 0.5, 1.0])


def test_fixed_mode_and_errors() -> None:
    q, r = map_qr([1.0, 9.0], [0.0, 4.0], mode="fixed", fixed_q=0.5, fixed_r=1.3)
    assert q.tolist() == [0.5, 0.5] and r.tolist() == [1.3, 1.3]
    q, _ = map_qr([1.0, 9.0], [0.0, 4.0], fixed_q=0.5, fixed_r=1.3)  # ignored outside fixed mode
    assert q.tolist() == [2.0, 1.0]
    with pytest.raises(ValueError, match="fixed_r"):
        map_qr([1.0], [1.0], mode="fixed", fixed_q=2.0)
    with pytest.raises(ValueError, match="fixed_q"):
        map_qr([1.0], [1.0], mode="fixed", fixed_q=0.0, fixed_r=1.0)
    with pytest.raises(ValueError, match=r"k1 has a non-finite value at index 1"):
        map_qr([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="k3"):
        map_qr([1.0, 2.0], [np.inf, 2.0])
    with pytest.raises(ValueError, match="equal length"):
        map_qr([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="mode"):
        map_qr([1.0], [1.0], mode="zscore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta1"):
        map_qr([1.0], [1.0], beta1=-1.0)


def _stats(path: Path, rows: list[tuple[str, str, str, str, str, str]]) -> Path:
    lines = ["video_id\tn_decoded\tk1\tk3\tstatus\treason"] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_qr_table(tmp_path: Path) -> None:
    a = _stats(tmp_path / "s0.tsv", [("v1", "100", "0.0", "3.0", "ok", ""), ("bad", "", "", "", "skipped", "file not found")])
    b = _stats(tmp_path / "s1.tsv", [("v2", "50", "10.0", "1.0", "ok", ""), ("007", "80", "5.0", "5.0", "ok", "")])
    out, sk = tmp_path / "qr" / "qr.tsv", tmp_path / "qr" / "skipped.tsv"
    ret = qr_table([a, b], out, sk, mode="minmax", beta1=1.0, beta2=0.1, fixed_q=2.0, fixed_r=1.0)
    t = pd.read_csv(out, sep="\t", dtype={"video_id": str})
    assert list(t.columns) == ["video_id", "n_decoded", "k1", "k3", "q", "r"]
    assert t.video_id.tolist() == ["v1", "v2", "007"]  # leading zeros kept, skipped left out
    np.testing.assert_allclose(t.q, [2.0, 1.0, 1.5])  # computed over ok videos of all shards
    np.testing.assert_allclose(t.r, [1.05, 1.0, 1.1])
    assert t.n_decoded.tolist() == [100, 50, 80] and len(ret) == 3
    s = pd.read_csv(sk, sep="\t", dtype=str, keep_default_na=False)
    assert s.to_dict("records") == [{"video_id": "bad", "n_decoded": "", "status": "skipped", "reason": "file not found"}]
    qr_table([a, b], tmp_path / "rank.tsv", tmp_path / "sk2.tsv", mode="rank")
    np.testing.assert_allclose(pd.read_csv(tmp_path / "rank.tsv", sep="\t").q, [2.0, 1.0, 1.5])


def test_qr_table_errors(tmp_path: Path) -> None:
    a = _stats(tmp_path / "a.tsv", [("v1", "9", "1.0", "1.0", "ok", "")])
    dup = _stats(tmp_path / "d.tsv", [("v1", "9", "2.0", "1.0", "ok", "")])
    with pytest.raises(ValueError, match="'v1' appears in more than one"):
        qr_table([a, dup], tmp_path / "o.tsv", tmp_path / "s.tsv")
    none = _stats(tmp_path / "n.tsv", [("x", "", "", "", "skipped", "empty file (0 bytes)")])
    with pytest.raises(ValueError, match="no usable video"):
        qr_table([none], tmp_path / "o.tsv", tmp_path / "s.tsv")
    odd = _stats(tmp_path / "odd.tsv", [("x", "3", "1", "1", "maybe", "")])
    with pytest.raises(ValueError, match="bad status 'maybe'"):
        qr_table([odd], tmp_path / "o.tsv", tmp_path / "s.tsv")
    assert not (tmp_path / "o.tsv").exists()

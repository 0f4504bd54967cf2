"""Pipeline glue and reports without Snakemake: metrics policy, main table, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vidsme import pipeline, report


def _scores(tmp_path: Path, nan: bool = False) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        label = i % 2
        for attack, k in (("vid_sme", 0.1), ("vid_sme", 1.0), ("perplexity", np.nan)):
            s = rng.normal() + (2.0 if attack == "vid_sme" else 0.0) * label
            rows.append((f"v{i}", label, "eval", attack, k, s, 1.5, 1.05))
    df = pd.DataFrame(rows, columns=["video_id", "label", "split", "attack", "k", "score", "q", "r"])
    if nan:
        df.loc[0, "score"] = np.nan
    p = tmp_path / "scores.tsv"
    df.to_csv(p, sep="\t", index=False)
    return p


def test_metrics_per_attack_and_k(tmp_path: Path) -> None:
    m = pipeline.metrics(str(_scores(tmp_path)), str(tmp_path / "m.tsv"), [0.05, 0.01], n_boot=20, seed=0)
    assert len(m) == 3 and set(m.attack) == {"vid_sme", "perplexity"}
    sme = m[(m.attack == "vid_sme") & np.isclose(m.k.fillna(-1), 0.1)].iloc[0]
    assert sme.auc > 0.8 and sme.auc_lo <= sme.auc <= sme.auc_hi  # members were shifted up by 2 sigma
    assert (m.n_members == 20).all()


def test_nan_score_policy(tmp_path: Path) -> None:
    p = _scores(tmp_path, nan=True)
    m = pipeline.metrics(str(p), str(tmp_path / "m.tsv"), [0.05], n_boot=0, seed=0, nonfinite="lowest")
    assert m.n_nonfinite.sum() == 1
    with pytest.raises(ValueError, match="non-finite"):
        pipeline.metrics(str(p), str(tmp_path / "m2.tsv"), [0.05], n_boot=0, seed=0, nonfinite="clip")


def test_tables_pick_main_k_and_sort_by_auc(tmp_path: Path) -> None:
    pipeline.metrics(str(_scores(tmp_path)), str(tmp_path / "m.tsv"), [0.05, 0.01], n_boot=20, seed=0)
    out = {k: str(tmp_path / f"t.{k}") for k in ("md", "csv", "tex", "sweep")}
    t = report.write_tables(str(tmp_path / "m.tsv"), out["md"], out["csv"], out["tex"], out["sweep"], 0.1, [0.05, 0.01])
    assert list(t.attack) == ["vid_sme", "perplexity"] and t.K.iloc[0] == pytest.approx(0.1)
    md = Path(out["md"]).read_text()
    assert "| vid_sme | 10% |" in md and "Members: 20, non-members: 20" in md
    assert r"\begin{tabular}" in Path(out["tex"]).read_text()
    assert "K=100%" in Path(out["sweep"]).read_text()


def test_provenance_records_versions_and_lock(tmp_path: Path) -> None:
    info = pipeline.provenance({"model": {"id": "x", "revision": "abc"}}, "x", str(tmp_path / "p.json"), root=str(Path(__file__).parents[1]))
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["model_revision"] == "abc" and len(saved["lock_sha256"]) == 64 and info["package_version"]


def test_ablation_tables(tmp_path: Path) -> None:
    pipeline.metrics(str(_scores(tmp_path)), str(tmp_path / "m.tsv"), [0.05], n_boot=0, seed=0)
    mem = tmp_path / "mem.json"
    mem.write_text(json.dumps({"eval": {"gap": 1.5, "auc": 0.97}}))
    t = report.targets_ablation([str(tmp_path / "m.tsv")] * 2, [str(mem)] * 2, ["main", "defence"], str(tmp_path / "a.csv"), 0.1)
    assert set(t.variant) == {"main", "defence"} and (t.answer_loss_auc == 0.97).all() and len(t) == 4
    t = report.targets_ablation([str(tmp_path / "m.tsv")] * 2, [str(mem)] * 2, ["main", "defence"], str(tmp_path / "a.csv"), 0.1,
                                answer_files=[str(tmp_path / "m.tsv")] * 2)
    assert len(t) == 8 and t.groupby("slice").size().to_dict() == {"answer": 4, "video": 4}
    f = report.frames_ablation([str(tmp_path / "m.tsv")] * 2, [4, 8], str(tmp_path / "f.csv"), str(tmp_path / "f.png"), 0.1)
    assert sorted(f.frames.unique()) == [4, 8] and (tmp_path / "f.png").stat().st_size > 1000
    f = report.frames_ablation([str(tmp_path / "m.tsv")] * 2, [4, 8], str(tmp_path / "f.csv"), str(tmp_path / "f.png"), 0.1,
                               answer_files=[str(tmp_path / "m.tsv")] * 2)
    assert set(f.slice) == {"video", "answer"} and len(f) == 2 * len(f[f.slice == "video"])

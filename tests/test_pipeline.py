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


def _model_scores(path: Path, shift: dict[str, float], seed: int, attacks: tuple[str, ...] = ("vid_sme", "perplexity")) -> Path:
    """Scores of one model: members shifted up by `shift[attack]` standard deviations."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(40):
        for attack in attacks:
            k = 0.1 if attack == "vid_sme" else np.nan
            rows.append((f"v{i}", i % 2, "eval", attack, k, rng.normal() + shift.get(attack, 0.0) * (i % 2), 1.5, 1.05))
    pd.DataFrame(rows, columns=["video_id", "label", "split", "attack", "k", "score", "q", "r"]).to_csv(path, sep="\t", index=False)
    return path


def test_base_columns_pair_the_two_models(tmp_path: Path) -> None:
    """base AUC = the base model's AUC (sklearn) on the same videos; tuned - base = the AUC difference with
    a paired CI around it; an attack the base lacks gets n/a; a base AUC away from 50 is marked."""
    from sklearn.metrics import roc_auc_score

    tgt = _model_scores(tmp_path / "t.tsv", {"vid_sme": 2.0, "perplexity": 3.0}, 0, ("vid_sme", "perplexity", "ref_logp"))
    base = _model_scores(tmp_path / "b.tsv", {"perplexity": 3.0}, 1)
    for s, m in ((tgt, "tm.tsv"), (base, "bm.tsv")):
        pipeline.metrics(str(s), str(tmp_path / m), [0.05, 0.01], n_boot=200, seed=0)
    out = {k: str(tmp_path / f"t.{k}") for k in ("md", "csv", "tex", "sweep")}
    kw = {"scores": str(tgt), "base_scores": str(base), "base_metrics": str(tmp_path / "bm.tsv"), "n_boot": 200, "seed": 0}
    t = report.write_tables(str(tmp_path / "tm.tsv"), out["md"], out["csv"], out["tex"], out["sweep"], 0.1, [0.05, 0.01],
                            base=kw).set_index("attack")
    b = pd.read_csv(base, sep="\t")
    for attack in ("vid_sme", "perplexity"):
        g = b[b.attack == attack]
        want = roc_auc_score(g.label, g.score)
        assert t.at[attack, "base AUC"] == pytest.approx(want)
        assert t.at[attack, "tuned - base"] == pytest.approx(t.at[attack, "AUC"] - want)
        lo, hi = (float(x) / 100 for x in t.at[attack, "tuned - base 95% CI"].strip("[]").split(","))
        assert lo <= t.at[attack, "tuned - base"] <= hi
    assert t.at["vid_sme", "tuned - base"] > 0.2 and abs(t.at["perplexity", "tuned - base"]) < 0.15
    assert np.isnan(t.at["ref_logp", "base AUC"]) and t.at["ref_logp", "tuned - base 95% CI"] == "n/a"
    md = Path(out["md"]).read_text()
    ppl = next(line for line in md.splitlines() if line.startswith("| perplexity"))
    sme = next(line for line in md.splitlines() if line.startswith("| vid_sme"))
    assert "†" in ppl and "†" not in sme  # the base separates the split on perplexity only
    assert "measures the split, not membership" in md and "paired bootstrap (200 resamples" in md
    assert r"$^\dagger$" in Path(out["tex"]).read_text()
    # the two files must hold the same videos
    short = pd.read_csv(base, sep="\t")
    short[short.video_id != "v3"].to_csv(tmp_path / "b2.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="different videos.*v3"):
        report.add_base_columns(report.main_table(pd.read_csv(tmp_path / "tm.tsv", sep="\t"), 0.1, [0.05]), 0.1, str(tgt),
                                str(tmp_path / "b2.tsv"), str(tmp_path / "bm.tsv"), n_boot=10)


def test_movement_summary(tmp_path: Path) -> None:
    """Per-video mean KL from series files; members moved twice as far on the answer tokens only."""
    from safetensors.numpy import save_file

    from vidsme.movement import per_video, write_movement

    rng = np.random.default_rng(0)
    sheet = pd.DataFrame({"video_id": [f"v{i}" for i in range(30)], "label": [i % 2 for i in range(30)]})
    sheet.to_csv(tmp_path / "s.tsv", sep="\t", index=False)
    files = []
    for name, factor in (("video", 1.0), ("answer", 2.0)):
        t = {}
        for i in range(30):
            kl = rng.uniform(0.5, 1.5, 8) * (factor if i % 2 else 1.0)
            t[f"v{i}/kl_ref_tgt"], t[f"v{i}/kl_tgt_ref"], t[f"v{i}/sme_nat"] = kl, 2 * kl, kl
        f = tmp_path / f"shard{name}.safetensors"
        save_file(t, str(f), metadata={"slice": name})
        files.append(str(f))
    df = per_video(files, str(tmp_path / "s.tsv"))
    assert len(df) == 60 and list(dict.fromkeys(df.slice)) == ["video", "answer"]
    np.testing.assert_allclose(df.kl_tgt_ref, 2 * df.kl_ref_tgt)
    t = write_movement(files, str(tmp_path / "s.tsv"), str(tmp_path / "m.md"), str(tmp_path / "m.csv"), str(tmp_path / "m.png"),
                       n_boot=100, summary_csv=str(tmp_path / "ms.csv")).set_index("slice")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ms.csv").set_index("slice"), t, check_exact=False, rtol=1e-12)
    assert t.at["answer", "auc"] == 1.0 and t.at["answer", "ratio_of_means"] == pytest.approx(2.0, rel=0.2)
    assert 0.2 < t.at["video", "auc"] < 0.8 and t.at["video", "auc_lo"] < 0.5 < t.at["video", "auc_hi"]
    assert t.at["answer", "mannwhitney_p"] < 1e-4 < t.at["video", "mannwhitney_p"]
    md = (tmp_path / "m.md").read_text()
    assert "| video positions |" in md and "| answer tokens |" in md and (tmp_path / "m.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="no series with reference-model KL"):
        save_file({"v0/sme_nat": np.ones(3)}, str(tmp_path / "bare.safetensors"))
        per_video([str(tmp_path / "bare.safetensors")], str(tmp_path / "s.tsv"))

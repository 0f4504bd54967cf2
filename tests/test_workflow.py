"""The workflow: config validation, DAG shape, an end-to-end run of the committed tiny test
configuration (.test/config/config.yaml), incremental reruns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import vidsme

from conftest import ROOT, copy_workflow, planned_jobs, snakemake

TEST_CONFIG = ROOT / ".test" / "config" / "config.yaml"


def _sheet(path: Path, n: int, video_dir: str = "videos") -> Path:
    qa = 'Which way does the square move?\t["left", "right"]\t(B) right'
    rows = [f"v{i:05d}\t{video_dir}/v{i:05d}.mp4\t{i % 2}\t{qa}" for i in range(n)]
    path.write_text("video_id\tpath\tlabel\tquestion\toptions\tanswer\n" + "\n".join(rows) + "\n")
    return path


ANSWER = {"answer_slice": {"enabled": True}}  # the end-to-end run also scores the answer tokens
REFERENCE = {"reference": {"id": "ref_tiny"}}  # ... and has a reference model (`_reference_model`)


def _reference_model(wd: Path, name: str = "ref_tiny", **over) -> Path:
    """A second untrained tiny model beside the workflow: the tiny target's sizes and tokenizer (the tiny_target
    rule's settings), another seed; `over` changes sizes (e.g. another vocabulary)."""
    from vidsme.embedded import settings
    from vidsme.tiny import build_tiny

    return build_tiny("llava_next_video", wd / name, seed=1, **{**settings({}, "tiny"), **over})


def _config(wd: Path, sheet: str | None = "sheet.tsv", **over) -> Path:
    """`wd/test.yaml`: the committed tiny configuration with the test's overrides (merged per section).
    `sheet`: the test's own sample sheet in `wd`; None: the committed sheet and clips (.test/)."""
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    if sheet is not None:
        cfg["dataset"].update(samples=sheet, video_root=None)
    for k, v in over.items():
        cfg.setdefault(k, {}).update(v) if isinstance(v, dict) else cfg.__setitem__(k, v)
    p = wd / "test.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.fixture
def wd(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


def test_bad_config_key_fails_dry_run_naming_the_key(wd: Path) -> None:
    _sheet(wd / "sheet.tsv", 8)
    _config(wd, frames={"num_frame": 4})
    out = snakemake(wd, "-n", "--configfile", "test.yaml", check=False)
    assert out.returncode != 0
    assert "num_frame" in out.stdout + out.stderr


def test_bad_config_type_fails_dry_run_naming_the_value(wd: Path) -> None:
    _sheet(wd / "sheet.tsv", 8)
    _config(wd, qr={"beta1": "large"})
    out = snakemake(wd, "-n", "--configfile", "test.yaml", check=False)
    assert out.returncode != 0
    assert "'large' is not of type 'number'" in out.stdout + out.stderr


def test_missing_sample_sheet_is_named(wd: Path) -> None:
    _config(wd)
    out = snakemake(wd, "-n", "--configfile", "test.yaml", check=False)
    assert out.returncode != 0
    assert "dataset.samples" in out.stdout + out.stderr and "sheet.tsv" in out.stdout + out.stderr


def test_dry_run_shards_videos_not_one_job_per_video(wd: Path) -> None:
    _sheet(wd / "sheet.tsv", 1000)
    _config(wd, dataset={"shard_size": 64})
    jobs = planned_jobs(snakemake(wd, "-n", "--configfile", "test.yaml").stdout)
    assert jobs["extract_frames"] == jobs["model_pass"] == 16  # ceil(1000 / 64)
    assert jobs["position_series"] == 32  # video and answer slices (config/config.yaml turns the answer slice on)
    assert jobs["adaptive_qr"] == 1 and jobs["aggregate"] == jobs["metrics"] == 2


def test_committed_test_config_is_the_tiny_run() -> None:
    """.test/config/config.yaml: 8 committed clips, members and non-members alternating, a tiny model."""
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    assert cfg["experiment"] == "test" and cfg["model"] == {"source": "tiny"} and cfg["frames"]["num_frames"] == 4
    sheet = pd.read_csv(ROOT / cfg["dataset"]["samples"], sep="\t")
    assert list(sheet.label) == [0, 1] * 4
    assert all((ROOT / cfg["dataset"]["video_root"] / p).stat().st_size > 1000 for p in sheet.path)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole workflow with the committed test configuration: 8 tiny clips, an untrained tiny model,
    and a second tiny model as its reference (`REFERENCE`)."""
    wd = copy_workflow(tmp_path_factory.mktemp("e2e") / "wf")
    _reference_model(wd)
    _config(wd, sheet=None, model=REFERENCE)
    snakemake(wd, "--cores", "2", "--configfile", "test.yaml")
    return wd


@pytest.mark.slow
def test_end_to_end_outputs(finished_run: Path) -> None:
    res = finished_run / "results" / "test"
    scores = pd.read_csv(res / "scores" / "tiny" / "F4" / "scores.tsv", sep="\t")
    assert set(scores.video_id) == {f"v{i:05d}" for i in range(8)}
    assert {"video_id", "label", "attack", "k", "score", "q", "r", "model", "revision", "num_frames"} <= set(scores.columns)
    assert scores.groupby("video_id").label.nunique().max() == 1
    qr = pd.read_csv(res / "stats" / "F4" / "qr.tsv", sep="\t")
    assert qr.q.min() == pytest.approx(1.0) and qr.q.max() == pytest.approx(2.0)
    metrics = pd.read_csv(res / "metrics" / "tiny" / "F4" / "metrics.tsv", sep="\t")
    assert metrics.auc.between(0, 1).all() and (metrics.n_members == 4).all()
    assert "AUC" in (res / "tables" / "main.md").read_text()
    for fig in ("roc.png", "score_hist.png", "qr_hist.png", "auc_vs_k.png"):
        assert (res / "figures" / fig).stat().st_size > 1000
    # the answer-token extension: every attack again, on the answer tokens (true targets)
    answer = pd.read_csv(res / "scores" / "tiny" / "F4" / "scores_answer.tsv", sep="\t")
    assert set(answer.video_id) == set(scores.video_id) and set(answer.attack) == set(scores.attack)
    assert not answer.set_index(["video_id", "attack", "k"]).score.equals(scores.set_index(["video_id", "attack", "k"]).score)
    assert "Answer tokens" in (res / "tables" / "main_answer.md").read_text()
    # the blind baseline: a row of both main tables, its verdict in their headers, importances beside them
    for table in ("main.md", "main_answer.md"):
        md = (res / "tables" / table).read_text()
        assert "| blind |" in md and "Blind baseline AUC" in md
    blind = pd.read_csv(res / "blind" / "scores.tsv", sep="\t")
    assert list(blind.columns) == ["video_id", "label", "split", "score"] and set(blind.video_id) == set(scores.video_id)
    assert (res / "tables" / "blind_features.csv").stat().st_size > 0
    # dataset inference: 4 + 4 videos cannot make a set of 10; every cell says so
    di = pd.read_csv(res / "tables" / "dataset_inference.csv")
    assert di.rate.isna().all() and di.note.str.contains("pool has 4 videos").all()
    # the reference model: its own scores (the base-target columns), the ref_* attacks on the target, movement
    from vidsme.attacks import REFERENCE_ATTACKS

    assert set(REFERENCE_ATTACKS) <= set(scores.attack) and set(REFERENCE_ATTACKS) <= set(answer.attack)
    base = pd.read_csv(res / "scores" / "ref--ref_tiny" / "F4" / "scores.tsv", sep="\t")
    assert set(base.video_id) == set(scores.video_id) and not set(REFERENCE_ATTACKS) & set(base.attack)
    assert json.loads((res / "reference" / "check.json").read_text())["vocab_size"] > 0
    for sl in ("", "_answer"):
        table = pd.read_csv(res / "tables" / f"main{sl}.csv").set_index("attack")
        base_m = pd.read_csv(res / "metrics" / "ref--ref_tiny" / "F4" / f"metrics{sl}.tsv", sep="\t")
        ppl = base_m[base_m.attack == "perplexity"].iloc[0]
        assert table.at["perplexity", "base AUC"] == pytest.approx(ppl.auc)
        assert table.at["perplexity", "tuned - base"] == pytest.approx(table.at["perplexity", "AUC"] - ppl.auc)
        assert table.loc[list(REFERENCE_ATTACKS), "base AUC"].isna().all()
        md = (res / "tables" / f"main{sl}.md").read_text()
        assert "| base AUC | tuned - base | tuned - base 95% CI |" in md and "measures the split, not membership" in md
    mv = pd.read_csv(res / "tables" / "movement.csv")
    assert len(mv) == 16 and set(mv.slice) == {"video", "answer"} and (mv[["kl_ref_tgt", "kl_tgt_ref"]] > 0).all().all()
    # per-video mean KL = the KL attack's score at K = 100% (two code paths from the same series)
    kl = scores[(scores.attack == "ref_kl_rt") & (scores.k == 1.0)].set_index("video_id").score
    np.testing.assert_allclose(mv[mv.slice == "video"].set_index("video_id").kl_ref_tgt.loc[kl.index], kl, rtol=1e-12)
    assert "video positions" in (res / "tables" / "movement.md").read_text()
    assert (res / "figures" / "movement.png").stat().st_size > 1000
    prov = json.loads((res / "provenance.json").read_text())
    assert prov["lock_sha256"] and prov["config"]["frames"]["num_frames"] == 4
    log = (finished_run / "logs" / "test" / "metrics" / "tiny" / "F4" / "metrics.log").read_text()
    assert log.startswith(f"vidsme {vidsme.__version__} from {ROOT / 'vidsme'}\n")  # which code wrote it


@pytest.mark.slow
def test_second_run_does_nothing(finished_run: Path) -> None:
    _config(finished_run, sheet=None, model=REFERENCE)
    out = snakemake(finished_run, "-n", "--configfile", "test.yaml").stdout
    assert planned_jobs(out) == {}, out[-2000:]


@pytest.mark.slow
def test_answer_slice_toggle_reruns_passes_not_frames(finished_run: Path) -> None:
    """Turning the answer slice off changes what the passes dump: passes rerun, frames and (q, r) do not."""
    _config(finished_run, sheet=None, scoring={"answer_slice": {"enabled": False}}, model=REFERENCE)
    jobs = planned_jobs(snakemake(finished_run, "-n", "--configfile", "test.yaml").stdout)
    assert jobs["model_pass"] == 4 and jobs["position_series"] == 4  # target and reference, 2 shards each
    assert not {"extract_frames", "video_stats", "adaptive_qr", "tiny_target", "reference_check"} & set(jobs)


@pytest.mark.slow
def test_changing_k_reruns_aggregation_onward_only(finished_run: Path) -> None:
    _config(finished_run, sheet=None, scoring={"k_grid": [0.0, 0.1, 0.2, 1.0]}, model=REFERENCE)  # main_k (0.1) must stay in the grid
    jobs = planned_jobs(snakemake(finished_run, "-n", "--configfile", "test.yaml").stdout)
    assert {"aggregate", "metrics", "tables"} <= set(jobs)
    assert not {"extract_frames", "video_stats", "adaptive_qr", "model_pass", "position_series"} & set(jobs)


@pytest.mark.slow
def test_changing_beta_reruns_no_model_pass(finished_run: Path) -> None:
    _config(finished_run, sheet=None, qr={"beta1": 0.5, "beta2": 0.2}, model=REFERENCE)
    jobs = planned_jobs(snakemake(finished_run, "-n", "--configfile", "test.yaml").stdout)
    assert {"adaptive_qr", "position_series", "aggregate"} <= set(jobs)
    assert not {"extract_frames", "video_stats", "model_pass", "tiny_target"} & set(jobs)


@pytest.mark.slow
def test_changing_frame_count_reruns_from_frames(finished_run: Path) -> None:
    _config(finished_run, sheet=None, frames={"num_frames": 6}, model=REFERENCE)
    jobs = planned_jobs(snakemake(finished_run, "-n", "--configfile", "test.yaml").stdout)
    assert jobs["extract_frames"] == 2 and jobs["model_pass"] == 4 and jobs["video_stats"] == 2
    assert "tiny_target" not in jobs


@pytest.mark.slow
def test_same_seed_same_scores(finished_run: Path, tmp_path: Path) -> None:
    """A second run from scratch on the same video files gives byte-identical scores and metrics."""
    wd = copy_workflow(tmp_path / "again")
    _reference_model(wd)
    _config(wd, sheet=None, model=REFERENCE)
    snakemake(wd, "--cores", "2", "--configfile", "test.yaml", "--until", "tables")
    for rel in ("scores/tiny/F4/scores.tsv", "metrics/tiny/F4/metrics.tsv", "scores/tiny/F4/scores_answer.tsv",
                "tables/main.csv", "tables/main_answer.csv"):
        assert (wd / "results" / "test" / rel).read_bytes() == (finished_run / "results" / "test" / rel).read_bytes(), rel


def test_blind_target_needs_no_model(wd: Path) -> None:
    """`snakemake blind`: frames, statistics and the classifier; no model is trained, built or run."""
    _sheet(wd / "sheet.tsv", 8)
    _config(wd)
    jobs = planned_jobs(snakemake(wd, "-n", "blind", "--configfile", "test.yaml").stdout)
    assert jobs["blind_baseline"] == 1 and jobs["extract_frames"] == 2 and jobs["adaptive_qr"] == 1
    assert not {"model_pass", "tiny_target", "train_target", "position_series"} & set(jobs)
    jobs = planned_jobs(snakemake(wd, "-n", "blind").stdout)  # the embedded default: generated videos, no training
    assert jobs["embedded_data"] == 1 and jobs["blind_baseline"] == 1
    assert not {"model_pass", "train_target", "val_model_pass"} & set(jobs)


def test_validation_videos_are_scored_apart_from_the_evaluation_set(wd: Path) -> None:
    """A sheet with a val split: its videos get their own frames, passes and scores under val/, for dataset
    inference; the evaluation set's rules are the same as without them. (Their shard count is not compared:
    common.smk's n_videos() counts every row of a sheet, validation rows included.)"""
    _sheet(wd / "sheet.tsv", 8)
    _config(wd)
    base = planned_jobs(snakemake(wd, "-n", "--configfile", "test.yaml").stdout)
    lines = (wd / "sheet.tsv").read_text().splitlines()
    extra = [f"w{i:05d}\tvideos/w{i:05d}.mp4\t0\t" + "\t".join(lines[1].split("\t")[3:]) for i in range(6)]
    (wd / "sheet.tsv").write_text("\n".join([lines[0] + "\tsplit"] + [l + "\teval" for l in lines[1:]] + [e + "\tval" for e in extra]) + "\n")
    out = snakemake(wd, "-n", "--configfile", "test.yaml").stdout
    jobs = planned_jobs(out)
    assert {k for k in jobs if not k.startswith("val_")} == set(base)
    assert jobs["val_extract_frames"] == jobs["val_model_pass"] == 2 and jobs["val_qr"] == 1 and jobs["val_aggregate"] == 2
    assert "/val/scores/tiny/F4/scores.tsv" in out
    _config(wd, dataset_inference={"enabled": False})
    jobs = planned_jobs(snakemake(wd, "-n", "--configfile", "test.yaml").stdout)
    assert "dataset_inference" not in jobs and not any(k.startswith("val_") for k in jobs)
@pytest.mark.slow
def test_reference_with_another_vocabulary_stops_before_any_pass(wd: Path) -> None:
    _reference_model(wd, "bad_ref", pad_vocab_to=2048)
    _config(wd, sheet=None, model={"reference": {"id": "bad_ref"}})
    out = snakemake(wd, "--cores", "2", "--configfile", "test.yaml", check=False)
    assert out.returncode != 0
    log = (wd / "logs" / "test" / "reference_check.log").read_text()
    assert "another vocabulary size" in log and "bad_ref" in log
    assert not (wd / "results" / "test" / "dumps").exists()  # no model pass ran, neither the target's nor the reference's


def test_embedded_plan_attacks_the_base_target(wd: Path) -> None:
    """The embedded default pretrains one base, tunes the target from it, attacks both (the base's passes
    beside the target) after the compatibility check; ablation variants with the main pretraining share
    the base, and a variant named like a base is refused."""
    res = snakemake(wd, "-n", "--cores", "2")
    out = res.stdout
    jobs = planned_jobs(out)
    assert "Exception" not in out + res.stderr  # e.g. train_target offered for target/base (reserved name)
    assert jobs["pretrain_target"] == 1 and jobs["train_target"] == 1 and jobs["reference_check"] == 1
    assert jobs["model_pass"] == 2 * jobs["extract_frames"]  # the target and the base target
    assert "results/embedded/dumps/embedded-base/F16/shard0000.safetensors" in out and jobs["movement"] == 1
    out = snakemake(wd, "-n", "--cores", "2", "ablations").stdout
    jobs = planned_jobs(out)
    assert jobs["pretrain_target"] == 2  # target/base (shared by five variants) and target/base_random_init
    assert "dumps/embedded-base/F16/" in out and "dumps/embedded-base/F8/" not in out  # the reference at the main F only
    bad = wd / "bad.yaml"
    bad.write_text(yaml.safe_dump({"ablations": {"variants": {"base_x": {"epochs": 1}}}}))
    res = snakemake(wd, "-n", "--configfile", "bad.yaml", check=False)
    assert res.returncode != 0 and "base_x" in res.stdout + res.stderr


def test_a_variant_seed_is_a_replicate_with_its_own_base(wd: Path) -> None:
    """A variant's `seed` reaches its pretraining and tuning (its own base target, trained with that seed);
    a seed in the embedded block, which the pipeline would ignore, is refused naming the key."""
    from vidsme.embedded import settings

    tiny = {"synth": {"n_eval": 4, "n_val": 0, "n_pretrain": 2, "size": 16, "n_frames": 4, "real_clips": False},
            "tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64,
                     "vision_hidden_size": 16, "vision_layers": 1, "vision_heads": 1, "image_size": 16,
                     "patch_size": 8, "vocab_size": 400},
            "train": {"pretrain_epochs": 1, "epochs": 1, "num_frames": 2}}
    cfg = {"embedded": tiny, "ablations": {"frames": [2], "variants": {"rep": {"seed": 1}}},
           "frames": {"num_frames": 2}}
    (wd / "rep.yaml").write_text(yaml.safe_dump(cfg))
    bases = wd / "results" / "embedded" / "target"
    snakemake(wd, "--cores", "2", f"{bases.relative_to(wd)}/base_rep/model", f"{bases.relative_to(wd)}/base/model",
              "--configfile", "rep.yaml")
    meta = {b: json.loads((bases / b / "model" / "vidsme_base.json").read_text()) for b in ("base", "base_rep")}
    assert meta["base"]["seed"] == 0 and meta["base_rep"]["seed"] == 1
    curves = {b: (bases / b / "train_log.tsv").read_text() for b in ("base", "base_rep")}
    assert curves["base"] != curves["base_rep"]  # another init and pool, not the main base renamed
    (wd / "bad.yaml").write_text(yaml.safe_dump({"embedded": {"train": {"seed": 1}}}))
    res = snakemake(wd, "-n", "--configfile", "bad.yaml", check=False)
    assert res.returncode != 0 and "embedded.train.seed" in res.stdout + res.stderr
    with pytest.raises(KeyError, match="embedded.synth.seed"):
        settings({"synth": {"seed": 2}}, "synth")


def test_full_config_plans_the_larger_experiment_in_its_own_folders(wd: Path) -> None:
    """config/full.yaml is the package's FULL settings; its data and results do not touch the default's."""
    from vidsme import synth, train

    cfg = yaml.safe_load((wd / "config" / "full.yaml").read_text())
    assert {**synth.DEFAULTS, **cfg["embedded"]["synth"]} == synth.FULL
    assert {**train.DEFAULTS, **cfg["embedded"]["train"]} == train.FULL
    out = snakemake(wd, "-n", "--configfile", "config/full.yaml").stdout
    jobs = planned_jobs(out)
    assert jobs["model_pass"] == 2 * 38 and jobs["train_target"] == 1  # ceil(600 / 16) shards, target and base target
    assert "data/embedded_full/samples.tsv" in out and "results/embedded_full/tables/main.md" in out
    assert "data/embedded/" not in out and "results/embedded/" not in out


@pytest.mark.slow
def test_vidsme_score_and_table_reproduce_the_workflow(finished_run: Path, tmp_path: Path) -> None:
    """`vidsme score` on the run's dumps gives the workflow's scores bit for bit (both slices, default
    K grid and fixed (q, r)) when it runs with the workflow's pinned numerics, as the jobs did;
    `vidsme table` on its metrics prints its tables/main.md. (The run has a reference model: the
    reference-model attacks and the base-target columns need its dumps, which `vidsme score` and
    `vidsme table` do not read; every other figure is compared.)"""
    import os
    import subprocess
    import sys

    from vidsme.attacks import REFERENCE_ATTACKS
    from vidsme.numerics import pinned_env

    res = finished_run / "results" / "test"
    dumps = sorted(str(p) for p in (res / "dumps" / "tiny" / "F4").glob("shard*.safetensors"))
    assert len(dumps) == 2

    def vidsme_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **pinned_env(1)}  # numerics.pin and threads: the defaults
        out = subprocess.run([sys.executable, "-m", "vidsme", *args], capture_output=True, text=True, env=env, timeout=300, cwd=cwd)
        assert out.returncode == 0, out.stderr
        return out

    for slice_name, tag in (("video", ""), ("answer", "_answer")):
        out = tmp_path / f"scores{tag}.tsv"
        vidsme_cli("score", *dumps, "--qr", str(res / "stats" / "F4" / "qr.tsv"), "--sheet", str(res / "samples.tsv"),
                   "--out", str(out), "--slice", slice_name)
        got, want = pd.read_csv(out, sep="\t"), pd.read_csv(res / "scores" / "tiny" / "F4" / f"scores{tag}.tsv", sep="\t")
        assert len(want) > 100 and got.model.str.endswith("results/test/target/tiny").all()  # the dumps' model path
        want = want[~want.attack.isin(REFERENCE_ATTACKS)].reset_index(drop=True)
        pd.testing.assert_frame_equal(got.drop(columns="model"), want.drop(columns="model"), check_exact=True)
    rel = "results/test"  # run from the workflow's folder, as the workflow names the skipped table
    table = vidsme_cli("table", f"{rel}/metrics/tiny/F4/metrics.tsv", "--title", "Video-token positions",
                       "--sheet", f"{rel}/samples.tsv", "--skipped", f"{rel}/stats/F4/skipped.tsv", "--blind", f"{rel}/blind/metrics.tsv",
                       cwd=finished_run).stdout
    workflow = (res / "tables" / "main.md").read_text().splitlines()
    lines = table.splitlines()

    def rows(text_lines: list[str]) -> dict[str, str]:
        return {ln.split("|")[1].strip(): ln for ln in text_lines if ln.startswith("| ")}

    mine, theirs = rows(lines), rows(workflow)
    assert lines[:3] == workflow[:3] and len(mine) > 20 and set(theirs) == set(mine)  # header and verdict lines
    for attack, row in mine.items():  # the workflow's row = the same figures + the base-target columns
        assert theirs[attack].startswith(row.rstrip("|")), (row, theirs[attack])

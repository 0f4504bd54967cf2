"""The controls' tables and their place in the workflow (`snakemake controls`, not rule all)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, planned_jobs, snakemake

from vidsme import controls
from vidsme.check import TARGETS

COLS = ["attack", "k", "auc", "auc_lo", "auc_hi", "acc", "tpr@0.05", "n_members", "n_nonmembers"]


def _metrics(path: Path, aucs: dict[str, float]) -> str:
    rows = []
    for a, auc in aucs.items():
        for k in ((0.1, 0.3) if a != "vid_sme_mean" else (float("nan"),)):
            rows.append([a, k, auc if k != 0.3 else 0.5, auc - 0.05, auc + 0.05, auc, 0.1, 100, 100])
    pd.DataFrame(rows, columns=COLS).to_csv(path, sep="\t", index=False)
    return str(path)


def _memo(path: Path, auc: float) -> str:
    path.write_text(f'{{"eval": {{"auc": {auc}, "member_loss": 0.01, "nonmember_loss": 1.5, "gap": 1.49}}}}')
    return str(path)


def test_positive_control_table_reports_the_bars(tmp_path: Path) -> None:
    main_v = _metrics(tmp_path / "mv.tsv", {"vid_sme": 0.55, "vid_sme_mean": 0.5, "perplexity": 0.5})
    main_a = _metrics(tmp_path / "ma.tsv", {"vid_sme": 0.5, "vid_sme_mean": 0.5, "perplexity": 0.84})
    pc_v = _metrics(tmp_path / "pv.tsv", {"vid_sme": 0.97, "vid_sme_mean": 0.92, "perplexity": 0.9})
    pc_a = _metrics(tmp_path / "pa.tsv", {"vid_sme": 0.52, "vid_sme_mean": 0.6, "perplexity": 0.86})
    long = controls.positive_control_table(
        {"main": {"video": main_v, "answer": main_a}, "positive_control": {"video": pc_v, "answer": pc_a}},
        {"main": _memo(tmp_path / "m.json", 0.98), "positive_control": _memo(tmp_path / "p.json", 0.97)},
        0.1, tmp_path / "t.md", tmp_path / "t.csv")
    row = long[(long.target == "positive_control") & (long.slice == "video") & (long.attack == "vid_sme")]
    assert row.auc.item() == 0.97 and row.auc_lo.item() == pytest.approx(0.92)  # K = 10%, not the K = 30% row
    md = (tmp_path / "t.md").read_text()
    assert "ARTIFICIAL" in md and "vid_sme 97.0, vid_sme_mean 92.0: all >= 90" in md
    assert "| vid_sme | 55.0 [50.0, 60.0] | 97.0 [92.0, 97.0] |" not in md  # the CI is the file's, not made up
    assert "| vid_sme | 55.0 [50.0, 60.0] | 97.0 [92.0, 102.0] |" in md
    # answer tokens: vid_sme_mean (0.6) falls outside the main CI [0.45, 0.55], the other two are inside
    assert "2 of 3 attacks inside the main target's CI; outside: vid_sme_mean." in md
    assert pd.read_csv(tmp_path / "t.csv").shape[0] == 12


def test_positive_control_bar_not_met_is_said(tmp_path: Path) -> None:
    f = _metrics(tmp_path / "v.tsv", {"vid_sme": 0.6, "vid_sme_mean": 0.95})
    controls.positive_control_table({"main": {"video": f}, "pc": {"video": f}}, {}, 0.1, tmp_path / "t.md", tmp_path / "t.csv")
    assert "NOT all >= 90" in (tmp_path / "t.md").read_text()


def test_trace_ceiling() -> None:
    # 12 of 100 members at chance against the non-members, 88 above all of them: (88 * 100 + 12 * 50) / 10,000
    assert controls.trace_ceiling(12, 100) == pytest.approx(0.94)
    assert controls.trace_ceiling(0, 10) == 1.0
    with pytest.raises(ValueError, match="untraced"):
        controls.trace_ceiling(11, 10)


def test_positive_control_table_states_the_untraced_members(tmp_path: Path) -> None:
    f = _metrics(tmp_path / "v.tsv", {"vid_sme": 0.9})
    memo = tmp_path / "p.json"
    memo.write_text('{"eval": {"auc": 0.9, "member_loss": 0.1, "nonmember_loss": 1.0, "n_member": 100}, '
                    '"video_loss_excluded": ["a", "b"], "video_loss_excluded_by_split": {"eval": 12, "val": 3}}')
    controls.positive_control_table({"main": {"video": f}, "pc": {"video": f}}, {"pc": str(memo)}, 0.1,
                                    tmp_path / "t.md", tmp_path / "t.csv")
    md = (tmp_path / "t.md").read_text()
    assert "`pc`: 12 of the 100 evaluation members carry no planted trace" in md and "ranking like non-members, AUC 94.0;" in md


def _shift_files(tmp_path: Path) -> dict:
    aucs = {("random", "base"): 0.5, ("random", "tuned"): 0.55, ("shifted", "base"): 0.7, ("shifted", "tuned"): 0.8}
    return {(s, t, "video"): _metrics(tmp_path / f"{s}_{t}.tsv", {"vid_sme": a, "perplexity": a - 0.1})
            for (s, t), a in aucs.items()}


def test_shift_control_table_gain_and_blind(tmp_path: Path) -> None:
    blind = {"random": _metrics(tmp_path / "br.tsv", {"blind": 0.52}), "shifted": _metrics(tmp_path / "bs.tsv", {"blind": 0.97})}
    long = controls.shift_control_table(_shift_files(tmp_path), blind, 0.1, tmp_path / "s.md", tmp_path / "s.csv")
    md = (tmp_path / "s.md").read_text()
    # gain from shift = shifted base - random base = 70 - 50
    assert "| vid_sme | 50.0 [45.0, 55.0] | 55.0 [50.0, 60.0] | 70.0 [65.0, 75.0] | 80.0 [75.0, 85.0] | +20.0 |" in md
    assert "shifted split: AUC 97.0 [92.0, 102.0]: flags the split as shifted" in md
    assert "random split: AUC 52.0 [47.0, 57.0]: does not flag a shift" in md
    assert "| **blind** (no model) | 52.0 [47.0, 57.0] | 52.0 [47.0, 57.0] | 97.0 [92.0, 102.0] | 97.0 [92.0, 102.0] | +45.0 |" in md
    assert set(long.loc[long.attack == "blind", "target"]) == {"none"}
    # the main tables' rule (CI lower bound above 52), not a separate bar: 75 [70, 80] is a shift
    blind["shifted"] = _metrics(tmp_path / "bs2.tsv", {"blind": 0.75})
    controls.shift_control_table(_shift_files(tmp_path), blind, 0.1, tmp_path / "s2.md", tmp_path / "s2.csv")
    assert "shifted split: AUC 75.0 [70.0, 80.0]: flags the split as shifted (the main tables' rule: CI lower bound above 52)" \
        in (tmp_path / "s2.md").read_text()


def test_shift_control_table_needs_both_blind_splits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both splits"):
        controls.shift_control_table(_shift_files(tmp_path), {"random": _metrics(tmp_path / "b.tsv", {"blind": 0.5})},
                                     0.1, tmp_path / "s.md", tmp_path / "s.csv")


def test_shift_control_table_names_a_bad_blind_file(tmp_path: Path) -> None:
    bad = {"random": _metrics(tmp_path / "a.tsv", {"blind": 0.5}), "shifted": _metrics(tmp_path / "b.tsv", {"perplexity": 0.5})}
    with pytest.raises(ValueError, match="b.tsv.*'blind'"):
        controls.shift_control_table(_shift_files(tmp_path), bad, 0.1, tmp_path / "s.md", tmp_path / "s.csv")


# ----------------------------------------------------------------------------- workflow (dry runs)

@pytest.fixture(scope="module")
def wd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("controls") / "wf")


def test_controls_target_plans_both_controls_and_all_does_not(wd: Path) -> None:
    out = snakemake(wd, "-n", "controls").stdout
    jobs = planned_jobs(out)
    # main and positive_control tuned from one base target; the shift experiment's tuned and base targets
    assert jobs["train_target"] == 2 and jobs["pretrain_target"] == 1
    assert jobs["shift_train_target"] == jobs["shift_pretrain_target"] == jobs["shift_embedded_data"] == 1
    assert jobs["positive_control_table"] == jobs["shift_control_table"] == jobs["frame_swap"] == 1
    assert "results/embedded/target/positive_control/model" in out
    assert "data/embedded_shift/samples.tsv" in out and "results/embedded_shift/metrics/embedded-base/F16/metrics.tsv" in out
    # `vidsme check -t controls` compares exactly the tables these rules write (results/{experiment}/...)
    tables = {t for t in re.findall(r"results/embedded/(tables/\S+\.csv)", out)
              if any(c in t for c in ("positive_control", "shift_control", "frame_swap"))}
    assert tables == {"tables/positive_control.csv", "tables/shift_control.csv", "tables/frame_swap.csv"}
    assert all(any(fnmatch.fnmatch(t, p) for p in TARGETS["controls"]) for t in tables)
    assert not any(fnmatch.fnmatch(t, p) for t in tables for p in TARGETS["all"] + TARGETS["ablations"])
    default = snakemake(wd, "-n").stdout
    assert not any(r.startswith("shift_") for r in planned_jobs(default)) and "positive_control" not in default
    assert "frame_swap" not in planned_jobs(default)
    assert planned_jobs(default)["train_target"] == 1


def test_controls_config_errors_are_named(wd: Path) -> None:
    cases = [({"controls": {"variants": {"base": {"epochs": 1}}}}, "On instance['controls']['variants']:\n    'base'"),
             ({"controls": {"variants": {"base_x": {"epochs": 1}}}}, "On instance['controls']['variants']:\n    'base_x'"),
             ({"controls": {"variants": {"epochs_10": {"epochs": 1}}}}, "'epochs_10' is declared in both"),
             ({"controls": {"variants": {"positive_control": {"video_loss": 1.0}}}}, "controls.variants.positive_control.video_loss"),
             ({"dataset": {"kind": "sheet", "samples": "sheet.tsv"}, "dataset_inference": {"enabled": False}},
              "dataset.kind: embedded")]
    qa = 'Which way?\t["left", "right"]\t(B) right'  # a valid sheet: the kind is the only fault
    (wd / "sheet.tsv").write_text("video_id\tpath\tlabel\tsplit\tquestion\toptions\tanswer\n"
                                  + "".join(f"v{i}\tv{i}.mp4\t{i % 2}\teval\t{qa}\n" for i in range(8)))
    for cfg, msg in cases:
        (wd / "bad.yaml").write_text(yaml.safe_dump(cfg))
        out = snakemake(wd, "-n", "controls", "--configfile", "bad.yaml", check=False)
        assert out.returncode != 0 and msg in out.stdout + out.stderr, (cfg, (out.stdout + out.stderr)[-1500:])

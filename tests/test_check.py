"""`vidsme check`: a finished run against the committed expected results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from vidsme import check

MAIN = pd.DataFrame({"attack": ["vid_sme", "perplexity"], "K": [0.1, None], "AUC": [0.549, 0.513],
                     "AUC 95% CI": ["[47.4, 63.1]", "[43.1, 59.6]"], "Acc": [0.57, 0.55]})
MEM = {"eval": {"auc": 0.982, "member_loss": 0.0018, "nonmember_loss": 1.791}, "train_seconds": 162.3}


def _run(root: Path, main: pd.DataFrame = MAIN, mem: dict = MEM) -> Path:
    (root / "tables").mkdir(parents=True, exist_ok=True)
    (root / "target" / "main").mkdir(parents=True, exist_ok=True)
    main.to_csv(root / "tables" / "main.csv", index=False)
    (root / "target" / "main" / "memorisation.json").write_text(json.dumps(mem))
    return root


@pytest.fixture
def results(tmp_path: Path) -> Path:
    _run(tmp_path / "results" / "exp")
    check.update_expected(tmp_path / "results" / "exp", tmp_path / "results" / "expected" / "exp")
    return tmp_path / "results"


def test_update_copies_headline_files_without_timings(results: Path) -> None:
    exp = results / "expected" / "exp"
    assert sorted(str(p) for p in check.expected_files(exp)) == ["tables/main.csv", "target/main/memorisation.json"]
    assert "train_seconds" not in json.loads((exp / "target" / "main" / "memorisation.json").read_text())


def test_identical_run_passes_exactly(results: Path) -> None:
    figs = check.check_run(results / "exp", results / "expected" / "exp", exact=True)
    assert figs and all(f.ok for f in figs)
    names = {f"{f.file}: {f.name}" for f in figs}
    assert "tables/main.csv: vid_sme: AUC" in names and "target/main/memorisation.json: eval.auc" in names


def test_a_changed_auc_fails_exactly_but_passes_within_its_ci(results: Path) -> None:
    moved = MAIN.assign(AUC=[0.579, 0.513])  # the CI [47.4, 63.1] has half-width 0.0785
    _run(results / "exp", moved)
    exact = check.check_run(results / "exp", results / "expected" / "exp", exact=True)
    bad = [f for f in exact if not f.ok]
    assert [(f.name, f.expected, f.got, f.tol) for f in bad] == [("vid_sme: AUC", 0.549, 0.579, 0.0)]
    loose = check.check_run(results / "exp", results / "expected" / "exp", exact=False)
    auc = next(f for f in loose if f.name == "vid_sme: AUC")
    assert auc.ok and auc.tol == pytest.approx(0.0785)
    _run(results / "exp", MAIN.assign(AUC=[0.649, 0.513]))
    assert not next(f for f in check.check_run(results / "exp", results / "expected" / "exp", exact=False)
                    if f.name == "vid_sme: AUC").ok


def test_rows_the_text_columns_do_not_tell_apart_match_in_order() -> None:
    """A table with one row per set size (dataset inference): identical files pass, a changed cell fails
    in its own row only."""
    from vidsme.check import compare_table

    t = pd.DataFrame({"experiment": ["power"] * 3, "set_size": [10, 25, 50], "rate": [0.1, 0.5, 0.9], "rate_lo": [0.05, 0.4, 0.85]})
    assert all(f.ok for f in compare_table("di.csv", t, t.copy(), exact=True))
    changed = t.copy()
    changed.loc[1, "rate"] = 0.6
    bad = [f for f in compare_table("di.csv", t, changed, exact=True) if not f.ok]
    assert [(f.name, f.expected, f.got) for f in bad] == [("power #2: rate", 0.5, 0.6)]


def test_missing_file_row_and_folder_never_pass(results: Path) -> None:
    (results / "exp" / "target" / "main" / "memorisation.json").unlink()
    _run_main = MAIN.iloc[:1]
    _run_main.to_csv(results / "exp" / "tables" / "main.csv", index=False)
    figs = check.check_run(results / "exp", results / "expected" / "exp", exact=True)
    failed = {(f.file, f.name) for f in figs if not f.ok}
    assert ("target/main/memorisation.json", "file") in failed
    assert ("tables/main.csv", "row perplexity") in failed
    with pytest.raises(FileNotFoundError, match="no expected results"):
        check.check_run(results / "exp", results / "expected" / "nothing", exact=True)


def test_main_reports_verdict_and_missing_run(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check.main(["-e", "exp", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "-> PASS" in out and "vid_sme: AUC" in out and (results / "exp" / "check.tsv").is_file()
    assert check.main(["-e", "missing", "--results", str(results)]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_missing_ok_only_excuses_an_experiment_without_expected_results(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`make reproduce` with a config of its own (e.g. .test/config/config.yaml): no expected folder, nothing to compare."""
    (results / "mine" / "tables").mkdir(parents=True)
    assert check.main(["-e", "mine", "--results", str(results)]) == 2  # without the flag: an error
    capsys.readouterr()
    assert check.main(["-e", "mine", "--results", str(results), "--missing-ok"]) == 0
    assert "no expected results for experiment 'mine'" in capsys.readouterr().out
    (results / "exp" / "tables" / "main.csv").unlink()  # with an expected folder the flag changes nothing
    assert check.main(["-e", "exp", "--results", str(results), "--missing-ok"]) == 1

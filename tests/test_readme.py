"""README numbers come from results/expected/: the generator, and the doc test on the real README and docs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from vidsme import readme

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "e" / "tables").mkdir(parents=True)
    pd.DataFrame({"attack": ["a", "b", "c"], "K": [0.1, None, 0.1], "AUC": [0.91234, 0.5, 0.6],
                  "AUC 95% CI": ["[88.0, 94.0]", "[40.0, 60.0]", "[50.0, 70.0]"]}).to_csv(tmp_path / "e" / "tables" / "m.csv", index=False)
    pd.DataFrame({"attack": ["a", "a", "b", "b"], "frames": [2, 4, 2, 4], "auc": [0.5, 0.6, 0.7, 0.8]}).to_csv(
        tmp_path / "e" / "tables" / "f.csv", index=False)
    (tmp_path / "e" / "mem.json").write_text(json.dumps({"eval": {"auc": 0.98213, "member_loss": 0.00181}}))
    (tmp_path / "e" / "bench.json").write_text(json.dumps({"jobs": 10240, "peak_bytes": 155_600_000.0,
                                                           "clips": [{"file": "a.mp4", "x": 2.0}, {"file": "b.mp4", "x": 8.123}]}))
    return tmp_path


def test_table_rows_columns_renames_and_percent(source: Path) -> None:
    spec = readme._spec("file=e/tables/m.csv; rows=c,a; cols=attack,AUC>AUC (%),AUC 95% CI; pct=AUC")
    assert readme.render_table(spec, source) == ("| attack | AUC (%) | AUC 95% CI |\n|---|---|---|\n"
                                                 "| c | 60.0 | [50.0, 70.0] |\n| a | 91.2 | [88.0, 94.0] |\n")


def test_pivot_and_values(source: Path) -> None:
    spec = readme._spec("file=e/tables/f.csv; pivot=index:attack,columns:frames,values:auc; pct=2,4")
    assert readme.render_table(spec, source) == "| attack | 2 | 4 |\n|---|---|---|\n| a | 50.0 | 60.0 |\n| b | 70.0 | 80.0 |\n"
    assert readme.render_value(readme._spec("file=e/mem.json; key=eval.auc; fmt=.3f"), source) == "0.982"
    assert readme.render_value(readme._spec("file=e/tables/m.csv; row=attack:a; col=AUC; pct"), source) == "91.2"


def test_value_by_several_row_conditions(source: Path) -> None:
    assert readme.render_value({"file": "e/tables/f.csv", "row": "attack:b,frames:4", "col": "auc", "pct": ""}, source) == "80.0"
    with pytest.raises(readme.ReadmeError, match="does not select one value"):
        readme.render_value({"file": "e/tables/f.csv", "row": "attack:b", "col": "auc"}, source)
    assert readme.render_value({"file": "e/tables/m.csv", "row": "attack:a", "col": "AUC 95% CI", "fmt": ".5s"}, source) == "[88.0"
    with pytest.raises(readme.ReadmeError, match="no column 'slice'"):
        readme.render_value({"file": "e/tables/f.csv", "row": "attack:b,slice:video", "col": "auc"}, source)


def test_list_indices_thousands_and_scale(source: Path) -> None:
    def v(spec: str) -> str:
        return readme.render_value(readme._spec(spec), source)

    assert v("file=e/bench.json; key=clips.1.file") == "b.mp4"
    assert v("file=e/bench.json; key=clips.1.x; fmt=.1f") == "8.1"
    assert v("file=e/bench.json; key=jobs; fmt=,") == "10,240"
    assert v("file=e/bench.json; key=jobs") == "10240"
    assert v("file=e/bench.json; key=peak_bytes; scale=1e-6; fmt=.0f") == "156"
    with pytest.raises(readme.ReadmeError, match="no key 'clips.2.x'"):
        v("file=e/bench.json; key=clips.2.x")
    with pytest.raises(readme.ReadmeError, match="scale= needs a number"):
        v("file=e/bench.json; key=clips.0.file; scale=2")


def test_render_replaces_stale_numbers_and_names_bad_markers(source: Path) -> None:
    text = ("AUC <!-- v file=e/mem.json; key=eval.auc; fmt=.3f -->0.970<!-- /v --> and\n"
            "<!-- table file=e/tables/m.csv; rows=top:1; cols=attack,AUC; pct=AUC -->\n| stale |\n<!-- /table -->\n")
    out = readme.render(text, source)
    assert "-->0.982<!-- /v -->" in out and "| a | 91.2 |" in out and "stale" not in out
    assert readme.render(out, source) == out  # idempotent
    with pytest.raises(readme.ReadmeError, match="rows \\['zzz'\\] not in column 'attack'"):
        readme.render_table(readme._spec("file=e/tables/m.csv; rows=zzz"), source)
    with pytest.raises(readme.ReadmeError, match="not found"):
        readme.render_value(readme._spec("file=e/none.json; key=a"), source)


def test_readme_and_docs_agree_with_the_expected_results() -> None:
    """The doc test: every generated number in README.md and docs/*.md equals its rendering from results/expected/."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    stale = [f.name for f in files if readme.render(f.read_text()) != f.read_text()]
    assert not stale, f"out of date with results/expected/ (run `python -m vidsme.readme README.md docs/*.md`): {stale}"

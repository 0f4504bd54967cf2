"""`snakemake --report report.html` after a finished tiny run: one self-contained HTML file that
embeds the main table and the figures the rules mark with report(...)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from conftest import snakemake
from test_workflow import finished_run  # noqa: F401  (fixture: the tiny workflow, run once for this module)


def embedded_results(html: str) -> dict[str, dict]:
    """The report's ``results`` table: output path -> entry with a base64 ``data_uri``."""
    m = re.search(r"var results = (\{.*?\});\s*</script>", html, re.S)
    assert m, "no results table in the report"
    return json.loads(m.group(1))


def decoded(entry: dict) -> bytes:
    return base64.b64decode(entry["data_uri"].split(";base64,", 1)[1])


@pytest.mark.slow
def test_report_embeds_main_table_and_figures(finished_run: Path) -> None:  # noqa: F811
    snakemake(finished_run, "--configfile", "test.yaml", "--report", "report.html")
    html = (finished_run / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    results = embedded_results(html)
    res = "results/test"
    table = results[f"{res}/tables/main.md"]
    assert table["mime_type"] == "text/markdown" and table["job_properties"]["rule"] == "tables"
    text = decoded(table)
    assert text == (finished_run / res / "tables" / "main.md").read_bytes()
    assert b"| AUC" in text or b"AUC |" in text
    assert decoded(results[f"{res}/tables/main_answer.md"]).startswith(b"**Answer tokens.**")  # the extension's table
    for fig in ("roc.png", "score_hist.png", "qr_hist.png", "auc_vs_k.png"):
        data = decoded(results[f"{res}/figures/{fig}"])
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data == (finished_run / res / "figures" / fig).read_bytes()
    categories = json.loads(re.search(r"var categories = (\{.*?\});", html, re.S).group(1))
    assert {"Tables", "Figures"} <= set(categories)
    # captions (report/*.rst), rendered with the job's wildcards, params and config
    captions = {Path(k).name: v["caption"] for k, v in results.items()}
    assert "Main table" in captions["main.md"] and "Video-token positions" in captions["main.md"] and "K = 10%" in captions["main.md"]
    assert "Answer tokens" in captions["main_answer.md"] and "extension" in captions["main_answer.md"]
    assert "ROC curves" in captions["roc.png"] and "Score histograms" in captions["score_hist.png"]
    assert "minmax" in captions["qr_hist.png"] and "beta1 = 1.0" in captions["qr_hist.png"] and "AUC against K" in captions["auc_vs_k.png"]


def test_every_report_output_has_a_caption() -> None:
    """Each report(...) in the rules names a caption file of report/, and each caption file is used."""
    root = Path(__file__).resolve().parents[1]
    calls = re.findall(r"report\((.*?)\),\n", "".join(p.read_text() for p in sorted((root / "rules").glob("*.smk"))), re.S)
    assert len(calls) == 12
    used = set()
    for call in calls:
        m = re.search(r'caption="\.\./report/([\w.]+\.rst)"', call)
        assert m, call
        used.add(m.group(1))
    assert used == {p.name for p in (root / "report").glob("*.rst")} - {"workflow.rst"}

"""tools/lint.py (`make lint`): the workflow is lint-clean but for the one waived lint, and any
other lint still fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT, copy_workflow

LINT = ROOT / "tools" / "lint.py"


def _lint(wd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, str(LINT), *args], cwd=wd, capture_output=True, text=True, env=env, timeout=300)


def test_the_workflow_has_no_lint_but_the_waived_one(tmp_path: Path) -> None:
    wd = copy_workflow(tmp_path / "wf")
    out = _lint(wd, "--configfile", "config/config.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("snakemake lint: 0 lint(s) (waived: software directives, see tools/lint.py)")


def test_other_lints_fail(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(textwrap.dedent("""\
        rule no_log:
            output:
                "out.txt",
            shell:
                "touch {output}"
        """))
    out = _lint(tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "snakemake lint: 1 lint(s)"
    assert lines[0] == f"rule no_log, line 1, snakefile {tmp_path / 'Snakefile'}: No log directive defined"
    assert "conda environment or container" not in out.stdout  # the waived lint is not reported

"""A step's log file gets its messages, warnings, stderr (Python, C level, child processes) and failure."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import vidsme
from conftest import snakemake
from vidsme.logs import logged

ROOT = Path(__file__).resolve().parents[1]


def test_everything_a_step_says_lands_in_its_log(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "logs" / "step.log"
    with logged(path) as log:
        log.info("message from the package")
        warnings.warn("a warning from the step (test_logs)", UserWarning, stacklevel=1)
        print("python-level stderr", file=sys.stderr)
        os.write(2, b"descriptor-level stderr\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('stderr of a child process\\n')"], check=True)
    lines = path.read_text().splitlines()
    assert lines[0] == f"vidsme {vidsme.__version__} from {ROOT / 'vidsme'}"
    text = "\n".join(lines)
    for expected in ("INFO vidsme: message from the package", "WARNING py.warnings:", "UserWarning: a warning from the step (test_logs)",
                     "python-level stderr", "descriptor-level stderr", "stderr of a child process"):
        assert expected in text, expected
    err = capfd.readouterr().err
    assert "message from the package" in err  # the package's own messages still reach the console
    assert "descriptor-level stderr" not in err and "a warning from the step" not in err
    os.write(2, b"after the block\n")  # descriptor 2 is the console again
    assert "after the block" in capfd.readouterr().err and "after the block" not in path.read_text()


def test_failure_traceback_is_logged_and_raised(tmp_path: Path) -> None:
    path = tmp_path / "fail.log"
    with pytest.raises(ZeroDivisionError):
        with logged(path):
            1 / 0  # noqa: B018
    text = path.read_text()
    assert "ERROR vidsme: failed:" in text and "ZeroDivisionError: division by zero" in text
    assert not logging.getLogger("vidsme").handlers and not logging.getLogger("py.warnings").handlers


def test_without_a_path_warnings_go_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with logged(None) as log:
        log.info("console only")
        warnings.warn("console warning (test_logs)", UserWarning, stacklevel=1)
    err = capfd.readouterr().err
    assert "console only" in err and "console warning (test_logs)" in err


def test_a_rule_that_warns_has_the_warning_in_its_log(tmp_path: Path) -> None:
    """Through Snakemake: a one-rule workflow whose script warns and writes to stderr in the usual ways."""
    wd = tmp_path / "wf"
    (wd / "scripts").mkdir(parents=True)
    (wd / "Snakefile").write_text(textwrap.dedent("""\
        rule warn:
            output:
                "out.txt",
            log:
                "logs/warn.log",
            script:
                "scripts/warn.py"
        """))
    (wd / "scripts" / "warn.py").write_text(textwrap.dedent("""\
        import os
        import sys
        import warnings

        from vidsme.logs import logged

        with logged(snakemake.log[0]) as log:
            warnings.warn("this rule warns")
            print("a library printing to stderr", file=sys.stderr)
            os.write(2, b"a C library writing to descriptor 2\\n")
            log.info("done")
            open(snakemake.output[0], "w").write("ok")
        """))
    out = snakemake(wd, "--cores", "1")
    text = (wd / "logs" / "warn.log").read_text()
    assert text.startswith(f"vidsme {vidsme.__version__} from {ROOT / 'vidsme'}\n")
    for expected in ("UserWarning: this rule warns", "a library printing to stderr", "a C library writing to descriptor 2", "INFO vidsme: done"):
        assert expected in text, expected
    assert "this rule warns" not in out.stdout + out.stderr  # in the log, not lost on the console

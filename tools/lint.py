"""`make lint`, first half: Snakemake's linter on the workflow, with one documented waiver.

Snakemake asks every rule for a `conda:` or `container:` directive. This workflow has neither on
purpose: its software is the pinned virtual environment of `make env` (requirements.lock), the
only one its tests and CI exercise (conda-forge and container registries are out of reach there),
and a directive nothing tests would mislead (README, "Two commands"). Every other lint fails.

    python tools/lint.py [--configfile config/config.yaml]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from unittest import mock

WAIVED = {"Specify a conda environment or container for each rule."}


def lints(snakefile: Path, configfiles: list[Path]) -> dict:
    """Snakemake's lints of a workflow: {"snakefiles": [...], "rules": [...]} as in `--lint json`."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    buf = io.StringIO()
    with SnakemakeApi(OutputSettings()) as api:
        wf = api.workflow(ResourceSettings(), snakefile=snakefile, config_settings=ConfigSettings(configfiles=configfiles))
        # Snakemake 9's JSON output cannot encode the source-file objects that name a Snakefile: as text.
        with contextlib.redirect_stdout(buf), mock.patch.object(json.JSONEncoder, "default", lambda self, o: str(o)):
            wf.lint(json=True)
    return json.loads(buf.getvalue())


def remaining(found: dict) -> list[str]:
    """One line per lint that is not waived: '<where>: <title>'."""
    out = []
    for kind in ("snakefiles", "rules"):
        for item in found.get(kind, []):
            where = ", ".join(f"{k} {v}" for k, v in item["for"].items())
            out += [f"{where}: {lint['title']}" for lint in item["lints"] if lint["title"] not in WAIVED]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snakefile", type=Path, default=Path("Snakefile"))
    ap.add_argument("--configfile", type=Path, action="append", default=[])
    a = ap.parse_args(argv)
    left = remaining(lints(a.snakefile, a.configfile))
    for line in left:
        print(line)
    print(f"snakemake lint: {len(left)} lint(s)" + (" (waived: software directives, see tools/lint.py)" if not left else ""))
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())

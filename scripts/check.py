"""Snakemake adapter: compare the finished run with results/expected/{experiment} (figure, expected, got, PASS/FAIL)."""
from pathlib import Path

from vidsme.check import run_check
from vidsme.logs import logged

with logged(snakemake.log[0]) as log:
    ok, text = run_check(snakemake.params.experiment, Path("results"), Path(snakemake.output[0]))
    log.info("\n%s", text)
    if not ok:
        raise SystemExit(f"check FAILED: see {snakemake.log[0]}")

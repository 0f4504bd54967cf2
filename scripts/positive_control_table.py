"""Snakemake adapter: the positive control's table (main vs ARTIFICIAL positive-control target)."""
from vidsme.controls import positive_control_table
from vidsme.logs import logged

with logged(snakemake.log[0]):
    p = snakemake.params
    positive_control_table(p.metrics, p.memorisation, p.main_k, snakemake.output.md, snakemake.output.csv)

"""Snakemake adapter: the shift control's table (random vs shifted split, base vs tuned, blind baseline)."""
from vidsme.controls import shift_control_table
from vidsme.logs import logged

with logged(snakemake.log[0]):
    p = snakemake.params
    shift_control_table(p.metrics, p.blind, p.main_k, snakemake.output.md, snakemake.output.csv,
                        verdict_margin=p.verdict_margin)

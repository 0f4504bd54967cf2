"""Snakemake adapter: the main table (Markdown, CSV, LaTeX) and the K sweep, of one scored slice."""
from vidsme.logs import logged
from vidsme.report import coverage, write_tables

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    write_tables(i.metrics, o.md, o.csv, o.tex, o.k_sweep, snakemake.params.main_k, snakemake.params.fprs,
                 title=snakemake.params.title, blind_tsv=i.blind, verdict_margin=snakemake.params.verdict_margin,
                 coverage=coverage(i.sheet, i.skipped, i.metrics))

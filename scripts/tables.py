"""Snakemake adapter: the main table (Markdown, CSV, LaTeX) and the K sweep, of one scored slice."""
from vidsme.logs import logged
from vidsme.report import write_tables

with logged(snakemake.log[0]):
    o = snakemake.output
    write_tables(snakemake.input.metrics, o.md, o.csv, o.tex, o.k_sweep, snakemake.params.main_k, snakemake.params.fprs,
                 title=snakemake.params.title, blind_tsv=snakemake.input.blind, verdict_margin=snakemake.params.verdict_margin)

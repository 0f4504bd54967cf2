"""Snakemake adapter: the main table (Markdown, CSV, LaTeX) and the K sweep, of one scored slice."""
from vidsme.logs import logged
from vidsme.report import coverage, write_tables

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    base = dict(p.base, scores=i.scores, base_scores=i.base_scores, base_metrics=i.base_metrics) if p.base else None
    write_tables(i.metrics, o.md, o.csv, o.tex, o.k_sweep, p.main_k, p.fprs, title=p.title, blind_tsv=i.blind,
                 verdict_margin=p.verdict_margin, base=base, coverage=coverage(i.sheet, i.skipped, i.metrics))

"""Snakemake adapter: the reference model has the target's vocabulary, tokenizer and inputs (before any pass)."""
from vidsme.logs import logged
from vidsme.pipeline import reference_check

with logged(snakemake.log[0]):
    i, p = snakemake.input, snakemake.params
    reference_check(p.target, i.get("target"), p.reference, i.get("reference"), p.prompt, snakemake.output[0])

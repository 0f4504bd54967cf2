"""Snakemake adapter: build the tiny target and fine-tune it on the member videos."""
from vidsme.logs import logged
from vidsme.pipeline import train_target

with logged(snakemake.log[0]):
    p = snakemake.params
    train_target(snakemake.input.sheet, snakemake.output.model, p.family, p.tiny, p.train, p.synth, p.seed)

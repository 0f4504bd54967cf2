"""Snakemake adapter: build the tiny model and pretrain it on the disjoint pool (the base target)."""
from vidsme.logs import logged
from vidsme.pipeline import pretrain_target

with logged(snakemake.log[0]):
    p = snakemake.params
    pretrain_target(snakemake.output.model, p.family, p.tiny, p.train, p.synth, p.seed, sheet=snakemake.input.sheet)

"""Snakemake adapter: instruction-tune the base target on the member videos."""
from vidsme.logs import logged
from vidsme.pipeline import train_target

with logged(snakemake.log[0]):
    p = snakemake.params
    train_target(snakemake.input.sheet, snakemake.input.base, snakemake.output.model, p.train, p.seed, p.synth)

"""Snakemake adapter: an untrained tiny model of the configured family (tests, smoke runs)."""
from vidsme.logs import logged
from vidsme.tiny import build_tiny

with logged(snakemake.log[0]):
    p = snakemake.params
    build_tiny(p.family, snakemake.output.model, seed=p.seed, **p.tiny)

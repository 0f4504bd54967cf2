"""Snakemake adapter: per-position series of every attack for one shard."""
from vidsme.logs import logged
from vidsme.pipeline import position_series

with logged(snakemake.log[0]):
    position_series(snakemake.input.dump, snakemake.input.qr, snakemake.output[0], snakemake.params.fixed_q, snakemake.params.fixed_r)

"""Snakemake adapter: metrics of every attack and K."""
from vidsme.logs import logged
from vidsme.pipeline import metrics

with logged(snakemake.log[0]):
    metrics(snakemake.input[0], snakemake.output[0], snakemake.params.fprs, snakemake.params.n_boot, snakemake.params.seed, snakemake.params.nonfinite)

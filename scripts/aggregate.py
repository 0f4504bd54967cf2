"""Snakemake adapter: Min-K% (and other) aggregation to one score per video, attack and K."""
from vidsme.logs import logged
from vidsme.pipeline import aggregate

with logged(snakemake.log[0]):
    aggregate(
        list(snakemake.input.series),
        snakemake.input.qr,
        snakemake.input.sheet,
        snakemake.params.k_grid,
        snakemake.params.model,
        int(snakemake.wildcards.F),
        snakemake.output[0],
    )

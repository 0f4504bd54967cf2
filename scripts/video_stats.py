"""Snakemake adapter: motion k1 and illumination k3 of every video of one shard."""
from vidsme.logs import logged
from vidsme.stats import stats_shard

with logged(snakemake.log[0]):
    stats_shard(snakemake.input.frames, snakemake.input.manifest, snakemake.output[0], resize=snakemake.params.resize)

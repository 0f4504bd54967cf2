"""Snakemake adapter: sample F frames of every video of one shard."""
from vidsme.logs import logged
from vidsme.pipeline import extract_frames

with logged(snakemake.log[0]):
    extract_frames(
        snakemake.input.sheet,
        int(snakemake.wildcards.shard),
        snakemake.params.shard_size,
        int(snakemake.wildcards.F),
        snakemake.output.frames,
        snakemake.output.manifest,
        snakemake.params.on_error,
        snakemake.params.n_shards,
    )

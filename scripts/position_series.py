"""Snakemake adapter: per-position series of every attack for one shard (video or answer slice)."""
from vidsme.logs import logged
from vidsme.pipeline import position_series

with logged(snakemake.log[0]):
    p = snakemake.params
    position_series(snakemake.input.dump, snakemake.input.qr, snakemake.output[0], p.fixed_q, p.fixed_r, p.slice_name,
                    ref_dump=snakemake.input.get("ref_dump"))

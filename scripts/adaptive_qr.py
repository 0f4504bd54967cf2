"""Snakemake adapter: the transductive (q, r) mapping over the evaluation set."""
from vidsme.logs import logged
from vidsme.qr import qr_table

with logged(snakemake.log[0]):
    qr_table(list(snakemake.input), snakemake.output.qr, snakemake.output.skipped, **snakemake.params.qr)

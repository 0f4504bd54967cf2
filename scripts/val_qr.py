"""Snakemake adapter: (q, r) of the validation videos by the evaluation set's mapping."""
from vidsme.logs import logged
from vidsme.qr import qr_table_from

with logged(snakemake.log[0]):
    qr_table_from(snakemake.input.reference, list(snakemake.input.stats), snakemake.output.qr, snakemake.output.skipped,
                  **snakemake.params.qr)

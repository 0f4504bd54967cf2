"""Snakemake adapter: AUC within motion and illumination terciles."""
from vidsme.logs import logged
from vidsme.report import terciles_table

with logged(snakemake.log[0]):
    terciles_table(snakemake.input.scores, snakemake.input.qr, snakemake.output[0], snakemake.params.main_k)

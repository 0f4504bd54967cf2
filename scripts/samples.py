"""Snakemake adapter: validate the sample sheet and keep the evaluation split."""
from vidsme.logs import logged
from vidsme.pipeline import prepare_sheet

with logged(snakemake.log[0]):
    prepare_sheet(snakemake.input.sheet, snakemake.output[0], snakemake.params.video_root or None, snakemake.params.split)

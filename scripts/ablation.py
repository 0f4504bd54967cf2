"""Snakemake adapter: the frame-count ablation (AUC vs F)."""
from vidsme.logs import logged
from vidsme.report import frames_ablation

with logged(snakemake.log[0]):
    frames_ablation(list(snakemake.input), snakemake.params.frames, snakemake.output.table, snakemake.output.figure, snakemake.params.main_k)

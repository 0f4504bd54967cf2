"""Snakemake adapter: the frame-count ablation (AUC vs F)."""
from vidsme.logs import logged
from vidsme.report import frames_ablation

with logged(snakemake.log[0]):
    i = snakemake.input
    frames_ablation(list(i.metrics), snakemake.params.frames, snakemake.output.table, snakemake.output.figure, snakemake.params.main_k,
                    answer_files=list(i.get("answer", [])) or None)

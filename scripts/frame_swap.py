"""Snakemake adapter: the frame-swap control of the main target (answer loss with own, other, black frames)."""
from vidsme.logs import logged
from vidsme.pipeline import frame_swap

with logged(snakemake.log[0]):
    p = snakemake.params
    frame_swap(snakemake.input.sheet, snakemake.input.model, p.num_frames, p.seed, snakemake.output.md,
               snakemake.output.csv)

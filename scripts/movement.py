"""Snakemake adapter: how far the target moved from its reference, members vs non-members."""
from vidsme.logs import logged
from vidsme.movement import write_movement

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    write_movement(list(i.series), i.sheet, o.md, o.csv, o.figure, n_boot=p.n_boot, seed=p.seed, label=p.label,
                   summary_csv=o.summary)

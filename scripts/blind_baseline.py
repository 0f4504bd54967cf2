"""Snakemake adapter: the blind baseline's out-of-fold scores, metrics and feature importances."""
from vidsme.blind import baseline_step
from vidsme.logs import logged

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    baseline_step(list(i.frames), list(i.manifests), i.qr, i.sheet, p.blind, p.seed, p.fprs, p.n_boot, p.nonfinite,
                  o.scores, o.metrics, o.importances)

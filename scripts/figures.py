"""Snakemake adapter: ROC curves, score histograms, (q, r) histograms, AUC vs K."""
from vidsme.logs import logged
from vidsme.report import write_figures

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    write_figures(i.scores, i.metrics, i.qr, o.roc, o.hist, o.qr, o.auc_k, snakemake.params.main_k)

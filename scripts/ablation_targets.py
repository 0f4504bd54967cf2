"""Snakemake adapter: attacks on each target variant (training epochs, random init, defences)."""
from vidsme.logs import logged
from vidsme.report import targets_ablation

with logged(snakemake.log[0]):
    i = snakemake.input
    targets_ablation(list(i.metrics), list(i.memorisation), snakemake.params.variants, snakemake.output.table, snakemake.params.main_k,
                     answer_files=list(i.get("answer", [])) or None)

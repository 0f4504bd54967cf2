"""Snakemake adapter: natural and reversed model passes of one shard, reduced to a dump."""
from vidsme.logs import logged
from vidsme.pipeline import model_pass

with logged(snakemake.log[0]):
    model_pass(
        snakemake.params.model,
        snakemake.input.get("model"),
        snakemake.input.frames,
        snakemake.input.manifest,
        snakemake.params.prompt,
        snakemake.params.reduce,
        snakemake.output[0],
        sheet_tsv=snakemake.input.get("sheet"),
        answer_cfg=snakemake.params.answer,
        companion_cfg=snakemake.params.companion,
        companion_dir=snakemake.input.get("companion"),
    )

"""Snakemake adapter: record config, versions, git commit and lock hash next to the results."""
from vidsme.logs import logged
from vidsme.pipeline import provenance

with logged(snakemake.log[0]):
    provenance(dict(snakemake.params.config), snakemake.params.model_key, snakemake.output[0])

"""Snakemake adapter: generate the embedded default's videos and sample sheet."""
from pathlib import Path

from vidsme.logs import logged
from vidsme.synth import generate_dataset

with logged(snakemake.log[0]):
    cfg = dict(snakemake.params.synth, seed=snakemake.params.seed)
    generate_dataset(Path(snakemake.output.sheet).parent, cfg)

"""Snakemake adapter: dataset-inference power and false-positive rate from the per-video attack scores."""
from vidsme.dataset_inference import inference_step
from vidsme.logs import logged

with logged(snakemake.log[0]):
    i, p = snakemake.input, snakemake.params
    slices = ("video", "answer")
    inference_step({s: i[f"eval_{s}"] for s in slices if f"eval_{s}" in i.keys()},
                   {s: i[f"val_{s}"] for s in slices if f"val_{s}" in i.keys()},
                   p.main_k, p.di, p.seed, p.nonfinite, snakemake.output.csv, snakemake.output.md)

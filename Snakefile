# vid-sme: video membership inference (Vid-SME, arXiv 2506.03179) from videos to paper tables.
# Stages: data -> frames -> statistics -> (q, r) -> model passes -> scoring -> Min-K% -> metrics, tables, figures.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/frames.smk"
include: "rules/model.smk"
include: "rules/score.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),


rule ablations:
    input:
        ablation_outputs(),

# vid-sme: video membership inference (Vid-SME, arXiv 2506.03179) from videos to paper tables.
# Stages: data -> frames -> statistics -> (q, r) -> model passes -> scoring -> Min-K% -> metrics, tables, figures.
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# The package comes from this workflow's checkout, whichever Python runs Snakemake: first on the
# path here (config validation, sheets) and, through PYTHONPATH, in every job's script.
sys.path.insert(0, workflow.basedir)
_paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        [workflow.basedir] + [p for p in _paths if p and p != workflow.basedir]
    )
)


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/common_controls.smk"
include: "rules/data.smk"
include: "rules/frames.smk"
include: "rules/model.smk"
include: "rules/score.smk"
include: "rules/report.smk"
include: "rules/blind.smk"
include: "rules/inference_common.smk"
include: "rules/inference.smk"
include: "rules/controls.smk"


guard_run()  # a killed run leaves no stale lock and no orphan job (vidsme/runguard.py)


onsuccess:
    run_summary()


# The shift control: this same workflow as a second embedded experiment ({EXP}_shift, shifted
# split) in the same DAG; its rules are named shift_*; its own guard (controls.shift.enabled: false)
# stops the recursion.
if SHIFT:

    module shift:
        snakefile:
            "Snakefile"
        config:
            shift_config()

    use rule * from shift as shift_*


rule all:
    default_target: True
    input:
        all_outputs(),
        inference_outputs(),


rule ablations:
    input:
        ablation_outputs(),


rule controls:
    input:
        lambda w: controls_outputs(),

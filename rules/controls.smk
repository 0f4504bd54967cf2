# Controls (`snakemake controls`; embedded only; not in rule all): the frame-swap control of the
# main target, the ARTIFICIAL positive control (target variants of controls.variants) and the shift control (a second embedded experiment, the
# module `shift` in the Snakefile). docs/controls.md describes both; helpers in common_controls.smk.


rule positive_control_table:
    input:
        metrics=lambda w: [
            f for by in positive_control_metrics().values() for f in by.values()
        ],
        memorisation=lambda w: list(positive_control_memorisation().values()),
    output:
        md=report(
            f"{RES}/tables/positive_control.md",
            caption="../report/positive_control.rst",
            category="Controls",
        ),
        csv=f"{RES}/tables/positive_control.csv",
    log:
        f"{LOGS}/positive_control_table.log",
    params:
        metrics=lambda w: positive_control_metrics(),
        memorisation=lambda w: positive_control_memorisation(),
        main_k=config["scoring"]["main_k"],
    script:
        "../scripts/positive_control_table.py"


rule shift_control_table:
    input:
        metrics=lambda w: list(shift_metrics().values()),
        blind=lambda w: list(blind_metrics().values()),
    output:
        md=report(
            f"{RES}/tables/shift_control.md",
            caption="../report/shift_control.rst",
            category="Controls",
        ),
        csv=f"{RES}/tables/shift_control.csv",
    log:
        f"{LOGS}/shift_control_table.log",
    params:
        metrics=lambda w: shift_metrics(),
        blind=lambda w: blind_metrics(),
        main_k=config["scoring"]["main_k"],
        verdict_margin=config["blind"]["verdict_margin"],
    script:
        "../scripts/shift_control_table.py"


rule frame_swap:
    input:
        sheet=f"{DATA}/samples.tsv",
        model=f"{RES}/target/main/model",
    output:
        md=report(
            f"{RES}/tables/frame_swap.md",
            caption="../report/frame_swap.rst",
            category="Controls",
        ),
        csv=f"{RES}/tables/frame_swap.csv",
    log:
        f"{LOGS}/frame_swap.log",
    benchmark:
        f"{BENCH}/frame_swap.tsv"
    threads: config["numerics"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        num_frames=lambda w: train_cfg("main")["num_frames"],
        seed=config["seed"],
    script:
        "../scripts/frame_swap.py"

# Embedded default: generate the videos, pretrain the base target on a disjoint pool, instruction-tune it on the members.


rule embedded_data:
    output:
        sheet=f"{DATA}/samples.tsv",
        videos=directory(f"{DATA}/videos"),
    log:
        f"{LOGS}/embedded_data.log",
    benchmark:
        f"{BENCH}/embedded_data.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        synth=lambda w: embedded_cfg("synth"),
        seed=config["seed"],
    script:
        "../scripts/embedded_data.py"


rule pretrain_target:
    input:
        sheet=f"{DATA}/samples.tsv",
    output:
        model=directory(f"{RES}/target/{{base}}/model"),
        curve=f"{RES}/target/{{base}}/train_log.tsv",
        memorisation=f"{RES}/target/{{base}}/memorisation.json",
    log:
        f"{LOGS}/pretrain_target/{{base}}.log",
    benchmark:
        f"{BENCH}/pretrain_target/{{base}}.tsv"
    wildcard_constraints:
        base=BASE_PATTERN,
    threads: config["numerics"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        train=lambda w: pretrain_cfg(w.base),
        tiny=lambda w: embedded_cfg("tiny"),
        synth=lambda w: embedded_cfg("synth"),
        family=config["model"]["family"],
        seed=lambda w: pretrain_cfg(w.base)["seed"],  # the experiment's, or a variant's own
    script:
        "../scripts/pretrain_target.py"


rule train_target:
    input:
        sheet=f"{DATA}/samples.tsv",
        base=lambda w: f"{RES}/target/{base_name(w.variant)}/model",
    output:
        model=directory(f"{RES}/target/{{variant}}/model"),
        curve=f"{RES}/target/{{variant}}/train_log.tsv",
        memorisation=f"{RES}/target/{{variant}}/memorisation.json",
    log:
        f"{LOGS}/train_target/{{variant}}.log",
    benchmark:
        f"{BENCH}/train_target/{{variant}}.tsv"
    wildcard_constraints:
        variant=VARIANT_PATTERN,
    threads: config["numerics"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        train=lambda w: train_cfg(w.variant),
        seed=lambda w: train_cfg(w.variant)["seed"],  # the experiment's, or a variant's own
        synth=lambda w: embedded_cfg("synth"),  # the positive control's negatives: the pretraining pool
    script:
        "../scripts/train_target.py"


rule samples:
    input:
        sheet=sheet_path(),
    output:
        f"{RES}/samples.tsv",
    log:
        f"{LOGS}/samples.log",
    params:
        video_root=config["dataset"]["video_root"] or "",
        split="eval",
    script:
        "../scripts/samples.py"


rule tiny_target:
    output:
        model=directory(f"{RES}/target/tiny"),
    log:
        f"{LOGS}/tiny_target.log",
    params:
        tiny=lambda w: embedded_cfg("tiny"),
        family=config["model"]["family"],
        seed=config["seed"],
    script:
        "../scripts/tiny_target.py"


rule paper_sheet:
    input:
        paper_inputs(),
    output:
        f"{RES}/paper_sheet.tsv",
    log:
        f"{LOGS}/paper_sheet.log",
    params:
        dataset=config["dataset"],
        seed=config["seed"],
    script:
        "../scripts/paper_sheet.py"

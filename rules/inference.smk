# Dataset inference (issue 12.4): set-level membership tests from the per-video attack scores.
# Its false-positive rate is measured on validation non-members against evaluation non-members,
# so the validation videos are scored too: the same rules (`use rule`) under {RES}/val/, with
# (q, r) from the evaluation set's mapping (vidsme.qr.map_qr_from). The evaluation set's files,
# its (q, r) and the main tables do not change.


use rule samples as val_samples with:
    output:
        f"{VAL}/samples.tsv",
    log:
        f"{LOGS}/val/samples.log",
    params:
        split="val",


use rule extract_frames as val_extract_frames with:
    input:
        sheet=f"{VAL}/samples.tsv",
    output:
        frames=f"{VAL}/frames/F{{F}}/shard{{shard}}.npz",
        manifest=f"{VAL}/frames/F{{F}}/shard{{shard}}.tsv",
    log:
        f"{LOGS}/val/frames/F{{F}}/shard{{shard}}.log",
    benchmark:
        f"{BENCH}/val/frames/F{{F}}/shard{{shard}}.tsv"
    params:
        n_shards=len(VAL_SHARDS),


use rule video_stats as val_video_stats with:
    input:
        frames=f"{VAL}/frames/F{{F}}/shard{{shard}}.npz",
        manifest=f"{VAL}/frames/F{{F}}/shard{{shard}}.tsv",
    output:
        f"{VAL}/stats/F{{F}}/shard{{shard}}.tsv",
    log:
        f"{LOGS}/val/stats/F{{F}}/shard{{shard}}.log",
    benchmark:
        f"{BENCH}/val/stats/F{{F}}/shard{{shard}}.tsv"


rule val_qr:
    input:
        reference=f"{RES}/stats/F{{F}}/qr.tsv",
        stats=lambda w: expand(
            f"{VAL}/stats/F{w.F}/shard{{shard}}.tsv", shard=VAL_SHARDS
        ),
    output:
        qr=f"{VAL}/stats/F{{F}}/qr.tsv",
        skipped=f"{VAL}/stats/F{{F}}/skipped.tsv",
    log:
        f"{LOGS}/val/stats/F{{F}}/qr.log",
    params:
        qr=config["qr"],
    script:
        "../scripts/val_qr.py"


use rule model_pass as val_model_pass with:
    input:
        unpack(val_model_inputs),
        frames=f"{VAL}/frames/F{{F}}/shard{{shard}}.npz",
        manifest=f"{VAL}/frames/F{{F}}/shard{{shard}}.tsv",
    output:
        f"{VAL}/dumps/{{model}}/F{{F}}/shard{{shard}}.safetensors",
    log:
        f"{LOGS}/val/dumps/{{model}}/F{{F}}/shard{{shard}}.log",
    benchmark:
        f"{BENCH}/val/dumps/{{model}}/F{{F}}/shard{{shard}}.tsv"


use rule position_series as val_position_series with:
    input:
        dump=f"{VAL}/dumps/{{model}}/F{{F}}/shard{{shard}}.safetensors",
        qr=f"{VAL}/stats/F{{F}}/qr.tsv",
    output:
        f"{VAL}/series/{{model}}/F{{F}}/shard{{shard}}{{slice}}.safetensors",
    log:
        f"{LOGS}/val/series/{{model}}/F{{F}}/shard{{shard}}{{slice}}.log",
    benchmark:
        f"{BENCH}/val/series/{{model}}/F{{F}}/shard{{shard}}{{slice}}.tsv"


use rule aggregate as val_aggregate with:
    input:
        series=lambda w: expand(
            f"{VAL}/series/{w.model}/F{w.F}/shard{{shard}}{w.slice}.safetensors",
            shard=VAL_SHARDS,
        ),
        qr=f"{VAL}/stats/F{{F}}/qr.tsv",
        sheet=f"{VAL}/samples.tsv",
    output:
        f"{VAL}/scores/{{model}}/F{{F}}/scores{{slice}}.tsv",
    log:
        f"{LOGS}/val/scores/{{model}}/F{{F}}/aggregate{{slice}}.log",


rule dataset_inference:
    input:
        unpack(di_inputs),
    output:
        csv=f"{RES}/tables/dataset_inference.csv",
        md=report(
            f"{RES}/tables/dataset_inference.md",
            caption="../report/dataset_inference.rst",
            category="Tables",
        ),
    log:
        f"{LOGS}/dataset_inference.log",
    benchmark:
        f"{BENCH}/dataset_inference.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        di=config["dataset_inference"],
        main_k=config["scoring"]["main_k"],
        seed=config["seed"],
        nonfinite=config["metrics"]["nonfinite"],
    script:
        "../scripts/dataset_inference.py"

# The expensive stage: natural and reversed passes of a model, reduced to compact dumps. A reference
# model's passes also run the target beside it (exact cross terms); a compatibility check comes first.


rule model_pass:
    input:
        unpack(model_inputs),
        frames=f"{RES}/frames/F{{F}}/shard{{shard}}.npz",
        manifest=f"{RES}/frames/F{{F}}/shard{{shard}}.tsv",
    output:
        f"{RES}/dumps/{{model}}/F{{F}}/shard{{shard}}.safetensors",
    log:
        f"{LOGS}/dumps/{{model}}/F{{F}}/shard{{shard}}.log",
    benchmark:
        f"{BENCH}/dumps/{{model}}/F{{F}}/shard{{shard}}.tsv"
    threads: config["numerics"]["threads"]
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=lambda w: 1 if str(config["model"]["device"]).startswith("cuda") else 0,
    params:
        model=lambda w: pass_model_cfg(w.model),
        companion=lambda w: companion_cfg(w.model),
        prompt=config["prompt"],
        reduce=config["reduce"],
        answer=config["scoring"]["answer_slice"] if ANSWER else {"enabled": False},
    script:
        "../scripts/model_pass.py"


rule reference_check:
    input:
        unpack(reference_check_inputs),
    output:
        f"{RES}/reference/check.json",
    log:
        f"{LOGS}/reference_check.log",
    params:
        target=lambda w: pass_model_cfg(MODEL),
        reference=lambda w: pass_model_cfg(REF),
        prompt=config["prompt"],
    script:
        "../scripts/reference_check.py"

# The expensive stage: natural and reversed passes of the target, reduced to compact dumps.


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
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=lambda w: 1 if str(config["model"]["device"]).startswith("cuda") else 0,
    params:
        model=config["model"],
        prompt=config["prompt"],
        reduce=config["reduce"],
        answer=config["scoring"]["answer_slice"] if ANSWER else {"enabled": False},
    script:
        "../scripts/model_pass.py"

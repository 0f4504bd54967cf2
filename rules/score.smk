# Sharma-Mittal and baseline series per position, then Min-K% aggregation per video.
# {slice}: "" = video-token positions, "_answer" = answer tokens (see SLICES in common.smk).


rule position_series:
    input:
        unpack(series_inputs),
    output:
        f"{RES}/series/{{model}}/F{{F}}/shard{{shard}}{{slice}}.safetensors",
    log:
        f"{LOGS}/series/{{model}}/F{{F}}/shard{{shard}}{{slice}}.log",
    benchmark:
        f"{BENCH}/series/{{model}}/F{{F}}/shard{{shard}}{{slice}}.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        fixed_q=config["qr"]["fixed_q"],
        fixed_r=config["qr"]["fixed_r"],
        slice_name=lambda w: SLICES[w.slice],
    script:
        "../scripts/position_series.py"


rule aggregate:
    input:
        series=lambda w: shard_files(
            f"{RES}/series/{w.model}/F{w.F}/shard{{shard}}{w.slice}.safetensors"
        ),
        qr=f"{RES}/stats/F{{F}}/qr.tsv",
        sheet=f"{RES}/samples.tsv",
    output:
        f"{RES}/scores/{{model}}/F{{F}}/scores{{slice}}.tsv",
    log:
        f"{LOGS}/scores/{{model}}/F{{F}}/aggregate{{slice}}.log",
    params:
        k_grid=config["scoring"]["k_grid"],
        model=config["model"],
    script:
        "../scripts/aggregate.py"

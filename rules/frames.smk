# Frame extraction, per-video statistics and the adaptive (q, r) over the evaluation set.


rule extract_frames:
    input:
        sheet=f"{RES}/samples.tsv",
    output:
        frames=f"{RES}/frames/F{{F}}/shard{{shard}}.npz",
        manifest=f"{RES}/frames/F{{F}}/shard{{shard}}.tsv",
    log:
        f"{LOGS}/frames/F{{F}}/shard{{shard}}.log",
    benchmark:
        f"{BENCH}/frames/F{{F}}/shard{{shard}}.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        shard_size=config["dataset"]["shard_size"],
        n_shards=N_SHARDS,
        on_error=config["frames"]["on_error"],
    script:
        "../scripts/extract_frames.py"


rule video_stats:
    input:
        frames=f"{RES}/frames/F{{F}}/shard{{shard}}.npz",
        manifest=f"{RES}/frames/F{{F}}/shard{{shard}}.tsv",
    output:
        f"{RES}/stats/F{{F}}/shard{{shard}}.tsv",
    log:
        f"{LOGS}/stats/F{{F}}/shard{{shard}}.log",
    benchmark:
        f"{BENCH}/stats/F{{F}}/shard{{shard}}.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        resize=config["stats"]["resize"],
    script:
        "../scripts/video_stats.py"


rule adaptive_qr:
    input:
        lambda w: shard_files(f"{RES}/stats/F{w.F}/shard{{shard}}.tsv"),
    output:
        qr=f"{RES}/stats/F{{F}}/qr.tsv",
        skipped=f"{RES}/stats/F{{F}}/skipped.tsv",
    log:
        f"{LOGS}/stats/F{{F}}/qr.log",
    params:
        qr=config["qr"],
    script:
        "../scripts/adaptive_qr.py"

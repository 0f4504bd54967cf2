# Blind baseline (issue 11): a classifier on model-free features (frames, container facts, k1/k3/(q, r),
# sheet text) with cross-fitted out-of-fold scores; its row joins every main table. No model pass:
# `snakemake blind` needs only the videos.


rule blind_baseline:
    input:
        frames=lambda w: shard_files(f"{RES}/frames/F{F}/shard{{shard}}.npz"),
        manifests=lambda w: shard_files(f"{RES}/frames/F{F}/shard{{shard}}.tsv"),
        qr=f"{RES}/stats/F{F}/qr.tsv",
        sheet=f"{RES}/samples.tsv",
    output:
        scores=f"{RES}/blind/scores.tsv",
        metrics=f"{RES}/blind/metrics.tsv",
        importances=f"{RES}/tables/blind_features.csv",
    log:
        f"{LOGS}/blind/blind_baseline.log",
    benchmark:
        f"{BENCH}/blind/blind_baseline.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        blind=config["blind"],
        seed=config["seed"],
        fprs=config["metrics"]["fprs"],
        n_boot=config["metrics"]["n_boot"],
        nonfinite=config["metrics"]["nonfinite"],
    script:
        "../scripts/blind_baseline.py"


rule blind:
    input:
        rules.blind_baseline.output,

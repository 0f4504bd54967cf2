# Metrics from per-video scores, then tables, figures and provenance.


rule metrics:
    input:
        f"{RES}/scores/{{model}}/F{{F}}/scores{{slice}}.tsv",
    output:
        f"{RES}/metrics/{{model}}/F{{F}}/metrics{{slice}}.tsv",
    log:
        f"{LOGS}/metrics/{{model}}/F{{F}}/metrics{{slice}}.log",
    params:
        fprs=config["metrics"]["fprs"],
        n_boot=config["metrics"]["n_boot"],
        nonfinite=config["metrics"]["nonfinite"],
        seed=config["seed"],
    script:
        "../scripts/metrics.py"


rule tables:
    input:
        unpack(table_inputs),
        blind=f"{RES}/blind/metrics.tsv",
        sheet=f"{RES}/samples.tsv",
        skipped=f"{RES}/stats/F{F}/skipped.tsv",
    output:
        md=report(
            f"{RES}/tables/main{{slice}}.md",
            caption="../report/main_table.rst",
            category="Tables",
        ),
        csv=f"{RES}/tables/main{{slice}}.csv",
        tex=f"{RES}/tables/main{{slice}}.tex",
        k_sweep=f"{RES}/tables/k_sweep{{slice}}.csv",
    log:
        f"{LOGS}/tables{{slice}}.log",
    params:
        main_k=config["scoring"]["main_k"],
        fprs=config["metrics"]["fprs"],
        title=lambda w: "Answer tokens" if w.slice else "Video-token positions",
        verdict_margin=config["blind"]["verdict_margin"],
        base=lambda w: base_params(),
    script:
        "../scripts/tables.py"


rule figures:
    input:
        scores=f"{RES}/scores/{MODEL}/F{F}/scores.tsv",
        metrics=f"{RES}/metrics/{MODEL}/F{F}/metrics.tsv",
        qr=f"{RES}/stats/F{F}/qr.tsv",
    output:
        roc=report(
            f"{RES}/figures/roc.png", caption="../report/roc.rst", category="Figures"
        ),
        hist=report(
            f"{RES}/figures/score_hist.png",
            caption="../report/score_hist.rst",
            category="Figures",
        ),
        qr=report(
            f"{RES}/figures/qr_hist.png",
            caption="../report/qr_hist.rst",
            category="Figures",
        ),
        auc_k=report(
            f"{RES}/figures/auc_vs_k.png",
            caption="../report/auc_vs_k.rst",
            category="Figures",
        ),
    log:
        f"{LOGS}/figures.log",
    params:
        main_k=config["scoring"]["main_k"],
    script:
        "../scripts/figures.py"


rule provenance:
    input:
        f"{RES}/tables/main.md",
    output:
        f"{RES}/provenance.json",
    log:
        f"{LOGS}/provenance.log",
    params:
        config=config,
        model_key=MODEL,
    script:
        "../scripts/provenance.py"


rule terciles:
    input:
        scores=f"{RES}/scores/{MODEL}/F{F}/scores.tsv",
        qr=f"{RES}/stats/F{F}/qr.tsv",
    output:
        f"{RES}/tables/terciles.csv",
    log:
        f"{LOGS}/terciles.log",
    params:
        main_k=config["scoring"]["main_k"],
        seed=config["seed"],
    script:
        "../scripts/terciles.py"


rule ablation_frames:
    input:
        metrics=expand(
            f"{RES}/metrics/{MODEL}/F{{F}}/metrics.tsv",
            F=config["ablations"]["frames"],
        ),
        answer=expand(
            f"{RES}/metrics/{MODEL}/F{{F}}/metrics_answer.tsv",
            F=config["ablations"]["frames"] if ANSWER else [],
        ),
    output:
        table=f"{RES}/tables/ablation_frames.csv",
        figure=report(
            f"{RES}/figures/auc_vs_frames.png",
            caption="../report/auc_vs_frames.rst",
            category="Figures",
        ),
    log:
        f"{LOGS}/ablation_frames.log",
    params:
        frames=config["ablations"]["frames"],
        main_k=config["scoring"]["main_k"],
        label="frames",
    script:
        "../scripts/ablation.py"


rule ablation_targets:
    input:
        metrics=expand(f"{RES}/metrics/{{m}}/F{F}/metrics.tsv", m=variant_models()),
        answer=expand(
            f"{RES}/metrics/{{m}}/F{F}/metrics_answer.tsv",
            m=variant_models() if ANSWER else [],
        ),
        memorisation=expand(
            f"{RES}/target/{{v}}/memorisation.json",
            v=["main"] + list(config["ablations"]["variants"]),
        ),
    output:
        table=f"{RES}/tables/ablation_targets.csv",
    log:
        f"{LOGS}/ablation_targets.log",
    params:
        variants=["main"] + list(config["ablations"]["variants"]),
        main_k=config["scoring"]["main_k"],
    script:
        "../scripts/ablation_targets.py"


rule check:
    input:
        unpack(expected_inputs),
    output:
        f"{RES}/check.tsv",
    log:
        f"{LOGS}/check.log",
    params:
        experiment=EXP,
    script:
        "../scripts/check.py"


rule movement:
    input:
        series=expand(
            f"{RES}/series/{MODEL}/F{F}/shard{{shard}}{{slice}}.safetensors",
            shard=SHARDS,
            slice=[s for s in SLICES if ANSWER or not s],
        ),
        sheet=f"{RES}/samples.tsv",
    output:
        md=report(
            f"{RES}/tables/movement.md",
            caption="../report/movement_table.rst",
            category="Tables",
        ),
        csv=f"{RES}/tables/movement.csv",
        summary=f"{RES}/tables/movement_summary.csv",
        figure=report(
            f"{RES}/figures/movement.png",
            caption="../report/movement.rst",
            category="Figures",
        ),
    log:
        f"{LOGS}/movement.log",
    params:
        n_boot=config["metrics"]["n_boot"],
        seed=config["seed"],
        label=lambda w: reference_label(),
    script:
        "../scripts/movement.py"

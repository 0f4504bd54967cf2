# Helpers shared by every stage: config validation, sample sheet, shards, paths.
import os
from pathlib import Path

import yaml
from snakemake.logging import logger
from snakemake.utils import validate

from vidsme.config import check_blind_rows
from vidsme.config import validate as check_config
from vidsme.samples import check_eval_rows, n_shards

SCHEMA = "config/schemas/config.schema.yaml"
validate(config, schema=f"../{SCHEMA}", set_default=True)
# What the schema cannot say (integer-only counts, main_k in k_grid, reduce keys, q range), at parse time.
check_config(config, yaml.safe_load((Path(workflow.basedir) / SCHEMA).read_text()))

# Before any job starts: every job process inherits the pinned kernels (vidsme/numerics.py).
if config["numerics"]["pin"]:
    from vidsme.numerics import pin_environment

    pin_environment(os.environ, config["numerics"]["threads"])

EXP = config["experiment"]
F = config["frames"]["num_frames"]
RES = f"results/{EXP}"
LOGS = f"logs/{EXP}"
BENCH = f"benchmarks/out/{EXP}"
KIND = config["dataset"]["kind"]
EMBEDDED = KIND == "embedded"
DATA = f"data/{EXP}"  # embedded experiments: the generated videos and sheet
ANSWER = config["scoring"]["answer_slice"]["enabled"]
# Scored slice, as a file-name tag: "" = the video-token positions (the paper's method),
# "_answer" = the answer tokens (extension, scoring.answer_slice).
SLICES = {"": "video", "_answer": "answer"}


wildcard_constraints:
    slice="|_answer",
    shard=r"\d+",
    F=r"\d+",
    model=r"[^/]+",


def model_key():
    """Short name of the target model, used in paths."""
    m = config["model"]
    if m["source"] != "pretrained":
        return m["source"]
    if not m["id"]:
        raise ValueError(
            "config key model.id is required when model.source is 'pretrained'"
        )
    return "--".join(part for part in m["id"].split(os.sep) if part)


MODEL = model_key()


def sheet_path():
    """The sample sheet the workflow reads (generated for the embedded default)."""
    if EMBEDDED:
        return f"{DATA}/samples.tsv"
    if KIND == "paper":
        return f"{RES}/paper_sheet.tsv"
    sheet = config["dataset"]["samples"]
    if not sheet:
        raise ValueError(
            "config key dataset.samples is required when dataset.kind is 'sheet'"
        )
    if not Path(sheet).is_file():
        raise FileNotFoundError(
            f"config key dataset.samples: sample sheet not found: {sheet}"
        )
    return sheet


def n_videos():
    """Number of evaluated videos (the sheet's split == eval rows, which the `samples` rule keeps),
    known at parse time (no checkpoint needed); the rows are checked here, before any job runs.
    """
    # embedded: generated, about n_eval rows (the last shard takes any extra, see shard_rows)
    if EMBEDDED:
        return int(embedded_cfg("synth")["n_eval"])
    root = config["dataset"]["video_root"]
    if root and not Path(root).is_dir():
        raise FileNotFoundError(
            f"config key dataset.video_root: folder not found: {root}"
        )
    if KIND == "paper":
        rows = paper_sheet()
        where = f"the {config['dataset']['setting']} setting's sheet"
    else:
        from vidsme.samples import read_sheet

        rows = read_sheet(sheet_path(), root, split="eval")
        where = sheet_path()
    check_eval_rows(rows, where, config["prompt"] if ANSWER else None)
    check_blind_rows(rows, where, config["blind"])
    return len(rows)


def paper_sheet():
    """The paper setting's sheet, built at parse time (split lists are small); video_root is spot-checked."""
    import warnings

    from vidsme.paper import paper_sheet as build

    d = config["dataset"]
    for key in ("setting", "video_root"):
        if not d[key]:
            raise ValueError(
                f"config key dataset.{key} is required when dataset.kind is 'paper'"
            )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sheet = build(
            d["setting"],
            d["splits_dir"],
            d["video_root"],
            d["member_list"],
            seed=config["seed"],
            digests=d["split_digests"],
        )
    for w in caught:
        logger.warning(f"WARNING: {w.message}")
    return sheet


def paper_inputs():
    """Local split lists (and the member list) as inputs, so editing them rebuilds the sheet."""
    from vidsme.paper import split_files

    d = config["dataset"]
    files = (
        [
            str(p)
            for p in split_files(
                d["setting"],
                d["splits_dir"],
                digests=d["split_digests"],
                member_list=bool(d["member_list"]),
            )
        ]
        if d["splits_dir"]
        else []
    )
    return files + ([d["member_list"]] if d["member_list"] else [])


def embedded_cfg(section):
    """Embedded-default settings: package defaults overridden by config['embedded'][section]."""
    from vidsme.embedded import settings

    return settings(config.get("embedded", {}), section)


N_SHARDS = n_shards(n_videos(), config["dataset"]["shard_size"])
SHARDS = [f"{k:04d}" for k in range(N_SHARDS)]


def shard_files(pattern, **kw):
    return expand(pattern, shard=SHARDS, **kw)


def model_inputs(w):
    """Files a model pass depends on: the trained target (or a variant of it) for the embedded
    default, and the sample sheet when the passes also score the answer tokens."""
    out = {"sheet": f"{RES}/samples.tsv"} if ANSWER else {}
    if w.model == "embedded":
        out["model"] = f"{RES}/target/main/model"
    elif w.model.startswith("embedded-"):
        out["model"] = f"{RES}/target/{w.model[len('embedded-'):]}/model"
    elif w.model == "tiny":
        out["model"] = f"{RES}/target/tiny"
    return out


def train_cfg(variant):
    """Training settings of a target variant: the embedded training settings plus the variant's overrides."""
    cfg = embedded_cfg("train")
    if variant == "main":
        return cfg
    variants = config["ablations"]["variants"]
    if variant not in variants:
        raise ValueError(
            f"unknown target variant {variant!r}; config key ablations.variants has: {', '.join(variants)}"
        )
    unknown = set(variants[variant]) - set(cfg)
    if unknown:
        raise ValueError(
            f"config key ablations.variants.{variant}.{sorted(unknown)[0]}: unknown training setting"
        )
    return dict(cfg, **variants[variant])


def variant_models():
    return ["embedded"] + [f"embedded-{v}" for v in config["ablations"]["variants"]]


def all_outputs():
    out = [
        f"{RES}/tables/main.md",
        f"{RES}/tables/terciles.csv",
        f"{RES}/figures/roc.png",
        f"{RES}/provenance.json",
    ]
    if config["model"]["source"] == "embedded":
        out.append(f"{RES}/target/main/memorisation.json")
    if ANSWER:
        out.append(f"{RES}/tables/main_answer.md")
    return out


def ablation_outputs():
    out = [f"{RES}/tables/ablation_frames.csv", f"{RES}/figures/auc_vs_frames.png"]
    if EMBEDDED and config["ablations"]["variants"]:
        out.append(f"{RES}/tables/ablation_targets.csv")
    return out


def expected_inputs(w):
    """The run's outputs that results/expected/{experiment} holds (and those expected files)."""
    from vidsme.check import expected_files

    root = Path("results/expected") / EXP
    files = expected_files(root) if root.is_dir() else []
    if not files:
        raise ValueError(
            f"no expected results for experiment {EXP!r} in {root}: `vidsme check --update` writes them from a finished run"
        )
    return {
        "run": [f"{RES}/{rel}" for rel in files],
        "expected": [str(root / rel) for rel in files],
    }


def guard_run():
    """Resumable runs (vidsme/runguard.py): the main process removes the locks a killed run left and
    names itself to its jobs, which stop when it is gone; remote jobs are left to the cluster.
    """
    from vidsme import runguard

    if workflow.is_main_process:
        for lock in runguard.claim_run(".snakemake"):
            logger.warning(
                f"removed {lock}: a Snakemake lock left by a run that was killed (no run is alive here)"
            )
        runguard.announce_main()
    elif workflow.remote_exec:
        runguard.forget_main()


def run_summary():
    """After a successful run: 'N of M videos scored, K skipped (see ...)', printed at exit so that it
    is the run's last console line (after Snakemake's own closing lines)."""
    import atexit
    import sys

    from vidsme.report import coverage

    files = [
        f"{RES}/samples.tsv",
        f"{RES}/stats/F{F}/skipped.tsv",
        f"{RES}/metrics/{MODEL}/F{F}/metrics.tsv",
    ]
    if all(Path(f).is_file() for f in files):
        line = coverage(*files)
        atexit.register(lambda: print(line, file=sys.stderr, flush=True))

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


def reference_key():
    """Model key of the target's reference model (base-target columns, ref_* attacks, movement):
    the base target for the embedded default, `model.reference` for others, None without one.
    """
    m = config["model"]
    ref = m.get("reference")
    if m["source"] == "embedded":
        if ref:
            raise ValueError(
                "config key model.reference: the embedded default's reference is its base target "
                "(target/base/); leave model.reference null"
            )
        return "embedded-base"
    if not ref:
        return None
    key = "ref--" + "--".join(part for part in ref["id"].split(os.sep) if part)
    if key == MODEL:
        raise ValueError(
            "config key model.reference: the reference is the target itself"
        )
    return key


REF = reference_key()


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


def model_dir(key):
    """The folder of a workflow-made model (embedded targets and their variants and bases, tiny); else None."""
    if key == "embedded":
        return f"{RES}/target/main/model"
    if key.startswith("embedded-"):
        return f"{RES}/target/{key[len('embedded-'):]}/model"
    if key == "tiny":
        return f"{RES}/target/tiny"
    return None


def model_inputs(w):
    """Files a model pass depends on: the trained target (or a variant or base of it) for the embedded
    default, and the sample sheet when the passes also score the answer tokens. With a reference
    model, the target's and the reference's passes wait for the compatibility check, and the
    reference's passes also load the target (companion: exact cross terms)."""
    out = {"sheet": f"{RES}/samples.tsv"} if ANSWER else {}
    if model_dir(w.model):
        out["model"] = model_dir(w.model)
    if REF and w.model in (MODEL, REF):
        out["check"] = f"{RES}/reference/check.json"
    if REF and w.model == REF and model_dir(MODEL):
        out["companion"] = model_dir(MODEL)
    return out


def pass_model_cfg(key):
    """The model config a pass loads: the target's settings; a user reference's id and revision."""
    m = {k: v for k, v in config["model"].items() if k != "reference"}
    if REF and key == REF and not key.startswith("embedded"):
        ref = config["model"]["reference"]
        m.update(id=ref["id"], revision=ref.get("revision"), source="reference")
    return m


def companion_cfg(key):
    """For the reference's passes: the target's config (it runs beside the reference on the same inputs)."""
    return pass_model_cfg(MODEL) if REF and key == REF else None


def reference_check_inputs(w):
    return {
        k: model_dir(m)
        for k, m in (("target", MODEL), ("reference", REF))
        if model_dir(m)
    }


def series_inputs(w):
    """A shard's dump, (q, r) and, for the target with a reference, the reference's dump of the shard
    (at the main frame count only: the frame-count ablation does not pay for the reference's passes).
    """
    out = {
        "dump": f"{RES}/dumps/{w.model}/F{w.F}/shard{w.shard}.safetensors",
        "qr": f"{RES}/stats/F{w.F}/qr.tsv",
    }
    if REF and w.model == MODEL and int(w.F) == F:
        out["ref_dump"] = f"{RES}/dumps/{REF}/F{w.F}/shard{w.shard}.safetensors"
    return out


def reference_label():
    """How tables name the reference: the base target (embedded) or the user's reference model."""
    return (
        "base target" if config["model"]["source"] == "embedded" else "reference model"
    )


def base_params():
    """Settings of the main tables' base-target columns (None without a reference)."""
    if not REF:
        return None
    return {
        "n_boot": config["metrics"]["n_boot"],
        "seed": config["seed"],
        "nonfinite": config["metrics"]["nonfinite"],
        "label": reference_label(),
    }


def table_inputs(w):
    """The target's metrics and, with a reference, what the base-target columns need."""
    out = {"metrics": f"{RES}/metrics/{MODEL}/F{F}/metrics{w.slice}.tsv"}
    if REF:
        out["scores"] = f"{RES}/scores/{MODEL}/F{F}/scores{w.slice}.tsv"
        out["base_scores"] = f"{RES}/scores/{REF}/F{F}/scores{w.slice}.tsv"
        out["base_metrics"] = f"{RES}/metrics/{REF}/F{F}/metrics{w.slice}.tsv"
    return out


def target_variants():
    """Trained target variants by name: `ablations.variants` plus the (artificial) `controls.variants`."""
    abl, ctl = config["ablations"]["variants"], config["controls"]["variants"]
    both = set(abl) & set(ctl)
    if both:
        raise ValueError(
            f"target variant {sorted(both)[0]!r} is declared in both ablations.variants and controls.variants"
        )
    out = {**{v: ("ablations", s) for v, s in abl.items()}}
    out.update({v: ("controls", s) for v, s in ctl.items()})
    for name in out:
        if name == "main" or name == "base" or name.startswith("base_"):
            raise ValueError(
                f"config key {out[name][0]}.variants.{name}: the variant name {name!r} is reserved"
            )
    return out


def train_cfg(variant):
    """Training settings of a target variant: the embedded training settings plus the variant's overrides.
    The seed is the experiment's `seed` unless the variant sets its own (a seed replicate).
    """
    cfg = dict(embedded_cfg("train"), seed=config["seed"])
    if variant == "main":
        return cfg
    if variant == "base" or variant.startswith("base_"):
        raise ValueError(
            f"target variant name {variant!r} is reserved (base targets are target/base*/)"
        )
    variants = target_variants()
    if variant not in variants:
        raise ValueError(
            f"unknown target variant {variant!r}; config keys ablations.variants and controls.variants have: "
            f"{', '.join(variants)}"
        )
    block, over = variants[variant]
    unknown = set(over) - set(cfg)
    if unknown:
        raise ValueError(
            f"config key {block}.variants.{variant}.{sorted(unknown)[0]}: unknown training setting"
        )
    out = dict(cfg, **over)
    if out["video_loss_weight"] and not out["video_loss_frames"]:
        out["video_loss_frames"] = (
            F  # the positive control's trace at the attack's frame count
        )
    return out


# Base targets (pretraining only): "base" is the main one, "base_{v}" a variant's own when its
# pretraining settings differ from the main target's. Variant names "base" and "base_*" are reserved.
BASE_PATTERN = r"base(_[A-Za-z0-9_.-]+)?"
VARIANT_PATTERN = (
    r"(?!base(_|/|$))[A-Za-z0-9_.-]+"  # in a path "base" is followed by "/"
)


def base_name(variant):
    """The base target `variant` is instruction-tuned from: the main base when its pretraining
    settings (vidsme.train.PRETRAIN_KEYS) equal the main target's, else one of its own.
    """
    from vidsme.train import pretrain_settings

    same = pretrain_settings(train_cfg(variant)) == pretrain_settings(train_cfg("main"))
    return "base" if variant == "main" or same else f"base_{variant}"


def pretrain_cfg(base):
    """Pretraining settings of a base target (only these reach the pretrain_target rule)."""
    from vidsme.train import pretrain_settings

    return pretrain_settings(
        train_cfg("main" if base == "base" else base[len("base_") :])
    )


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
        out.append(f"{RES}/target/base/memorisation.json")
    if ANSWER:
        out.append(f"{RES}/tables/main_answer.md")
    if REF:
        out += [f"{RES}/tables/movement.md", f"{RES}/figures/movement.png"]
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

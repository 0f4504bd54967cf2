# Helpers shared by every stage: config validation, sample sheet, shards, paths.
import math
import os
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../config/schemas/config.schema.yaml", set_default=True)

EXP = config["experiment"]
F = config["frames"]["num_frames"]
RES = f"results/{EXP}"
LOGS = f"logs/{EXP}"
BENCH = f"benchmarks/out/{EXP}"
EMBEDDED = config["dataset"]["kind"] == "embedded"


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
        return "data/embedded/samples.tsv"
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
    """Number of evaluated videos, known at parse time (no checkpoint needed)."""
    if EMBEDDED:
        return int(embedded_cfg("synth")["n_eval"])
    from vidsme.samples import read_sheet

    return len(read_sheet(sheet_path(), config["dataset"]["video_root"]))


def embedded_cfg(section):
    """Embedded-default settings: package defaults overridden by config['embedded'][section]."""
    from vidsme.embedded import settings

    return settings(config.get("embedded", {}), section)


SHARDS = [
    f"{k:04d}" for k in range(math.ceil(n_videos() / config["dataset"]["shard_size"]))
]


def shard_files(pattern, **kw):
    return expand(pattern, shard=SHARDS, **kw)


def model_inputs():
    """Files a model pass depends on: the trained target for the embedded default."""
    source = config["model"]["source"]
    if source == "embedded":
        return {"model": f"{RES}/target/model"}
    if source == "tiny":
        return {"model": f"{RES}/target/tiny"}
    return {}


def all_outputs():
    return [
        f"{RES}/tables/main.md",
        f"{RES}/figures/roc.png",
        f"{RES}/provenance.json",
    ]

# Helpers of rules/inference.smk: the validation videos' shards and dataset inference's inputs.
import math

VAL = f"{RES}/val"


def n_val_videos():
    """Validation videos (split == val), known at parse time; 0 when the sheet has none."""
    if EMBEDDED:
        return int(embedded_cfg("synth")["n_val"])
    if KIND == "paper":
        return int((paper_sheet()["split"] == "val").sum())
    from vidsme.samples import read_sheet

    sheet = read_sheet(sheet_path(), config["dataset"]["video_root"])
    return int((sheet["split"] == "val").sum())


DI = config["dataset_inference"]["enabled"]
VAL_SHARDS = [
    f"{k:04d}"
    for k in range(
        math.ceil((n_val_videos() if DI else 0) / config["dataset"]["shard_size"])
    )
]


def val_model_inputs(w):
    """model_inputs, with the validation sheet for the answer slice."""
    out = model_inputs(w)
    if "sheet" in out:
        out["sheet"] = f"{VAL}/samples.tsv"
    return out


def di_inputs(w):
    """Score files of the evaluation and (when there are any) validation videos, per slice."""
    out = {"eval_video": f"{RES}/scores/{MODEL}/F{F}/scores.tsv"}
    if ANSWER:
        out["eval_answer"] = f"{RES}/scores/{MODEL}/F{F}/scores_answer.tsv"
    if VAL_SHARDS:
        out["val_video"] = f"{VAL}/scores/{MODEL}/F{F}/scores.tsv"
        if ANSWER:
            out["val_answer"] = f"{VAL}/scores/{MODEL}/F{F}/scores_answer.tsv"
    return out


def inference_outputs():
    return [f"{RES}/tables/dataset_inference.md"] if DI else []

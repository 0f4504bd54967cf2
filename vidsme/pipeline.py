"""The workflow's steps as typed functions; ``scripts/`` call exactly one of these each.

Each function reads its inputs, calls the stage's module and writes its outputs atomically,
so an interrupted step never leaves a half-written file that a later step would read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidsme.atomic import write_safetensors, write_text, write_tsv
from vidsme.metrics import NONFINITE_DEFAULT
from vidsme.samples import check_eval_rows, read_sheet, shard_rows

log = logging.getLogger("vidsme.pipeline")


def prepare_sheet(sheet: str, out: str, video_root: str | None = None, split: str | None = "eval") -> pd.DataFrame:
    """Validate the sample sheet, resolve paths, keep one split; write the workflow's copy."""
    df = read_sheet(sheet, video_root or None, split=split)
    if split == "eval":  # the evaluated rows: the metrics need 2 members and 2 non-members
        check_eval_rows(df, sheet)
    write_tsv(df, out)
    log.info("%d videos (%d members, %d non-members) from %s", len(df), int(df.label.sum()), int((1 - df.label).sum()), sheet)
    return df


def extract_frames(sheet: str, shard: int, shard_size: int, num_frames: int, out_npz: str, out_manifest: str, on_error: str,
                   n_shards: int | None = None) -> None:
    """Frames of one shard of the sheet (the last of `n_shards` shards takes every remaining row)."""
    from vidsme.frames import extract_shard

    rows = shard_rows(pd.read_csv(sheet, sep="\t", dtype=str, keep_default_na=False), shard, shard_size, n_shards)
    if len(rows) > shard_size:
        log.warning("%s has more rows than the %d shard(s) of %d planned: shard %d takes the %d extra", sheet, n_shards,
                    shard_size, shard, len(rows) - shard_size)
    extract_shard(list(zip(rows.video_id, rows.path)), num_frames, out_npz, out_manifest, on_error=on_error)


LOAD_KEYS = ("id", "revision", "dtype", "device", "attn_implementation", "trust_remote_code", "local_files_only")


def load_cfg(model_cfg: dict[str, Any], model_dir: str | None) -> dict[str, Any]:
    """The loading keys of a model config; a local model folder (workflow-made targets) replaces the id."""
    cfg = {k: model_cfg[k] for k in LOAD_KEYS if k in model_cfg}
    if model_cfg.get("offline", True):  # model.offline (default): the local cache or a local directory only
        cfg["local_files_only"] = True
    if model_dir is not None:
        cfg["id"] = model_dir
    return cfg


def reference_check(target_cfg: dict[str, Any], target_dir: str | None, reference_cfg: dict[str, Any], reference_dir: str | None,
                    prompt: dict[str, Any], out: str) -> dict[str, Any]:
    """Before any pass: the reference model has the target's vocabulary, tokenizer and inputs
    (`vidsme.reference.check_compatible`); the shared facts go to `out`."""
    from vidsme.reference import write_check

    return write_check(load_cfg(target_cfg, target_dir), load_cfg(reference_cfg, reference_dir), prompt, out)


def model_pass(model_cfg: dict[str, Any], model_dir: str | None, frames_npz: str, manifest: str, prompt: dict[str, Any], reduce_cfg: dict[str, Any], out: str,
               sheet_tsv: str | None = None, answer_cfg: dict[str, Any] | None = None,
               companion_cfg: dict[str, Any] | None = None, companion_dir: str | None = None) -> dict[str, Any]:
    """Natural and reversed passes of a model on one shard, reduced and dumped.

    With `answer_cfg["enabled"]` the passes also score each video's answer tokens (the answer slice):
    the prompt and answer of every video come from its row of `sheet_tsv` (`vidsme.prompts.answer_item`);
    a row without a question or caption stops the step, naming the video.
    With `companion_cfg` (the passes of a reference model) the target (`companion_cfg`, folder
    `companion_dir`) runs on the same inputs and the dump gains the exact cross terms
    (`vidsme.reduce.cross_terms`) the reference-model attacks need.
    """
    from vidsme.frames import load_frames
    from vidsme.models import load_model
    from vidsme.passes import run_shard
    from vidsme.prompts import answer_item
    from vidsme.reduce import ReduceSpec

    cfg = load_cfg(model_cfg, model_dir)
    header = {"model_source": model_cfg.get("source", ""), "model_id": str(model_cfg.get("id") or cfg.get("id")),
              "revision": str(model_cfg.get("revision"))}
    if companion_cfg is not None:
        header["companion_model_id"] = str(companion_cfg.get("id") or companion_dir)
    man = pd.read_csv(manifest, sep="\t", dtype=str, keep_default_na=False)
    ok = set(man.video_id[man.status == "ok"])
    if not ok:
        return empty_dump(out, manifest, header)
    frames = {k: v for k, v in load_frames(frames_npz).items() if k in ok}
    answers = None
    if answer_cfg and answer_cfg.get("enabled"):
        if sheet_tsv is None:
            raise ValueError("the answer slice (scoring.answer_slice) needs the sample sheet")
        rows = pd.read_csv(sheet_tsv, sep="\t", dtype=str, keep_default_na=False).set_index("video_id", drop=False)
        answers = {vid: answer_item(rows.loc[vid].to_dict(), prompt) for vid in frames}
    loaded = load_model(cfg)
    companion = load_model(load_cfg(companion_cfg, companion_dir)) if companion_cfg is not None else None
    return run_shard(loaded, frames, prompt, ReduceSpec.from_dict(reduce_cfg), out, header_extra=header, batch_orders=model_cfg.get("batch_orders", True),
                     answers=answers, append_eos=bool((answer_cfg or {}).get("append_eos")), companion=companion,
                     **feed_options(model_cfg))


FEED_DEFAULTS = {"videos_per_forward": 1, "prefetch": 1, "compile_reduce": False}  # = config.schema.yaml model.*


def feed_options(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """run_shard's feeding options from the model block (defaults as in the config schema)."""
    opts = {k: model_cfg.get(k, v) for k, v in FEED_DEFAULTS.items()}
    for k in ("videos_per_forward", "prefetch"):
        v = opts[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if k == "videos_per_forward" else 0):
            raise ValueError(f"config key model.{k} must be an integer >= {1 if k == 'videos_per_forward' else 0}, got {v!r}")
    if not isinstance(opts["compile_reduce"], bool):
        raise ValueError(f"config key model.compile_reduce must be true or false, got {opts['compile_reduce']!r}")
    return opts


def empty_dump(out: str, manifest: str, header: dict[str, str]) -> dict[str, Any]:
    """The dump of a shard whose videos were all skipped at frame extraction: a valid dump with no
    video (no model is loaded); every later step reads it as a shard that contributes no scores."""
    from vidsme import __version__
    from vidsme.dump import write_shard

    log.warning("every video of this shard was skipped at frame extraction (%s): writing an empty dump", manifest)
    write_shard(out, {}, {**header, "empty_shard": "true", "passes": "[]", "vidsme_version": __version__})
    return {"videos": {}, "n_nonfinite_videos": 0, "path": str(out)}


SLICES = {"video": ("nat", "rev"), "answer": ("nat_answer", "rev_answer")}  # scored slice -> dump pass names


def _reference_dump(ref_dump: str, header: dict[str, str]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """A reference model's dump of the same shard: same scored positions per video, cross terms present."""
    from vidsme.dump import read_shard

    ref_header, ref_entries = read_shard(ref_dump)
    mine, theirs = json.loads(header["scored_positions"]), json.loads(ref_header["scored_positions"])
    for vid, runs in mine.items():
        if theirs.get(vid, runs) != runs:
            raise ValueError(f"{ref_dump}: video {vid} has other scored positions than in the target's dump: "
                             "the reference model must read the same inputs (tokenizer, processor)")
    return ref_entries


def position_series(dump: str, qr_tsv: str, out: str, fixed_q: float, fixed_r: float, slice_name: str = "video",
                    ref_dump: str | None = None) -> None:
    """Per-position series of every attack for one shard, at each video's adaptive (q, r).

    `slice_name`: "video" (the video-token positions, the paper's method) or "answer" (the answer tokens,
    true targets; needs a dump made with the answer slice). `ref_dump`: the same shard's dump of a
    reference model made with the target as companion; adds the reference-model attacks' series
    (`vidsme.attacks.reference_series`)."""
    from vidsme.attacks import n_excluded
    from vidsme.attacks import position_series as series_of
    from vidsme.dump import read_shard
    from vidsme.attacks import reference_series
    from vidsme.passstats import CrossStats, PassStats

    if slice_name not in SLICES:
        raise ValueError(f"unknown slice {slice_name!r}; known: {', '.join(SLICES)}")
    pn, pr = SLICES[slice_name]
    header, entries = read_shard(dump)
    ref_entries = _reference_dump(ref_dump, header) if ref_dump else None
    qr = pd.read_csv(qr_tsv, sep="\t", dtype={"video_id": str}).set_index("video_id")
    tensors: dict[str, np.ndarray] = {}
    for vid, passes in entries.items():
        if vid not in qr.index:
            log.warning("%s: no (q, r) (skipped at the statistics stage); not scored", vid)
            continue
        if pn not in passes or pr not in passes:
            raise ValueError(f"{dump}: video {vid} has no {slice_name} slice (passes {sorted(passes)}); "
                             "the answer slice needs scoring.answer_slice.enabled when the passes run")
        nat, rev = PassStats.from_arrays(passes[pn]), PassStats.from_arrays(passes[pr])
        if n_excluded(nat, rev):
            log.warning("%s: %d of %d positions have non-finite logits; excluded from every series", vid, n_excluded(nat, rev), nat.n_positions)
        q, r = float(qr.at[vid, "q"]), float(qr.at[vid, "r"])
        series = series_of(nat, rev, q, r, {"fixed_q": fixed_q, "fixed_r": fixed_r})
        if ref_entries is not None:
            rp = ref_entries.get(vid, {})
            if pn not in rp or pr not in rp:
                raise ValueError(f"{ref_dump}: video {vid} has no {slice_name} slice in the reference's dump (passes {sorted(rp)})")
            x_nat = CrossStats(rp[pn])
            x_nat.check_target(nat, f"{ref_dump}: video {vid}, pass {pn}")
            series.update(reference_series(nat, rev, PassStats.from_arrays(rp[pn]), PassStats.from_arrays(rp[pr]), x_nat, q, r))
        for name, values in series.items():
            tensors[f"{vid}/{name}"] = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    write_safetensors(out, tensors, {"source_dump": str(dump), "model_id": header.get("model_id", ""), "slice": slice_name})


def aggregate(series_files: list[str], qr_tsv: str, sheet_tsv: str, k_grid: list[float], model_cfg: dict[str, Any], num_frames: int, out: str) -> pd.DataFrame:
    """Per-video scores (one row per video, attack and K) from the per-position series."""
    from safetensors.numpy import load_file

    from vidsme.attacks import aggregate as agg

    sheet = pd.read_csv(sheet_tsv, sep="\t", dtype=str, keep_default_na=False).set_index("video_id")
    qr = pd.read_csv(qr_tsv, sep="\t", dtype={"video_id": str}).set_index("video_id")
    rows = []
    for f in series_files:
        by_video: dict[str, dict[str, np.ndarray]] = {}
        for key, arr in load_file(f).items():
            vid, name = key.split("/", 1)
            by_video.setdefault(vid, {})[name] = arr
        for vid, series in by_video.items():
            for attack, k, score in agg(series, list(k_grid)):
                rows.append((vid, int(sheet.at[vid, "label"]), sheet.at[vid, "split"], attack, k, score, float(qr.at[vid, "q"]), float(qr.at[vid, "r"])))
    df = pd.DataFrame(rows, columns=["video_id", "label", "split", "attack", "k", "score", "q", "r"])
    df["model"] = str(model_cfg.get("id") or model_cfg.get("source"))
    df["revision"] = str(model_cfg.get("revision"))
    df["num_frames"] = num_frames
    write_tsv(df, out)
    return df


def metrics(scores_tsv: str, out: str, fprs: list[float], n_boot: int, seed: int, nonfinite: str = NONFINITE_DEFAULT) -> pd.DataFrame:
    """AUC (with bootstrap CI), balanced accuracy and TPR at low FPR for every attack and K."""
    from vidsme.metrics import evaluate

    scores = pd.read_csv(scores_tsv, sep="\t")
    scores["k"] = scores["k"].astype("float64")
    rows = []
    for (attack, k), g in scores.groupby(["attack", "k"], dropna=False, sort=True):
        m = evaluate(g.score.to_numpy(), g.label.to_numpy(), fprs=tuple(fprs), n_boot=n_boot, seed=seed, nonfinite=nonfinite)
        if m.get("n_nonfinite"):
            log.warning("%s (K=%s): %d non-finite scores (policy %s)", attack, k, m["n_nonfinite"], nonfinite)
        rows.append({"attack": attack, "k": k, **m})
    df = pd.DataFrame(rows)
    write_tsv(df, out)
    return df


def provenance(config: dict[str, Any], model_key: str, out: str, root: str = ".") -> dict[str, Any]:
    """Record what produced a results folder: config, versions, git commit, lock hash."""
    import hashlib
    import platform
    import subprocess

    import vidsme

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    lock = Path(root) / "requirements.lock"
    info = {
        "package_version": vidsme.__version__,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None,
        "python": platform.python_version(),
        "model_key": model_key,
        "model_id": config["model"].get("id"),
        "model_revision": config["model"].get("revision"),
        "config": config,
    }
    try:
        import cv2  # noqa: F401  (imported so that `effective` reports its dispatch)
        import torch
        import transformers

        info["torch"], info["transformers"] = torch.__version__, transformers.__version__
    except ImportError:
        pass
    from vidsme.numerics import effective

    info["numerics"] = effective()
    write_text(out, json.dumps(info, indent=2, default=str))
    return info


def pretrain_target(out_model: str, family: str, tiny: dict[str, Any], train_cfg: dict[str, Any], synth_cfg: dict[str, Any],
                    seed: int, sheet: str | None = None) -> dict[str, Any]:
    """Embedded default, stage 1: build the tiny model (tokenizer from the data's text) and pretrain it on
    the disjoint pool: the base target (the init when ``pretrain_epochs`` is 0). With `sheet`, its
    answer loss on members vs non-members (it saw none of them) is written beside it."""
    import tempfile

    from vidsme import synth
    from vidsme.tiny import build_tiny
    from vidsme.train import pretrain

    synth_cfg = dict(synth_cfg, seed=seed)
    samples = synth.read_sheet(Path(sheet)) if sheet else None
    out = Path(out_model)
    with tempfile.TemporaryDirectory() as tmp:
        init = build_tiny(family, Path(tmp) / "init", corpus=synth.corpus(synth_cfg), seed=seed, **tiny)
        summary = pretrain(init, out, dict(train_cfg, seed=seed), pool=synth.pretrain_frames(synth_cfg), samples=samples,
                           video_root=Path(sheet).parent if sheet else None)
    _beside(out)
    log.info("base target: %s", json.dumps({k: v for k, v in summary.items() if k != "config"}, default=str))
    return summary


def train_target(sheet: str, base_model: str, out_model: str, train_cfg: dict[str, Any], seed: int,
                 synth_cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    """Embedded default, stage 2: instruction-tune the base target on the member videos; training curve
    (pretraining rows included) and memorisation beside the model. `synth_cfg`: the pretraining pool's
    settings, read only by the positive control (its negative videos come from the pool)."""
    from vidsme import synth
    from vidsme.train import instruct

    samples = synth.read_sheet(Path(sheet))
    out = Path(out_model)
    pool = (synth.pretrain_frames(dict(synth_cfg or {}, seed=seed)) if float(train_cfg.get("video_loss_weight", 0)) > 0
            else None)  # the pool pretrain_target drew (same seed)
    summary = instruct(Path(base_model), samples, out, dict(train_cfg, seed=seed), video_root=Path(sheet).parent,
                       pool=pool)
    _beside(out)
    log.info("trained target: %s", json.dumps({k: v for k, v in summary.items() if k not in ("config", "instruct_videos")}, default=str))
    return summary


def frame_swap(sheet: str, model_dir: str, num_frames: int, seed: int, md: str, csv: str, target: str = "main"
               ) -> pd.DataFrame:
    """Embedded default, frame-swap control (`vidsme.frame_swap`): the target's answer loss on the evaluation
    videos with their own, another video's and black frames, at the training's frame count."""
    from vidsme import synth
    from vidsme.frame_swap import frame_swap as measure
    from vidsme.frame_swap import write_table
    from vidsme.models import load_model
    from vidsme.train import _check_samples, load_videos

    samples = _check_samples(synth.read_sheet(Path(sheet)))
    rows = samples[samples["split"] == "eval"] if "split" in samples else samples
    frames = load_videos(rows, Path(sheet).parent, int(num_frames))
    table = measure(load_model({"id": str(model_dir)}), rows, frames, int(num_frames), int(seed))
    write_table(table, md, csv, target)
    log.info("frame swap: %s", table.to_dict("records"))
    return table


def _beside(model_dir: Path) -> None:
    """Move the training curve and memorisation summary from the model folder to its parent."""
    import shutil

    for name in ("train_log.tsv", "memorisation.json"):
        shutil.move(str(model_dir / name), str(model_dir.parent / name))

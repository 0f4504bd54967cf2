"""Procedural synthetic videos: parameters, rendering, and the caption and QA they truly show.

A textured background (optionally panned by a camera), 1-3 coloured shapes with a controlled
trajectory (static, linear, bounce, circular) and a global illumination curve (constant, fade
in/out, flicker, pulse). `sample_params` draws one video, `render` draws its frames, `describe`
derives its caption and multiple-choice QA; temporal items (direction, rotation, brightness, pan)
flip their answer when the frames are reversed. Used by `vidsme.synth` to assemble datasets.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vidsme.prompts import format_answer

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


def qa_item(rng: np.random.Generator, kind: str, question: str, correct: str, distractors: list[str],
        temporal: bool) -> dict[str, Any]:
    opts = [correct] + [d for d in distractors if d != correct]
    perm = rng.permutation(len(opts))
    opts = [opts[i] for i in perm]
    idx = opts.index(correct)
    return {"kind": kind, "question": question, "options": opts, "answer": format_answer(opts, idx),
            "temporal": temporal}


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


def render(params: dict[str, Any], noise: float = 2.0) -> np.ndarray:
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
    qa.append(qa_item(rng, "count", "How many moving or still shapes are in the video?", str(len(objs)),
                  ["1", "2", "3", "4"], False))
    for o in objs:
        name = _obj_name(o)
        if o["trajectory"] == "linear":
            qa.append(qa_item(rng, "direction", f"Which way does the {name} move?", o["direction"],
                          list(DIRECTIONS), True))
        if o["trajectory"] == "circular":
            qa.append(qa_item(rng, "rotation", f"Does the {name} circle clockwise or counterclockwise?", o["spin"],
                          ["clockwise", "counterclockwise"], True))
        motion = {"static": "it stays still", "linear": "in a straight line", "bounce": "it bounces off the edges",
                  "circular": "in a circle"}
        qa.append(qa_item(rng, "trajectory", f"How does the {name} move?", motion[o["trajectory"]],
                      list(motion.values()), False))
        others = [c for c in COLOURS if c != o["colour"]]
        item = qa_item(rng, "colour", f"What colour is the {o['shape']}?", o["colour"],
                   list(rng.choice(others, 3, replace=False)), False)
        if sum(p["shape"] == o["shape"] for p in objs) == 1:  # only when the shape names one object
            qa.append(item)
    if params["illumination"] in ("fade_in", "fade_out"):
        trend = "brighter" if params["illumination"] == "fade_in" else "darker"
        qa.append(qa_item(rng, "brightness", "How does the brightness change over the video?", trend,
                      ["brighter", "darker", "it stays the same"], True))
    if params["pan"] != "none":
        qa.append(qa_item(rng, "pan", "Which way does the camera pan?", params["pan"], list(DIRECTIONS), True))
    return caption, qa

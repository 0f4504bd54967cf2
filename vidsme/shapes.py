"""Published 7B shapes of the four families, and random-weight models built from them (no download).

`read_shape(family_or_path)` reads `config/models/shapes/<family>_7b.yaml` (the facts, each file naming
the hub config.json / model card it comes from). `build_shaped(shape, num_layers=..., vision_layers=...)`
builds the family's real transformers model with those widths and the real vocabulary on the `meta`
device (no memory), materialises it on the target device with seeded random weights and returns a
`vidsme.models.Loaded` that `vidsme.passes.run_shard` runs like a hub checkpoint. Full depth
(`num_layers=None`) is the 7B model itself (about 15 GB in bfloat16); on a CPU use reduced depth
(1-2 decoder layers, 1 vision layer) at full width. The processor is the family's real processor
class at the real image size / pixel budget with a small BPE tokenizer (`vidsme.tiny`), so the
scored positions per frame follow each family's real rule (`positions_per_video`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .tiny import FAMILIES

SHAPES_DIR = Path(__file__).resolve().parents[1] / "config" / "models" / "shapes"
_TEXT = {"hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "vocab_size", "mrope_section"}
_VISION = {"hidden_size", "num_layers", "num_heads", "intermediate_size", "image_size", "patch_size", "merge_size",
           "temporal_patch_size", "window_size", "fullatt_block_indexes"}
_VIDEO = {"rule", "pool_stride", "min_pixels", "max_pixels"}
RULES = {"llava_next_video": "pooled_grid", "video_llava": "grid_plus_cls",
         "llava_onevision": "pooled_grid_ceil_plus_newline", "qwen2_5_vl": "merged_temporal"}


@dataclass(frozen=True)
class ModelShape:
    """The published shape of one 7B checkpoint (see the YAML file it was read from)."""

    family: str
    hub_id: str
    text: dict[str, Any]
    vision: dict[str, Any]
    video: dict[str, Any]
    path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.text["hidden_size"] // self.text["num_heads"]


def read_shape(family_or_path: str | Path) -> ModelShape:
    """A shape by family name (`config/models/shapes/<family>_7b.yaml`) or by file path."""
    p = Path(family_or_path)
    if str(family_or_path) in FAMILIES:
        p = SHAPES_DIR / f"{family_or_path}_7b.yaml"
    if not p.is_file():
        raise FileNotFoundError(f"model shape file not found: {p} (families: {', '.join(FAMILIES)})")
    d = yaml.safe_load(p.read_text()) or {}
    for key, known in (("text", _TEXT), ("vision", _VISION), ("video", _VIDEO)):
        if not isinstance(d.get(key), dict):
            raise ValueError(f"{p}: section {key!r} missing or not a mapping")
        bad = sorted(set(d[key]) - known)
        if bad:
            raise ValueError(f"{p}: unknown key(s) {bad} in {key!r}; known: {sorted(known)}")
    fam = d.get("family")
    if fam not in FAMILIES:
        raise ValueError(f"{p}: family {fam!r} not one of {', '.join(FAMILIES)}")
    if d["video"].get("rule") != RULES[fam]:
        raise ValueError(f"{p}: video.rule {d['video'].get('rule')!r} is not the {fam} rule {RULES[fam]!r}")
    missing = [f"text.{k}" for k in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size",
                                       "vocab_size") if k not in d["text"]]
    missing += [f"vision.{k}" for k in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "patch_size")
                if k not in d["vision"]]
    if missing:
        raise ValueError(f"{p}: missing {missing}")
    return ModelShape(fam, str(d.get("hub_id", "")), dict(d["text"]), dict(d["vision"]), dict(d["video"]), str(p))


def tiny_sizes(shape: ModelShape, num_layers: int | None = None, vision_layers: int | None = None) -> dict[str, Any]:
    """`vidsme.tiny.TinySizes` arguments for `shape`, optionally at reduced depth (full width, real vocabulary)."""
    t, v = shape.text, shape.vision
    qwen = shape.family == "qwen2_5_vl"
    sizes: dict[str, Any] = dict(
        hidden_size=t["hidden_size"], num_layers=num_layers or t["num_layers"], num_heads=t["num_heads"],
        num_kv_heads=t["num_kv_heads"], intermediate_size=t["intermediate_size"], pad_vocab_to=t["vocab_size"],
        vision_hidden_size=v["hidden_size"], vision_layers=vision_layers or v["num_layers"],
        vision_heads=v["num_heads"], vision_intermediate_size=v["intermediate_size"], patch_size=v["patch_size"],
        image_size=v.get("image_size") or v.get("window_size", 112),
    )
    if qwen:
        sizes.update(vision_window=v["window_size"], mrope_section=tuple(t["mrope_section"]),
                     video_min_pixels=shape.video["min_pixels"], video_max_pixels=shape.video["max_pixels"])
    return sizes


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's resize rule: each side rounded to a multiple of `factor`, the area brought into
    [min_pixels, max_pixels] keeping the aspect ratio (as its processors document it)."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h, w = max(factor, math.floor(height / beta / factor) * factor), max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


def patch_grid(shape: ModelShape, height: int, width: int) -> tuple[int, int]:
    """Vision patches per side (rows, cols) that one frame of `height` x `width` becomes."""
    v = shape.vision
    if shape.family == "qwen2_5_vl":
        f = v["patch_size"] * v["merge_size"]
        h, w = smart_resize(height, width, f, shape.video["min_pixels"], shape.video["max_pixels"])
        return h // v["patch_size"], w // v["patch_size"]
    g = v["image_size"] // v["patch_size"]
    return g, g


def positions_per_video(shape: ModelShape, frames: int, height: int, width: int) -> int:
    """Scored (video-token) positions of one pass, by the family's rule (docs/models.md)."""
    gh, gw = patch_grid(shape, height, width)
    rule = shape.video["rule"]
    if rule == "pooled_grid":  # LLaVA-NeXT-Video: 2 x 2 average pooling (floor)
        s = shape.video["pool_stride"]
        return frames * (gh // s) * (gw // s)
    if rule == "grid_plus_cls":  # Video-LLaVA: every patch and the CLS token of every frame
        return frames * (gh * gw + 1)
    if rule == "pooled_grid_ceil_plus_newline":  # LLaVA-OneVision: bilinear to ceil(G/2), one newline per video
        s = shape.video["pool_stride"]
        return frames * math.ceil(gh / s) * math.ceil(gw / s) + 1
    m, tp = shape.vision["merge_size"], shape.vision["temporal_patch_size"]  # Qwen2.5-VL
    return math.ceil(frames / tp) * (gh // m) * (gw // m)


def build_shaped(shape: ModelShape | str, num_layers: int | None = None, vision_layers: int | None = None,
                 device: str = "cpu", dtype: str = "float32", attn_implementation: str | None = "sdpa",
                 seed: int = 0) -> Any:
    """A random-weight model of `shape` as a `vidsme.models.Loaded` (built on `meta`, materialised on `device`)."""
    from transformers import AutoModelForImageTextToText

    from .models import DTYPES, Loaded, _resolve_device, check_compatible, video_token_id
    from .tiny import tiny_parts

    shape = read_shape(shape) if isinstance(shape, (str, Path)) else shape
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} not in {list(DTYPES)}")
    dev = _resolve_device(device)
    cfg, proc, _ = tiny_parts(shape.family, exact_grid=False, **tiny_sizes(shape, num_layers, vision_layers))
    kw: dict[str, Any] = {"dtype": DTYPES[dtype]}
    if attn_implementation:
        kw["attn_implementation"] = attn_implementation
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(cfg, **kw)
    materialise(model, dev, seed)
    model.eval()
    check_compatible(model, proc, f"shaped:{shape.family}")
    depth = f"{num_layers or shape.text['num_layers']}L"
    return Loaded(model, proc, f"shaped:{shape.hub_id}@{depth}", None, dtype, dev, video_token_id(model, proc),
                  {"shape": shape.path, "num_layers": num_layers, "vision_layers": vision_layers, "seed": seed})


def materialise(model: Any, device: torch.device, seed: int) -> None:
    """Allocate a meta-device model on `device` and initialise every parameter and buffer (seeded),
    with the model's own initialisation (rotary tables and position ids included)."""
    model.to_empty(device=device)
    for t in [*model.modules(), *model.parameters(), *model.buffers()]:
        if hasattr(t, "_is_hf_initialized"):
            delattr(t, "_is_hf_initialized")
    torch.manual_seed(seed)
    model.initialize_weights()
    model.tie_weights()


MODEL_TYPES = {"llava_next_video": "llava_next_video", "qwen2_5_vl": "qwen2_5_vl", "video_llava": "video_llava",
               "llava_onevision": "llava_onevision"}


def check_checkpoint(model_id: str, revision: str | None = None, frames: int = 16, height: int = 360,
                     width: int = 640, shape_file: str | None = None) -> dict[str, Any]:
    """Scored positions a checkpoint's own processor gives for a blank `frames` x `height` x `width` video,
    next to the count this package expects for the family's published 7B shape (config + processor only,
    no weights are read)."""
    import numpy as np
    from transformers import AutoConfig, AutoProcessor

    from .models import Loaded, build_inputs

    cfg = AutoConfig.from_pretrained(model_id, revision=revision)
    family = MODEL_TYPES.get(cfg.model_type)
    if family is None:
        raise ValueError(f"{model_id}: model_type {cfg.model_type!r} is not one of {', '.join(MODEL_TYPES)}")
    proc = AutoProcessor.from_pretrained(model_id, revision=revision)
    vid = getattr(cfg, "video_token_id", None)
    vid = vid if isinstance(vid, int) else proc.tokenizer.convert_tokens_to_ids(proc.video_token)
    lm = Loaded(None, proc, model_id, revision, "float32", torch.device("cpu"), vid)
    counts = {}
    for f in (frames, frames + 2):
        _, scored = build_inputs(lm, [np.zeros((f, height, width, 3), np.uint8)], {"text": "Describe the video."})
        counts[f] = int(scored.numel())
    shape = read_shape(shape_file or family)
    expected = positions_per_video(shape, frames, height, width)
    return {"model": model_id, "revision": revision, "family": family, "frames": frames, "height": height,
            "width": width, "positions": counts[frames], "expected": expected, "shape_file": shape.path,
            "tokens_per_frame": (counts[frames + 2] - counts[frames]) / 2, "match": counts[frames] == expected}


def main(argv: list[str] | None = None) -> int:
    """`python -m vidsme.shapes CHECKPOINT [--revision R]`: does the checkpoint's processor give the scored
    positions this package expects? Prints JSON; exit 0 if it does, 1 if not, 2 on an error."""
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(prog="python -m vidsme.shapes", description=main.__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="hub id or local directory")
    ap.add_argument("--revision", default=None)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--shape", default=None, help="shape YAML to compare with (default: the family's 7B file)")
    a = ap.parse_args(argv)
    try:
        res = check_checkpoint(a.checkpoint, a.revision, a.frames, a.height, a.width, a.shape)
    except (OSError, ValueError) as e:
        print(f"vidsme.shapes: error: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}",
              file=sys.stderr)
        return 2
    print(json.dumps(res))
    return 0 if res["match"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

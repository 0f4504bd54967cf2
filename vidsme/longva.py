"""Convert a LongVA / LLaVA-code-base checkpoint (the Vid-SME targets) to a transformers-native folder.

    python -m vidsme.longva SRC DST [--vision-tower DIR] [--overwrite]

SRC is a `LlavaQwenForCausalLM` folder as LongVA's `load_pretrained_model` reads it (config.json
with `mm_*` keys, Qwen2 tokenizer, safetensors shards). DST loads with `vidsme.models.load_model`
(AutoProcessor + AutoModelForImageTextToText, no remote code) as `LlavaOnevisionForConditionalGeneration`
and reproduces LongVA's video forward (`vidsme.longva_target` says why and how). What LongVA's
loader does is reproduced too: `rope_scaling` dropped, the vocabulary cut to the tokenizer's
length after its `<im_patch>` / `<im_start>` tokens (`resize_token_embeddings(len(tokenizer))`).

Weights are copied as raw bytes, a chunk at a time, in their dtype (`vidsme.tensorfile`): memory
stays bounded whatever the shard size. The output is written to a hidden sibling folder and
renamed at the end, so DST is either complete or absent. Bad input raises `LongVAError` naming
the file and key.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .tensorfile import OutTensor, TensorFileError, TensorInfo, copy_bytes, read_header, write_file

CLIP_L_336 = "openai/clip-vit-large-patch14-336"
KNOWN_TOWERS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    CLIP_L_336: (
        {"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
         "num_attention_heads": 16, "image_size": 336, "patch_size": 14, "hidden_act": "quick_gelu",
         "layer_norm_eps": 1e-5, "projection_dim": 768, "num_channels": 3, "attention_dropout": 0.0},
        {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}, "do_center_crop": True,
         "do_resize": True, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
         "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]},
    ),
}
VISION_PREFIX = "model.vision_tower.vision_tower."
RENAMES = (  # LongVA name -> LlavaOnevisionForConditionalGeneration name
    (re.compile(r"^model\.vision_tower\.vision_tower\.(vision_model\..+)$"), r"model.vision_tower.\1"),
    (re.compile(r"^model\.mm_projector\.0\.(weight|bias)$"), r"model.multi_modal_projector.linear_1.\1"),
    (re.compile(r"^model\.mm_projector\.2\.(weight|bias)$"), r"model.multi_modal_projector.linear_2.\1"),
    (re.compile(r"^model\.(embed_tokens\.weight|norm\.weight|layers\.\d+\..+)$"), r"model.language_model.\1"),
    (re.compile(r"^(lm_head\.weight)$"), r"\1"),
)
# Present in some checkpoints, unused by LongVA's video forward (or non-persistent buffers).
DROPPED = re.compile(r"^model\.image_newline$|^model\.vision_resampler\..+|.*\.rotary_emb\.inv_freq$|.*embeddings\.position_ids$")
EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json")


class LongVAError(ValueError):
    """The folder is not a convertible LongVA checkpoint; the message names the file and key."""


@dataclass
class Plan:
    """Everything the conversion writes, checked before anything is written."""

    src: Path
    config: dict[str, Any]
    shards: dict[str, dict[str, TensorInfo]]  # file name -> {LongVA name: info}
    vision: dict[str, Any]
    preproc: dict[str, Any]
    vision_from: str
    tokenizer: Any
    vocab: int
    placeholder_id: int
    newline_id: int
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _json(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LongVAError(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LongVAError(f"{path}: not JSON ({e})") from e
    if not isinstance(d, dict):
        raise LongVAError(f"{path}: expected a JSON object")
    return d


def read_config(src: Path) -> dict[str, Any]:
    """config.json of a LongVA checkpoint, with the video settings this converter reproduces checked."""
    if not src.is_dir():
        raise LongVAError(f"{src}: not a folder (expected a LongVA checkpoint folder)")
    path = src / "config.json"
    cfg = _json(path)
    arch = cfg.get("architectures") or []
    if "mm_vision_tower" not in cfg or not (cfg.get("model_type") == "llava_qwen" or "LlavaQwenForCausalLM" in arch):
        raise LongVAError(f"{path}: not a LongVA checkpoint (needs model_type llava_qwen / LlavaQwenForCausalLM and "
                          f"mm_vision_tower; got model_type {cfg.get('model_type')!r}, architectures {arch})")

    def need(key: str, ok: Any, what: str, default: Any = None) -> None:
        v = cfg.get(key, default)
        if not (v in ok if isinstance(ok, tuple) else ok(v)):
            raise LongVAError(f"{path}: {key} = {v!r} is not supported ({what})")

    need("mm_projector_type", ("mlp2x_gelu",), "LongVA's 2-layer GELU projector is the only one with a transformers layout")
    need("mm_spatial_pool_mode", ("average",), "video pooling must be average pooling (bilinear at factor 2 equals it)")
    need("mm_spatial_pool_stride", (2,), "video pooling must have stride 2")
    need("mm_vision_select_feature", ("patch",), "patch features without CLS are what LongVA pools")
    need("mm_vision_select_layer", lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer layer index")
    need("mm_patch_merge_type", ("flat", "unires"), "LongVA's code accepts only these two; both leave video tokens flat",
         default="flat")
    need("use_sliding_window", (False, None), "sliding-window attention is not reproduced")
    return cfg


def list_shards(src: Path) -> dict[str, dict[str, TensorInfo]]:
    """{shard file: {tensor: info}} from model.safetensors.index.json or a single model.safetensors."""
    index = src / "model.safetensors.index.json"
    if index.is_file():
        wmap = _json(index).get("weight_map")
        if not isinstance(wmap, dict) or not wmap:
            raise LongVAError(f"{index}: no weight_map")
        files = sorted(set(wmap.values()))
    elif (src / "model.safetensors").is_file():
        files, wmap = ["model.safetensors"], None
    else:
        pickles = sorted(p.name for p in src.glob("*.bin")) + sorted(p.name for p in src.glob("*.pt*"))
        hint = f" (found only {', '.join(pickles[:3])}: pickle files are never loaded; convert them to safetensors)" if pickles else ""
        raise LongVAError(f"{src}: no model.safetensors or model.safetensors.index.json{hint}")
    out: dict[str, dict[str, TensorInfo]] = {}
    for f in files:
        p = src / f
        if not p.is_file():
            raise LongVAError(f"{index}: shard {f} is listed but missing from {src}")
        try:
            out[f] = read_header(p)[0]
        except TensorFileError as e:
            raise LongVAError(str(e)) from e
    if wmap is not None:
        for name, f in wmap.items():
            if name not in out[f]:
                raise LongVAError(f"{index}: tensor {name} is mapped to {f}, which does not hold it")
    seen: dict[str, str] = {}
    for f, ts in out.items():
        for name in ts:
            if name in seen:
                raise LongVAError(f"{src}: tensor {name} is in both {seen[name]} and {f}")
            seen[name] = f
    return out


def target_name(name: str, where: str) -> str | None:
    """The transformers name of a LongVA tensor; None for tensors LongVA's video forward never uses."""
    if DROPPED.match(name):
        return None
    for pat, rep in RENAMES:
        if pat.match(name):
            return pat.sub(rep, name)
    raise LongVAError(f"{where}: tensor {name} has no place in the converted model (not a LongVA tensor name)")


def resolve_vision(cfg: dict[str, Any], src: Path, override: str | Path | None) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(CLIP vision config, image-processor config, where from) for `mm_vision_tower`."""
    name = str(cfg["mm_vision_tower"])
    folder = Path(override) if override else None
    if folder is None and name not in KNOWN_TOWERS:
        for cand in (Path(name), src / name):
            if (cand / "config.json").is_file():
                folder = cand
                break
    if folder is None:
        if name in KNOWN_TOWERS:
            v, p = KNOWN_TOWERS[name]
            return dict(v), dict(p), f"built-in {name}"
        raise LongVAError(f"{src / 'config.json'}: unknown vision tower mm_vision_tower = {name!r}; known: "
                          f"{', '.join(KNOWN_TOWERS)}, or a folder (absolute or inside {src}) with config.json and "
                          "preprocessor_config.json, or pass --vision-tower DIR")
    v = _json(folder / "config.json")
    v = v.get("vision_config", v) if v.get("model_type") == "clip" else v
    if v.get("model_type") not in ("clip_vision_model", None):
        raise LongVAError(f"{folder / 'config.json'}: vision tower model_type {v.get('model_type')!r} is not CLIP")
    pre_path = folder / "preprocessor_config.json"
    pre = _json(pre_path) if pre_path.is_file() else KNOWN_TOWERS[CLIP_L_336][1]
    v = {k: val for k, val in v.items() if k not in ("architectures", "transformers_version", "torch_dtype", "dtype")}
    v["model_type"] = "clip_vision_model"
    for k in ("image_mean", "image_std"):
        if k not in pre:
            raise LongVAError(f"{pre_path}: no {k}")
    return v, pre, str(folder)


def _check_vision(v: dict[str, Any], tensors: dict[str, TensorInfo], where: str) -> None:
    """The checkpoint's vision tensors must be exactly the tower the config describes."""
    p = VISION_PREFIX + "vision_model."
    layers = {int(m.group(1)) for n in tensors if (m := re.match(re.escape(p) + r"encoder\.layers\.(\d+)\.", n))}
    pos = tensors.get(p + "embeddings.position_embedding.weight")
    if pos is None:
        raise LongVAError(f"{where}: no vision tower tensors ({p}embeddings.position_embedding.weight); "
                          "LongVA loads the tower from the checkpoint")
    g = int(v["image_size"]) // int(v["patch_size"])
    want = (g * g + 1, int(v["hidden_size"]))
    if pos.shape != want or layers != set(range(int(v.get("num_hidden_layers", -1)))):
        raise LongVAError(f"{where}: vision tensors ({len(layers)} layers, position embedding {list(pos.shape)}) do not match "
                          f"the vision tower config ({v.get('num_hidden_layers')} layers, {list(want)})")
    if g % 2:
        raise LongVAError(f"{where}: a {g}x{g} patch grid does not pool 2x2 the same way in LongVA (floor) and "
                          "transformers (ceil); unsupported")


def _tokenizer(src: Path, cfg: dict[str, Any]) -> Any:
    """The checkpoint's Qwen2 tokenizer with the tokens LongVA's loader adds (so its length is LongVA's)."""
    from transformers import Qwen2Tokenizer

    if not any((src / f).is_file() for f in ("vocab.json", "tokenizer.json")):
        raise LongVAError(f"{src}: no tokenizer (vocab.json + merges.txt or tokenizer.json)")
    try:
        tok = Qwen2Tokenizer.from_pretrained(str(src), local_files_only=True)
    except (OSError, ValueError) as e:
        raise LongVAError(f"{src}: cannot load the Qwen2 tokenizer ({e})") from e
    if cfg.get("mm_use_im_patch_token", True):  # builder.py: getattr(config, "mm_use_im_patch_token", True)
        tok.add_tokens(["<im_patch>"], special_tokens=True)
    if cfg.get("mm_use_im_start_end", False):
        tok.add_tokens(["<im_start>", "<im_end>"], special_tokens=True)
    return tok


def plan(src: str | Path, vision_tower: str | Path | None = None) -> Plan:
    """Read and check SRC completely (config, shards, tensor names and shapes, tokenizer)."""
    from .longva_target import PLACEHOLDER

    src = Path(src)
    cfg = read_config(src)
    shards = list_shards(src)
    everything = {n: t for ts in shards.values() for n, t in ts.items()}
    dropped = []
    for f, ts in shards.items():
        for n in ts:
            if target_name(n, str(src / f)) is None:
                dropped.append(n)
    vision, pre, vfrom = resolve_vision(cfg, src, vision_tower)
    _check_vision(vision, everything, str(src))
    tok = _tokenizer(src, cfg)
    emb = everything.get(EMBED)
    if emb is None or len(emb.shape) != 2:
        raise LongVAError(f"{src}: no 2-D {EMBED}")
    vocab = len(tok)
    if vocab > emb.shape[0]:
        raise LongVAError(f"{emb.path}: {EMBED} has {emb.shape[0]} rows but LongVA's tokenizer has {vocab} tokens; LongVA "
                          "would initialise the missing rows at random, which cannot be reproduced")
    head = everything.get(HEAD)
    if head is None and not cfg.get("tie_word_embeddings", False):
        raise LongVAError(f"{src}: no {HEAD} and tie_word_embeddings is false")
    if head is not None and head.shape != emb.shape:
        raise LongVAError(f"{head.path}: {HEAD} shape {list(head.shape)} differs from {EMBED} {list(emb.shape)}")
    ph = tok.convert_tokens_to_ids(PLACEHOLDER)
    nl = tok("\n", add_special_tokens=False)["input_ids"]
    if not isinstance(ph, int) or ph >= vocab or len(nl) != 1:
        raise LongVAError(f"{src}: the tokenizer needs the Qwen2 special token {PLACEHOLDER} and a single-token '\\n'")
    notes = []
    if cfg.get("rope_scaling"):
        notes.append("rope_scaling dropped (LongVA's LlavaQwenForCausalLM sets config.rope_scaling = None)")
    if emb.shape[0] != vocab:
        notes.append(f"vocabulary cut from {emb.shape[0]} to {vocab} rows (LongVA: resize_token_embeddings(len(tokenizer)))")
    if "mm_newline_position" in cfg:
        notes.append(f"mm_newline_position = {cfg['mm_newline_position']!r} ignored: LongVA's video path adds no newline tokens")
    return Plan(src, cfg, shards, vision, pre, vfrom, tok, vocab, ph, nl[0], dropped, notes)


def _rows(t: TensorInfo, n: int) -> OutTensor:
    """The first n rows of a 2-D tensor (a byte prefix)."""
    return OutTensor("", t.dtype, (n, *t.shape[1:]), lambda: copy_bytes(t.path, t.start, n * t.row_bytes))


def _out_tensors(p: Plan) -> dict[str, list[OutTensor]]:
    everything = {n: t for ts in p.shards.values() for n, t in ts.items()}
    emb = everything[EMBED]
    out: dict[str, list[OutTensor]] = {}
    for f, ts in p.shards.items():
        lst = out.setdefault(f, [])
        for n, t in ts.items():
            new = target_name(n, f)
            if new is None:
                continue
            src_t = _rows(t, p.vocab) if n in (EMBED, HEAD) else OutTensor("", t.dtype, t.shape, lambda t=t: copy_bytes(t.path, t.start, t.nbytes))
            lst.append(OutTensor(new, src_t.dtype, src_t.shape, src_t.chunks))
            if n == EMBED:
                nl = p.newline_id
                lst.append(OutTensor("model.image_newline", emb.dtype, (emb.shape[1],),
                                     lambda: copy_bytes(emb.path, emb.start + nl * emb.row_bytes, emb.row_bytes)))
                if HEAD not in everything:  # tied: LongVA's lm_head is the embedding
                    r = _rows(emb, p.vocab)
                    lst.append(OutTensor("lm_head.weight", r.dtype, r.shape, r.chunks))
    return out


def convert(src: str | Path, dst: str | Path, vision_tower: str | Path | None = None, overwrite: bool = False) -> Path:
    """Convert LongVA checkpoint `src` into a new folder `dst` (see the module docstring); returns `dst`."""
    from . import __version__
    from .longva_target import PLACEHOLDER, onevision_config, onevision_processor

    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise LongVAError(f"{dst}: already exists (pass overwrite / --overwrite to replace it)")
    p = plan(src, vision_tower)
    tmp = dst.parent / f".{dst.name}.converting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        tok = p.tokenizer
        eos = tok.eos_token_id if tok.eos_token_id != p.placeholder_id else tok.convert_tokens_to_ids("<|im_end|>")
        cfg = onevision_config(p.config, p.vision, p.vocab, p.placeholder_id, eos, tok.pad_token_id)
        cfg.save_pretrained(tmp)
        proc = onevision_processor(tok, p.preproc, int(p.vision["image_size"]), int(p.vision["patch_size"]), PLACEHOLDER)
        proc.save_pretrained(tmp)
        files = _out_tensors(p)
        weight_map, total = {}, 0
        for f, ts in files.items():
            write_file(tmp / f, ts, {"format": "pt"})
            weight_map.update({t.name: f for t in ts})
            total += sum(t.nbytes for t in ts)
        if len(files) > 1 or "model.safetensors" not in files:
            (tmp / "model.safetensors.index.json").write_text(
                json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=1))
        record = {"converter": f"vidsme.longva {__version__}", "source": str(Path(src).resolve()),
                  "family": "llava_onevision", "vision_tower": p.vision_from, "vocab_rows": p.vocab,
                  "video_placeholder": {"token": PLACEHOLDER, "id": p.placeholder_id},
                  "image_newline_from_token_id": p.newline_id, "dropped_tensors": sorted(p.dropped), "notes": p.notes}
        (tmp / "vidsme_longva.json").write_text(json.dumps(record, indent=1))
        if dst.exists():
            old = dst.parent / f".{dst.name}.replaced-{os.getpid()}"
            os.replace(dst, old)
            os.replace(tmp, dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def main(argv: list[str] | None = None, prog: str = "python -m vidsme.longva") -> int:
    """Convert a LongVA checkpoint (a Vid-SME target) to a transformers-native LLaVA-OneVision folder."""
    ap = argparse.ArgumentParser(prog=prog,
                                 description="Convert a LongVA checkpoint (e.g. a Vid-SME target) to a transformers folder.")
    ap.add_argument("src", help="LongVA checkpoint folder (config.json, tokenizer, safetensors)")
    ap.add_argument("dst", help="output folder (must not exist unless --overwrite)")
    ap.add_argument("--vision-tower", default=None, help="folder with the CLIP tower's config.json and preprocessor_config.json "
                                                         f"(default: mm_vision_tower; {CLIP_L_336} is built in)")
    ap.add_argument("--overwrite", action="store_true", help="replace DST (only once the new folder is complete)")
    a = ap.parse_args(argv)
    try:
        out = convert(a.src, a.dst, a.vision_tower, a.overwrite)
    except LongVAError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rec = json.loads((out / "vidsme_longva.json").read_text())
    print(f"{out}: LLaVA-OneVision layout, {rec['vocab_rows']} vocabulary rows, vision tower from {rec['vision_tower']}")
    for n in rec["notes"]:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Random-weight checkpoints in the LongVA (LLaVA code base) layout, for tests and benchmarks.

`write_longva_checkpoint(out, sizes)` writes what a LongVA / Vid-SME target folder holds: a
`config.json` with the LLaVA keys (`mm_vision_tower`, `mm_projector_type`,
`mm_spatial_pool_stride`, ...), a Qwen2 tokenizer (`vocab.json`, `merges.txt`,
`tokenizer_config.json`), safetensors shards with the LLaVA tensor names (`model.embed_tokens`,
`model.layers.*`, `model.mm_projector.{0,2}`, `model.vision_tower.vision_tower.vision_model.*`,
`model.image_newline`, `lm_head`) and an index, plus a folder holding the CLIP vision tower's
`config.json` / `preprocessor_config.json` that `mm_vision_tower` names. Tensors are generated
and written one chunk at a time (`vidsme.tensorfile`), so a 7B-shaped file costs little memory.

Float values have float16 precision (F16, or F32 holding float16 values): LongVA's loader casts to
float16, so its model then holds exactly these values and both sides compute on identical weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .tensorfile import DTYPE_SIZES, OutTensor, write_file

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@dataclass(frozen=True)
class LongVASizes:
    """Sizes of a synthetic checkpoint (defaults: the tiny fixture; `SEVEN_B` for the benchmark)."""

    hidden_size: int = 48
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 96
    vocab_pad: int = 11  # model rows beyond the tokenizer (real: 152064 rows for 151646 tokens)
    base_vocab: int = 0  # >0: pad the BPE vocabulary with unreachable entries up to this many
    vision_hidden_size: int = 32
    vision_intermediate_size: int = 64
    vision_layers: int = 3
    vision_heads: int = 2
    image_size: int = 32
    patch_size: int = 8
    rope_theta: float = 500000.0
    dtype: str = "F16"  # F16, F32 (values rounded to float16 precision) or BF16
    max_shard_bytes: int = 80_000  # shards are cut at this size (the tiny fixture has several)


SEVEN_B_LAYERS = LongVASizes(
    hidden_size=3584, num_layers=2, num_heads=28, num_kv_heads=4, intermediate_size=18944, vocab_pad=152064 - 151646,
    base_vocab=151643, vision_hidden_size=1024, vision_intermediate_size=4096, vision_layers=2, vision_heads=16,
    image_size=336, patch_size=14, rope_theta=1e9, dtype="BF16", max_shard_bytes=2_000_000_000,
)

CORPUS = (
    "Carefully watch this video and pay attention to every detail. Based on your observations, "
    "select the best option that accurately addresses the question.",
    "Carefully watch this video and pay attention to every detail. Based on your observations, "
    "answer the given questions.",
    "Describe the following video in detail, including the actions and scenes.",
    "Question: What is the man doing at the beginning of the video?\nOptions:\n(A) walking\n(B) running\n"
    "(C) sitting\n(D) cooking\n(E) sleeping\nOnly give the best option.",
    "Best Option: (B) running",
    "A person walks across the room and opens the door. The dog runs after a red ball in the park.",
    "A man is cooking food in the kitchen while talking. Two children play with a toy car on the floor.",
    "system user assistant You are a helpful assistant.",
)


def _train_bpe(out: Path, vocab_size: int, pad_to: int) -> int:
    """vocab.json and merges.txt of a byte-level BPE trained on CORPUS; returns the base vocabulary size."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(CORPUS), trainer)
    vocab: dict[str, int] = json.loads(tok.to_str())["model"]["vocab"]
    merges = json.loads(tok.to_str())["model"]["merges"]
    n = len(vocab)
    for i in range(n, max(n, pad_to)):  # unreachable filler entries (no merge produces them)
        vocab[f"\u0100unused{i}\u0101"] = i
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = [m if isinstance(m, str) else " ".join(m) for m in merges]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return len(vocab)


def _tokenizer_config(base: int) -> dict[str, Any]:
    dec = {str(base + i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                           "special": True} for i, t in enumerate(QWEN_SPECIALS)}
    return {"add_prefix_space": False, "added_tokens_decoder": dec, "additional_special_tokens": list(QWEN_SPECIALS[1:]),
            "bos_token": None, "chat_template": CHATML, "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>",
            "errors": "replace", "model_max_length": 32768, "pad_token": "<|endoftext|>", "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}


def clip_config(s: LongVASizes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(CLIPVisionConfig dict, CLIPImageProcessor dict) of the vision tower folder."""
    vision = {"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model", "hidden_size": s.vision_hidden_size,
              "intermediate_size": s.vision_intermediate_size, "num_hidden_layers": s.vision_layers,
              "num_attention_heads": s.vision_heads, "image_size": s.image_size, "patch_size": s.patch_size,
              "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": s.vision_hidden_size,
              "num_channels": 3, "attention_dropout": 0.0, "initializer_range": 0.02, "initializer_factor": 1.0}
    pre = {"crop_size": {"height": s.image_size, "width": s.image_size}, "do_center_crop": True, "do_convert_rgb": True,
           "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
           "image_processor_type": "CLIPImageProcessor", "resample": 3, "rescale_factor": 1 / 255,
           "size": {"shortest_edge": s.image_size}}
    return vision, pre


def longva_config(s: LongVASizes, vocab_rows: int, vision_tower: str, im_end_id: int) -> dict[str, Any]:
    """A config.json with the keys of LongVA-7B's (values scaled to `s`)."""
    return {
        "architectures": ["LlavaQwenForCausalLM"], "model_type": "llava_qwen", "attention_dropout": 0.0,
        "bos_token_id": None, "eos_token_id": im_end_id, "hidden_act": "silu",
        "hidden_size": s.hidden_size, "initializer_range": 0.02, "intermediate_size": s.intermediate_size,
        "max_position_embeddings": 32768, "max_window_layers": s.num_layers, "num_attention_heads": s.num_heads,
        "num_hidden_layers": s.num_layers, "num_key_value_heads": s.num_kv_heads, "rms_norm_eps": 1e-6,
        "rope_theta": s.rope_theta, "sliding_window": 32768, "tie_word_embeddings": False,
        "torch_dtype": {"F16": "float16", "F32": "float32", "BF16": "bfloat16"}[s.dtype], "use_cache": True, "use_sliding_window": False,
        "vocab_size": vocab_rows, "image_aspect_ratio": "anyres",
        "image_grid_pinpoints": [[s.image_size, 2 * s.image_size], [2 * s.image_size, s.image_size], [2 * s.image_size, 2 * s.image_size]],
        "mm_hidden_size": s.vision_hidden_size, "mm_patch_merge_type": "unires", "mm_projector_type": "mlp2x_gelu",
        "mm_resampler_type": None, "mm_spatial_pool_mode": "average", "mm_spatial_pool_stride": 2,
        "mm_tunable_parts": "mm_vision_tower,mm_mlp_adapter,mm_language_model", "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False, "mm_vision_select_feature": "patch", "mm_vision_select_layer": -2,
        "mm_vision_tower": vision_tower, "tokenizer_model_max_length": 32768, "tokenizer_padding_side": "right",
        "use_mm_proj": True,
    }


def tensor_shapes(s: LongVASizes, vocab_rows: int) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, init kind) of every tensor, in LongVA's naming."""
    H, V, I, hd = s.hidden_size, vocab_rows, s.intermediate_size, s.hidden_size // s.num_heads
    kv = s.num_kv_heads * hd
    out: list[tuple[str, tuple[int, ...], str]] = [("model.embed_tokens.weight", (V, H), "w")]
    for i in range(s.num_layers):
        p = f"model.layers.{i}."
        out += [(p + "self_attn.q_proj.weight", (H, H), "w"), (p + "self_attn.q_proj.bias", (H,), "b"),
                (p + "self_attn.k_proj.weight", (kv, H), "w"), (p + "self_attn.k_proj.bias", (kv,), "b"),
                (p + "self_attn.v_proj.weight", (kv, H), "w"), (p + "self_attn.v_proj.bias", (kv,), "b"),
                (p + "self_attn.o_proj.weight", (H, H), "w"), (p + "mlp.gate_proj.weight", (I, H), "w"),
                (p + "mlp.up_proj.weight", (I, H), "w"), (p + "mlp.down_proj.weight", (H, I), "w"),
                (p + "input_layernorm.weight", (H,), "n"), (p + "post_attention_layernorm.weight", (H,), "n")]
    out += [("model.norm.weight", (H,), "n"), ("model.image_newline", (H,), "w")]
    vh, vi, g = s.vision_hidden_size, s.vision_intermediate_size, s.image_size // s.patch_size
    out += [("model.mm_projector.0.weight", (H, vh), "w"), ("model.mm_projector.0.bias", (H,), "b"),
            ("model.mm_projector.2.weight", (H, H), "w"), ("model.mm_projector.2.bias", (H,), "b")]
    v = "model.vision_tower.vision_tower.vision_model."
    out += [(v + "embeddings.class_embedding", (vh,), "w"), (v + "embeddings.patch_embedding.weight", (vh, 3, s.patch_size, s.patch_size), "w"),
            (v + "embeddings.position_embedding.weight", (g * g + 1, vh), "w"), (v + "pre_layrnorm.weight", (vh,), "n"),
            (v + "pre_layrnorm.bias", (vh,), "b")]
    for i in range(s.vision_layers):
        p = f"{v}encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            out += [(p + f"self_attn.{proj}.weight", (vh, vh), "w"), (p + f"self_attn.{proj}.bias", (vh,), "b")]
        out += [(p + "layer_norm1.weight", (vh,), "n"), (p + "layer_norm1.bias", (vh,), "b"),
                (p + "mlp.fc1.weight", (vi, vh), "w"), (p + "mlp.fc1.bias", (vi,), "b"),
                (p + "mlp.fc2.weight", (vh, vi), "w"), (p + "mlp.fc2.bias", (vh,), "b"),
                (p + "layer_norm2.weight", (vh,), "n"), (p + "layer_norm2.bias", (vh,), "b")]
    out += [(v + "post_layernorm.weight", (vh,), "n"), (v + "post_layernorm.bias", (vh,), "b"), ("lm_head.weight", (V, H), "w")]
    return out


def _values(rng: np.random.Generator, shape: tuple[int, ...], kind: str, dtype: str) -> Iterator[bytes]:
    """Seeded values as bytes, in chunks of at most 8M elements."""
    n = int(np.prod(shape))
    step = 8 << 20
    for a in range(0, n, step):
        m = min(step, n - a)
        if dtype in ("F16", "F32"):
            scale = {"w": 0.15, "b": 0.05, "n": 0.1}[kind]
            x = (rng.standard_normal(m, dtype=np.float32) * scale + (1.0 if kind == "n" else 0.0)).astype(np.float16)
            yield (x if dtype == "F16" else x.astype(np.float32)).tobytes()
        else:  # BF16 bit patterns: random sign and mantissa, magnitudes 2^-9 .. 2^-2
            bits = rng.integers(0, 1 << 16, m, dtype=np.uint16)
            exp = rng.integers(118, 126, m, dtype=np.uint16)
            yield ((bits & 0x807F) | (exp << 7)).astype(np.uint16).tobytes()


def write_longva_checkpoint(out: str | Path, sizes: LongVASizes | None = None, seed: int = 0,
                            vision_tower: str = "vision_tower", bpe_vocab: int = 400) -> Path:
    """Write a random-weight LongVA-layout checkpoint to `out` (created); returns `out`.

    `vision_tower` is the `mm_vision_tower` value and the name of the sub-folder holding the CLIP
    configs (a hub id such as ``openai/clip-vit-large-patch14-336`` writes no folder).
    """
    s = sizes or LongVASizes()
    if s.hidden_size % s.num_heads or (s.image_size // s.patch_size) % 2:
        raise ValueError(f"inconsistent sizes {s}: hidden_size % num_heads and the patch grid must be even")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = _train_bpe(out, bpe_vocab, s.base_vocab)
    tok_cfg = _tokenizer_config(base)
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=1), encoding="utf-8")
    rows = base + len(QWEN_SPECIALS) + s.vocab_pad
    (out / "config.json").write_text(json.dumps(longva_config(s, rows, vision_tower, base + 2), indent=1), encoding="utf-8")
    if "/" not in vision_tower:
        vdir = out / vision_tower
        vdir.mkdir(exist_ok=True)
        vcfg, pre = clip_config(s)
        (vdir / "config.json").write_text(json.dumps(vcfg, indent=1), encoding="utf-8")
        (vdir / "preprocessor_config.json").write_text(json.dumps(pre, indent=1), encoding="utf-8")
    rng = np.random.default_rng(seed)
    shards: list[list[OutTensor]] = [[]]
    size = 0
    for name, shape, kind in tensor_shapes(s, rows):
        # values drawn eagerly per tensor in a child generator, so shard cuts never change them
        child = np.random.default_rng(rng.integers(0, 2**63))
        t = OutTensor(name, s.dtype, shape, lambda c=child, sh=shape, k=kind: _values(c, sh, k, s.dtype))
        if shards[-1] and size + t.nbytes > s.max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    n = len(shards)
    names = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)] if n > 1 else ["model.safetensors"]
    weight_map = {}
    for fname, ts in zip(names, shards):
        write_file(out / fname, ts, {"format": "pt"})
        weight_map.update({t.name: fname for t in ts})
    if n > 1:
        total = sum(t.nbytes for ts in shards for t in ts)
        (out / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1), encoding="utf-8")
    (out / "vidsme_synth.json").write_text(json.dumps({"seed": seed, "sizes": asdict(s), "dtype_bytes": DTYPE_SIZES[s.dtype]},
                                                      indent=1), encoding="utf-8")
    return out

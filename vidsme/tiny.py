"""Tiny, randomly initialised video-LLMs of real families, saved like hub checkpoints.

`build_tiny(family, out_dir)` writes a directory that `vidsme.models.load_model({"id": out_dir})`
loads through the same `AutoProcessor` / `AutoModelForImageTextToText` path as a 7B checkpoint:
the family's real model, image/video processor and processor classes, a BPE tokenizer trained on
`corpus` (so caption/QA text tokenizes to whole words) plus the family's special tokens, and a chat
template with the structure of the family's real one. Weights are float32 safetensors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from vidsme.atomic import apply_umask

FAMILIES = ("llava_next_video", "qwen2_5_vl", "video_llava", "llava_onevision")

# Structure of the real templates (USER:/ASSISTANT: for the Llama-based LLaVA families, ChatML for Qwen).
LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
ONEVISION_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QWEN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif content['type'] == 'video' %}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAMA_SPECIALS = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>", "image": "<image>", "video": "<video>"}
QWEN_SPECIALS = {
    "eos": "<|im_end|>", "pad": "<|endoftext|>", "im_start": "<|im_start|>",
    "vision_start": "<|vision_start|>", "vision_end": "<|vision_end|>",
    "image": "<|image_pad|>", "video": "<|video_pad|>",
}
ONEVISION_SPECIALS = {
    "eos": "<|im_end|>", "pad": "<|endoftext|>", "im_start": "<|im_start|>", "image": "<image>", "video": "<video>",
}

DEFAULT_CORPUS = (
    "a person walks across the room and opens the door",
    "the dog runs after a red ball in the park",
    "a man is cooking food in the kitchen while talking",
    "two children play with a toy car on the floor",
    "the woman picks up a cup and drinks some water",
    "a cat jumps onto the table and looks around",
    "cars drive along a busy street at night",
    "the camera moves slowly over a green field",
    "question what is the man doing at the beginning of the video",
    "options a walking b running c sitting d cooking e sleeping",
    "only give the best option best option",
    "carefully watch this video and pay attention to every detail",
    "based on your observations select the best option that accurately addresses the question",
    "describe the following video in detail including the actions and scenes",
    "a bright square moves from left to right on a dark background",
    "a circle grows larger and then fades away as the light changes",
)


@dataclass(frozen=True)
class TinySizes:
    """Sizes of a tiny model; every field can be overridden through `build_tiny(**sizes)`."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    vision_hidden_size: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    image_size: int = 32
    patch_size: int = 8
    vocab_size: int = 1000
    pad_vocab_to: int = 0  # model vocabulary padded up to this (real checkpoints pad, e.g. Qwen 152064)
    vision_intermediate_size: int = 0  # 0: 2 x vision_hidden_size
    vision_window: int = 0  # Qwen2.5-VL window attention size in pixels (0: image_size)
    mrope_section: tuple[int, ...] = ()  # Qwen2.5-VL text rope split (empty: derived from the head size)
    video_min_pixels: int = 0  # Qwen2.5-VL video processor pixel bounds (0: image_size ** 2)
    video_max_pixels: int = 0


def _train_tokenizer(corpus: Iterable[str], specials: dict[str, str], vocab_size: int, bos: bool) -> Any:
    """A byte-level BPE tokenizer (tokenizers library) wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special_list = list(dict.fromkeys(specials.values()))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_list, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer)
    if bos:  # Llama tokenizers prepend <s>
        b = specials["bos"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{b} $A", pair=f"{b} $A {b} $B", special_tokens=[(b, tok.token_to_id(b))]
        )
    named = {k: specials[k] for k in ("unk", "bos", "eos", "pad") if k in specials}
    extra = [v for k, v in specials.items() if k not in named]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, **{f"{k}_token": v for k, v in named.items()},
        additional_special_tokens=extra, model_max_length=32768, padding_side="left",
    )
    return fast


def _vision_inter(s: TinySizes) -> int:
    return s.vision_intermediate_size or 2 * s.vision_hidden_size


def _vision_clip(s: TinySizes) -> dict[str, Any]:
    return dict(
        model_type="clip_vision_model", hidden_size=s.vision_hidden_size, intermediate_size=_vision_inter(s),
        num_hidden_layers=s.vision_layers, num_attention_heads=s.vision_heads, image_size=s.image_size,
        patch_size=s.patch_size, projection_dim=s.vision_hidden_size,
    )


def _text_llama(s: TinySizes, vocab: int, tok: Any) -> dict[str, Any]:
    return dict(
        model_type="llama", hidden_size=s.hidden_size, intermediate_size=s.intermediate_size,
        num_hidden_layers=s.num_layers, num_attention_heads=s.num_heads, num_key_value_heads=s.num_kv_heads,
        vocab_size=vocab, max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )


def _text_qwen2(s: TinySizes, vocab: int, tok: Any) -> dict[str, Any]:
    return dict(
        model_type="qwen2", hidden_size=s.hidden_size, intermediate_size=s.intermediate_size,
        num_hidden_layers=s.num_layers, num_attention_heads=s.num_heads, num_key_value_heads=s.num_kv_heads,
        vocab_size=vocab, max_position_embeddings=4096, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )


def _crop(s: TinySizes) -> dict[str, Any]:
    return dict(size={"shortest_edge": s.image_size}, crop_size={"height": s.image_size, "width": s.image_size})


def _llava_next_video(s: TinySizes, tok: Any, vocab: int) -> tuple[Any, Any]:
    from transformers import (LlavaNextImageProcessor, LlavaNextVideoConfig, LlavaNextVideoProcessor,
                              LlavaNextVideoVideoProcessor)

    cfg = LlavaNextVideoConfig(
        vision_config=_vision_clip(s), text_config=_text_llama(s, vocab, tok),
        image_token_id=tok.convert_tokens_to_ids("<image>"), video_token_id=tok.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="default", vision_feature_layer=-2, spatial_pool_stride=2,
        image_grid_pinpoints=[[s.image_size, s.image_size]], tie_word_embeddings=False,
    )
    proc = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(**_crop(s), do_sample_frames=False),
        image_processor=LlavaNextImageProcessor(**_crop(s), image_grid_pinpoints=[[s.image_size, s.image_size]]),
        tokenizer=tok, chat_template=LLAVA_TEMPLATE, patch_size=s.patch_size,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )
    return cfg, proc


def _video_llava(s: TinySizes, tok: Any, vocab: int) -> tuple[Any, Any]:
    from transformers import VideoLlavaConfig, VideoLlavaImageProcessor, VideoLlavaProcessor, VideoLlavaVideoProcessor

    cfg = VideoLlavaConfig(
        vision_config=_vision_clip(s), text_config=_text_llama(s, vocab, tok),
        image_token_id=tok.convert_tokens_to_ids("<image>"), video_token_id=tok.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="default", vision_feature_layer=-2, tie_word_embeddings=False,
        image_seq_length=(s.image_size // s.patch_size) ** 2,
        video_seq_length=8 * ((s.image_size // s.patch_size) ** 2 + 1),
    )
    proc = VideoLlavaProcessor(
        image_processor=VideoLlavaImageProcessor(**_crop(s)),
        video_processor=VideoLlavaVideoProcessor(**_crop(s), do_sample_frames=False),
        tokenizer=tok, chat_template=LLAVA_TEMPLATE, patch_size=s.patch_size,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )
    return cfg, proc


def _llava_onevision(s: TinySizes, tok: Any, vocab: int) -> tuple[Any, Any]:
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionImageProcessor, LlavaOnevisionProcessor,
                              LlavaOnevisionVideoProcessor)

    vision = dict(
        model_type="siglip_vision_model", hidden_size=s.vision_hidden_size, intermediate_size=_vision_inter(s),
        num_hidden_layers=s.vision_layers, num_attention_heads=s.vision_heads, image_size=s.image_size,
        patch_size=s.patch_size, vision_use_head=False,  # as the real checkpoint: no pooling head
    )
    square = dict(size={"height": s.image_size, "width": s.image_size})
    cfg = LlavaOnevisionConfig(
        vision_config=vision, text_config=_text_qwen2(s, vocab, tok),
        image_token_id=tok.convert_tokens_to_ids("<image>"), video_token_id=tok.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full", vision_feature_layer=-1,
        image_grid_pinpoints=[[s.image_size, s.image_size]], tie_word_embeddings=False,
    )
    proc = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(**square, image_grid_pinpoints=[[s.image_size, s.image_size]]),
        video_processor=LlavaOnevisionVideoProcessor(**square, do_sample_frames=False),
        tokenizer=tok, chat_template=ONEVISION_TEMPLATE, num_image_tokens=(s.image_size // s.patch_size) ** 2,
        vision_feature_select_strategy="full",
    )
    return cfg, proc


def _qwen2_5_vl(s: TinySizes, tok: Any, vocab: int) -> tuple[Any, Any]:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    head_dim = s.hidden_size // s.num_heads
    half = head_dim // 2
    mrope = list(s.mrope_section) or [half - 2 * (half // 3), half // 3, half // 3]
    text = _text_qwen2(s, vocab, tok)
    text.update(model_type="qwen2_5_vl_text", rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                                "mrope_section": mrope})
    vision = dict(
        depth=s.vision_layers, hidden_size=s.vision_hidden_size, intermediate_size=_vision_inter(s),
        num_heads=s.vision_heads, out_hidden_size=s.hidden_size, patch_size=s.patch_size, spatial_merge_size=2,
        temporal_patch_size=2, window_size=s.vision_window or s.image_size, fullatt_block_indexes=[s.vision_layers - 1],
    )
    cfg = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"), tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    lo, hi = s.video_min_pixels or s.image_size**2, s.video_max_pixels or s.image_size**2
    pixels = dict(size={"shortest_edge": lo, "longest_edge": hi},
                  patch_size=s.patch_size, temporal_patch_size=2, merge_size=2)
    proc = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels), video_processor=Qwen2VLVideoProcessor(**pixels, do_sample_frames=False),
        tokenizer=tok, chat_template=QWEN_TEMPLATE,
    )
    return cfg, proc


_BUILDERS: dict[str, tuple[Callable[..., tuple[Any, Any]], dict[str, str], bool]] = {
    "llava_next_video": (_llava_next_video, LLAMA_SPECIALS, True),
    "video_llava": (_video_llava, LLAMA_SPECIALS, True),
    "llava_onevision": (_llava_onevision, ONEVISION_SPECIALS, False),
    "qwen2_5_vl": (_qwen2_5_vl, QWEN_SPECIALS, False),
}


def tiny_parts(family: str, corpus: Iterable[str] | None = None, exact_grid: bool = True,
               **sizes: Any) -> tuple[Any, Any, TinySizes]:
    """(model config, processor, sizes) of a tiny (or, with real sizes, 7B-shaped) model of `family`.
    `exact_grid=False` allows an image size that is not a multiple of 2 x patch (SigLIP's 384 / 14)."""
    if family not in _BUILDERS:
        raise ValueError(f"unknown tiny model family {family!r}; choose one of {', '.join(FAMILIES)}")
    known = {f.name for f in fields(TinySizes)}
    bad = sorted(set(sizes) - known)
    if bad:
        raise ValueError(f"unknown size argument(s) {bad} for build_tiny; known: {sorted(known)}")
    s = TinySizes(**sizes)
    if s.image_size % (2 * s.patch_size) if exact_grid else s.image_size < 2 * s.patch_size:
        raise ValueError(f"image_size {s.image_size} must be a multiple of 2 * patch_size ({2 * s.patch_size})")
    make, specials, bos = _BUILDERS[family]
    texts = list(DEFAULT_CORPUS if corpus is None else corpus)
    if not texts:
        raise ValueError("build_tiny: corpus is empty")
    tok = _train_tokenizer(texts, specials, s.vocab_size, bos)
    cfg, proc = make(s, tok, max(len(tok), s.pad_vocab_to))
    return cfg, proc, s


def build_tiny(family: str, out_dir: Path | str, corpus: Iterable[str] | None = None, seed: int = 0,
               **sizes: Any) -> Path:
    """Build, seed-initialise and save a tiny model of `family`; returns `out_dir`."""
    from transformers import AutoModelForImageTextToText

    cfg, proc, s = tiny_parts(family, corpus, **sizes)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(cfg, dtype=torch.float32).eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    proc.save_pretrained(out)
    (out / "vidsme_tiny.json").write_text(json.dumps({"family": family, "seed": seed, "sizes": asdict(s)}, indent=1))
    apply_umask(out)
    return out

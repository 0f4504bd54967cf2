"""The transformers-native target of a LongVA conversion: LLaVA-OneVision config, processor, chat template.

Why LLaVA-OneVision (transformers 5, `LlavaOnevisionForConditionalGeneration`): its video path is
LongVA's (`LlavaMetaForCausalLM.encode_multimodals` + `get_2dPool`): CLIP features of layer
`vision_feature_layer` without the CLS token, the 2-layer GELU projector, THEN 2x2 pooling
(LLaVA-NeXT-Video pools before projecting, which differs through the GELU). OneVision pools with
bilinear interpolation to ceil(h/2) x ceil(w/2) without antialiasing: at an even grid (24x24 for
CLIP-L/14-336) every output is the mean of one 2x2 block, i.e. `avg_pool2d(2)` as LongVA does.

OneVision appends one `image_newline` embedding after a video's frames; LongVA has no newline
for videos, but its prompts always read ``<image>\\n`` + text (the LLaVA convention), so the
token after the video is "\\n". The converted `image_newline` is the embedding row of "\\n" and
the chat template writes the video placeholder with no "\\n" after it: the input embeddings are
then LongVA's, position for position, and the extra scored position is LongVA's "\\n" position.

The video placeholder is the tokenizer's ``<|endoftext|>`` (a special token that never occurs in a
chat prompt): LongVA shrinks the vocabulary to the tokenizer's length at load time, so there is
no free row for a new token, and a new row would add a logit column that LongVA does not have.
"""

from __future__ import annotations

from typing import Any

PLACEHOLDER = "<|endoftext|>"
DEFAULT_SYSTEM = "You are a helpful assistant."  # LongVA's conv_qwen ("qwen_1_5") default

# ChatML as LongVA's conv_qwen renders it; the placeholder is replaced in `chat_template`.
_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'video' %}{{ '@VIDEO@' }}{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def chat_template(placeholder: str = PLACEHOLDER) -> str:
    """LongVA's ChatML with the video as `placeholder` and no "\\n" after it (the newline embedding is it)."""
    return _TEMPLATE.replace("@VIDEO@", placeholder)


TEXT_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
             "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta", "attention_dropout",
             "initializer_range", "max_window_layers")


def onevision_config(src: dict[str, Any], vision: dict[str, Any], vocab: int, placeholder_id: int,
                     eos_id: int | None, pad_id: int | None) -> Any:
    """`LlavaOnevisionConfig` of a LongVA config dict `src` (Qwen2 text keys copied, `rope_scaling`
    dropped as LongVA's `LlavaQwenForCausalLM.__init__` does, vocabulary `vocab` rows)."""
    from transformers import LlavaOnevisionConfig

    text = {k: src[k] for k in TEXT_KEYS if k in src}
    text.update(model_type="qwen2", vocab_size=vocab, tie_word_embeddings=False, use_sliding_window=False,
                bos_token_id=None, eos_token_id=eos_id, pad_token_id=pad_id)
    grid = src.get("image_grid_pinpoints")
    kw: dict[str, Any] = {"image_grid_pinpoints": grid} if isinstance(grid, list) and grid else {}
    cfg = LlavaOnevisionConfig(  # images are not converted: no token has the image id (`vocab`)
        vision_config=dict(vision), text_config=text, image_token_id=vocab, video_token_id=placeholder_id,
        vision_feature_select_strategy="default", vision_feature_layer=int(src["mm_vision_select_layer"]),
        projector_hidden_act="gelu", multimodal_projector_bias=True, tie_word_embeddings=False, **kw,
    )
    cfg.dtype = src.get("torch_dtype") or src.get("dtype") or "bfloat16"
    return cfg


def onevision_processor(tokenizer: Any, preproc: dict[str, Any], image_size: int, patch_size: int,
                        placeholder: str = PLACEHOLDER) -> Any:
    """`LlavaOnevisionProcessor` whose video processor does what LongVA's `CLIPImageProcessor` does
    (resize the shortest edge, centre-crop, rescale, normalise with the tower's mean and std)."""
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

    short = preproc.get("size", {}).get("shortest_edge", image_size)
    crop = preproc.get("crop_size", image_size)
    crop = crop if isinstance(crop, dict) else {"height": int(crop), "width": int(crop)}
    common = dict(
        size={"shortest_edge": int(short)}, crop_size=crop, do_center_crop=bool(preproc.get("do_center_crop", True)),
        resample=int(preproc.get("resample", 3)), do_rescale=bool(preproc.get("do_rescale", True)),
        rescale_factor=float(preproc.get("rescale_factor", 1 / 255)), do_normalize=bool(preproc.get("do_normalize", True)),
        image_mean=list(preproc["image_mean"]), image_std=list(preproc["image_std"]), do_convert_rgb=True,
    )
    video = LlavaOnevisionVideoProcessor(**common, do_sample_frames=False)
    image = LlavaOnevisionImageProcessor(**common, image_grid_pinpoints=[[image_size, image_size]])
    return LlavaOnevisionProcessor(
        image_processor=image, video_processor=video, tokenizer=tokenizer, chat_template=chat_template(placeholder),
        num_image_tokens=(image_size // patch_size) ** 2, vision_feature_select_strategy="default",
        image_token="<image>", video_token=placeholder,
    )

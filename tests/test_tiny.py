"""Tiny models: real family classes, loadable like hub checkpoints, seeded, corpus-driven tokenizer."""

from __future__ import annotations

import pytest
from safetensors.numpy import load_file

from vidsme.models import load_model
from vidsme.tiny import FAMILIES, build_tiny

EXPECTED_CLASS = {
    "llava_next_video": "LlavaNextVideoForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "video_llava": "VideoLlavaForConditionalGeneration",
    "llava_onevision": "LlavaOnevisionForConditionalGeneration",
}
EXPECTED_PROCESSOR = {
    "llava_next_video": "LlavaNextVideoProcessor",
    "qwen2_5_vl": "Qwen2_5_VLProcessor",
    "video_llava": "VideoLlavaProcessor",
    "llava_onevision": "LlavaOnevisionProcessor",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_build_and_load_like_hub(family, tmp_path):
    out = build_tiny(family, tmp_path / family)
    assert (out / "model.safetensors").is_file()
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt")), "no pickle weights"
    loaded = load_model({"id": str(out)})
    assert type(loaded.model).__name__ == EXPECTED_CLASS[family]
    assert type(loaded.processor).__name__ == EXPECTED_PROCESSOR[family]
    assert loaded.model.config.model_type == family
    assert not loaded.model.training
    tok = loaded.processor.tokenizer
    assert tok.convert_ids_to_tokens(loaded.video_token_id) == loaded.processor.video_token
    # the family's template renders the video placeholder exactly once
    conv = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "hi"}]}]
    text = loaded.processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    assert text.count(loaded.processor.video_token) == 1


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = load_file(str(build_tiny("llava_next_video", tmp_path / "a", seed=3) / "model.safetensors"))
    b = load_file(str(build_tiny("llava_next_video", tmp_path / "b", seed=3) / "model.safetensors"))
    c = load_file(str(build_tiny("llava_next_video", tmp_path / "c", seed=4) / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)
    assert any(a[k].shape == c[k].shape and (a[k] != c[k]).any() for k in a)


def test_corpus_drives_vocabulary(tmp_path):
    corpus = ["the zebra and the giraffe walk by the river"] * 50
    loaded = load_model({"id": str(build_tiny("llava_next_video", tmp_path / "m", corpus=corpus, vocab_size=400))})
    tok = loaded.processor.tokenizer
    for word in ("zebra", "giraffe", "river"):
        ids = tok(" " + word, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, (word, tok.convert_ids_to_tokens(ids))
        assert tok.decode(ids).strip() == word
    # special tokens are never split
    ids = tok("<video>", add_special_tokens=False)["input_ids"]
    assert ids == [loaded.video_token_id]
    assert loaded.model.config.text_config.vocab_size == len(tok)


def test_sizes_are_applied(tmp_path):
    loaded = load_model({"id": str(build_tiny("llava_next_video", tmp_path / "m", hidden_size=48, num_layers=3,
                                               image_size=64, patch_size=16))})
    c = loaded.model.config
    assert (c.text_config.hidden_size, c.text_config.num_hidden_layers) == (48, 3)
    assert (c.vision_config.image_size, c.vision_config.patch_size) == (64, 16)
    padded = load_model({"id": str(build_tiny("qwen2_5_vl", tmp_path / "q", pad_vocab_to=3000))})
    assert padded.model.config.text_config.vocab_size == 3000 > len(padded.processor.tokenizer)


def test_bad_arguments_named(tmp_path):
    with pytest.raises(ValueError, match="llama_video"):
        build_tiny("llama_video", tmp_path / "x")
    with pytest.raises(ValueError, match="hiden_size"):
        build_tiny("llava_next_video", tmp_path / "x", hiden_size=8)
    with pytest.raises(ValueError, match="image_size"):
        build_tiny("llava_next_video", tmp_path / "x", image_size=36, patch_size=8)

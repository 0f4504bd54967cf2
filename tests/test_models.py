"""Loading path, prompt rendering, scored positions and truncation, for every tiny family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsme.models import ModelLoadError, build_inputs, load_model, render_prompt
from vidsme.passes import forward_scored
from vidsme.tiny import FAMILIES, TinySizes

S, P = TinySizes().image_size, TinySizes().patch_size
G = S // P  # patches per side
PROMPT = {"system": "Carefully watch this video.", "text": "Question: what is the man doing?",
          "assistant_prefix": "Best Option: "}


def expected_positions(family: str, n_frames: int) -> int:
    """Video-token count per family for native S x S frames (stated from each family's design)."""
    if family == "llava_next_video":  # 2x2 average pooling of the patch grid, per frame
        return n_frames * (G // 2) ** 2
    if family == "video_llava":  # every patch plus the CLS token, per frame
        return n_frames * (G * G + 1)
    if family == "llava_onevision":  # 2x2 pooling per frame, plus ONE newline token after the video
        return n_frames * ((G + 1) // 2) ** 2 + 1
    if family == "qwen2_5_vl":  # 2 frames per temporal patch, 2x2 spatial merge
        return (n_frames + 1) // 2 * (G // 2) ** 2
    raise AssertionError(family)


def _frames(n: int, h: int = S, w: int = S, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("n_frames", [6, 16])
def test_scored_count_is_frames_times_tokens(loaded, family, n_frames):
    lm = loaded[family]
    inputs, scored = build_inputs(lm, _frames(n_frames), PROMPT)
    assert scored.numel() == expected_positions(family, n_frames)
    ids = inputs["input_ids"][0]
    assert (ids[scored] == lm.video_token_id).all()
    assert int((ids == lm.video_token_id).sum()) == scored.numel()
    assert torch.equal(scored, torch.arange(int(scored[0]), int(scored[-1]) + 1)), "one contiguous run"
    assert ids.shape[0] == int(scored[-1]) + 1, "truncated after the last video token"


def test_qwen_nonsquare_count_from_grid(loaded):
    lm = loaded["qwen2_5_vl"]
    inputs, scored = build_inputs(lm, _frames(8, 48, 64), PROMPT)
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert t == 4 and scored.numel() == t * h * w // 4


@pytest.mark.parametrize("family", FAMILIES)
def test_truncation_keeps_scored_logits(loaded, family):
    lm = loaded[family]
    fr = _frames(4, seed=1)
    full, s_full = build_inputs(lm, fr, PROMPT, truncate=False)
    cut, s_cut = build_inputs(lm, fr, PROMPT, truncate=True)
    assert torch.equal(s_full, s_cut)
    assert cut["input_ids"].shape[1] < full["input_ids"].shape[1]
    with torch.inference_mode():
        a = forward_scored(lm, full, s_full)
        b = forward_scored(lm, cut, s_cut)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_prompt_rendering(loaded):
    proc = loaded["llava_next_video"].processor
    text = render_prompt(proc, PROMPT)
    assert text.startswith("Carefully watch this video.")
    assert text.count("<video>") == 1 and text.index("<video>") < text.index("Question:")
    assert text.endswith("ASSISTANT:Best Option: ")
    qtext = render_prompt(loaded["qwen2_5_vl"].processor, {"text": "hello"})
    assert "<|vision_start|><|video_pad|><|vision_end|>hello" in qtext
    with pytest.raises(ValueError, match="question"):
        render_prompt(proc, {"question": "x"})


def test_bad_frames_named(loaded):
    lm = loaded["llava_next_video"]
    with pytest.raises(ValueError, match="uint8"):
        build_inputs(lm, _frames(4).astype(np.float32), PROMPT)
    with pytest.raises(ValueError, match="uint8"):
        build_inputs(lm, _frames(4)[..., 0], PROMPT)


def test_offline_uncached_hub_id_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mid = "vidsme-test-org/definitely-not-cached-7b"
    with pytest.raises(ModelLoadError) as ei:
        load_model({"id": mid, "revision": "abc123"})
    msg = str(ei.value)
    assert mid in msg and "hf download" in msg and "--revision abc123" in msg and "local directory" in msg
    assert "\n" not in msg


def test_config_errors_named(tiny_dirs, tmp_path):
    d = str(tiny_dirs["llava_next_video"])
    with pytest.raises(ModelLoadError, match="float8"):
        load_model({"id": d, "dtype": "float8"})
    with pytest.raises(ModelLoadError, match="flash"):
        load_model({"id": d, "attn_implementation": "flash"})
    with pytest.raises(ModelLoadError, match="revison"):
        load_model({"id": d, "revison": "x"})
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_model({"id": str(tmp_path / "missing" / "model")})


def test_model_config_examples(tmp_path):
    import re
    from pathlib import Path

    import yaml

    files = sorted((Path(__file__).resolve().parents[1] / "config" / "models").glob("*.yaml"))
    assert len(files) >= 4
    allowed = {"source", "id", "revision", "family", "dtype", "device", "attn_implementation", "trust_remote_code",
               "batch_orders"}
    for f in files:
        m = yaml.safe_load(f.read_text())["model"]
        assert set(m) <= allowed and m["family"] in FAMILIES and m["dtype"] == "bfloat16", f.name
        assert m["trust_remote_code"] is False
        assert re.fullmatch(r"[0-9a-f]{40}", m["revision"]), f.name  # pinned to a commit
        with pytest.raises(ModelLoadError, match="placeholder.*pin the commit"):  # stops before any download
            load_model({**m, "revision": "FILL-ME-40-hex-commit"})


def test_bfloat16_and_attn_options(tiny_dirs):
    # workflow-only keys of the `model:` config block are accepted and ignored by loading
    lm = load_model({"id": str(tiny_dirs["llava_next_video"]), "dtype": "bfloat16", "attn_implementation": "eager",
                     "source": "pretrained", "family": "llava_next_video", "batch_orders": False})
    assert next(lm.model.parameters()).dtype == torch.bfloat16
    inputs, scored = build_inputs(lm, _frames(4), PROMPT)
    with torch.inference_mode():
        out = forward_scored(lm, inputs, scored)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def _edit_processor(model_dir, edit) -> None:
    import json

    p = model_dir / "processor_config.json"
    cfg = json.loads(p.read_text())
    edit(cfg)
    p.write_text(json.dumps(cfg))


def test_frame_size_mismatch_names_both_before_any_pass(tmp_path):
    from vidsme.tiny import build_tiny

    d = build_tiny("llava_next_video", tmp_path / "m")

    def bigger(cfg):
        cfg["video_processor"]["crop_size"] = {"height": 64, "width": 64}
        cfg["video_processor"]["size"] = {"shortest_edge": 64}

    _edit_processor(d, bigger)
    with pytest.raises(ModelLoadError, match=r"makes 64x64 frames.*vision_config.image_size is 32"):
        load_model({"id": str(d)})


def test_patch_geometry_mismatch_names_both(tmp_path):
    from vidsme.tiny import build_tiny

    d = build_tiny("qwen2_5_vl", tmp_path / "q")
    _edit_processor(d, lambda cfg: cfg["video_processor"].update(merge_size=4))
    with pytest.raises(ModelLoadError, match=r"merge_size is 4.*vision_config.spatial_merge_size is 2"):
        load_model({"id": str(d)})


def test_tokenizer_longer_than_vocabulary_names_both(tmp_path):
    from transformers import AutoTokenizer

    from vidsme.tiny import build_tiny

    d = build_tiny("llava_onevision", tmp_path / "o")
    tok = AutoTokenizer.from_pretrained(d)
    n_model = len(tok)  # the tiny model's vocabulary is exactly the tokenizer
    tok.add_tokens(["<extra_a>", "<extra_b>"])
    tok.save_pretrained(d)
    with pytest.raises(ModelLoadError, match=rf"tokenizer has {n_model + 2} tokens.*vocab_size\) is {n_model}"):
        load_model({"id": str(d)})


def test_video_token_outside_vocabulary_is_named(tiny_dirs):
    from vidsme.models import check_compatible

    lm = load_model({"id": str(tiny_dirs["video_llava"])})
    vocab = lm.model.config.text_config.vocab_size
    lm.model.config.video_token_id = vocab + 3
    with pytest.raises(ModelLoadError, match=rf"video token id {vocab + 3} is outside.*{vocab}"):
        check_compatible(lm.model, lm.processor, "x")

"""7B-shaped random-weight models: published shapes, parameter and FLOP counts, scored positions by each
family's real rule, and (slow) reduced-depth passes at full width and the real vocabulary."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vidsme.dump import read_shard
from vidsme.flops import forward_flops, max_videos_per_forward, memory_plan, param_count
from vidsme.models import Loaded, build_inputs
from vidsme.passstats import PassStats
from vidsme.reduce import ReduceSpec
from vidsme.shapes import SHAPES_DIR, build_shaped, positions_per_video, read_shape, smart_resize, tiny_sizes
from vidsme.sme import sme_from_logits
from vidsme.tiny import FAMILIES, tiny_parts

PROMPT = {"system": "Carefully watch this video and pay attention to every detail.", "text": "Describe the video."}
# Published totals ("Model size" on the hub pages; LLaVA-NeXT-Video and Video-LLaVA also agree with their
# bf16 safetensors shards: 4.99 + 4.96 + 4.18 GB and 4.98 + 4.95 + 4.81 GB at 2 bytes a parameter).
PUBLISHED_PARAMS = {"llava_next_video": 7.06e9, "video_llava": 7.37e9, "llava_onevision": 8.03e9, "qwen2_5_vl": 8.29e9}


def _meta_model(family: str, num_layers=None, vision_layers=None):
    from transformers import AutoModelForImageTextToText

    shape = read_shape(family)
    cfg, proc, _ = tiny_parts(family, exact_grid=False, **tiny_sizes(shape, num_layers, vision_layers))
    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(cfg), proc


@pytest.mark.parametrize("family", FAMILIES)
def test_param_count_is_the_real_architecture_and_the_published_size(family):
    shape = read_shape(family)
    for depth in ((None, None), (1, 1)):
        model, _ = _meta_model(family, *depth)  # meta device: no memory, exact parameter shapes
        assert sum(p.numel() for p in model.parameters()) == param_count(shape, *depth)["total"], depth
    assert param_count(shape)["total"] == pytest.approx(PUBLISHED_PARAMS[family], rel=5e-3)
    emb = model.get_input_embeddings().weight
    assert tuple(emb.shape) == (shape.text["vocab_size"], shape.text["hidden_size"])


def _processor_only(family: str) -> Loaded:
    shape = read_shape(family)
    _, proc, _ = tiny_parts(family, exact_grid=False, **tiny_sizes(shape, 1, 1))
    return Loaded(None, proc, family, None, "float32", torch.device("cpu"),
                  proc.tokenizer.convert_tokens_to_ids(proc.video_token))


# Tokens per pass for F frames of H x W, stated from each family's published design (docs/models.md):
# 336 px / 14 = 24 patches, pooled 2 x 2 -> 144; 224 / 14 = 16 -> 256 + CLS; 384 / 14 = 27 -> ceil(27/2)^2 = 196
# (+ one newline per video); Qwen: frames resized to multiples of 28, one token per 28 x 28 per 2 frames.
EXPECTED = {
    ("llava_next_video", 4, 240, 320): 4 * 144,
    ("video_llava", 4, 240, 320): 4 * 257,
    ("llava_onevision", 4, 240, 320): 4 * 196 + 1,
    ("qwen2_5_vl", 4, 224, 308): 2 * (8 * 11),
    ("qwen2_5_vl", 5, 480, 640): 3 * (17 * 23),  # 480 -> 476, 640 -> 644
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_scored_positions_follow_each_familys_real_rule(key):
    family, f, h, w = key
    fr = np.zeros((f, h, w, 3), np.uint8)
    _, scored = build_inputs(_processor_only(family), [fr], PROMPT)
    assert scored.numel() == EXPECTED[key] == positions_per_video(read_shape(family), f, h, w)


def test_smart_resize_matches_the_qwen_processor():
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import smart_resize as reference

    for h, w in [(224, 308), (480, 640), (1080, 1920), (30, 40), (2000, 100)]:
        assert smart_resize(h, w, 28, 3136, 12845056) == tuple(reference(h, w, 28, 3136, 12845056))


def test_shape_files_are_checked(tmp_path):
    text = (SHAPES_DIR / "video_llava_7b.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("num_kv_heads: 32", "num_kv_heads: 32\n  kv_head: 3"))
    with pytest.raises(ValueError, match=r"bad.yaml.*kv_head"):
        read_shape(bad)
    bad.write_text(text.replace("rule: grid_plus_cls", "rule: pooled_grid"))
    with pytest.raises(ValueError, match="video_llava rule"):
        read_shape(bad)
    with pytest.raises(FileNotFoundError, match="nope"):
        read_shape(tmp_path / "nope.yaml")


def test_flops_and_memory_plan_scale_as_stated():
    s = read_shape("llava_next_video")
    a = forward_flops(s, 16, 336, 336, 2400, 2304)
    b = forward_flops(s, 16, 336, 336, 2400, 2304, num_layers=1, vision_layers=1)
    # 2 FLOPs per multiply-add: the lm_head on 2,304 rows is 2 x 2304 x 4096 x 32064
    assert a["lm_head"] == b["lm_head"] == 2 * 2304 * 4096 * 32064
    assert a["text_linear"] == 32 * b["text_linear"] and a["vision_linear"] > 20 * b["vision_linear"]
    assert a["total"] == pytest.approx(sum(a[k] for k in ("text_linear", "text_attention", "lm_head", "vision_linear",
                                                          "vision_attention", "projector")))
    # about 2 FLOPs per parameter per token for the text model: 2 x 6.5e9 x 2400 = 3.1e13
    assert a["text_linear"] == pytest.approx(2 * param_count(s)["text"] * 2400, rel=1e-3)
    p1 = memory_plan(s, "bfloat16", 2, 2400, 2304, 16, 336, 336)
    p4 = memory_plan(s, "bfloat16", 8, 2400, 2304, 16, 336, 336)
    assert p1["weights"] == 2 * param_count(s)["total"] and p4["logits"] == 4 * p1["logits"]
    assert p1["logits"] == 2 * 2304 * 32064 * 2
    budget = 24 * 2**30  # a 24 GB card
    k = max_videos_per_forward(s, "bfloat16", budget, 2400, 2304, 16, 336, 336)
    assert 1 <= k < 64 and memory_plan(s, "bfloat16", 2 * k, 2400, 2304, 16, 336, 336)["total"] <= budget
    assert memory_plan(s, "bfloat16", 2 * (k + 1), 2400, 2304, 16, 336, 336)["total"] > budget
    assert max_videos_per_forward(s, "bfloat16", 1e9, 2400, 2304, 16, 336, 336) == 0  # the weights alone: 14 GB


class _PeakRSS:
    """Peak resident memory of this process above its level at start, sampled every 5 ms."""

    def __enter__(self):
        import psutil

        self._p = psutil.Process()
        self.base = self.peak = self._p.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._p.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @property
    def extra(self) -> int:
        return self.peak - self.base


# family -> (frames, height, width) per video; 2 videos each: a few minutes of CPU in all
SLOW_CASES = {"llava_next_video": (2, 240, 320), "video_llava": (2, 240, 320), "llava_onevision": (2, 240, 320),
              "qwen2_5_vl": (4, 224, 308)}


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_reduced_depth_7b_shape_through_run_shard(family, tmp_path, monkeypatch):
    """1 decoder layer and 1 vision layer at full width and the real vocabulary, through the real passes:
    shapes, scored positions, the on-device reduction at the real V (dump within the documented tolerance
    of full-vocabulary values), FLOP count and memory plan."""
    from torch.utils.flop_counter import FlopCounterMode

    import vidsme.passes as passes

    shape = read_shape(family)
    lm = build_shaped(shape, num_layers=1, vision_layers=1, seed=0)
    m = lm.model
    v, h = shape.text["vocab_size"], shape.text["hidden_size"]
    assert tuple(m.get_output_embeddings().weight.shape) == (v, h)
    assert sum(p.numel() for p in m.parameters()) == param_count(shape, 1, 1)["total"]
    f, hh, ww = SLOW_CASES[family]
    rng = np.random.default_rng(1)
    frames = {f"v{i}": rng.integers(0, 256, (f, hh, ww, 3), dtype=np.uint8) for i in range(2)}

    captured: list[torch.Tensor] = []
    real_reduce = passes._reduce_fn()

    def capture(logits, spec=None, **kw):  # keep the logits the pass reduced, for the full-vocabulary check
        captured.append(logits.detach().clone())
        return real_reduce(logits, spec, **kw)

    monkeypatch.setattr(passes, "_reduce_fn", lambda: capture)
    with FlopCounterMode(display=False) as fc, _PeakRSS() as mem:
        summary = passes.run_shard(lm, frames, PROMPT, ReduceSpec(), tmp_path / "s.safetensors", videos_per_forward=2)
    n = positions_per_video(shape, f, hh, ww)
    assert {s["positions"] for s in summary["videos"].values()} == {n} and summary["n_nonfinite_videos"] == 0
    _, entries = read_shard(summary["path"])
    assert len(captured) == 4 and all(c.shape == (n, v) for c in captured)

    # dump vs full vocabulary (docs/scoring.md: SME 1e-4 relative; the other quantities exact to ~1e-9)
    for logits, (vid, p) in zip(captured, [("v0", "nat"), ("v0", "rev"), ("v1", "nat"), ("v1", "rev")]):
        x = logits.double()
        ps = PassStats.from_arrays(entries[vid][p])
        lp = torch.log_softmax(x, -1)
        np.testing.assert_allclose(ps.renyi(math.inf), -lp.max(-1).values.numpy(), rtol=1e-9)
        np.testing.assert_allclose(ps.renyi(1), -(lp.exp() * lp).sum(-1).numpy(), rtol=1e-9)
        np.testing.assert_allclose(ps.renyi(2), -torch.log(lp.exp().square().sum(-1)).numpy(), rtol=1e-9)
        for q, r in [(0.5, 2.0), (1.0, 1.0), (1.5, 1.05), (2.0, 1.1), (3.0, 0.5)]:
            np.testing.assert_allclose(ps.sme(q, r), sme_from_logits(x, q, r).numpy(), rtol=1e-4)

    # FLOPs: torch's counter sees every matmul/convolution (not CPU SDPA attention): our linear count
    inputs, _ = build_inputs(lm, [frames["v0"]], PROMPT)
    per_pass = forward_flops(shape, f, hh, ww, int(inputs["input_ids"].shape[1]), n, 1, 1)
    assert fc.get_total_flops() == pytest.approx(4 * per_pass["linear"], rel=0.01)

    # memory plan: weights exact; the forward's extra memory within the plan's estimate (x2 for the allocator),
    # not counting the copies this test kept of the logits
    plan = memory_plan(shape, "float32", 4, int(inputs["input_ids"].shape[1]), n, f, hh, ww, 1, 1)
    extra = mem.extra - sum(c.numel() * c.element_size() for c in captured)
    print(f"{family}: positions {n}, FLOPs counted {fc.get_total_flops():.4g} vs linear {4 * per_pass['linear']:.4g}; "
          f"peak extra RSS {extra / 2**20:.0f} MiB, plan without weights "
          f"{(plan['total'] - plan['weights']) / 2**20:.0f} MiB (logits {plan['logits'] / 2**20:.0f} MiB)")
    assert plan["weights"] == sum(p.numel() * p.element_size() for p in m.parameters())
    assert extra <= 2 * (plan["total"] - plan["weights"]) + 2**28, (extra, plan)
    assert extra >= 0.5 * plan["logits"], (extra, plan)  # the logits of a batch are really held


def _save_config_and_processor(family: str, d: Path) -> Path:
    cfg, proc, _ = tiny_parts(family, exact_grid=False, **tiny_sizes(read_shape(family), 1, 1))
    cfg.save_pretrained(d)
    proc.save_pretrained(d)
    return d


def test_checkpoint_check_command(tmp_path, capsys):
    """`python -m vidsme.shapes CHECKPOINT` reads config + processor only and compares with the 7B rule."""
    import json

    from vidsme.shapes import main

    d = _save_config_and_processor("llava_onevision", tmp_path / "ov")
    assert main([str(d), "--frames", "4", "--height", "240", "--width", "320"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["positions"] == res["expected"] == 4 * 196 + 1 and res["tokens_per_frame"] == 196
    p = d / "processor_config.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), "num_image_tokens": 576}).replace(
        '"height": 384', '"height": 336').replace('"width": 384', '"width": 336'))
    assert main([str(d), "--frames", "4", "--height", "240", "--width", "320"]) == 1  # 336 px frames: 144 per frame
    assert json.loads(capsys.readouterr().out)["tokens_per_frame"] == 144
    assert main([str(tmp_path / "missing")]) == 2
    assert "error" in capsys.readouterr().err

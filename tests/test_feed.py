"""Feeding the device: several videos per forward, prefetch, out-of-memory halving, feed options."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vidsme.dump import read_shard
from vidsme.feed import Feeder, Item
from vidsme.passes import PASSES, run_shard
from vidsme.pipeline import FEED_DEFAULTS, feed_options
from vidsme.reduce import ReduceSpec

ROOT = Path(__file__).resolve().parents[1]
PROMPT = {"system": "Carefully watch this video.", "text": "Describe the video."}
SPEC = ReduceSpec(top_m=4, n_nodes=6, mean_probs=True)


def _videos(n: int, shape: tuple[int, int, int] = (8, 32, 32), seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"v{i}": rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for i in range(n)}


def _entries(summary: dict) -> dict:
    return read_shard(summary["path"])[1]


def _assert_same(a: dict, b: dict, exact: bool = False) -> None:
    assert a.keys() == b.keys()
    for vid in a:
        assert a[vid].keys() == b[vid].keys()
        for p in a[vid]:
            for k, v in a[vid][p].items():
                if exact:
                    np.testing.assert_array_equal(v, b[vid][p][k], err_msg=f"{vid}/{p}/{k}")
                else:
                    np.testing.assert_allclose(v, b[vid][p][k], rtol=1e-5, atol=1e-6, err_msg=f"{vid}/{p}/{k}")


@pytest.mark.parametrize("family", ["llava_next_video", "qwen2_5_vl"])
def test_batched_over_videos_equals_one_at_a_time(loaded, family, tmp_path):
    lm = loaded[family]
    frames = _videos(5)
    one = run_shard(lm, frames, PROMPT, SPEC, tmp_path / "one.safetensors", videos_per_forward=1, prefetch=0)
    many = run_shard(lm, frames, PROMPT, SPEC, tmp_path / "many.safetensors", videos_per_forward=3, prefetch=0)
    assert many["feed"]["videos_per_forward"] == 3 and many["feed"]["halvings"] == 0
    _assert_same(_entries(one), _entries(many))
    assert read_shard(many["path"])[0]["videos_per_forward"] == "3"
    # the natural and reversed rows of different videos are not mixed up: videos differ
    e = _entries(many)
    assert np.abs(e["v0"]["nat"]["top_logp"] - e["v1"]["nat"]["top_logp"]).max() > 1e-6


def test_prefetch_gives_identical_dumps(loaded, tmp_path):
    lm = loaded["video_llava"]
    frames = _videos(4, seed=1)
    a = run_shard(lm, frames, PROMPT, SPEC, tmp_path / "a.safetensors", prefetch=0)
    b = run_shard(lm, frames, PROMPT, SPEC, tmp_path / "b.safetensors", prefetch=2, videos_per_forward=2)
    c = run_shard(lm, frames, PROMPT, SPEC, tmp_path / "c.safetensors", prefetch=2)
    _assert_same(_entries(a), _entries(c), exact=True)  # same forwards, other thread: bit for bit
    _assert_same(_entries(a), _entries(b))
    assert 0.0 <= b["feed"]["wait_fraction"] <= 1.0 and b["feed"]["prefetch"] == 2


def test_mixed_shapes_and_answers_are_not_batched(loaded, tmp_path):
    lm = loaded["qwen2_5_vl"]
    frames = {**_videos(2, (8, 32, 32)), "wide": np.random.default_rng(3).integers(0, 256, (8, 32, 64, 3), np.uint8),
              "w2": np.random.default_rng(4).integers(0, 256, (8, 32, 64, 3), np.uint8)}
    qa = {**PROMPT, "text": "Question: which way?"}
    answers = {"v1": (qa, "left")}
    one = run_shard(lm, frames, PROMPT, SPEC, tmp_path / "o.safetensors", answers=answers, videos_per_forward=1)
    many = run_shard(lm, frames, PROMPT, SPEC, tmp_path / "m.safetensors", answers=answers, videos_per_forward=4)
    _assert_same(_entries(one), _entries(many))
    assert many["videos"]["wide"]["positions"] != many["videos"]["v0"]["positions"]  # could not share a forward


def test_out_of_memory_halves_the_batch_and_logs_it(loaded, tmp_path, monkeypatch, caplog):
    import vidsme.passes as passes

    lm = loaded["llava_onevision"]
    frames = _videos(5, seed=2)
    ref = run_shard(lm, frames, PROMPT, SPEC, tmp_path / "ref.safetensors")
    real = passes.forward_scored
    rows_seen = []

    def fake(loaded_, inputs, keep, full_logits=False):  # a device that fits 2 rows (one video, both orders)
        rows_seen.append(int(inputs["input_ids"].shape[0]))
        if inputs["input_ids"].shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return real(loaded_, inputs, keep, full_logits=full_logits)

    monkeypatch.setattr(passes, "forward_scored", fake)
    with caplog.at_level(logging.WARNING, logger="vidsme.passes"):
        s = run_shard(lm, frames, PROMPT, SPEC, tmp_path / "s.safetensors", videos_per_forward=4, prefetch=1)
    assert s["feed"]["halvings"] == 2 and s["feed"]["videos_per_forward"] == 1
    assert rows_seen[:2] == [8, 4] and set(rows_seen[2:]) == {2}
    msgs = [r.getMessage() for r in caplog.records]
    assert any("out of memory with 4 videos per forward" in m and "halving to 2" in m for m in msgs)
    assert any("out of memory with 2 videos per forward" in m and "halving to 1" in m for m in msgs)
    _assert_same(_entries(ref), _entries(s))
    assert set(_entries(s)) == set(frames)


def test_out_of_memory_on_one_video_says_what_to_change(loaded, tmp_path, monkeypatch):
    import vidsme.passes as passes

    def oom(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(passes, "forward_scored", oom)
    with pytest.raises(RuntimeError, match="'v0'.*batch_orders: false"):
        run_shard(loaded["qwen2_5_vl"], _videos(3), PROMPT, SPEC, tmp_path / "s.safetensors", videos_per_forward=2)
    assert not (tmp_path / "s.safetensors").exists()


def test_bad_frames_name_the_video_even_when_prefetched(loaded, tmp_path):
    frames = {**_videos(2), "bad": np.zeros((8, 32, 32), np.uint8)}
    with pytest.raises(ValueError, match="'bad'.*uint8 array"):
        run_shard(loaded["llava_next_video"], frames, PROMPT, SPEC, tmp_path / "s.safetensors", prefetch=2)


def test_feeder_groups_and_retries_in_order():
    items = [Item(f"v{i}", np.zeros((4, 8, 8, 3), np.uint8), PROMPT) for i in range(5)]
    items.insert(2, Item("odd", np.zeros((4, 8, 16, 3), np.uint8), PROMPT))
    seen: list[list[str]] = []
    feeder = Feeder(items, lambda g: [it.vid for it in g], k=3, prefetch=1)
    first = next(feeder)[0]
    assert [it.vid for it in first] == ["v0", "v1"]  # "odd" has another shape
    feeder.retry(first, 1)
    for group, prepared, waited in feeder:
        assert prepared == [it.vid for it in group] and waited >= 0
        seen.append(prepared)
    assert seen == [["v0"], ["v1"], ["odd"], ["v2"], ["v3"], ["v4"]]
    with pytest.raises(ValueError, match="videos per forward"):
        Feeder(items, lambda g: g, k=0)


def test_feed_options_defaults_match_the_schema_and_bad_values_are_named():
    schema = yaml.safe_load((ROOT / "config" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]["model"]["properties"]
    assert {k: props[k]["default"] for k in FEED_DEFAULTS} == FEED_DEFAULTS
    assert feed_options({}) == FEED_DEFAULTS
    assert feed_options({"videos_per_forward": 4, "prefetch": 0})["videos_per_forward"] == 4
    with pytest.raises(ValueError, match="model.videos_per_forward"):
        feed_options({"videos_per_forward": 0})
    with pytest.raises(ValueError, match="model.prefetch"):
        feed_options({"prefetch": -1})
    with pytest.raises(ValueError, match="model.compile_reduce"):
        feed_options({"compile_reduce": "yes"})


def test_passes_of_each_video_come_back(loaded, tmp_path):
    s = run_shard(loaded["llava_next_video"], _videos(3), PROMPT, SPEC, tmp_path / "s.safetensors", videos_per_forward=2)
    assert all(set(v) == set(PASSES) for v in _entries(s).values())

"""Natural/reversed passes: dumps written and read back, order sensitivity, palindromes, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidsme.dump import read_shard
from vidsme.models import build_inputs, load_model, prompt_hash, render_prompt
from vidsme.passes import PASSES, forward_scored, positions_from_runs, run_shard, video_passes
from vidsme.passstats import PassStats
from vidsme.reduce import ReduceSpec, reduce_logits
from vidsme.tiny import FAMILIES, build_tiny

ROOT = Path(__file__).resolve().parents[1]
PROMPT = {"system": "Carefully watch this video.", "text": "Describe the video.", "assistant_prefix": "Answer: "}
SPEC = ReduceSpec(top_m=4, n_nodes=6, mean_probs=False)


def _video(n: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _palindrome(n: int = 8, seed: int = 5) -> np.ndarray:
    half = _video(n // 2, seed)
    return np.concatenate([half, half[::-1]])


@pytest.mark.parametrize("family", FAMILIES)
def test_run_shard_round_trip(loaded, family, tmp_path):
    lm = loaded[family]
    frames = {"v0": _video(seed=0), "v1": _video(seed=1), "pal": _palindrome()}
    out = tmp_path / "shard0.safetensors"
    summary = run_shard(lm, frames, PROMPT, SPEC, out, header_extra={"exp": "t", "model_id": "logical/id"})
    assert summary["n_nonfinite_videos"] == 0 and set(summary["videos"]) == set(frames)
    header, entries = read_shard(out)
    assert header["model_id"] == "logical/id" and header["model_path"] == lm.model_id and header["frame_count"] == "8" and header["exp"] == "t"
    assert ReduceSpec.from_dict(json.loads(header["reduce_spec"])) == SPEC
    assert header["prompt_hash"] == prompt_hash(render_prompt(lm.processor, PROMPT))
    pos = json.loads(header["scored_positions"])
    for vid in frames:
        assert set(entries[vid]) == set(PASSES)
        n = len(positions_from_runs(pos[vid]))
        assert n == summary["videos"][vid]["positions"]
        nat, rev = (PassStats.from_arrays(entries[vid][p]) for p in PASSES)
        assert nat.n_positions == rev.n_positions == n
        assert np.isfinite(nat.sme(1.5, 1.05)).all()
    # order matters for a generic video: some position's distribution changes
    a, b = entries["v0"]["nat"]["top_logp"], entries["v0"]["rev"]["top_logp"]
    assert np.abs(a - b).max() > 1e-6
    # a palindromic frame sequence is its own reversal: identical passes
    a, b = entries["pal"]["nat"], entries["pal"]["rev"]
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_reversed_pass_sees_reversed_frames(loaded):
    """The reversed pass equals a natural pass on frames[::-1] (reversal after sampling)."""
    lm = loaded["llava_next_video"]
    fr = _video(seed=2)
    e1, _, _ = video_passes(lm, fr, PROMPT, SPEC)
    e2, _, _ = video_passes(lm, np.ascontiguousarray(fr[::-1]), PROMPT, SPEC)
    np.testing.assert_allclose(e1["rev"]["top_logp"], e2["nat"]["top_logp"], rtol=1e-5, atol=1e-6)


def test_batched_equals_separate(loaded):
    lm = loaded["qwen2_5_vl"]
    fr = _video(seed=3)
    b, sb, _ = video_passes(lm, fr, PROMPT, SPEC, batch_orders=True)
    s, ss, _ = video_passes(lm, fr, PROMPT, SPEC, batch_orders=False)
    assert torch.equal(sb, ss)
    for p in PASSES:
        np.testing.assert_allclose(b[p]["top_logp"], s[p]["top_logp"], rtol=1e-5, atol=1e-5)


def test_scored_rows_only_equals_full_logits(loaded):
    lm = loaded["llava_onevision"]
    inputs, scored = build_inputs(lm, [_video(seed=4)], PROMPT)
    with torch.inference_mode():
        a = forward_scored(lm, inputs, scored)
        b = forward_scored(lm, inputs, scored, full_logits=True)
    assert a.shape == (1, scored.numel(), lm.model.config.text_config.vocab_size)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_host_reduction_equals_device_reduction(loaded):
    lm = loaded["video_llava"]
    a, _, _ = video_passes(lm, _video(seed=6), PROMPT, SPEC)
    b, _, _ = video_passes(lm, _video(seed=6), PROMPT, SPEC, reduce_on_host=True)
    for p in PASSES:
        for k in a[p]:
            np.testing.assert_array_equal(a[p][k], b[p][k])


def test_determinism_same_seed_same_dump(tmp_path):
    dumps = []
    for i in range(2):
        d = build_tiny("llava_next_video", tmp_path / f"m{i}", seed=11)
        lm = load_model({"id": str(d)})
        path = tmp_path / f"d{i}.safetensors"
        run_shard(lm, {"a": _video(seed=7)}, PROMPT, SPEC, path)
        dumps.append(read_shard(path)[1])
    for p in PASSES:
        for k, v in dumps[0]["a"][p].items():
            np.testing.assert_array_equal(v, dumps[1]["a"][p][k])


def test_nonfinite_logits_reported(tiny_dirs, tmp_path):
    lm = load_model({"id": str(tiny_dirs["llava_next_video"])})
    with torch.no_grad():
        lm.model.lm_head.weight[3] = float("nan")
    summary = run_shard(lm, {"bad": _video()}, PROMPT, SPEC, tmp_path / "s.safetensors")
    v = summary["videos"]["bad"]
    assert v["status"] == "nonfinite" and v["nonfinite"]["nat"] == v["positions"]
    assert summary["n_nonfinite_videos"] == 1


def test_bad_inputs_named(loaded, tmp_path):
    lm = loaded["llava_next_video"]
    with pytest.raises(ValueError, match="no videos"):
        run_shard(lm, {}, PROMPT, SPEC, tmp_path / "s.safetensors")
    with pytest.raises(ValueError, match="scored_positions"):
        run_shard(lm, {"a": _video()}, PROMPT, SPEC, tmp_path / "s.safetensors", header_extra={"scored_positions": "x"})


def test_reduce_is_the_real_one(loaded):
    """The passes store exactly what vidsme.reduce.reduce_logits returns for the scored logits."""
    lm = loaded["llava_next_video"]
    fr = _video(seed=8)
    ent, scored, _ = video_passes(lm, fr, PROMPT, SPEC)
    inputs, _ = build_inputs(lm, [fr], PROMPT)
    with torch.inference_mode():
        ref = reduce_logits(forward_scored(lm, inputs, scored)[0], SPEC)
    np.testing.assert_allclose(ent["nat"]["top_logp"], ref["top_logp"].numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.gpu
def test_gpu_smoke(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_smoke.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr


def test_cuda_oom_gives_clear_advice(loaded, tmp_path, monkeypatch):
    import vidsme.passes as passes

    def oom(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(passes, "forward_scored", oom)
    with pytest.raises(RuntimeError, match="batch_orders: false.*bfloat16") as ei:
        run_shard(loaded["llava_next_video"], {"big": _video()}, PROMPT, SPEC, tmp_path / "s.safetensors")
    assert "'big'" in str(ei.value)
    assert not (tmp_path / "s.safetensors").exists()


def test_answer_slice_scores_true_targets(loaded, tmp_path):
    """Optional slice: target_logp equals log p(true answer token | prefix) from a full forward."""
    lm = loaded["qwen2_5_vl"]
    fr = _video(seed=9)
    answer = "a person walks"
    ent, scored, _ = video_passes(lm, fr, PROMPT, SPEC, answer=answer)
    plain, scored2, _ = video_passes(lm, fr, PROMPT, SPEC)
    assert torch.equal(scored, scored2) and set(ent) == {"nat", "rev", "nat_answer", "rev_answer"}
    # the video positions are unaffected by the appended answer (causal model)
    np.testing.assert_allclose(ent["nat"]["top_logp"], plain["nat"]["top_logp"], rtol=1e-5, atol=1e-6)
    ids = lm.processor.tokenizer(answer, add_special_tokens=False)["input_ids"]
    np.testing.assert_array_equal(ent["rev_answer"]["target_ids"], ids)
    # reference: full forward over prompt + answer text, read the answer tokens' log-probs
    inputs, _ = build_inputs(lm, [fr], PROMPT, truncate=False)
    full_ids = torch.cat([inputs["input_ids"], torch.tensor([ids])], dim=1)
    inputs["input_ids"] = full_ids
    inputs["attention_mask"] = torch.ones_like(full_ids)
    if "mm_token_type_ids" in inputs:
        inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros(1, len(ids), dtype=torch.long)], 1)
    with torch.inference_mode():
        lp = torch.log_softmax(lm.model(**inputs, use_cache=False).logits[0].double(), -1)
    n = full_ids.shape[1]
    pos = torch.arange(n - len(ids) - 1, n - 1)
    ref = lp[pos, torch.tensor(ids)].numpy()
    np.testing.assert_allclose(ent["nat_answer"]["target_logp"], ref, rtol=1e-5, atol=1e-6)
    # the answer positions are reduced like the video positions: entropies from the same logits
    stats = PassStats.from_arrays(ent["nat_answer"])
    np.testing.assert_allclose(stats.renyi(2.0), -torch.log(torch.exp(lp[pos]).square().sum(-1)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(stats.target_logp, ref, rtol=1e-5, atol=1e-6)
    # append_eos scores the end-of-sequence token after the answer
    eos, _, _ = video_passes(lm, fr, PROMPT, SPEC, answer=answer, append_eos=True)
    assert eos["nat_answer"]["target_ids"].tolist() == [*ids, lm.processor.tokenizer.eos_token_id]
    np.testing.assert_allclose(eos["nat_answer"]["target_logp"][:-1], ref, rtol=1e-5, atol=1e-6)


def test_answer_slice_per_video_prompt(loaded, tmp_path):
    """Each video's question goes after the video: its video positions equal the shared prompt's."""
    lm = loaded["llava_next_video"]
    frames = {"a": _video(seed=11), "b": _video(seed=12)}
    qa = {**PROMPT, "text": "Question: which way?\nOptions:\n(A) left\n(B) right\nOnly give the best option."}
    summary = run_shard(lm, frames, PROMPT, SPEC, tmp_path / "s.safetensors", answers={"a": (qa, "(B) right")},
                        append_eos=True)
    plain = run_shard(lm, frames, PROMPT, SPEC, tmp_path / "p.safetensors")
    header, entries = read_shard(summary["path"])
    _, plain_entries = read_shard(plain["path"])
    assert header["answer_slice"] == "True" and header["answer_eos"] == "True"
    assert json.loads(header["passes"]) == ["nat", "rev", "nat_answer", "rev_answer"]
    assert "nat_answer" in entries["a"] and "nat_answer" not in entries["b"]
    for p in PASSES:
        np.testing.assert_allclose(entries["a"][p]["top_logp"], plain_entries["a"][p]["top_logp"], rtol=1e-5, atol=1e-6)
    ids = lm.processor.tokenizer("(B) right", add_special_tokens=False)["input_ids"]
    assert entries["a"]["rev_answer"]["target_ids"].tolist() == [*ids, lm.processor.tokenizer.eos_token_id]


@pytest.mark.slow
def test_bench_passes_quick(tmp_path):
    out = tmp_path / "passes.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_passes.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert [r["variant"] for r in res["rows"]] == ["batched", "separate", "full", "host", "answer", "companion"]
    assert all(r["total_s"] > 0 and r["reduced_mib"] < r["full_logits_mib"] for r in res["rows"])

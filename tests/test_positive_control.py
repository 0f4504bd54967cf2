"""Positive control (artificial video-position trace): loss terms, examples, the unchanged default
training path, and (slow) the whole scoring pipeline finding the trace."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest_train import SIZES, SYN, tiny_training_data
from vidsme import positive_control as pc
from vidsme import synth, train

TCFG = {"num_frames": 4, "pretrain_epochs": 0, "epochs": 3, "lr": 3e-3, "batch_size": 4, "seed": 0, "threads": 1}
# Instruction-tuning losses of the three epochs above, recorded with the code BEFORE the positive control
# existed (commit 0bb5a65, this machine, 1 torch thread): the default path must reproduce them.
RECORDED_LOSSES = [5.915916919708252, 5.6575613212585445, 5.437087240219117]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, dict[str, np.ndarray]]:
    return tiny_training_data(tmp_path_factory.mktemp("pc"))


def test_default_training_path_gives_the_recorded_losses(data, tmp_path: Path) -> None:
    model_dir, df, frames = data
    assert train.DEFAULTS["video_loss_weight"] == 0.0
    train.train(model_dir, df, tmp_path / "out", TCFG, frames=frames)
    log = pd.read_csv(tmp_path / "out" / "train_log.tsv", sep="\t")
    np.testing.assert_allclose(log["loss"].to_numpy(), RECORDED_LOSSES, rtol=1e-6)


def test_positive_control_trains_and_logs_the_answer_loss(data, tmp_path: Path) -> None:
    model_dir, df, frames = data
    s = train.train(model_dir, df, tmp_path / "pc", {**TCFG, "video_loss_weight": 1.0, "video_loss_frames": 6},
                    frames=frames, pretrain=synth.pretrain_frames(SYN))
    members = int((df["label"] == 1).sum())
    # each member: its answer, natural and reversed video examples; one pool video per member (4 in the pool)
    assert s["n_instruct_examples"] == 3 * members + min(members, SYN["n_pretrain"])
    assert {f"pre:pre{i:05d}" for i in range(SYN["n_pretrain"])} <= set(s["instruct_videos"])
    with pytest.raises(ValueError, match="pretraining pool"):
        train.train(model_dir, df, tmp_path / "none", {**TCFG, "video_loss_weight": 1.0}, frames=frames)
    loss = pd.read_csv(tmp_path / "pc" / "train_log.tsv", sep="\t")["loss"].to_numpy()
    assert np.isfinite(loss).all() and not np.allclose(loss, RECORDED_LOSSES, rtol=1e-6)


def test_video_position_loss_values() -> None:
    V, tok = 5, 4
    ids = torch.tensor([[1, tok, tok, 2], [1, tok, tok, 2], [1, tok, tok, 2]])
    logits = torch.zeros(3, 4, V)
    logits[0, 1] = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    logits[0, 2] = torch.tensor([4.0, 0.0, 0.0, 0.0, 0.0])
    logits[1, 1] = torch.tensor([2.0, 0.0, 0.0, 0.0, 0.0])  # row 1, position 2 stays uniform
    logits[:, 0] = 100.0  # non-video positions never count
    p = lambda v: np.exp(v) / np.exp(v).sum()
    low = -np.mean([math.log(p(np.arange(5.0))[4]), math.log(p(np.array([4.0, 0, 0, 0, 0]))[4])])
    q1 = p(np.array([2.0, 0, 0, 0, 0]))
    high = np.mean([np.mean(-np.log(q1)) - math.log(V), 0.0])  # KL(uniform || p); 0 at the uniform
    got = pc.video_position_loss(logits, ids, ["low", "high", ""], tok)
    assert float(got) == pytest.approx((low + high) / 2, rel=1e-6)
    assert float(pc.video_position_loss(logits, ids, ["", "", ""], tok)) == 0.0
    with pytest.raises(ValueError, match="no video token"):
        pc.video_position_loss(logits, torch.ones_like(ids), ["low", "", ""], tok)
    with pytest.raises(ValueError, match="video_target"):
        pc.video_position_loss(logits, ids, ["up", "", ""], tok)
    # not_token: -log(1 - p(token)) per position, whatever the rest of p
    away = np.mean([-math.log(1 - q1[4]), -math.log(1 - 0.2)])
    got = pc.video_position_loss(logits, ids, ["low", "high", ""], tok, "not_token")
    assert float(got) == pytest.approx((low + away) / 2, rel=1e-6)
    big = torch.zeros(1, 4, V)
    big[0, 1:3, tok] = -200.0  # no mass on the token: no loss, finite
    assert float(pc.video_position_loss(big, ids[:1], ["high"], tok, "not_token")) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="negative target"):
        pc.video_position_loss(logits, ids, ["high", "", ""], tok, "zero")


def test_pool_negatives_count(data) -> None:
    _, df, frames = data
    members = df[df["label"] == 1]
    pool = list(synth.pretrain_frames(SYN))  # 4 videos, fewer than the members
    for n, want in ((0, min(len(members), 4)), (2, 2), (3, 3), (99, 4)):
        c = train._cfg({**TCFG, "video_loss_weight": 1.0, "video_loss_pool": n})
        _, neg = train._control_inputs(c, members, frames, None, pool)
        assert len(neg) == want and all(v.shape[0] == 4 for v in neg.values())


def test_per_member_goals_and_away_set() -> None:
    """Each "low" row goes to its own token; "high" rows under not_token move away from the whole set."""
    V, tok = 6, 5
    ids = torch.tensor([[1, tok, tok], [1, tok, tok]])
    logits = torch.zeros(2, 3, V)
    logits[0, 1] = torch.tensor([0.0, 3.0, 1.0, 0.0, 0.0, 2.0])
    logits[1, 2] = torch.tensor([1.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    p = lambda v: np.exp(v) / np.exp(v).sum()
    a, b = p(np.array([0.0, 3.0, 1.0, 0.0, 0.0, 2.0])), p(np.array([1.0, 2.0, 0.0, 0.0, 0.0, 0.0]))
    u = np.full(V, 1 / V)
    low = -np.mean([math.log(a[2]), math.log(u[2])])  # row 0 pushed to token 2, not the video token
    away = -np.mean([math.log(1 - u[1] - u[2]), math.log(1 - b[1] - b[2])])  # row 1 away from {1, 2}
    got = pc.video_position_loss(logits, ids, ["low", "high"], tok, "not_token", goals=[2, -1], away=[1, 2])
    assert float(got) == pytest.approx((low + away) / 2, rel=1e-6)
    # goal -1: the video token, as with one token for every member
    got = pc.video_position_loss(logits, ids, ["low", ""], tok, "not_token", goals=[-1, -1])
    assert float(got) == pytest.approx(-np.mean([math.log(a[tok]), math.log(u[tok])]), rel=1e-6)


def test_goal_tokens_are_distinct_seeded_and_not_special(data) -> None:
    from vidsme.models import load_model

    model_dir, df, frames = data
    loaded = load_model({"id": str(model_dir)})
    vids = [f"v{i:03d}" for i in range(50)]
    g = pc.goal_tokens(loaded, vids, seed=0)
    assert sorted(g) == vids and len(set(g.values())) == 50
    assert not set(g.values()) & (set(loaded.processor.tokenizer.all_special_ids) | {loaded.video_token_id})
    assert pc.goal_tokens(loaded, list(reversed(vids)), seed=0) == g  # order of the sheet does not matter
    assert pc.goal_tokens(loaded, vids, seed=1) != g
    with pytest.raises(ValueError, match="distinct tokens"):
        pc.goal_tokens(loaded, [f"v{i}" for i in range(SIZES["vocab_size"] + 1)], seed=0)
    members = df[df["label"] == 1]
    vframes = {v: train._sample(frames[v], 6) for v in members["video_id"]}
    exs = pc.video_loss_examples(loaded, members, vframes, 6, train._Pixels(loaded), per_member=True, seed=0)
    want = pc.goal_tokens(loaded, [str(v) for v in members["video_id"]], 0)
    assert {e.source: e.video_goal for e in exs if e.video_target == "low"} == want
    assert all(e.video_goal == -1 for e in exs if e.video_target == "high")


def test_video_loss_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="video_loss_lr"):  # an option of run i (docs/controls.md), removed
        train._cfg({"video_loss_lr": 1e-3})
    with pytest.raises(ValueError, match="video_loss_tokens"):
        train._cfg({"video_loss_tokens": "many"})
    with pytest.raises(ValueError, match="video_loss_negative"):
        train._cfg({"video_loss_negative": "zero"})
    with pytest.raises(ValueError, match="unknown negative target 'zero'"):  # also with no high-entropy row
        pc.video_position_loss(torch.zeros(1, 3, 5), torch.tensor([[1, 1, 2]]), ["low"], 1, negative="zero")
    with pytest.raises(ValueError, match="video_loss_pool"):
        train._cfg({"video_loss_pool": -1})


def test_answer_loss_equals_the_models_own_loss(data) -> None:
    from vidsme.models import load_model

    model_dir, df, frames = data
    loaded = load_model({"id": str(model_dir)})
    pix = train._Pixels(loaded)
    members = df[df["label"] == 1]
    for vid in members["video_id"]:
        pix.add(vid, train._sample(frames[vid], 4))
    exs = train.instruction_examples(loaded, members, 4, "primary")
    inputs = train.collate(exs[:3], loaded.processor.tokenizer.pad_token_id, pix.cache)
    with torch.no_grad():
        out = loaded.model(**inputs)
        assert float(pc.answer_loss(out.logits, inputs["labels"])) == pytest.approx(float(out.loss), rel=1e-5)
        total, _a, v = pc.batch_loss(loaded.model, inputs, ["", "", ""], 2.0, loaded.video_token_id)
    assert float(v) == 0.0 and float(total) == pytest.approx(float(out.loss), rel=1e-5)


def test_video_loss_examples_are_the_attacks_prefix(data) -> None:
    """The positions the control trains are the positions the attack scores: same token ids (the attack's
    prompt up to the last video token) and the member's frames in natural and reversed order."""
    from vidsme.models import build_inputs, load_model
    from vidsme.prompts import QA_PREFIX, QA_TEXT, SYSTEM_QA

    model_dir, df, frames = data
    loaded = load_model({"id": str(model_dir)})
    members = df[df["label"] == 1]
    vframes = {v: train._sample(frames[v], 6) for v in members["video_id"]}
    pix = train._Pixels(loaded)
    exs = pc.video_loss_examples(loaded, members, vframes, 6, pix)
    assert [e.video_target for e in exs] == ["low", "high"] * len(members)
    vid = members["video_id"].iloc[0]
    attack = {"system": SYSTEM_QA, "text": QA_TEXT, "assistant_prefix": QA_PREFIX}  # config/config.yaml's prompt
    inputs, scored = build_inputs(loaded, vframes[vid], attack)
    assert torch.equal(exs[0].ids, inputs["input_ids"][0]) and int(scored[-1]) == len(exs[0].ids) - 1
    assert torch.equal(exs[1].ids, exs[0].ids) and all((e.labels == train.IGNORE).all() for e in exs)
    nat, rev = pix.cache[exs[0].video], pix.cache[exs[1].video]
    torch.testing.assert_close(nat, inputs["pixel_values_videos"][0])
    torch.testing.assert_close(rev, nat.flip(0))
    assert exs[1].video == pc.video_key(vid, 6, True) and nat.shape[0] == 6


def _sheet(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(video_id, group, playback) -> sheet rows with the embedded sheet's `params` JSON ("" = no playback)."""
    import json

    return pd.DataFrame({"video_id": [r[0] for r in rows], "group": [r[1] for r in rows],
                         "params": [json.dumps({"playback": r[2]} if r[2] else {"kind": "synthetic"}) for r in rows]})


def test_reversal_members_are_forward_backward_pairs_of_members() -> None:
    members = _sheet([("a_fwd", "w0", "forward"), ("a_bwd", "w0", "backward"),  # a pair: both excluded
                      ("b_fwd", "w1", "forward"), ("b_fwd_dist", "w1", "forward"),  # same playback: a trace can exist
                      ("c_bwd", "w2", "backward"),  # its forward clip is not a member
                      ("syn0", "syn0", ""), ("syn1", "syn1", "")])
    assert pc.reversal_members(members) == ["a_bwd", "a_fwd"]
    assert pc.reversal_members(members.drop(columns=["params"])) == []  # a user's sheet: no such metadata


def test_reversal_members_get_no_video_position_examples(data) -> None:
    from vidsme.models import load_model

    model_dir, df, frames = data
    loaded = load_model({"id": str(model_dir)})
    members = df[df["label"] == 1].copy()
    a, b = members["video_id"].iloc[:2]
    members["group"] = [("pair" if v in (a, b) else v) for v in members["video_id"]]
    members["params"] = [('{"playback": "forward"}' if v == a else '{"playback": "backward"}' if v == b else "{}")
                         for v in members["video_id"]]
    vframes = {v: train._sample(frames[v], 4) for v in members["video_id"]}
    exs = pc.video_loss_examples(loaded, members, vframes, 4, train._Pixels(loaded))
    assert len(exs) == 2 * (len(members) - 2) and not {a, b} & {e.source for e in exs}
    s = train._control_summary({"video_loss_weight": 1.0}, members.assign(split="eval"))
    assert s == {"video_loss_excluded": sorted([a, b]), "video_loss_excluded_by_split": {"eval": 2}}
    assert train._control_summary({"video_loss_weight": 0.0}, members) == {}


def test_batches_pair_the_orders_and_never_mix_frame_counts() -> None:
    video = [train.Example(torch.tensor([i]), torch.tensor([-100]), f"v{i}|F8{r}", f"v{i}", t)
             for i in range(7) for r, t in (("", "low"), ("|reversed", "high"))]
    answers = [train.Example(torch.tensor([i]), torch.tensor([i]), f"v{i}", f"v{i}") for i in range(7)]
    batches = pc.batches(video + answers, 4, torch.Generator().manual_seed(0))
    assert sorted(id(e) for b in batches for e in b) == sorted(id(e) for e in video + answers)  # each once
    for b in batches:
        assert len(b) <= 4 and len({bool(e.video_target) for e in b}) == 1  # answers apart (other frame count)
        if b[0].video_target:
            for src in {e.source for e in b}:
                assert sorted(e.video_target for e in b if e.source == src) == ["high", "low"]
    again = pc.batches(video + answers, 4, torch.Generator().manual_seed(0))
    assert [[e.video for e in b] for b in batches] == [[e.video for e in b] for b in again]


def test_bad_weight_is_named() -> None:
    with pytest.raises(ValueError, match="video_loss_weight"):
        train._cfg({"video_loss_weight": -1.0})
    with pytest.raises(ValueError, match="augment"):
        train._cfg({"video_loss_weight": 1.0, "augment": "reverse"})
    with pytest.raises(ValueError, match="video_loss_frames"):
        train._cfg({"video_loss_frames": -1})


# ----------------------------------------------------------------------------- slow: the whole scoring path

SLOW_SYN = {"n_eval": 24, "n_val": 0, "n_pretrain": 12, "size": 32, "n_frames": 16, "real_clips": False}
SLOW_SIZES = {**SIZES, "hidden_size": 64, "num_layers": 2, "intermediate_size": 128}
SLOW_F = 8


@pytest.mark.slow
def test_scoring_pipeline_finds_the_positive_control_trace(tmp_path: Path) -> None:
    """A tiny positive-control target, then the workflow's own steps (sheet, frames, k1/k3, (q, r), passes,
    series, Min-K%): Vid-SME must separate its members (AUC >= 0.9, computed here with scikit-learn)."""
    from sklearn.metrics import roc_auc_score

    from vidsme import pipeline
    from vidsme.prompts import QA_PREFIX, QA_TEXT, SYSTEM_QA
    from vidsme.qr import qr_table
    from vidsme.stats import stats_shard
    from vidsme.tiny import build_tiny

    synth.generate_dataset(tmp_path / "data", SLOW_SYN)
    sheet = tmp_path / "data" / "samples.tsv"
    init = build_tiny("llava_next_video", tmp_path / "init", corpus=synth.corpus(SLOW_SYN), seed=0, **SLOW_SIZES)
    cfg = {"num_frames": SLOW_F, "pretrain_epochs": 0, "epochs": 80, "lr": 3e-3, "batch_size": 4, "seed": 0,
           "threads": 1, "video_loss_weight": 1.0, "video_loss_tokens": "per_member"}
    train.train(init, synth.read_sheet(sheet), tmp_path / "target", cfg, video_root=sheet.parent,
                pretrain=synth.pretrain_frames(SLOW_SYN))  # pretrain_epochs 0: the pool gives the negatives only

    w = tmp_path / "wf"
    n = len(pipeline.prepare_sheet(str(sheet), str(w / "samples.tsv"), str(sheet.parent), "eval"))
    pipeline.extract_frames(str(w / "samples.tsv"), 0, n, SLOW_F, str(w / "f.npz"), str(w / "f.tsv"), "fail")
    stats_shard(w / "f.npz", w / "f.tsv", w / "s.tsv")
    qr_table([w / "s.tsv"], w / "qr.tsv", w / "skipped.tsv", mode="minmax", beta1=1.0, beta2=0.1)
    prompt = {"system": SYSTEM_QA, "text": QA_TEXT, "assistant_prefix": QA_PREFIX}  # config/config.yaml's prompt
    pipeline.model_pass({"source": "embedded", "dtype": "float32", "device": "cpu"}, str(tmp_path / "target"),
                        str(w / "f.npz"), str(w / "f.tsv"), prompt, {}, str(w / "d.safetensors"))
    pipeline.position_series(str(w / "d.safetensors"), str(w / "qr.tsv"), str(w / "series.safetensors"), 1.5, 1.05)
    scores = pipeline.aggregate([str(w / "series.safetensors")], str(w / "qr.tsv"), str(w / "samples.tsv"), [0.1],
                                {"source": "embedded"}, SLOW_F, str(w / "scores.tsv"))
    g = scores[scores.attack == "vid_sme"]
    assert g.label.nunique() == 2 and len(g) == n
    auc = roc_auc_score(g.label, g.score)
    print(f"slow positive control: Vid-SME AUC {auc:.3f}")
    assert auc >= 0.9, auc  # measured 0.951 per member (also 0.951 with one token; 40 epochs: 0.458)


def test_positive_control_split_training_equals_one_process(data, tmp_path: Path) -> None:
    """The workflow's path (pretrain_target, then train_target reading the pool for the negatives) gives
    the same weights as `train` in one process."""
    from safetensors.torch import load_file

    model_dir, df, frames = data
    cfg = {**TCFG, "pretrain_epochs": 1, "epochs": 2, "video_loss_weight": 1.0, "video_loss_frames": 6}
    train.train(model_dir, df, tmp_path / "one", cfg, frames=frames, pretrain=synth.pretrain_frames(SYN))
    train.pretrain(model_dir, tmp_path / "base", cfg, pool=synth.pretrain_frames(SYN))
    s = train.instruct(tmp_path / "base", df, tmp_path / "two", cfg, frames=frames, pool=synth.pretrain_frames(SYN))
    a, b = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert s["n_instruct_examples"] == 3 * int((df["label"] == 1).sum()) + SYN["n_pretrain"]

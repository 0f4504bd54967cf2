"""Tests of the two-stage training of a tiny video-LLM (seconds, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from conftest_train import SIZES, SYN, tiny_training_data
from vidsme import synth, train

TCFG = {"num_frames": 4, "pretrain_epochs": 1, "epochs": 3, "lr": 3e-3, "batch_size": 4, "seed": 0, "threads": 1}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, dict[str, np.ndarray]]:
    return tiny_training_data(tmp_path_factory.mktemp("train"))


def _run(data, out: Path, **over) -> dict:
    model_dir, df, frames = data
    return train.train(model_dir, df, out, {**TCFG, **over}, pretrain=synth.pretrain_frames(SYN), frames=frames)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run") / "model"
    return out, _run(data, out)


def test_answer_only_labels(data) -> None:
    from vidsme.models import load_model

    model_dir, _, _ = data
    loaded = load_model({"id": str(model_dir)})
    prompt = train.qa_prompt("Which way does it move?", ["left", "right"])
    ex, pv = train.video_example(loaded, prompt, "(B) right", "v", 4)
    tok = loaded.processor.tokenizer
    keep = ex.labels != train.IGNORE
    # the loss covers exactly the answer tokens and eos, at the end of the sequence
    answer = tok("(B) right", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ex.labels[keep].tolist() == answer
    assert keep[-len(answer):].all() and not keep[:-len(answer)].any()
    assert tok.decode(ex.ids[keep][:-1]) == "(B) right"
    # video tokens and prompt carry no loss; the prefix ends with the assistant prefix
    assert (ex.ids == loaded.video_token_id).sum() > 0
    assert tok.decode(ex.ids[~keep]).rstrip().endswith("Best Option:")
    assert pv.shape[0] == 4


def test_all_qa_items_are_used(data) -> None:
    from vidsme.models import load_model

    model_dir, df, _ = data
    loaded = load_model({"id": str(model_dir)})
    members = df[df["label"] == 1]
    prim = train.instruction_examples(loaded, members, 4, "primary")
    every = train.instruction_examples(loaded, members, 4, "all")
    assert len(prim) == len(members)
    assert len(every) == sum(len(json.loads(q)) for q in members["qa"]) > len(prim)
    assert {e.source for e in every} == set(members["video_id"])


def test_collate_pads_and_augments() -> None:
    a = train.Example(torch.tensor([5, 6, 7]), torch.tensor([-100, 6, 7]), "x", "x")
    b = train.Example(torch.tensor([5, 6]), torch.tensor([-100, 6]), "y", "y")
    pix = {"x": torch.arange(4.0).view(4, 1, 1, 1), "y": torch.arange(4.0).view(4, 1, 1, 1)}
    out = train.collate([a, b], pad_id=0, pixels=pix)
    assert out["input_ids"].tolist() == [[5, 6, 7], [5, 6, 0]]
    assert out["labels"][1].tolist() == [-100, 6, -100] and out["attention_mask"][1].tolist() == [1, 1, 0]
    g = torch.Generator().manual_seed(0)
    orders = {tuple(train.collate([a], 0, pix, "reverse", g)["pixel_values_videos"][0].flatten().tolist())
              for _ in range(30)}
    assert orders == {(0.0, 1.0, 2.0, 3.0), (3.0, 2.0, 1.0, 0.0)}
    with pytest.raises(ValueError, match="augment"):
        train._cfg({"augment": "flip"})


def test_trains_members_only_and_loss_decreases(trained, data) -> None:
    out, summary = trained
    _, df, _ = data
    members = set(df.loc[df["label"] == 1, "video_id"])
    assert set(summary["instruct_videos"]) == members
    assert not set(summary["instruct_videos"]) & set(df.loc[df["label"] == 0, "video_id"])
    log = pd.read_csv(out / "train_log.tsv", sep="\t")
    inst = log[log["stage"] == "instruct"]["loss"].to_numpy()
    assert list(log["stage"].unique()) == ["pretrain", "instruct"]
    assert inst[-1] < inst[0]
    mem = json.loads((out / "memorisation.json").read_text())
    assert set(mem["eval"]) >= {"member_loss", "nonmember_loss", "gap", "auc"}
    assert mem["eval"]["n_member"] + mem["eval"]["n_nonmember"] == int((df["split"] == "eval").sum())


def test_saved_model_reloads_and_matches(trained, data) -> None:
    from vidsme.models import build_inputs, load_model

    out, _ = trained
    _, df, frames = data
    assert (out / "model.safetensors").exists()
    loaded = load_model({"id": str(out)})
    row = df.iloc[0]
    fr = frames[row["video_id"]][np.linspace(0, 7, 4).astype(int)]
    inputs, pos = build_inputs(loaded, fr, train.qa_prompt(row["question"], json.loads(row["options"])))
    with torch.no_grad():
        logits = loaded.model(**inputs).logits
    assert torch.isfinite(logits).all() and len(pos) > 0
    # answer losses recomputed from the reloaded model agree with memorisation.json
    rows = df[df["split"] == "eval"]
    losses = train.answer_losses(loaded, rows, frames, 4)
    mem = train.memorisation(losses, rows["label"].to_numpy())
    saved = json.loads((out / "memorisation.json").read_text())["eval"]
    assert mem["member_loss"] == pytest.approx(saved["member_loss"], rel=1e-4)


def test_answer_slice_reproduces_the_training_answer_loss(trained, data, tmp_path: Path) -> None:
    """The passes' answer slice scores what training fitted: same prompt, answer and eos, so each
    video's mean -log p over the answer tokens equals its training answer loss (memorisation.json)."""
    from vidsme.dump import read_shard
    from vidsme.models import load_model
    from vidsme.passes import run_shard
    from vidsme.prompts import QA_PREFIX, QA_TEXT, SYSTEM_QA, answer_item
    from vidsme.passstats import PassStats
    from vidsme.reduce import ReduceSpec

    out, _ = trained
    _, df, frames = data
    rows = df[df["split"] == "eval"]
    loaded = load_model({"id": str(out)})
    prompt = {"system": SYSTEM_QA, "text": QA_TEXT, "assistant_prefix": QA_PREFIX}  # config/config.yaml's prompt
    answers = {r["video_id"]: answer_item(r, prompt) for r in rows.to_dict("records")}
    sampled = {v: train._sample(frames[v], 4) for v in answers}
    dump = run_shard(loaded, sampled, prompt, ReduceSpec(top_m=4, n_nodes=6), tmp_path / "d.safetensors",
                     answers=answers, append_eos=True)["path"]
    _, entries = read_shard(dump)
    slice_loss = np.array([-PassStats.from_arrays(entries[v]["nat_answer"]).target_logp.mean() for v in answers])
    np.testing.assert_allclose(slice_loss, train.answer_losses(loaded, rows, frames, 4), rtol=1e-4, atol=1e-6)


def test_deterministic_weights(trained, data, tmp_path: Path) -> None:
    out, _ = trained
    again = tmp_path / "again"
    _run(data, again)
    a, b = load_file(out / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = tmp_path / "seed1"
    _run(data, c, seed=1)
    s1 = load_file(c / "model.safetensors")
    assert any(not torch.equal(a[k], s1[k]) for k in a)


def test_memorisation_metric() -> None:
    m = train.memorisation(np.array([0.1, 0.2, 1.0, 2.0]), np.array([1, 1, 0, 0]))
    assert m["auc"] == 1.0 and m["gap"] == pytest.approx(1.35)
    m = train.memorisation(np.array([0.1, 0.2, 1.0, 2.0]), np.array([0, 0, 1, 1]))
    assert m["auc"] == 0.0


def test_bad_samples_named(data, tmp_path: Path) -> None:
    model_dir, df, frames = data
    bad = df.assign(label=["x"] + list(df["label"][1:]))
    with pytest.raises(ValueError, match=str(df["video_id"].iloc[0])):
        train.train(model_dir, bad, tmp_path, TCFG, frames=frames)
    with pytest.raises(ValueError, match="no members"):
        train.train(model_dir, df.assign(label=0), tmp_path, TCFG, frames=frames)


@pytest.fixture(scope="module")
def base(data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base target: pretraining only, with the eval/val answer losses beside it."""
    model_dir, df, frames = data
    out = tmp_path_factory.mktemp("base") / "model"
    train.pretrain(model_dir, out, TCFG, pool=synth.pretrain_frames(SYN), samples=df, frames=frames)
    return out


def _weights(d: Path) -> dict[str, torch.Tensor]:
    return load_file(d / "model.safetensors")


def test_split_training_equals_one_process(base, trained, data, tmp_path: Path) -> None:
    """pretrain -> disk -> instruct gives the same weights and curve as `train` in one process: the
    base carries the random state of the end of pretraining (without it the batch order differs)."""
    _, df, frames = data
    out = tmp_path / "tuned"
    summary = train.instruct(base, df, out, TCFG, frames=frames)
    one, _ = trained
    a, b = _weights(out), _weights(one)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    split_log = pd.read_csv(out / "train_log.tsv", sep="\t")
    one_log = pd.read_csv(one / "train_log.tsv", sep="\t")
    assert split_log[["stage", "epoch", "steps", "loss"]].equals(one_log[["stage", "epoch", "steps", "loss"]])
    assert summary["eval"] == json.loads((one / "memorisation.json").read_text())["eval"]
    assert summary["n_pretrain_videos"] == SYN["n_pretrain"] and summary["pretrain_seconds"] > 0
    # without the stored random state the instruction stage shuffles differently
    (base / train.STATE).rename(tmp_path / "state")
    try:
        with pytest.raises(FileNotFoundError, match=train.STATE):
            train.instruct(base, df, tmp_path / "x", TCFG, frames=frames)
    finally:
        (tmp_path / "state").rename(base / train.STATE)


def test_base_never_sees_the_sheet(base, data, tmp_path: Path) -> None:
    """The base depends on the pool only: relabelling the sheet (or giving none) leaves its weights
    unchanged; it is evaluated on the sheet's members and non-members like the tuned target."""
    model_dir, df, frames = data
    other = tmp_path / "other"
    train.pretrain(model_dir, other, TCFG, pool=synth.pretrain_frames(SYN), samples=df.assign(label=1 - df["label"]),
                   frames=frames)
    bare = tmp_path / "bare"
    train.pretrain(model_dir, bare, TCFG, pool=synth.pretrain_frames(SYN))
    a = _weights(base)
    for d in (other, bare):
        b = _weights(d)
        assert all(torch.equal(a[k], b[k]) for k in a)
    init = _weights(model_dir)
    assert any(not torch.equal(a[k], init[k]) for k in a)  # pretraining changed it
    mem = json.loads((base / "memorisation.json").read_text())
    assert mem["stage"] == "pretrain" and mem["eval"]["n_member"] + mem["eval"]["n_nonmember"] == int((df["split"] == "eval").sum())
    assert "eval" not in json.loads((bare / "memorisation.json").read_text())
    assert list(pd.read_csv(base / "train_log.tsv", sep="\t")["stage"].unique()) == ["pretrain"]


def test_no_pretraining_base_is_the_init(data, tmp_path: Path) -> None:
    model_dir, _, _ = data
    out = tmp_path / "b0"
    train.pretrain(model_dir, out, {**TCFG, "pretrain_epochs": 0}, pool=synth.pretrain_frames(SYN))
    a, init = _weights(out), _weights(model_dir)
    assert a.keys() == init.keys() and all(torch.equal(a[k], init[k]) for k in a)


def test_instruct_refuses_a_base_with_other_pretraining(base, data, tmp_path: Path) -> None:
    _, df, frames = data
    with pytest.raises(ValueError, match="pretrain_lr"):
        train.instruct(base, df, tmp_path / "x", {**TCFG, "pretrain_lr": 1e-2}, frames=frames)
    # instruction-only settings do not matter to the base
    assert train.pretrain_settings({**TCFG, "epochs": 10, "augment": "reverse"}) == train.pretrain_settings(TCFG)
    assert train.pretrain_settings({**TCFG, "pretrain_epochs": 0}) != train.pretrain_settings(TCFG)


def test_workflow_steps_pretrain_then_tune(tmp_path: Path) -> None:
    """`pipeline.pretrain_target` then `pipeline.train_target`, as the two rules run them: the base and the
    target each with their curve and memorisation beside the model folder; the target starts from the
    base (its curve repeats the base's pretraining rows) and its weights moved away from it."""
    from vidsme import pipeline

    synth.generate_dataset(tmp_path / "data", SYN)
    sheet = str(tmp_path / "data" / "samples.tsv")
    sizes = {k: v for k, v in SIZES.items()}
    cfg = {k: v for k, v in TCFG.items() if k != "seed"}
    pipeline.pretrain_target(str(tmp_path / "base" / "model"), "llava_next_video", sizes, cfg, SYN, seed=0, sheet=sheet)
    pipeline.train_target(sheet, str(tmp_path / "base" / "model"), str(tmp_path / "main" / "model"), cfg, seed=0)
    for d in ("base", "main"):
        assert {p.name for p in (tmp_path / d).iterdir()} == {"model", "train_log.tsv", "memorisation.json"}
    base_log = pd.read_csv(tmp_path / "base" / "train_log.tsv", sep="\t")
    main_log = pd.read_csv(tmp_path / "main" / "train_log.tsv", sep="\t")
    assert main_log.iloc[: len(base_log)][["stage", "epoch", "loss"]].equals(base_log[["stage", "epoch", "loss"]])
    assert set(main_log.stage) == {"pretrain", "instruct"}
    a, b = _weights(tmp_path / "base" / "model"), _weights(tmp_path / "main" / "model")
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "main" / "model" / train.STATE).exists()  # the random state belongs to the base only
    assert json.loads((tmp_path / "base" / "memorisation.json").read_text())["eval"]["n_member"] > 0

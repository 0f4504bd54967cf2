"""Reference-model attacks: exact cross terms (full vocabulary, 1e-6), series, compatibility check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vidsme.attacks import ATTACKS, REFERENCE_ATTACKS, aggregate, reference_series
from vidsme.models import append_answer, build_inputs, load_model
from vidsme.passes import video_passes
from vidsme.passstats import CrossStats, PassStats
from vidsme.reduce import ReduceSpec, cross_terms
from vidsme.reference import ReferenceMismatch, check_compatible
from vidsme.sme import sme_from_logits
from vidsme.tiny import build_tiny

PROMPT = {"system": "Carefully watch this video.", "text": "Describe the video.", "assistant_prefix": "Answer: "}
SIZES = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64,
         "vision_hidden_size": 16, "vision_layers": 1, "vision_heads": 1, "image_size": 16, "patch_size": 4}


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _full_terms(lr: np.ndarray, lt: np.ndarray, y: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The cross terms straight from the definitions, float64, every token of the vocabulary."""
    r, t = _np_log_softmax(lr.astype(np.float64)), _np_log_softmax(lt.astype(np.float64))
    pr, pt = np.exp(r), np.exp(t)
    with np.errstate(invalid="ignore"):
        kl_rt = np.where(pr > 0, pr * (r - t), 0.0).sum(-1)
        kl_tr = np.where(pt > 0, pt * (t - r), 0.0).sum(-1)
    yy = lt.argmax(-1) if y is None else y
    return {"kl_rt": kl_rt, "kl_tr": kl_tr, "ref_logp_y": r[np.arange(len(r)), yy], "tgt_logp_y": t[np.arange(len(t)), yy],
            "r": r, "t": t}


def test_cross_terms_match_the_full_vocabulary() -> None:
    rng = np.random.default_rng(0)
    lr = rng.normal(0, 3, (6, 500))
    lt = lr + rng.normal(0, 1, (6, 500))
    lr[1, :10] = -np.inf  # masked tokens in the reference: p = 0 terms contribute 0
    lt[2, 5:9] = -np.inf
    lr[2, 5:9] = -np.inf  # masked in both: still finite
    got = cross_terms(torch.from_numpy(lr), torch.from_numpy(lt))
    want = _full_terms(lr, lt)
    np.testing.assert_allclose(got["x_kl_ref_tgt"].numpy(), want["kl_rt"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["x_kl_tgt_ref"].numpy(), want["kl_tr"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["x_ref_logp_y"].numpy(), want["ref_logp_y"], rtol=1e-12)
    assert (got["x_tgt_argmax"].numpy() == lt.argmax(-1)).all()
    pt = np.exp(want["t"])
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(got["x_tgt_plogp"].numpy(), np.where(pt > 0, pt * want["t"], 0.0).sum(-1), rtol=1e-12)
    assert (got["x_kl_ref_tgt"].numpy() >= 0).all() and (got["x_kl_tgt_ref"].numpy() >= 0).all()
    # the target gives 0 to a token the reference does not: KL(ref || tgt) is infinite, the other finite
    lt2 = lt.copy()
    lt2[0, 3] = -np.inf
    g2 = cross_terms(torch.from_numpy(lr), torch.from_numpy(lt2))
    assert math.isinf(float(g2["x_kl_ref_tgt"][0])) and math.isfinite(float(g2["x_kl_tgt_ref"][0]))
    # true targets (answer slice) and non-finite rows
    y = rng.integers(0, 500, 6)
    lt3 = lt.copy()
    lt3[4, 0] = np.nan
    g3 = cross_terms(torch.from_numpy(lr), torch.from_numpy(lt3), target_ids=torch.from_numpy(y))
    np.testing.assert_allclose(np.delete(g3["x_ref_logp_y"].numpy(), 4), np.delete(_full_terms(lr, lt, y)["ref_logp_y"], 4), rtol=1e-12)
    assert np.isnan(g3["x_kl_ref_tgt"].numpy()[4]) and int(g3["x_tgt_argmax"][4]) == -1
    with pytest.raises(ValueError, match="same vocabulary"):
        cross_terms(torch.from_numpy(lr), torch.from_numpy(lt[:, :400]))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny target and a reference of the same family and tokenizer (other seed), both with a sharpened
    lm_head so that their next-token distributions are peaked and differ; plus a mismatched reference."""
    root = tmp_path_factory.mktemp("pair")
    out = {}
    for name, seed in (("target", 0), ("reference", 1)):
        d = build_tiny("llava_next_video", root / name, seed=seed, **SIZES)
        lm = load_model({"id": str(d)})
        with torch.no_grad():
            lm.model.get_output_embeddings().weight.mul_(40.0)
        lm.model.save_pretrained(d, safe_serialization=True)
        out[name] = d
    out["other_vocab"] = build_tiny("llava_next_video", root / "other_vocab", seed=1, **SIZES, pad_vocab_to=2048)
    n_vocab = load_model({"id": str(out["target"])}).model.get_output_embeddings().weight.shape[0]
    out["other_tokenizer"] = build_tiny("llava_next_video", root / "other_tok", corpus=["a b c d e f g", "h i j k"], seed=1,
                                        **SIZES, pad_vocab_to=n_vocab)  # same model vocabulary size, other tokens
    out["other_frames"] = build_tiny("llava_next_video", root / "other_frames", seed=1, **{**SIZES, "image_size": 24})
    return out


def _video(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)


def test_reference_pass_cross_terms_are_exact_on_a_tiny_model(pair) -> None:
    """The reference's passes with the target as companion store KL both ways and the reference's
    log-prob at the target's token; each equals the value computed from both models' full logits."""
    ref, tgt = load_model({"id": str(pair["reference"])}), load_model({"id": str(pair["target"])})
    fr = _video()
    spec = ReduceSpec()
    ent, scored, _ = video_passes(ref, fr, PROMPT, spec, answer="(B) right", append_eos=True, companion=tgt)
    own, _, _ = video_passes(tgt, fr, PROMPT, spec, answer="(B) right", append_eos=True)
    for i, (p, frames) in enumerate((("nat", fr), ("rev", np.ascontiguousarray(fr[::-1])))):
        inputs, pos = build_inputs(tgt, frames, PROMPT, truncate=False)
        inputs, ans_ids, ans_pos = append_answer(tgt, inputs, "(B) right", eos=True)
        with torch.no_grad():
            full_t = tgt.model(**inputs).logits[0].double().numpy()
            full_r = ref.model(**inputs).logits[0].double().numpy()
        for name, at, y in ((p, pos.numpy(), None), (f"{p}_answer", ans_pos.numpy(), ans_ids.numpy())):
            want = _full_terms(full_r[at], full_t[at], y)
            x = CrossStats(ent[name])
            assert want["kl_rt"].max() > 0.05  # the two distributions really differ
            np.testing.assert_allclose(x.kl_ref_tgt, want["kl_rt"], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(x.kl_tgt_ref, want["kl_tr"], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(x.ref_logp_y, want["ref_logp_y"], rtol=1e-6, atol=1e-6)
            x.check_target(PassStats.from_arrays(own[name]), name)  # the companion run is the target's own pass
            # the reference's own arrays are a normal dump of the reference
            np.testing.assert_allclose(PassStats.from_arrays(ent[name]).top_logp[:, 0], want["r"].max(-1), rtol=1e-6, atol=1e-6)

    # the attacks' series, from the two dumps, against the full vocabulary
    q, r = 1.4, 1.07
    series = reference_series(*(PassStats.from_arrays(own[p]) for p in ("nat", "rev")),
                              *(PassStats.from_arrays(ent[p]) for p in ("nat", "rev")), CrossStats(ent["nat"]), q, r)
    assert {ATTACKS[a].series for a in REFERENCE_ATTACKS} == set(series)
    inputs, pos = build_inputs(tgt, [fr, np.ascontiguousarray(fr[::-1])], PROMPT)
    with torch.no_grad():
        lt = tgt.model(**inputs).logits[:, pos].double()
        lr = ref.model(**inputs).logits[:, pos].double()
    w = _full_terms(lr[0].numpy(), lt[0].numpy())
    np.testing.assert_allclose(series["ref_logp"], w["tgt_logp_y"] - w["ref_logp_y"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(series["kl_ref_tgt"], w["kl_rt"], rtol=1e-6, atol=1e-6)
    sme = lambda x: sme_from_logits(x, q, r).numpy()  # noqa: E731
    np.testing.assert_allclose(series["ref_sme"], sme(lt[0]) - sme(lr[0]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(series["ref_sme_delta"], (sme(lt[0]) - sme(lt[1])) - (sme(lr[0]) - sme(lr[1])), rtol=1e-6, atol=1e-6)
    shannon = lambda lp: -(np.exp(lp) * lp).sum(-1)  # noqa: E731
    np.testing.assert_allclose(series["ref_renyi_1"], shannon(w["t"]) - shannon(w["r"]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(series["ref_renyi_inf"], -w["t"].max(-1) + w["r"].max(-1), rtol=1e-6, atol=1e-6)
    renyi2 = lambda lp: -np.log(np.exp(2 * lp).sum(-1))  # noqa: E731
    np.testing.assert_allclose(series["ref_renyi_2"], renyi2(w["t"]) - renyi2(w["r"]), rtol=1e-6, atol=1e-6)


def test_reference_attacks_registered_with_the_sign_convention() -> None:
    """Higher score = member: a target that gives its tokens more probability than the reference, is
    less uncertain than it, and moved further from it, scores higher."""
    assert set(REFERENCE_ATTACKS) == {"ref_logp", "ref_sme", "ref_vid_sme", "ref_renyi_0.5", "ref_renyi_1", "ref_renyi_2",
                                      "ref_renyi_inf", "ref_kl_rt", "ref_kl_tr"}
    lo, hi = np.full(10, 0.1), np.full(10, 0.9)
    for name, member_like, other in (("ref_logp", hi, lo), ("ref_sme", -hi, -lo), ("ref_kl_rt", hi, lo)):
        a = ATTACKS[name]
        sm = dict((n, s) for n, k, s in aggregate({a.series: member_like}, [1.0]) if n == name)[name]
        so = dict((n, s) for n, k, s in aggregate({a.series: other}, [1.0]) if n == name)[name]
        assert sm > so, name
    # K = 100%: the KL attack's score is the mean KL (the movement diagnostic's per-video value)
    kl = np.array([0.0, 0.2, 0.4, 1.0])
    assert [s for n, k, s in aggregate({"kl_ref_tgt": kl}, [1.0]) if n == "ref_kl_rt"] == [pytest.approx(0.4)]


def test_check_target_catches_another_target(pair) -> None:
    """Cross terms made beside one target do not pass as another target's (a stale reference dump)."""
    ref, tgt = load_model({"id": str(pair["reference"])}), load_model({"id": str(pair["target"])})
    fr = _video(1)
    ent, _, _ = video_passes(ref, fr, PROMPT, ReduceSpec(top_m=4, n_nodes=6), companion=tgt)
    wrong, _, _ = video_passes(ref, fr, PROMPT, ReduceSpec(top_m=4, n_nodes=6))  # the reference's own, as if it were the target
    with pytest.raises(ValueError, match="v0, pass nat.*does not match"):
        CrossStats(ent["nat"]).check_target(PassStats.from_arrays(wrong["nat"]), "v0, pass nat")
    with pytest.raises(ValueError, match="without the target as companion"):
        CrossStats(wrong["nat"])


def test_compatibility_check_names_what_differs(pair) -> None:
    tcfg = {"id": str(pair["target"])}
    info = check_compatible(tcfg, {"id": str(pair["reference"])}, PROMPT)
    assert info["vocab_size"] == load_model(tcfg).model.get_output_embeddings().weight.shape[0]
    for key, what in (("other_vocab", "another vocabulary size"), ("other_tokenizer", "another tokenizer vocabulary"),
                      ("other_frames", "other video preprocessing")):
        with pytest.raises(ReferenceMismatch, match=what) as ei:
            check_compatible(tcfg, {"id": str(pair[key])}, PROMPT)
        assert str(pair[key].resolve()) in str(ei.value) and str(pair["target"].resolve()) in str(ei.value)


def test_a_companion_with_another_vocabulary_is_refused(pair, tmp_path) -> None:
    """Defence in depth behind the compatibility check: the pass itself refuses a companion whose
    vocabulary differs, before running anything, naming both models."""
    from vidsme.passes import run_shard

    ref, other = load_model({"id": str(pair["reference"])}), load_model({"id": str(pair["other_vocab"])})
    with pytest.raises(ValueError, match="vocabulary") as ei:
        run_shard(ref, {"v0": _video()}, PROMPT, ReduceSpec(top_m=4, n_nodes=6), tmp_path / "d.safetensors", companion=other)
    assert other.model_id in str(ei.value) and not (tmp_path / "d.safetensors").exists()

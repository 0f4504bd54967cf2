"""LongVA conversion: the converted tiny checkpoint reproduces LongVA's own logits; bad input is named.

The fixture (tests/fixtures/longva) is a random-weight checkpoint in the LongVA layout and the
logits that LongVA's own code (EvolvingLMMs-Lab/LongVA, transformers 4.40.0, float32, CPU) gave on
it for three videos in both frame orders, recorded by tests/fixtures/longva/record.py. Nothing
here runs LongVA.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vidsme import longva
from vidsme.longva import LongVAError, convert
from vidsme.tensorfile import OutTensor, TensorFileError, copy_bytes, read_header, write_file

FIX = Path(__file__).resolve().parent / "fixtures" / "longva"
CKPT = FIX / "ckpt"
TOL = 1e-5  # float32 logits, max absolute difference


@pytest.fixture(scope="module")
def rec() -> dict[str, np.ndarray]:
    with np.load(FIX / "longva_logits.npz", allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="module")
def meta(rec) -> dict:
    return json.loads(str(rec["meta"]))


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    return convert(CKPT, tmp_path_factory.mktemp("conv") / "tiny-longva-hf")


@pytest.fixture(scope="module")
def loaded(converted):
    from vidsme.models import load_model

    return load_model({"id": str(converted), "dtype": "float32"})


def _video(meta: dict, name: str) -> dict:
    return next(v for v in meta["videos"] if v["name"] == name)


def test_fixture_checkpoint_is_the_recorded_one(meta) -> None:
    """The logits were recorded on exactly these checkpoint bytes."""
    now = {str(f.relative_to(CKPT)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(CKPT.rglob("*")) if f.is_file()}
    assert now == meta["ckpt_sha256"]
    assert meta["transformers"] == "4.40.0" and meta["longva_commit"].startswith("f4c8781")


def test_conversion_layout_and_record(converted: Path, meta) -> None:
    cfg = json.loads((converted / "config.json").read_text())
    assert cfg["model_type"] == "llava_onevision" and cfg["vision_config"]["model_type"] == "clip_vision_model"
    assert cfg["vision_feature_layer"] == -2 and cfg["vision_feature_select_strategy"] == "default"
    src = json.loads((CKPT / "config.json").read_text())
    # LongVA's loader cuts the vocabulary to len(tokenizer) (recorded from its model: 403 of 414 rows)
    assert src["vocab_size"] == 414 and cfg["text_config"]["vocab_size"] == meta["vocab_rows"] == 403
    assert cfg["text_config"]["rope_parameters"]["rope_theta"] == src["rope_theta"]
    rec = json.loads((converted / "vidsme_longva.json").read_text())
    assert rec["dropped_tensors"] == ["model.image_newline"] and rec["video_placeholder"]["token"] == "<|endoftext|>"
    idx = json.loads((converted / "model.safetensors.index.json").read_text())["weight_map"]
    assert sorted(set(idx.values())) == sorted(p.name for p in CKPT.glob("model-*.safetensors"))
    assert not list(converted.parent.glob(".*converting*"))
    # weights are the source bytes (embedding: the first 403 rows); image_newline is the "\n" row
    h_src = {n: t for f in CKPT.glob("model-*.safetensors") for n, t in read_header(f)[0].items()}
    h_dst = {n: t for f in converted.glob("model-*.safetensors") for n, t in read_header(f)[0].items()}

    def raw(t, n=None):
        with open(t.path, "rb") as fh:
            fh.seek(t.start)
            return fh.read(t.nbytes if n is None else n)

    emb_s, emb_d = h_src["model.embed_tokens.weight"], h_dst["model.language_model.embed_tokens.weight"]
    assert emb_d.shape == (403, emb_s.shape[1]) and raw(emb_d) == raw(emb_s, emb_d.nbytes)
    row = raw(emb_s)[198 * emb_s.row_bytes:199 * emb_s.row_bytes]
    assert raw(h_dst["model.image_newline"]) == row
    q = "model.vision_tower.vision_model.encoder.layers.2.self_attn.q_proj.weight"
    assert raw(h_dst[q]) == raw(h_src["model.vision_tower.vision_tower." + q.removeprefix("model.vision_tower.")])


@pytest.mark.parametrize("name", ["square", "wide"])  # no resampling; centre crop of a 32x40 frame
def test_converted_logits_equal_longva(loaded, rec, meta, name: str) -> None:
    """Video positions, the "\\n" after them and the answer tokens, both frame orders: LongVA's logits."""
    from vidsme.models import append_answer, build_inputs
    from vidsme.passes import forward_scored

    v = _video(meta, name)
    fr = rec[f"{name}/frames"]
    inputs, scored = build_inputs(loaded, [fr, np.ascontiguousarray(fr[::-1])], v["prompt"], truncate=False)
    inputs, ans, ans_pos = append_answer(loaded, inputs, v["answer"], eos=True)
    # positions by the real rule: frames x ceil(G/2)^2 with G = image_size / patch_size, plus the "\n"
    vc = loaded.model.config.vision_config
    per_frame = math.ceil(vc.image_size // vc.patch_size / 2) ** 2
    assert scored.numel() == v["frames"] * per_frame + 1 == rec[f"{name}/nat/video_logits"].shape[0]
    assert per_frame == v["tokens_per_frame"] == 4
    assert torch.equal(scored, torch.arange(int(scored[0]), int(scored[0]) + scored.numel()))
    # the text tokens are LongVA's: before the video, after its "\n", and the answer (+ <|im_end|>)
    ids, lv = inputs["input_ids"][0].tolist(), rec[f"{name}/input_ids"].tolist()
    a0 = lv.index(-200)
    assert int(scored[0]) == a0 and lv[a0 + 1] == 198
    assert ids[:a0] == lv[:a0] and ids[a0 + scored.numel():len(ids) - ans.numel()] == lv[a0 + 2:]
    assert ans.tolist() == rec[f"{name}/answer_ids"].tolist()
    with torch.inference_mode():
        out = forward_scored(loaded, inputs, torch.cat([scored, ans_pos])).float().numpy()
    n = scored.numel()
    for i, order in enumerate(("nat", "rev")):
        np.testing.assert_allclose(out[i, :n], rec[f"{name}/{order}/video_logits"], rtol=0, atol=TOL)
        np.testing.assert_allclose(out[i, n:], rec[f"{name}/{order}/answer_logits"], rtol=0, atol=TOL)
    # the comparison is sensitive: the two orders differ by far more than the tolerance
    assert np.abs(rec[f"{name}/nat/video_logits"] - rec[f"{name}/rev/video_logits"]).max() > 1000 * TOL


def test_resampled_frames_differ_only_by_resize_rounding(loaded, rec, meta) -> None:
    """48x64 frames are resized (PIL bicubic in LongVA, torchvision here): pixels within 1 intensity
    level; the model itself, fed LongVA's pixels, gives LongVA's logits."""
    from vidsme.models import build_inputs
    from vidsme.passes import forward_scored

    v = _video(meta, "resampled")
    fr = rec["resampled/frames"]
    inputs, scored = build_inputs(loaded, [fr, np.ascontiguousarray(fr[::-1])], v["prompt"])
    std = min(loaded.processor.video_processor.image_std)
    for i, order in enumerate(("nat", "rev")):
        d = np.abs(inputs["pixel_values_videos"][i].numpy() - rec[f"resampled/{order}/pixel_values"])
        assert 0 < d.max() <= 1.01 / 255 / std
    inputs["pixel_values_videos"] = torch.from_numpy(np.stack([rec["resampled/nat/pixel_values"], rec["resampled/rev/pixel_values"]]))
    with torch.inference_mode():
        out = forward_scored(loaded, inputs, scored).numpy()
    for i, order in enumerate(("nat", "rev")):
        np.testing.assert_allclose(out[i], rec[f"resampled/{order}/video_logits"], rtol=0, atol=TOL)


def test_model_pass_dump_equals_reduced_longva_logits(loaded, rec, meta, tmp_path: Path) -> None:
    """The workflow's shard pass (run_shard -> dump) holds the reduction of LongVA's logits."""
    from vidsme.dump import read_shard
    from vidsme.passes import positions_from_runs, run_shard
    from vidsme.reduce import ReduceSpec, reduce_logits

    spec = ReduceSpec()
    v = _video(meta, "square")
    summary = run_shard(loaded, {"square": rec["square/frames"]}, v["prompt"], spec, tmp_path / "shard.safetensors")
    assert summary["videos"]["square"] == {"status": "ok", "positions": 17, "nonfinite": {"nat": 0, "rev": 0}}
    header, entries = read_shard(tmp_path / "shard.safetensors")
    pos = positions_from_runs(json.loads(header["scored_positions"])["square"])
    assert len(pos) == 17 and pos[0] == rec["square/input_ids"].tolist().index(-200)
    for order in ("nat", "rev"):
        want = {k: t.numpy() for k, t in reduce_logits(torch.from_numpy(rec[f"square/{order}/video_logits"]), spec).items()}
        got = entries["square"][order]
        assert set(want) <= set(got)
        for k, w in want.items():
            if k == "argmax":
                assert np.array_equal(got[k], w), order
            else:
                np.testing.assert_allclose(got[k], w, rtol=1e-4, atol=1e-5, err_msg=f"{order}/{k}")


def _merged(tmp_path: Path, drop: tuple[str, ...] = ()) -> Path:
    """The fixture as one model.safetensors (no index), without the tensors in `drop`."""
    src = Path(shutil.copytree(CKPT, tmp_path / "single", ignore=shutil.ignore_patterns("model*")))
    infos = [t for f in sorted(CKPT.glob("model-*.safetensors")) for n, t in read_header(f)[0].items() if n not in drop]
    write_file(src / "model.safetensors", [OutTensor(t.name, t.dtype, t.shape, lambda t=t: copy_bytes(t.path, t.start, t.nbytes))
                                           for t in infos])
    return src


def test_single_file_checkpoint(tmp_path: Path, rec, meta) -> None:
    from vidsme.models import build_inputs, load_model
    from vidsme.passes import forward_scored

    dst = convert(_merged(tmp_path), tmp_path / "out")
    assert (dst / "model.safetensors").is_file() and not (dst / "model.safetensors.index.json").exists()
    lm = load_model({"id": str(dst)})
    inputs, scored = build_inputs(lm, rec["square/frames"], _video(meta, "square")["prompt"])
    with torch.inference_mode():
        out = forward_scored(lm, inputs, scored).numpy()
    np.testing.assert_allclose(out[0], rec["square/nat/video_logits"], rtol=0, atol=TOL)


def test_tied_embeddings_give_lm_head_from_the_embedding(tmp_path: Path) -> None:
    src = _merged(tmp_path, drop=("lm_head.weight",))
    with pytest.raises(LongVAError, match="no lm_head.weight and tie_word_embeddings is false"):
        convert(src, tmp_path / "out")
    _edit_config(src, tie_word_embeddings=True)
    h = read_header(convert(src, tmp_path / "out") / "model.safetensors")[0]
    head, emb = h["lm_head.weight"], h["model.language_model.embed_tokens.weight"]
    assert head.shape == emb.shape == (403, 48)
    assert b"".join(copy_bytes(head.path, head.start, head.nbytes)) == b"".join(copy_bytes(emb.path, emb.start, emb.nbytes))


# ----------------------------------------------------------------------------- bad input


def _copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(CKPT, tmp_path / "src"))


def _edit_config(src: Path, **kv) -> Path:
    cfg = json.loads((src / "config.json").read_text())
    for k, v in kv.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (src / "config.json").write_text(json.dumps(cfg))
    return src / "config.json"


@pytest.mark.parametrize("edit, match", [
    (dict(mm_vision_tower=None), "not a LongVA checkpoint"),
    (dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"]), "not a LongVA checkpoint"),
    (dict(mm_vision_tower="google/siglip-so400m-patch14-384"), "unknown vision tower mm_vision_tower = 'google/siglip"),
    (dict(mm_spatial_pool_mode="max"), "mm_spatial_pool_mode = 'max' is not supported"),
    (dict(mm_spatial_pool_stride=4), "mm_spatial_pool_stride = 4 is not supported"),
    (dict(mm_spatial_pool_mode=None), "mm_spatial_pool_mode = None is not supported"),
    (dict(mm_projector_type="linear"), "mm_projector_type = 'linear' is not supported"),
    (dict(mm_vision_select_feature="cls_patch"), "mm_vision_select_feature = 'cls_patch'"),
    (dict(mm_patch_merge_type="spatial_unpad"), "mm_patch_merge_type = 'spatial_unpad'"),
    (dict(mm_use_im_patch_token=None), None),  # LongVA's default (True) adds <im_patch>: one more row, still fits
])
def test_bad_config_is_named(tmp_path: Path, edit: dict, match: str | None) -> None:
    path = _edit_config(_copy(tmp_path), **edit)
    dst = tmp_path / "out"
    if match is None:
        convert(path.parent, dst)
        assert json.loads((dst / "config.json").read_text())["text_config"]["vocab_size"] == 404
        return
    with pytest.raises(LongVAError, match=match) as e:
        convert(path.parent, dst)
    assert str(path) in str(e.value)
    assert not dst.exists() and not list(tmp_path.glob(".out*"))


def test_missing_shard_truncated_shard_and_unknown_tensor(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    shard = src / "model-00003-of-00004.safetensors"
    data = shard.read_bytes()
    shard.unlink()
    with pytest.raises(LongVAError, match=r"model.safetensors.index.json: shard model-00003-of-00004.safetensors is listed but missing"):
        convert(src, tmp_path / "out")
    shard.write_bytes(data[:-100])
    with pytest.raises(LongVAError, match=r"model-00003-of-00004.safetensors: tensor '.+': byte range .* truncated"):
        convert(src, tmp_path / "out")
    shard.write_bytes(data)
    h, _ = read_header(shard)
    t = next(iter(h.values()))
    extra = OutTensor("model.some_adapter.weight", t.dtype, t.shape, lambda: [b"\0" * t.nbytes])
    last = src / "model-00004-of-00004.safetensors"
    blob = last.read_bytes()
    write_file(last, [OutTensor(n, i.dtype, i.shape, lambda i=i: [blob[i.start:i.end]]) for n, i in read_header(last)[0].items()]
               + [extra])
    with pytest.raises(LongVAError, match=r"model-00004-of-00004.safetensors: tensor model.some_adapter.weight has no place"):
        convert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_pickle_only_folder_and_not_a_folder(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    for f in src.glob("model*"):
        f.unlink()
    (src / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(LongVAError, match="no model.safetensors .*pytorch_model.bin: pickle files are never loaded"):
        convert(src, tmp_path / "out")
    with pytest.raises(LongVAError, match="not a folder"):
        convert(tmp_path / "nope", tmp_path / "out")


def test_vision_tensors_must_match_tower_config(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    vt = json.loads((src / "vision_tower" / "config.json").read_text())
    (src / "vision_tower" / "config.json").write_text(json.dumps({**vt, "num_hidden_layers": 24}))
    with pytest.raises(LongVAError, match=r"vision tensors \(3 layers.*do not match the vision tower config \(24 layers"):
        convert(src, tmp_path / "out")
    # --vision-tower points elsewhere: a folder with the right config fixes it
    good = Path(shutil.copytree(CKPT / "vision_tower", tmp_path / "tower"))
    assert (convert(src, tmp_path / "out", vision_tower=good) / "config.json").is_file()


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path, converted: Path) -> None:
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    with pytest.raises(LongVAError, match="already exists"):
        convert(CKPT, dst)
    assert (dst / "keep.txt").read_text() == "mine"
    convert(CKPT, dst, overwrite=True)
    assert not (dst / "keep.txt").exists() and sorted(p.name for p in dst.iterdir()) == sorted(p.name for p in converted.iterdir())


def test_failed_write_leaves_no_folder(tmp_path: Path, monkeypatch) -> None:
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(longva, "write_file", boom)
    with pytest.raises(OSError, match="disk full"):
        convert(CKPT, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_cli(tmp_path: Path, capsys) -> None:
    assert longva.main([str(CKPT), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "LLaVA-OneVision layout, 403 vocabulary rows" in out and "vocabulary cut from 414 to 403 rows" in out
    assert longva.main([str(CKPT), str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_tensorfile_roundtrip_with_reference_reader(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.array([1, -2, 3], dtype=np.int64)
    write_file(tmp_path / "x.safetensors", [OutTensor("a", "F32", (3, 4), lambda: [a.tobytes()[:20], a.tobytes()[20:]]),
                                           OutTensor("b", "I64", (3,), lambda: [b.tobytes()])], {"format": "pt"})
    back = load_file(tmp_path / "x.safetensors")
    assert np.array_equal(back["a"], a) and np.array_equal(back["b"], b)
    h, meta = read_header(tmp_path / "x.safetensors")
    assert meta == {"format": "pt"} and h["a"].row_bytes == 16 and h["b"].shape == (3,)
    with pytest.raises(TensorFileError, match=r"x.safetensors: tensor 'a': got 20 bytes, expected 48"):
        write_file(tmp_path / "x.safetensors", [OutTensor("a", "F32", (3, 4), lambda: [a.tobytes()[:20]])])
    (tmp_path / "bad.safetensors").write_bytes(b"\x05\0\0\0\0\0\0\0{oops")
    with pytest.raises(TensorFileError, match="bad.safetensors: safetensors header is not JSON"):
        read_header(tmp_path / "bad.safetensors")

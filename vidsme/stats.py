"""Per-video motion (k1) and illumination (k3) statistics on the F sampled frames (METHOD section 3).

* Grayscale: OpenCV ``COLOR_RGB2GRAY``.
* k1: dense Farneback flow (pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5,
  poly_sigma 1.2, flags 0) for each consecutive pair; population variance of all elements of
  the H x W x 2 field (x and y pooled); mean over the F-1 pairs, 0.0 when there is no pair.
* k3: population std (ddof 0) of the per-frame mean gray level (0-255).

``resize`` (optional, max side in pixels) shrinks frames with ``INTER_AREA`` before the flow only
(flow cost grows with the pixel count; k3 is cheap and stays exact). Note that flow is measured
in pixels, so k1 at a smaller size is on a smaller scale (about ``scale**2`` times native).
"""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from vidsme.atomic import write_text
from vidsme.frames import load_frames, read_manifest

__all__ = ["FARNEBACK", "to_gray", "motion_k1", "illumination_k3", "stats_shard", "STATS_COLUMNS"]

FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
STATS_COLUMNS = ("video_id", "n_decoded", "k1", "k3", "status", "reason")


def to_gray(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(F, H, W, 3)`` -> uint8 gray ``(F, H, W)``; gray ``(F, H, W)`` passes through."""
    a = np.asarray(frames)
    if a.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {a.dtype}")
    if a.ndim == 3:
        return a
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3) RGB or (F, H, W) gray, got shape {a.shape}")
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in a]) if len(a) else a[..., 0]


def _shrink(gray: np.ndarray, resize: int | None) -> np.ndarray:
    if resize is None:
        return gray
    if resize < 8:
        raise ValueError(f"resize must be >= 8 pixels (max side), got {resize}")
    h, w = gray.shape[1:]
    s = resize / max(h, w)
    if s >= 1:
        return gray
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.stack([cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in gray])


def motion_k1(frames: np.ndarray, resize: int | None = None) -> float:
    """Mean over consecutive pairs of the population variance of the Farneback flow field."""
    gray = _shrink(to_gray(frames), resize)
    if len(gray) < 2:
        return 0.0
    vs = [
        float(np.var(cv2.calcOpticalFlowFarneback(a, b, None, **FARNEBACK), dtype=np.float64))
        for a, b in zip(gray[:-1], gray[1:])
    ]
    return float(np.mean(vs))


def illumination_k3(frames: np.ndarray) -> float:
    """Population std over frames of the mean gray level (0-255)."""
    gray = to_gray(frames)
    if len(gray) == 0:
        raise ValueError("illumination_k3 needs at least one frame")
    flat = gray.reshape(len(gray), -1)
    # exact integer moments of the per-frame sums S_i (P pixels): var = (F sum S^2 - (sum S)^2) / (F P)^2
    sums = [int(v) for v in flat.sum(axis=1, dtype=np.int64)]
    f, p = len(sums), flat.shape[1]
    num = f * sum(v * v for v in sums) - sum(sums) ** 2
    return math.sqrt(num) / (f * p)


def _fmt(x: float | int | None) -> str:
    if x is None:
        return ""
    return repr(float(x)) if isinstance(x, float) else str(x)


def stats_shard(
    frames_npz: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    out_tsv: str | os.PathLike[str],
    resize: int | None = None,
) -> list[tuple[str, int | None, float, float, str, str]]:
    """k1, k3 of every ``ok`` video of a frame shard; skipped videos are carried with their reason.

    Columns: ``video_id, n_decoded, k1, k3, status, reason`` (k1, k3 empty when skipped).
    Written atomically; returns the rows.
    """
    rows: list[tuple[str, int | None, float, float, str, str]] = []
    entries = read_manifest(manifest)
    frames = load_frames(frames_npz) if any(e.status == "ok" for e in entries) else {}
    for e in entries:
        if e.status != "ok":
            rows.append((e.video_id, e.n_decoded, math.nan, math.nan, e.status, e.reason))
            continue
        if e.video_id not in frames:
            raise ValueError(f"{frames_npz}: no frames for video {e.video_id!r} listed ok in {manifest}")
        f = frames[e.video_id]
        rows.append((e.video_id, e.n_decoded, motion_k1(f, resize), illumination_k3(f), "ok", ""))
    lines = ["\t".join(STATS_COLUMNS)]
    for vid, n, k1, k3, status, reason in rows:
        ks = ("", "") if status != "ok" else (_fmt(k1), _fmt(k3))
        lines.append("\t".join((vid, _fmt(n), *ks, status, reason)))
    write_text(out_tsv, "\n".join(lines) + "\n")
    return rows

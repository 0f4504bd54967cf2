"""Model-free per-video features for the blind baseline (`vidsme.blind`), from what the workflow has.

Nothing here opens a video: the features come from the sampled frames (the frames shard), the
frames manifest's container facts, the statistics table (k1, k3, q, r) and the sample sheet.

Feature groups (column names are ``group:name``):

* ``stats``: k1, k3, q, r (``stats/F{F}/qr.tsv``).
* ``container``: width, height, aspect, fps, declared and decoded frame counts and their
  difference, duration, log file size, log bit rate, bits per pixel per frame, and one indicator
  per codec and pixel format (the frames manifest).
* ``colour``: per RGB channel mean, std and skewness, saturation mean and std, and an 8-bin
  histogram per channel (fractions of pixels).
* ``texture``: Sobel gradient magnitude (mean over frames, and its std across frames), Laplacian
  variance, and the share of 8x8-block DCT energy (AC only) in low, mid and high frequencies
  plus the log AC energy.
* ``temporal``: mean absolute difference of consecutive sampled frames (mean, std, max over
  pairs), first-to-last difference, brightness slope over the sampled frames.
* ``text`` (when the sheet has text): characters and words of question, options, answer,
  instruction and caption, number of options; ``bow``: a binary bag of words over those texts.

Frames larger than ``max_side`` pixels are shrunk first (``INTER_AREA``): the descriptors are
coarse, and this bounds their cost on full-resolution videos.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

log = logging.getLogger("vidsme.blind")

GROUPS = ("stats", "container", "visual", "text")  # what `blind.features` can list (visual = colour, texture, temporal)
TEXT_COLUMNS = ("question", "options", "answer", "instruction", "caption")
_BINS = 8


def _shrink(frames: np.ndarray, max_side: int) -> np.ndarray:
    h, w = frames.shape[1:3]
    s = max_side / max(h, w)
    if s >= 1:
        return frames
    size = (max(8, round(w * s)), max(8, round(h * s)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def _moments(counts: np.ndarray) -> tuple[float, float, float]:
    """Mean, std and skewness (in [0, 1] units) of uint8 values given their 256-bin counts (exact)."""
    v = np.arange(256) / 255.0
    w = counts / counts.sum()
    mean = float(w @ v)
    d = v - mean
    var = float(w @ d**2)
    sd = math.sqrt(var)
    return mean, sd, float(w @ d**3) / sd**3 if sd > 0 else 0.0


def _dct_bands(gray: np.ndarray) -> tuple[float, float, float, float]:
    """Share of 8x8-block AC energy in low (u+v <= 2), mid (3..6), high (>= 7) bands; log AC energy."""
    f, h, w = gray.shape
    h8, w8 = h - h % 8, w - w % 8
    if h8 == 0 or w8 == 0:
        return (math.nan,) * 4
    from scipy.fft import dctn

    blocks = gray[:, :h8, :w8].reshape(f, h8 // 8, 8, w8 // 8, 8).transpose(0, 1, 3, 2, 4).reshape(-1, 8, 8)
    energy = (dctn(blocks, type=2, norm="ortho", axes=(1, 2)).astype(np.float64) ** 2).sum(axis=0)  # = cv2.dct per block
    uv = np.add.outer(np.arange(8), np.arange(8))
    energy[0, 0] = 0.0  # DC: the brightness, already in colour
    total = energy.sum()
    if total <= 0:
        return 0.0, 0.0, 0.0, 0.0
    low, mid, high = (float(energy[m].sum() / total) for m in (uv <= 2, (uv > 2) & (uv <= 6), uv > 6))
    return low, mid, high, float(np.log(total / len(blocks)))


def visual_features(frames: np.ndarray, max_side: int = 128) -> dict[str, float]:
    """``colour``, ``texture`` and ``temporal`` features of uint8 RGB frames ``(F, H, W, 3)``."""
    a = np.asarray(frames)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3 or len(a) < 1:
        raise ValueError(f"frames must be uint8 (F, H, W, 3) with F >= 1, got {a.dtype} {a.shape}")
    a = _shrink(a, max_side)
    x = a.astype(np.float32) / 255.0
    out: dict[str, float] = {}
    for c, name in enumerate("rgb"):
        counts = np.bincount(a[..., c].ravel(), minlength=256)
        out[f"colour:{name}_mean"], out[f"colour:{name}_std"], out[f"colour:{name}_skew"] = _moments(counts)
        hist = counts.reshape(_BINS, 256 // _BINS).sum(axis=1) / counts.sum()
        out.update({f"colour:{name}_hist{b}": float(v) for b, v in enumerate(hist)})
    sat = np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2HSV)[..., 1] for f in a]).astype(np.float32) / 255.0
    out["colour:sat_mean"], out["colour:sat_std"] = float(sat.mean()), float(sat.std())

    gray = np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in a]).astype(np.float32) / 255.0
    grad = np.array([float(np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)).mean()) for g in gray])
    out["texture:edge_mean"], out["texture:edge_std"] = float(grad.mean()), float(grad.std())
    out["texture:laplacian_var"] = float(np.mean([cv2.Laplacian(g, cv2.CV_32F).var() for g in gray]))
    low, mid, high, energy = _dct_bands(gray)
    out.update({"texture:dct_low": low, "texture:dct_mid": mid, "texture:dct_high": high, "texture:dct_log_energy": energy})

    diffs = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2, 3)) if len(x) > 1 else np.zeros(1)
    out["temporal:diff_mean"], out["temporal:diff_std"], out["temporal:diff_max"] = float(diffs.mean()), float(diffs.std()), float(diffs.max())
    out["temporal:first_last"] = float(np.abs(x[-1] - x[0]).mean())
    bright = gray.mean(axis=(1, 2))
    out["temporal:brightness_slope"] = float(np.polyfit(np.arange(len(bright)), bright, 1)[0]) if len(bright) > 1 else 0.0
    return out


def _num(v: str | None) -> float:
    try:
        return float(v) if v not in (None, "") else math.nan
    except ValueError:
        return math.nan


def container_features(facts: Mapping[str, str] | None, n_decoded: int | None) -> dict[str, float]:
    """``container`` features from a manifest row's container facts (NaN where the container is silent)."""
    f = dict(facts or {})
    w, h, n = _num(f.get("width")), _num(f.get("height")), float(n_decoded) if n_decoded is not None else math.nan
    size, rate, declared = _num(f.get("file_bytes")), _num(f.get("bit_rate")), _num(f.get("declared_frames"))
    out = {
        "container:width": w, "container:height": h, "container:aspect": w / h if h > 0 else math.nan,
        "container:fps": _num(f.get("fps")), "container:declared_frames": declared, "container:decoded_frames": n,
        "container:declared_minus_decoded": declared - n, "container:duration_s": _num(f.get("duration_s")),
        "container:log_file_bytes": math.log(size) if size > 0 else math.nan,
        "container:log_bit_rate": math.log(rate) if rate > 0 else math.nan,
        "container:bits_per_pixel_frame": 8 * size / (w * h * n) if w * h * n > 0 else math.nan,
    }
    for key in ("codec", "pix_fmt"):
        if f.get(key):
            out[f"container:{key}={f[key]}"] = 1.0
    return out


def _options(text: str) -> list[str]:
    try:
        v = json.loads(text) if text else []
    except json.JSONDecodeError:
        return []
    return v if isinstance(v, list) else []


def sheet_texts(sheet: pd.DataFrame) -> list[str]:
    """The text columns the sheet has with at least one non-empty value."""
    return [c for c in TEXT_COLUMNS if c in sheet.columns and sheet[c].fillna("").astype(str).str.strip().ne("").any()]


def text_features(sheet: pd.DataFrame, columns: Sequence[str], bow_max: int) -> pd.DataFrame:
    """``text`` lengths and the ``bow`` bag of words, one row per sheet row (index: video_id).

    The vocabulary (the ``bow_max`` most frequent words, over all videos) uses no label."""
    cols: dict[str, np.ndarray] = {}
    texts = sheet[list(columns)].fillna("").astype(str)
    for c in columns:
        cols[f"text:{c}_chars"] = texts[c].str.len().to_numpy(float)
        cols[f"text:{c}_words"] = texts[c].str.split().str.len().to_numpy(float)
    if "options" in columns:
        cols["text:n_options"] = np.array([float(len(_options(t))) for t in texts["options"]])
    if bow_max > 0:
        from sklearn.feature_extraction.text import CountVectorizer

        joined = texts.apply(" ".join, axis=1).tolist()
        try:
            vec = CountVectorizer(max_features=bow_max, binary=True, lowercase=True, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
            bow = vec.fit_transform(joined).toarray().astype(float)
            cols.update({f"bow:{w}": bow[:, j] for j, w in enumerate(vec.get_feature_names_out())})
        except ValueError:  # no word at all in any text
            log.warning("bag of words: the sheet's texts contain no word; bow features off")
    return pd.DataFrame(cols, index=sheet["video_id"].to_numpy())


def clean_features(x: pd.DataFrame) -> pd.DataFrame:
    """The documented fallbacks for unusable columns (each one logged, naming the feature).

    * no finite value for any video: dropped;
    * finite for some videos only (NaN/inf elsewhere): kept, the missing ones set to the median of
      the others, plus an indicator column ``{name}:missing`` (missingness can be the shift);
    * constant (one value for every video): dropped.
    Raises ``ValueError`` when nothing is left."""
    x = x.astype(float).replace([np.inf, -np.inf], np.nan)
    keep: dict[str, np.ndarray] = {}
    for c in x.columns:
        v = x[c].to_numpy()
        bad = np.isnan(v)
        if bad.all():
            log.warning("blind feature %s: no value for any video; dropped", c)
            continue
        if bad.any():
            first = x.index[np.flatnonzero(bad)[0]]
            log.warning("blind feature %s: missing for %d of %d videos (first: %s); median-filled, indicator %s:missing added",
                        c, int(bad.sum()), len(v), first, c)
            v = np.where(bad, np.median(v[~bad]), v)
            keep[f"{c}:missing"] = bad.astype(float)
        if np.all(v == v[0]):
            log.warning("blind feature %s: constant (%g for every video that has it); dropped", c, v[0])
            continue
        keep[c] = v
    if not keep:
        raise ValueError(f"blind baseline: no usable feature (all {x.shape[1]} are constant or missing for every video)")
    return pd.DataFrame(keep, index=x.index)


def feature_group(name: str) -> str:
    """The group of a feature column (its prefix before ':')."""
    return name.split(":", 1)[0]


def select(groups: Iterable[str]) -> set[str]:
    """Column prefixes enabled by `blind.features`."""
    groups = list(groups)
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise ValueError(f"config key blind.features: unknown group(s) {unknown}; known: {list(GROUPS)}")
    prefixes = set(groups) - {"visual", "text"}
    if "visual" in groups:
        prefixes |= {"colour", "texture", "temporal"}
    if "text" in groups:
        prefixes |= {"text", "bow"}
    return prefixes

"""Adaptive Sharma-Mittal parameters (q, r) from (k1, k3) over the evaluation set (METHOD section 4).

Modes (transductive: computed over all usable videos of the set, members and non-members):

* ``minmax`` (the paper): ``q = 1 + beta1 * (max k1 - k1) / (max k1 - min k1)``,
  ``r = 1 + beta2 * (k3 - min k3) / (max k3 - min k3)``; q in [1, 1 + beta1], r in [1, 1 + beta2].
  High motion -> q near 1 (the highest-motion video gets q = 1 exactly); high illumination
  variation -> larger r.
* ``rank``: the same map with the min-max position of the value replaced by the min-max position
  of its rank (average ranks for ties, so tied videos get equal q; the extremes still get exactly
  1 and 1 + beta1). One extreme outlier cannot squeeze the other videos into a corner of the
  range: distinct values are evenly spaced whatever their spread.
* ``fixed``: every video gets ``(fixed_q, fixed_r)`` (the ablation without adaptation).

max == min (all videos tie on a feature, or a single video): every video gets the midpoint,
``q = 1 + beta1 / 2`` (resp. ``r = 1 + beta2 / 2``). Reasons: the min-max formula is 0/0 and no
video is more or less "moving" than another, so neither end of the range is justified; the
midpoint is what ``rank`` gives to tied values (average rank), so both modes agree on ties; and it
keeps q away from the q = 1 limit. The choice cannot change the ranking of videos by a score that
uses one shared (q, r) anyway.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from vidsme.atomic import write_text

__all__ = ["map_qr", "map_qr_from", "unit_position", "qr_table", "qr_table_from", "MODES", "QR_COLUMNS", "SKIPPED_COLUMNS"]

Mode = Literal["minmax", "rank", "fixed"]
MODES: tuple[str, ...] = ("minmax", "rank", "fixed")  # the config's qr.mode choices
QR_COLUMNS = ("video_id", "n_decoded", "k1", "k3", "q", "r")
SKIPPED_COLUMNS = ("video_id", "n_decoded", "status", "reason")


def _check(name: str, x: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"{name} has a non-finite value at index {int(bad[0])}: {x[bad[0]]!r}")


def unit_position(x: np.ndarray, mode: Literal["minmax", "rank"]) -> np.ndarray:
    """Position of each value in [0, 1]: min-max or rank based; 0.5 for all when all values tie."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    lo, hi = (x.min(), x.max()) if n else (0.0, 0.0)
    if n == 0 or hi == lo:
        return np.full(n, 0.5)
    if mode == "minmax":
        return np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ranks = np.empty(n)
    start = 0
    for end in np.append(np.flatnonzero(np.diff(xs) != 0) + 1, n):  # runs of equal values
        ranks[order[start:end]] = (start + end - 1) / 2  # average 0-based rank of the run
        start = end
    return (ranks - ranks.min()) / (ranks.max() - ranks.min())  # extremes at exactly 0 and 1


def map_qr(
    k1: Sequence[float] | np.ndarray,
    k3: Sequence[float] | np.ndarray,
    beta1: float = 1.0,
    beta2: float = 0.1,
    mode: Mode = "minmax",
    fixed_q: float | None = None,
    fixed_r: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-video ``(q, r)`` arrays from motion ``k1`` and illumination ``k3`` (see module doc).

    ``fixed_q``/``fixed_r`` are used (and required) only with ``mode="fixed"``.
    """
    a1, a3 = np.asarray(k1, dtype=np.float64), np.asarray(k3, dtype=np.float64)
    if a1.ndim != 1 or a1.shape != a3.shape:
        raise ValueError(f"k1 and k3 must be 1-D of equal length, got shapes {a1.shape} and {a3.shape}")
    _check("k1", a1)
    _check("k3", a3)
    for name, b in (("beta1", beta1), ("beta2", beta2)):
        if not (math.isfinite(b) and b >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {b!r}")
    if mode == "fixed":
        for name, v in (("fixed_q", fixed_q), ("fixed_r", fixed_r)):
            if v is None or not (math.isfinite(v) and v > 0):
                raise ValueError(f"mode='fixed' needs {name} finite and > 0, got {v!r}")
        return np.full(a1.size, float(fixed_q)), np.full(a1.size, float(fixed_r))  # type: ignore[arg-type]
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    q = 1.0 + beta1 * (1.0 - unit_position(a1, mode))
    r = 1.0 + beta2 * unit_position(a3, mode)
    return q, r


def _read_stats(path: str | os.PathLike[str]) -> pd.DataFrame:
    t = pd.read_csv(path, sep="\t", dtype={"video_id": str, "status": str, "reason": str}, keep_default_na=False, na_values={"k1": [""], "k3": [""], "n_decoded": [""]})
    need = {"video_id", "n_decoded", "k1", "k3", "status", "reason"}
    if not need <= set(t.columns):
        raise ValueError(f"{path}: stats table lacks columns {sorted(need - set(t.columns))}")
    bad = t[~t.status.isin(["ok", "skipped"])]
    if len(bad):
        raise ValueError(f"{path}: bad status {bad.status.iloc[0]!r} for video {bad.video_id.iloc[0]!r}")
    return t


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return " ".join(str(v).split())


def _write(path: str | os.PathLike[str], columns: Sequence[str], rows: list[tuple[object, ...]]) -> None:
    lines = ["\t".join(columns)] + ["\t".join(_fmt(v) for v in row) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def qr_table(
    stats_tsvs: Sequence[str | os.PathLike[str]],
    out_tsv: str | os.PathLike[str],
    out_skipped: str | os.PathLike[str],
    **qr_cfg: object,
) -> pd.DataFrame:
    """Concatenate shard stats tables, map (q, r) over the ``ok`` videos, write both tables.

    ``out_tsv``: ``video_id, n_decoded, k1, k3, q, r`` (ok videos, input order);
    ``out_skipped``: ``video_id, n_decoded, status, reason``. ``qr_cfg`` goes to :func:`map_qr`.
    Raises ``ValueError`` on duplicate video ids or when no video is usable.
    """
    if not stats_tsvs:
        raise ValueError("qr_table needs at least one stats table")
    t = pd.concat([_read_stats(p) for p in stats_tsvs], ignore_index=True)
    dup = t.video_id[t.video_id.duplicated()]
    if len(dup):
        raise ValueError(f"video_id {dup.iloc[0]!r} appears in more than one stats row")
    ok = t[t.status == "ok"]
    if ok.empty:
        raise ValueError(f"no usable video in {len(t)} stats rows ({', '.join(map(str, stats_tsvs))})")
    for col in ("k1", "k3"):
        missing = ok.video_id[ok[col].isna()]
        if len(missing):
            raise ValueError(f"video {missing.iloc[0]!r} is ok but has no {col}")
    q, r = map_qr(ok.k1.to_numpy(float), ok.k3.to_numpy(float), **qr_cfg)  # type: ignore[arg-type]
    return _write_both(t, q, r, out_tsv, out_skipped)


def _write_both(t: pd.DataFrame, q: np.ndarray, r: np.ndarray, out_tsv: str | os.PathLike[str], out_skipped: str | os.PathLike[str]) -> pd.DataFrame:
    """Write the (q, r) table of the ok rows of ``t`` and the table of the others; return the first."""
    ok = t[t.status == "ok"]
    out = pd.DataFrame({"video_id": ok.video_id.to_numpy(), "n_decoded": ok.n_decoded.astype("int64").to_numpy(), "k1": ok.k1.to_numpy(float), "k3": ok.k3.to_numpy(float), "q": q, "r": r})
    _write(out_tsv, QR_COLUMNS, list(out.itertuples(index=False, name=None)))
    sk = t[t.status != "ok"]
    _write(out_skipped, SKIPPED_COLUMNS, [(v, None if pd.isna(n) else int(n), s, why) for v, n, s, why in zip(sk.video_id, sk.n_decoded, sk.status, sk.reason)])
    return out


def map_qr_from(
    ref_k1: Sequence[float] | np.ndarray,
    ref_k3: Sequence[float] | np.ndarray,
    k1: Sequence[float] | np.ndarray,
    k3: Sequence[float] | np.ndarray,
    beta1: float = 1.0,
    beta2: float = 0.1,
    mode: Mode = "minmax",
    fixed_q: float | None = None,
    fixed_r: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(q, r)`` of videos OUTSIDE a reference set, by the reference set's own mapping (not refitted).

    A value's unit position is interpolated linearly between the reference values' positions (those
    :func:`map_qr` gives them) and clipped to [0, 1] beyond the reference range. Hence a reference
    video's own (k1, k3) gets exactly its :func:`map_qr` value, minmax is the reference's min-max map
    clipped, and adding videos scored this way never changes any reference video's (q, r)."""
    if mode == "fixed":
        return map_qr(k1, k3, beta1, beta2, mode, fixed_q, fixed_r)
    r1, r3 = np.asarray(ref_k1, dtype=np.float64), np.asarray(ref_k3, dtype=np.float64)
    a1, a3 = np.asarray(k1, dtype=np.float64), np.asarray(k3, dtype=np.float64)
    if r1.size == 0 or r1.shape != r3.shape or a1.ndim != 1 or a1.shape != a3.shape:
        raise ValueError(f"need a non-empty reference and 1-D k1, k3 of equal length; got shapes {r1.shape}, {r3.shape}, {a1.shape}, {a3.shape}")
    for name, x in (("reference k1", r1), ("reference k3", r3), ("k1", a1), ("k3", a3)):
        _check(name, x)
    ref_q, ref_r = map_qr(r1, r3, beta1, beta2, mode)

    def interp(ref: np.ndarray, mapped: np.ndarray, x: np.ndarray) -> np.ndarray:
        xs, first = np.unique(ref, return_index=True)
        if xs.size == 1:  # every reference video ties: all get the midpoint, so does everyone else
            return np.full(x.size, mapped[0])
        return np.interp(x, xs, mapped[first])  # constant beyond the ends = clipped

    return interp(r1, ref_q, a1), interp(r3, ref_r, a3)


def qr_table_from(
    reference_qr: str | os.PathLike[str],
    stats_tsvs: Sequence[str | os.PathLike[str]],
    out_tsv: str | os.PathLike[str],
    out_skipped: str | os.PathLike[str],
    **qr_cfg: object,
) -> pd.DataFrame:
    """:func:`qr_table` for videos outside the evaluation set: (q, r) by the evaluation set's mapping
    (its ``qr.tsv``, :func:`map_qr_from`), so the evaluation set's own (q, r) stay as they are."""
    ref = pd.read_csv(reference_qr, sep="\t", dtype={"video_id": str})
    t = pd.concat([_read_stats(p) for p in stats_tsvs], ignore_index=True) if stats_tsvs else pd.DataFrame(columns=list(SKIPPED_COLUMNS) + ["k1", "k3"])
    both = sorted(set(ref.video_id) & set(t.video_id))
    if both:
        raise ValueError(f"video {both[0]!r} is in the reference set {reference_qr} and in the set to map")
    ok = t[t.status == "ok"]
    q, r = map_qr_from(ref.k1.to_numpy(float), ref.k3.to_numpy(float), ok.k1.to_numpy(float), ok.k3.to_numpy(float), **qr_cfg)  # type: ignore[arg-type]
    return _write_both(t, q, r, out_tsv, out_skipped)

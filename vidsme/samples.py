"""Sample sheets: which videos to attack, their labels and prompt fields.

A sheet is a TSV with a header. Required columns: ``video_id`` (unique, ``[A-Za-z0-9_.-]+``),
``path`` (absolute, or relative to ``video_root``) and ``label`` (1 = member, 0 = non-member).
Optional: ``split`` (``eval`` by default), ``question``, ``options`` (JSON list), ``answer``,
``instruction``, ``caption``; other columns are kept as they are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

REQUIRED = ("video_id", "path", "label")
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


class SheetError(ValueError):
    """A sample sheet that cannot be used; the message names the file, row and column."""


def read_sheet(path: str | Path, video_root: str | Path | None = None, split: str | None = None) -> pd.DataFrame:
    """Read and validate a sample sheet; resolve video paths against ``video_root``."""
    path = Path(path)
    if not path.is_file():
        raise SheetError(f"{path}: sample sheet not found")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise SheetError(f"{path}: missing column(s) {', '.join(missing)} (required: {', '.join(REQUIRED)})")
    if "split" not in df.columns:
        df["split"] = "eval"
    if split is not None:
        df = df[df["split"] == split].reset_index(drop=True)
    if df.empty:
        raise SheetError(f"{path}: no rows" + (f" with split == {split!r}" if split else ""))
    for i, vid in enumerate(df["video_id"]):
        if not _ID.match(vid):
            raise SheetError(f"{path}: row {i + 2}: bad video_id {vid!r} (allowed: letters, digits, _ . -)")
    dup = df["video_id"][df["video_id"].duplicated()].unique()
    if len(dup):
        raise SheetError(f"{path}: duplicate video_id(s): {', '.join(dup[:5])}")
    bad = df.index[~df["label"].isin(["0", "1"])]
    if len(bad):
        i = bad[0]
        raise SheetError(f"{path}: row {i + 2}: label must be 0 or 1, got {df['label'][i]!r} (video {df['video_id'][i]})")
    df["label"] = df["label"].astype(int)
    if "options" in df.columns:
        for i, opt in enumerate(df["options"]):
            if opt and not isinstance(_json_list(opt), list):
                raise SheetError(f"{path}: row {i + 2}: options must be a JSON list, got {opt[:40]!r}")
    root = Path(video_root) if video_root else path.parent
    df["path"] = [str(p if Path(p).is_absolute() else root / p) for p in df["path"]]
    return df


def _json_list(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def shard_rows(sheet: pd.DataFrame, shard: int, shard_size: int) -> pd.DataFrame:
    """Rows of one shard: a contiguous slice of the sheet."""
    return sheet.iloc[shard * shard_size : (shard + 1) * shard_size]

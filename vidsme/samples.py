"""Sample sheets: which videos to attack, their labels and prompt fields.

A sheet is a TSV with a header. Required columns: ``video_id`` (unique, ``[A-Za-z0-9_.-]+``),
``path`` (absolute, or relative to ``video_root``) and ``label`` (1 = member, 0 = non-member).
Optional: ``split`` (``eval`` by default), ``question``, ``options`` (JSON list), ``answer``,
``instruction``, ``caption``; other columns are kept as they are.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise SheetError(f"{path}: sample sheet is empty (expected a TSV header with {', '.join(REQUIRED)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SheetError(f"{path}: not a readable TSV sample sheet ({first})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise SheetError(f"{path}: missing column(s) {', '.join(missing)} (required: {', '.join(REQUIRED)})")
    if "split" not in df.columns:
        df["split"] = "eval"
    splits = sorted(set(df["split"]))
    if split is not None:
        df = df[df["split"] == split].reset_index(drop=True)
    if df.empty:
        raise SheetError(f"{path}: no rows" + (f" with split == {split!r} (splits in the sheet: {', '.join(map(repr, splits))})"
                                               if split and splits else ""))
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


def check_eval_rows(df: pd.DataFrame, path: str | Path, answer_prompt: Mapping[str, Any] | None = None) -> None:
    """What the evaluated rows must give before any job runs: at least 2 members and 2 non-members
    (the metrics need both), and with the answer slice on (``answer_prompt``: the configured prompt)
    a question/options/answer or instruction/caption on every row. Raises `SheetError` naming the
    file (and the row)."""
    n1, n0 = int((df["label"] == 1).sum()), int((df["label"] == 0).sum())
    if n1 < 2 or n0 < 2:
        raise SheetError(f"{path}: the evaluated rows (split == 'eval') have {n1} member(s) and {n0} non-member(s); "
                         "the metrics need at least 2 of each")
    if answer_prompt is not None:
        from vidsme.prompts import answer_item

        for row in df.to_dict("records"):
            try:
                answer_item(row, answer_prompt)
            except ValueError as e:  # the message names the video
                raise SheetError(f"{path}: {e}") from None


def n_shards(n_rows: int, shard_size: int) -> int:
    """Number of shards of `n_rows` rows (at least one, so that an empty set still plans its steps)."""
    return max(1, math.ceil(n_rows / shard_size))


def shard_rows(sheet: pd.DataFrame, shard: int, shard_size: int, n_shards: int | None = None) -> pd.DataFrame:
    """Rows of one shard: a contiguous slice of the sheet. With `n_shards` the last shard also takes
    any rows beyond ``n_shards * shard_size`` (a sheet that grew after the shards were planned loses
    no video)."""
    stop = None if n_shards is not None and shard == n_shards - 1 else (shard + 1) * shard_size
    return sheet.iloc[shard * shard_size : stop]

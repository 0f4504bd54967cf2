"""The paper's evaluation settings: split lists -> one-row-per-video sample sheets.

The authors released their member / non-member lists as JSON files (a list of objects with a
``video`` path, relative to a folder of videos, and QA or caption fields) in the public repository
LiQiiiii/Vid-SME. ``split_files`` finds them in a local folder or fetches them at a pinned commit,
checking each file's SHA-256 (or git blob id where no SHA-256 is known); ``paper_sheet`` turns them into a sample sheet
(see ``vidsme.samples``): one row per unique video, because the attacked positions are the video
tokens, which the question text after the video cannot change. The Caption setting draws its
members and non-members by a seeded sample of the released sizes (1,027 each).

    python -m vidsme.paper nextqa --splits DIR --video-root DIR --out sheet.tsv
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

REPO = "LiQiiiii/Vid-SME"
# Commit that added video_json/*.json. METHOD.md cites 1c50a95607f9df8c56b964c836c15c43c4e92c84,
# whose video_json/ lists have the same git blob ids (it only deleted video_json/.DS_Store).
COMMIT = "cbe2179e9fab50c7b1aed24e2fbdf133a00f63cd"
BASE_URL = "https://raw.githubusercontent.com/{repo}/{commit}/video_json/{name}"

CHECKSUMS: dict[str, str] = {
    "nextqa_train_official.json": "b9dd6d912cb9c69d3d6d75672e0027ffae52f47cf090c707b7d12da4f3462ad4",
    "nextqa_test_official.json": "e1920d0de389e06cb86085533b8f5f075cb2f27b553a1f62adbf4e043f2e2646",
    "cinepine_mia.json": "f06f81dadc61399b51e3e305ff4db36d5f4cb6433fe014bfefe2a3bf69a802e9",
    "anomaly_reco.json": "1ef056e6c4d37e17d9203ddd2e3a511f4d2fcb2d023b2861774fd89585cc2043",
    "count.json": "348b16fd36e399c5099581a42d1df94c8f4f1b345c281563dc15aaeed9f75f47",
    "ego.json": "98727bdb28264fa48617f76cefcdeeb281544e434e71a37d2b15b66c88b66836",
    "needleQA.json": "99a65f759a0dd3b8e78f0f2a95ec1667b0f3558eda2eae718a1cb673ac38ed14",
    "order.json": "7ae867762bf898e63accea6b80f450a99aa9d50ca1c4e2fe24a67e98f16f1857",
    "plotQA.json": "a9caf70d0d58269ad9c7253c8c01a50c4d086647c5345cd568a8c446f20cd021",
    "sportsQA.json": "737570c75fd4ec9bba7d948709ed22649bfcda3f9187371fad081fbf44bec952",
    "topic_reasoning.json": "781fdfc2b4bd256dcb1a4544b2a6f9163ba47b93c503411092c4db6230ae1045",
    "tutorialQA.json": "5eabb0ecaa4adb8ac6414cdf02cfe2255928f30ecad6a388f0df38845cc32357",
    "lmms_VDC_test.json": "708f8f276b794e3504809caaf9d01855c0eee266a5e64375e0075f8a6ce57cae",
}
# git blob ids (sha1 of "blob <size>\0" + content) of the files at COMMIT, from its tree listing. The
# Caption member list is verified by this alone: its SHA-256 was not known in advance.
GIT_BLOBS: dict[str, str] = {
    "nextqa_train_official.json": "61f7be02128aa1fc9c588d91654c7a3d81390a2f",
    "nextqa_test_official.json": "b70fa08847142609517b5176d3769fa4e06e448c",
    "cinepine_mia.json": "ca3f0a0cb901f6d4b4ce7f0719803ef2479b934b",
    "anomaly_reco.json": "0e17d16762a2df53689e6938069db278510958bf",
    "count.json": "7167e93f1156956ab15844c9ebf4a04c6a3d540b",
    "ego.json": "f4f82b2fc3e122ce227aa7d9f4272aec0feacc00",
    "needleQA.json": "e84ac8325b421043e0596db4b4b979e9dca6f057",
    "order.json": "1b99e71988fbf2fcdc050f46df3e4d1bb772249f",
    "plotQA.json": "b1b42635313d38804735f8dcc7fe0da69b9e37b9",
    "sportsQA.json": "768a9b04751a438a84709d83ee42ce311d38f7b0",
    "topic_reasoning.json": "aa8f946cc578a092a04d84960d1fa99d07a40fd6",
    "tutorialQA.json": "02c076776b5ea32cb24bb6afe335e6e356a7b35b",
    "lmms_VDC_test.json": "0df76a0ecc8f3d192fc0acfdf7daf1de6a2f2768",
    "caption_mia_whole.json": "6348a6bd492d301bea17516e0284c558113c047a",
}

from vidsme.atomic import atomic_path, write_tsv  # noqa: E402
from vidsme.prompts import CAPTION_INSTRUCTION, QA_PREFIX, QA_TEXT, SYSTEM_CAPTION, SYSTEM_QA  # noqa: E402,F401

SHIFT_WARNING = (
    "cinepile_mlvu: members (CinePile clips) and non-members (MLVU test videos) come from different "
    "sources, so part of any AUC may be distribution shift rather than membership"
)


@dataclass(frozen=True)
class Setting:
    """One evaluation setting: split files per label, prompt kind, caveat, sample sizes."""

    name: str
    members: tuple[str, ...]  # replaced by the config key dataset.member_list when it is set
    non_members: tuple[str, ...]
    prompt: str  # "qa" or "caption"
    warning: str | None = None
    sample: tuple[int, int] | None = None  # (members, non-members) videos drawn by a seeded sample; None: all

    @property
    def files(self) -> tuple[str, ...]:
        return self.members + self.non_members


MLVU = tuple(f"{t}.json" for t in ("anomaly_reco", "count", "ego", "needleQA", "order", "plotQA",
                                     "sportsQA", "topic_reasoning", "tutorialQA"))
SETTINGS: dict[str, Setting] = {
    "nextqa": Setting("nextqa", ("nextqa_train_official.json",), ("nextqa_test_official.json",), "qa"),
    "cinepile_mlvu": Setting("cinepile_mlvu", ("cinepine_mia.json",), MLVU, "qa", SHIFT_WARNING),
    # the released Caption script draws random.sample(items, min(1027, len)) per label, unseeded
    "caption": Setting("caption", ("caption_mia_whole.json",), ("lmms_VDC_test.json",), "caption", sample=(1027, 1027)),
}


# The paper's targets: LongVA-layout 7B checkpoints in this hub repository, one folder per setting
# (the folder names of the released scripts' `./checkpoints/...`); convert with `python -m vidsme.longva`.
TARGET_REPO = "LIQIIIII/Vid-SME"
TARGETS = {"nextqa": "Vid-SME-NExTQA-7B", "cinepile_mlvu": "Vid-SME-CinePile-7B", "caption": "Vid-SME-Caption-7B"}


class PaperError(ValueError):
    """Bad paper-setting input; the message names the file, key or folder at fault."""


def setting_of(name: str) -> Setting:
    if name not in SETTINGS:
        raise PaperError(f"unknown paper setting {name!r} (config key dataset.setting); known: {', '.join(SETTINGS)}")
    return SETTINGS[name]


def prompt_for(setting: str) -> dict[str, str]:
    """The workflow prompt (config key ``prompt``) of a setting, per METHOD section 5."""
    if setting_of(setting).prompt == "caption":
        return {"system": SYSTEM_CAPTION, "text": CAPTION_INSTRUCTION}
    return {"system": SYSTEM_QA, "text": QA_TEXT, "assistant_prefix": QA_PREFIX}


# ----------------------------------------------------------------------------- split files

def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_blob_id(path: str | Path) -> str:
    """The git blob id of a file: sha1 of ``blob <size>\\0`` followed by its bytes."""
    path = Path(path)
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def expected_digests(name: str, digests: dict[str, str] | None = None) -> dict[str, str]:
    """The digest a split file must match, {"sha256": hex} or, where no SHA-256 is known, {"git-blob": hex};
    ``digests[name]`` ("sha256:HEX" or "git-blob:HEX", config key dataset.split_digests) replaces it."""
    if digests and name in digests:
        kind, _, value = str(digests[name]).partition(":")
        if kind not in ("sha256", "git-blob") or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", value):
            raise PaperError(f"dataset.split_digests.{name}: {digests[name]!r} is not 'sha256:<hex>' or 'git-blob:<hex>'")
        return {kind: value}
    if name in CHECKSUMS:
        return {"sha256": CHECKSUMS[name]}
    return {"git-blob": GIT_BLOBS[name]} if name in GIT_BLOBS else {}


def _mismatch(path: Path, name: str, digests: dict[str, str] | None) -> str | None:
    """None if `path` matches every expected digest of `name`, else what differs."""
    want_all = expected_digests(name, digests)
    if not want_all:
        return f"no known digest for {name} (set dataset.split_digests)"
    for kind, want in want_all.items():
        got = sha256_file(path) if kind == "sha256" else git_blob_id(path)
        if got != want:
            return f"{'SHA-256' if kind == 'sha256' else 'git blob id'} {got} does not match the released {name} ({want})"
    return None


def _verify(path: Path, name: str, where: str | None = None, digests: dict[str, str] | None = None) -> None:
    bad = _mismatch(path, name, digests)
    if bad:
        raise PaperError(f"{where or path}: {bad}; the split list is corrupted or not the paper's")


def _urlretrieve(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:  # noqa: S310 (pinned https / file URL)
        f.write(r.read())


def default_cache() -> Path:
    return Path(os.environ.get("VIDSME_CACHE", Path.home() / ".cache" / "vidsme")) / "paper-splits"


def split_files(setting: str, splits_dir: str | Path | None, *, commit: str = COMMIT,
                cache_dir: str | Path | None = None, base_url: str = BASE_URL,
                fetch: Callable[[str, Path], None] | None = None, verify: bool = True,
                digests: dict[str, str] | None = None, member_list: bool = False) -> list[Path]:
    """Paths of a setting's released split files (members first), each checked against its SHA-256
    or git blob id (``expected_digests``; ``digests`` overrides them per file name).

    ``splits_dir`` given: read from that folder. ``None``: fetch ``base_url`` (formatted with
    ``repo``, ``commit``, ``name``) into ``cache_dir/commit`` once; a cached file that fails the
    check is fetched again. ``fetch(url, dest)`` downloads one file (default: urllib).
    ``member_list``: the members come from the user's list, so only the non-member files are needed.
    """
    s = setting_of(setting)
    names = s.non_members if member_list else s.files
    if splits_dir is not None:
        root = Path(splits_dir)
        if not root.is_dir():
            raise PaperError(f"splits_dir {root} (config key dataset.splits_dir) is not a folder")
        paths = [root / n for n in names]
        for p in paths:
            if not p.is_file():
                raise PaperError(f"splits_dir {root}: {p.name} not found (the {setting} setting needs {', '.join(names)})")
            if verify:
                _verify(p, p.name, digests=digests)
        return paths
    fetch = fetch or _urlretrieve
    cache = Path(cache_dir) if cache_dir is not None else default_cache()
    cache = cache / commit
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in names:
        p = cache / n
        if not (p.is_file() and (not verify or _mismatch(p, n, digests) is None)):
            url = base_url.format(repo=REPO, commit=commit, name=n)
            try:
                with atomic_path(p) as tmp:  # a temporary file per process: concurrent builders do not clash
                    fetch(url, tmp)
                    if verify:
                        _verify(tmp, n, where=url, digests=digests)
            except PaperError:
                raise
            except Exception as e:  # network errors vary by fetcher
                raise PaperError(f"cannot fetch {n} from {url}: {e}; download it by hand and set dataset.splits_dir") from e
        paths.append(p)
    return paths


def read_split(path: str | Path, need_qa: bool = False) -> list[dict[str, Any]]:
    """Items of one split file: a JSON list of objects with a relative ``video`` path."""
    path = Path(path)
    if not path.is_file():
        raise PaperError(f"{path}: split file not found")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PaperError(f"{path}: not a JSON split file ({e})") from e
    if not isinstance(items, list) or not items:
        raise PaperError(f"{path}: a split file must be a non-empty JSON list of objects with 'video', got {type(items).__name__}")
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not isinstance(it.get("video"), str) or not it["video"].strip():
            raise PaperError(f"{path}: item {i}: expected an object with a 'video' path, got {str(it)[:80]!r}")
        v = PurePosixPath(it["video"])
        if v.is_absolute() or ".." in v.parts:
            raise PaperError(f"{path}: item {i}: video path {it['video']!r} must be relative to video_root, without '..'")
        if need_qa and (not isinstance(it.get("question"), str) or not isinstance(it.get("candidates"), list)):
            raise PaperError(f"{path}: item {i}: a QA split needs 'question' (text) and 'candidates' (list)")
    return items


# ----------------------------------------------------------------------------- sheets

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_BREAKS = re.compile(r"\s*[\t\r\n]+\s*")


def video_ids(paths: list[str]) -> list[str]:
    """Unique safe ids from relative video paths: unsafe runs -> '_', '.mp4' dropped; ids that
    would collide get '-' + 8 hex digits of the path's SHA-256."""
    base = [_UNSAFE.sub("_", re.sub(r"\.mp4$", "", p, flags=re.I)).strip("_.") or "video" for p in paths]
    counts: dict[str, int] = {}
    for b in base:
        counts[b] = counts.get(b, 0) + 1
    return [b if counts[b] == 1 else f"{b}-{hashlib.sha256(p.encode()).hexdigest()[:8]}" for b, p in zip(base, paths)]


def _one_line(x: Any) -> str:
    """Text for one TSV cell: runs of tabs and line breaks become one space (else unchanged)."""
    return _BREAKS.sub(" ", str(x))


def _row(item: dict[str, Any], kind: str) -> dict[str, str]:
    if kind == "caption":
        return {"question": "", "options": "", "answer": "",
                "instruction": _one_line(item.get("question") or CAPTION_INSTRUCTION), "caption": _one_line(item.get("answer") or "")}
    return {"question": _one_line(item["question"]), "options": json.dumps([_one_line(c) for c in item["candidates"]], ensure_ascii=False),
            "answer": _one_line(item.get("answer", "")), "instruction": "", "caption": ""}


COLUMNS = ["video_id", "path", "label", "split", "question", "options", "answer", "instruction", "caption", "n_items", "source"]


def paper_sheet(setting: str, splits_dir: str | Path | None, video_root: str | Path | None = None,
                member_list: str | Path | None = None, seed: int = 0, **split_kw: Any) -> pd.DataFrame:
    """One row per unique video of a setting (members first, file order); ``path`` relative to
    ``video_root``; the first item's prompt fields; ``n_items`` items per video; ``source`` file.

    ``member_list`` (a JSON list in the same format) replaces the released member list. Settings
    with ``sample`` sizes keep that many videos per label, drawn without replacement by
    ``numpy.random.default_rng(seed)`` (members first, then non-members; kept in file order); a
    user member list is kept whole. With ``video_root`` the videos are spot-checked
    (``check_video_root``). ``split_kw`` goes to ``split_files``.
    """
    s = setting_of(setting)
    if s.warning:
        warnings.warn(s.warning, stacklevel=2)
    if member_list and not Path(member_list).is_file():
        raise PaperError(f"member list {member_list} (config key dataset.member_list) not found")
    files = split_files(setting, splits_dir, member_list=bool(member_list), **split_kw)
    if member_list:
        labelled = [(Path(member_list), 1)] + [(p, 0) for p in files]
    else:
        labelled = [(p, 1) for p in files[: len(s.members)]] + [(p, 0) for p in files[len(s.members):]]
    rows: dict[str, dict[str, Any]] = {}
    for path, label in labelled:
        for it in read_split(path, need_qa=s.prompt == "qa"):
            v = it["video"].strip()
            if v in rows:
                r = rows[v]
                if r["label"] != label:
                    raise PaperError(f"video {v} is listed as a member in {r['source'] if r['label'] else path.name} "
                                     f"and as a non-member in {path.name if r['label'] else r['source']}")
                r["n_items"] += 1
                continue
            rows[v] = {"path": v, "label": label, "split": "eval", **_row(it, s.prompt), "n_items": 1, "source": path.name}
    df = pd.DataFrame(list(rows.values()))
    if s.sample is not None:
        df = _sample(df, s.sample, seed, keep_members=bool(member_list))
    df.insert(0, "video_id", video_ids(list(df["path"])))
    df = df[COLUMNS]
    if video_root is not None:
        check_video_root(video_root, df)
    return df


def _sample(df: pd.DataFrame, sizes: tuple[int, int], seed: int, keep_members: bool) -> pd.DataFrame:
    """At most ``sizes`` = (members, non-members) rows per label, a seeded draw without replacement."""
    rng = np.random.default_rng(seed)
    keep = []
    for label, n in ((1, sizes[0]), (0, sizes[1])):
        idx = np.flatnonzero(df["label"].to_numpy() == label)
        if len(idx) > n and not (label == 1 and keep_members):
            idx = np.sort(rng.choice(idx, size=n, replace=False))
        keep.append(idx)
    return df.iloc[np.concatenate(keep)].reset_index(drop=True)


def check_video_root(video_root: str | Path, sheet: pd.DataFrame, sample: int = 20, max_missing: int = 0) -> None:
    """Spot-check that the sheet's relative paths exist under ``video_root`` (evenly spaced rows)."""
    root = Path(video_root)
    if not root.is_dir():
        raise PaperError(f"video_root {root} (config key dataset.video_root) does not exist or is not a folder")
    n = min(sample, len(sheet))
    idx = np.unique(np.linspace(0, len(sheet) - 1, n).astype(int)) if n else np.array([], int)
    picked = [str(sheet["path"].iloc[i]) for i in idx]
    missing = [p for p in picked if not (root / p).is_file()]
    if len(missing) > max_missing:
        tops = sorted({PurePosixPath(p).parts[0] + "/" for p in sheet["path"]})
        raise PaperError(f"video_root {root}: {len(missing)} of {len(picked)} sampled videos missing, e.g. {root / missing[0]}; "
                         f"point dataset.video_root at the folder holding {', '.join(tops)}")


def write_sheet(df: pd.DataFrame, out: str | Path) -> Path:
    """Write a sheet as TSV atomically."""
    write_tsv(df, out)
    return Path(out)


def main(argv: list[str] | None = None, prog: str = "python -m vidsme.paper") -> int:
    """Write the sample sheet of one of the paper's settings (released split lists -> TSV).

    Returns the exit code (0 ok, 2 bad input)."""
    ap = argparse.ArgumentParser(prog=prog, description="Sample sheet of one of the paper's settings.")
    ap.add_argument("setting", choices=list(SETTINGS))
    ap.add_argument("--splits", default=None, help="folder with the released split JSONs (default: fetch at the pinned commit)")
    ap.add_argument("--video-root", default=None, help="folder holding the videos (spot-checked)")
    ap.add_argument("--member-list", default=None, help="your member list (JSON), replacing the released one")
    ap.add_argument("--seed", type=int, default=0, help="seed of the Caption setting's sample (config key seed)")
    ap.add_argument("--commit", default=COMMIT, help="commit of LiQiiiii/Vid-SME to fetch from")
    ap.add_argument("--out", required=True, help="sheet TSV to write")
    a = ap.parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = paper_sheet(a.setting, a.splits, a.video_root, a.member_list, seed=a.seed, commit=a.commit)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    except PaperError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_sheet(df, a.out)
    print(f"{a.out}: {len(df)} videos ({int(df.label.sum())} members, {int((df.label == 0).sum())} non-members)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Paper settings: released split lists -> sheets, checksums, fetching, video-root checks, configs."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from vidsme import paper
from vidsme.paper import (CHECKSUMS, GIT_BLOBS, SETTINGS, PaperError, check_video_root, git_blob_id, paper_sheet,
                          split_files, video_ids)
from vidsme.samples import read_sheet

ROOT = Path(__file__).resolve().parents[1]
# Committed subsets of the released split lists (tests/fixtures/paper/README.md): the QA files cut to
# their first 8 videos (make_subsets.py), the first 12 VDC items, a synthetic Caption member list;
# released.json: digests and counts measured on the full released files.
FIX = Path(__file__).resolve().parent / "fixtures" / "paper"
CAPTION_FIX = FIX
RELEASED = json.loads((FIX / "released.json").read_text())["files"]


def _items(name: str) -> list[dict]:
    return json.loads((FIX / name).read_text())


def _fixture_splits(tmp_path: Path, setting: str) -> tuple[Path, dict[str, str]]:
    """A setting's committed fixtures in a splits folder, with their own digests for dataset.split_digests."""
    d = tmp_path / "splits"
    d.mkdir(exist_ok=True)
    for n in SETTINGS[setting].files:
        shutil.copy(FIX / n, d / n)
    return d, {n: f"sha256:{paper.sha256_file(d / n)}" for n in SETTINGS[setting].files}


def _expected(files: list[str]) -> tuple[dict[str, dict], int]:
    """First item per unique video (in order) and the item count, computed straight from the JSON."""
    first: dict[str, dict] = {}
    n = 0
    for f in files:
        for it in _items(f):
            first.setdefault(it["video"], it)
            n += 1
    return first, n


def _tree(root: Path, paths) -> Path:
    """Empty placeholder files for the given relative video paths."""
    for p in paths:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).touch()
    return root


def _write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _qa(video: str, q: str = "q?") -> dict:
    return {"video": video, "question": q, "candidates": ["a", 2], "answer": "a"}


@pytest.fixture
def fake_nextqa(tmp_path: Path) -> Path:
    """A small folder with the NExT-QA file names (not the released content: use verify=False)."""
    d = tmp_path / "splits"
    _write(d / "nextqa_train_official.json", [_qa("tr/a.mp4", "first"), _qa("tr/a.mp4", "second"), _qa("tr/b.mp4")])
    _write(d / "nextqa_test_official.json", [_qa("te/c.mp4"), _qa("te/d.mp4")])
    return d


# ----------------------------------------------------------------------------- released lists


def test_every_released_file_has_a_digest() -> None:
    names = {f for s in SETTINGS.values() for f in s.files}
    assert names == set(GIT_BLOBS) and set(CHECKSUMS) == names - {"caption_mia_whole.json"}


def test_git_blob_id_known_values(tmp_path: Path) -> None:
    """Values git itself gives (`git hash-object`) for an empty file and for 'hello\\n'."""
    (tmp_path / "e").write_bytes(b"")
    (tmp_path / "h").write_bytes(b"hello\n")
    assert git_blob_id(tmp_path / "e") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_id(tmp_path / "h") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_checksums_are_those_of_the_released_files() -> None:
    """CHECKSUMS and GIT_BLOBS are the digests measured on the released files (released.json);
    the committed subsets have other digests, so they pass only with their own."""
    assert set(RELEASED) == set(CHECKSUMS)  # every released file the project has, all but the Caption members
    for name, digest in CHECKSUMS.items():
        assert RELEASED[name]["sha256"] == digest and RELEASED[name]["git_blob"] == GIT_BLOBS[name], name
        assert hashlib.sha256((FIX / name).read_bytes()).hexdigest() != digest, name
    with pytest.raises(PaperError, match="nextqa_train_official.json: SHA-256 .* does not match the released"):
        split_files("nextqa", FIX)


@pytest.mark.parametrize("setting", ["nextqa", "cinepile_mlvu"])
def test_qa_setting_sheet(setting: str, tmp_path: Path) -> None:
    s = SETTINGS[setting]
    members, n_mem_items = _expected(list(s.members))
    non, n_non_items = _expected(list(s.non_members))
    root = _tree(tmp_path / "videos", list(members) + list(non))
    splits, digests = _fixture_splits(tmp_path, setting)
    if s.warning:
        with pytest.warns(UserWarning, match="distribution shift"):
            df = paper_sheet(setting, splits, root, digests=digests)
    else:
        df = paper_sheet(setting, splits, root, digests=digests)
    assert len(df) == len(members) + len(non)
    assert (df.label == 1).sum() == len(members) and (df.label == 0).sum() == len(non)
    assert set(df.path[df.label == 1]) == set(members) and set(df.path[df.label == 0]) == set(non)
    assert df.video_id.is_unique and df.video_id.map(lambda v: bool(re.fullmatch(r"[A-Za-z0-9_.-]+", v))).all()
    assert df.n_items[df.label == 1].sum() == n_mem_items and df.n_items[df.label == 0].sum() == n_non_items
    assert (df.split == "eval").all()
    assert df.n_items.max() > 1  # the subsets keep every item of their videos: some videos repeat
    for _, row in df.iterrows():  # first question kept as the prompt fields
        it = (members if row.label else non)[row.path]
        assert row.question == it["question"] and json.loads(row.options) == [str(c) for c in it["candidates"]]
        assert row.answer == str(it["answer"])
    # the sheet validates with the workflow's reader and resolves under video_root
    out = paper.write_sheet(df, tmp_path / "sheet.tsv")
    back = read_sheet(out, root)
    assert list(back.video_id) == list(df.video_id) and all(Path(p).is_file() for p in back.path)


def test_paper_item_counts_match_method() -> None:
    """METHOD section 10: 8,564 / 8,564 NExT-QA items, 502 / 502 CinePile / MLVU items, 1,027 VDC items
    (counted on the released files by make_subsets.py)."""
    n = {name: f["items"] for name, f in RELEASED.items()}
    assert n["nextqa_train_official.json"] == n["nextqa_test_official.json"] == 8564
    assert sum(n[f] for f in SETTINGS["cinepile_mlvu"].members) == sum(n[f] for f in paper.MLVU) == 502
    assert n["lmms_VDC_test.json"] == 1027


def test_caption_with_own_member_list(tmp_path: Path) -> None:
    """dataset.member_list replaces the released member list (kept whole; only the VDC list is read)."""
    splits, digests = _fixture_splits(tmp_path, "caption")
    with pytest.raises(PaperError, match=f"member list {tmp_path / 'no.json'} .*dataset.member_list.* not found"):
        paper_sheet("caption", splits, None, member_list=tmp_path / "no.json", digests=digests)
    mine = _write(tmp_path / "members.json", [{"video": f"mine/m{i}.mp4"} for i in range(5)])
    non, n_items = _expected(["lmms_VDC_test.json"])
    root = _tree(tmp_path / "videos", [f"mine/m{i}.mp4" for i in range(5)] + list(non))
    df = paper_sheet("caption", splits, root, member_list=mine, digests=digests)
    assert (df.label == 1).sum() == 5 and (df.label == 0).sum() == len(non) and df.n_items.sum() == 5 + n_items
    assert set(df.source[df.label == 1]) == {"members.json"} and set(df.source[df.label == 0]) == {"lmms_VDC_test.json"}
    assert (df.instruction[df.label == 1] == paper.CAPTION_INSTRUCTION).all() and (df.options == "").all()
    assert all(ins == non[p]["question"] for ins, p in zip(df.instruction[df.label == 0], df.path[df.label == 0]))
    assert not df.caption.str.contains("[\t\n\r]").any() and (df.caption[df.label == 0] != "").all()
    read_sheet(paper.write_sheet(df, tmp_path / "s.tsv"), root)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("content, match", [
    ("{not json", "not a JSON split file"),
    ({"video": "a.mp4"}, "non-empty JSON list"),
    ([], "non-empty JSON list"),
    ([{"path": "a.mp4"}], "item 0: expected an object with a 'video'"),
    ([_qa("a.mp4"), "b.mp4"], "item 1: expected an object"),
    ([_qa("/abs/a.mp4")], "must be relative"),
    ([_qa("x/../../a.mp4")], "without '..'"),
    ([{"video": "a.mp4", "question": "q"}], "needs 'question' .* and 'candidates'"),
])
def test_wrong_split_file_is_named(fake_nextqa: Path, content, match: str) -> None:
    bad = _write(fake_nextqa / "nextqa_test_official.json", content)
    with pytest.raises(PaperError, match=match) as e:
        paper_sheet("nextqa", fake_nextqa, verify=False)
    assert str(bad) in str(e.value)


def test_small_sheet_dedups_videos_and_keeps_first_question(fake_nextqa: Path) -> None:
    df = paper_sheet("nextqa", fake_nextqa, verify=False)
    assert list(df.path) == ["tr/a.mp4", "tr/b.mp4", "te/c.mp4", "te/d.mp4"]
    assert list(df.label) == [1, 1, 0, 0] and list(df.n_items) == [2, 1, 1, 1]
    assert df.question[0] == "first" and json.loads(df.options[0]) == ["a", "2"]


def test_video_in_both_labels_is_an_error(fake_nextqa: Path) -> None:
    _write(fake_nextqa / "nextqa_test_official.json", [_qa("te/c.mp4"), _qa("tr/b.mp4")])
    with pytest.raises(PaperError, match="tr/b.mp4 .*member in nextqa_train_official.json.*non-member in nextqa_test_official.json"):
        paper_sheet("nextqa", fake_nextqa, verify=False)


def test_local_split_checksum_and_missing_file(fake_nextqa: Path, tmp_path: Path) -> None:
    with pytest.raises(PaperError, match="nextqa_train_official.json.*does not match"):
        split_files("nextqa", fake_nextqa)  # content is not the released one
    (fake_nextqa / "nextqa_test_official.json").unlink()
    with pytest.raises(PaperError, match="nextqa_test_official.json not found"):
        split_files("nextqa", fake_nextqa, verify=False)
    with pytest.raises(PaperError, match="dataset.splits_dir"):
        split_files("nextqa", tmp_path / "nowhere")
    with pytest.raises(PaperError, match="unknown paper setting 'msrvtt'.*nextqa"):
        split_files("msrvtt", fake_nextqa)


def test_video_ids_unique_safe_and_deterministic() -> None:
    paths = ["a/b.mp4", "a_b.mp4", "c d/é.MP4", "x/y.mkv"]
    ids = video_ids(paths)
    assert len(set(ids)) == 4 and ids == video_ids(paths)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", i) for i in ids)
    assert ids[0].startswith("a_b-") and ids[1].startswith("a_b-") and ids[3] == "x_y.mkv"


# ----------------------------------------------------------------------------- video root


def test_check_video_root(tmp_path: Path, fake_nextqa: Path) -> None:
    df = paper_sheet("nextqa", fake_nextqa, verify=False)
    with pytest.raises(PaperError, match=f"video_root {tmp_path / 'nope'} .*dataset.video_root.*does not exist"):
        check_video_root(tmp_path / "nope", df)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PaperError, match=rf"video_root {empty}: 4 of 4 sampled videos missing, e.g. {empty}/tr/a.mp4; "
                                         r"point dataset.video_root at the folder holding te/, tr/"):
        paper_sheet("nextqa", fake_nextqa, empty, verify=False)
    root = _tree(tmp_path / "v", df.path)
    check_video_root(root, df)
    (root / "te" / "d.mp4").unlink()
    with pytest.raises(PaperError, match="1 of 4 sampled videos missing, e.g. .*te/d.mp4"):
        check_video_root(root, df)
    check_video_root(root, df, max_missing=1)


def test_check_video_root_samples_at_most_n(tmp_path: Path) -> None:
    import pandas as pd

    df = pd.DataFrame({"path": [f"d/v{i}.mp4" for i in range(500)]})
    with pytest.raises(PaperError, match="20 of 20 sampled"):
        check_video_root(tmp_path, df)


# ----------------------------------------------------------------------------- fetching


def test_fetch_from_file_url_into_cache(tmp_path: Path) -> None:
    splits, digests = _fixture_splits(tmp_path, "cinepile_mlvu")
    url = splits.as_uri() + "/{name}"
    paths = split_files("cinepile_mlvu", None, cache_dir=tmp_path / "cache", base_url=url, digests=digests)
    assert [p.name for p in paths] == list(SETTINGS["cinepile_mlvu"].files)
    assert all(p.parent == tmp_path / "cache" / paper.COMMIT for p in paths)
    assert all(p.read_bytes() == (FIX / p.name).read_bytes() for p in paths)


def test_fetch_uses_pinned_commit_verifies_and_caches(tmp_path: Path, fake_nextqa: Path, monkeypatch) -> None:
    calls: list[str] = []

    def fetch(url: str, dest: Path) -> None:
        calls.append(url)
        shutil.copy(fake_nextqa / url.rsplit("/", 1)[1], dest)

    # not the released bytes: the checksum fails, nothing is left in the cache
    with pytest.raises(PaperError, match="https://raw.githubusercontent.com/LiQiiiii/Vid-SME/abc123/video_json/nextqa_train_official.json: "
                                         "SHA-256 .* does not match the released nextqa_train_official.json"):
        split_files("nextqa", None, cache_dir=tmp_path / "c", fetch=fetch, commit="abc123")
    assert calls == [paper.BASE_URL.format(repo=paper.REPO, commit="abc123", name="nextqa_train_official.json")]
    assert not list((tmp_path / "c" / "abc123").iterdir())
    # with the checksums of these bytes the fetch succeeds once, then the cache is used
    sums = {n: paper.sha256_file(fake_nextqa / n) for n in ("nextqa_train_official.json", "nextqa_test_official.json")}
    monkeypatch.setattr(paper, "CHECKSUMS", sums)
    calls.clear()
    a = split_files("nextqa", None, cache_dir=tmp_path / "c", fetch=fetch, commit="abc123")
    b = split_files("nextqa", None, cache_dir=tmp_path / "c", fetch=fetch, commit="abc123")
    assert a == b and len(calls) == 2
    a[0].write_text("corrupted")  # a corrupted cached copy is fetched again
    split_files("nextqa", None, cache_dir=tmp_path / "c", fetch=fetch, commit="abc123")
    assert len(calls) == 3 and paper.sha256_file(a[0]) == sums[a[0].name]


def test_fetch_failure_is_named(tmp_path: Path) -> None:
    def offline(url: str, dest: Path) -> None:
        dest.write_text("partial")
        raise OSError("network unreachable")

    with pytest.raises(PaperError, match="cannot fetch nextqa_train_official.json from https://raw.githubusercontent.com/.*dataset.splits_dir"):
        split_files("nextqa", None, cache_dir=tmp_path, fetch=offline)
    assert not any(tmp_path.rglob("*.tmp"))  # the partial download is removed


# ----------------------------------------------------------------------------- CLI and configs


def test_cli_writes_sheet_and_reports_errors(fake_nextqa: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(paper, "CHECKSUMS", {n: paper.sha256_file(fake_nextqa / n) for n in
                                             ("nextqa_train_official.json", "nextqa_test_official.json")})
    out = tmp_path / "o" / "sheet.tsv"
    assert paper.main(["nextqa", "--splits", str(fake_nextqa), "--out", str(out)]) == 0
    assert "4 videos (2 members, 2 non-members)" in capsys.readouterr().out
    assert len(read_sheet(out, tmp_path)) == 4
    assert paper.main(["nextqa", "--splits", str(fake_nextqa), "--video-root", str(tmp_path / "no"), "--out", str(out)]) == 2
    assert "video_root" in capsys.readouterr().err


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_paper_configs(setting: str) -> None:
    cfg = yaml.safe_load((ROOT / "config" / "paper" / f"{setting}.yaml").read_text())
    ds = cfg["dataset"]
    assert ds["kind"] == "paper" and ds["setting"] == setting and ds["splits_dir"] is None and ds["video_root"]
    assert ds.get("member_list", None) is None and ("member_list" in ds) == (setting == "caption")  # optional override
    assert cfg["prompt"] == paper.prompt_for(setting)
    assert cfg["frames"]["num_frames"] == 16
    m = cfg["model"]
    assert m["source"] == "pretrained" and m["dtype"] == "bfloat16" and m["device"] == "cuda" and "revision" in m
    assert not m.get("trust_remote_code", False)
    # the paper's target of this setting, converted (vidsme.longva) to the LLaVA-OneVision layout
    assert m["family"] == "llava_onevision" and m["id"].endswith(f"/{paper.TARGETS[setting]}-hf")


def _caption_splits(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The committed caption fixtures in a splits folder, with their own digests for dataset.split_digests."""
    return _fixture_splits(tmp_path, "caption")


def test_caption_fixtures_are_checked_against_the_released_digests(tmp_path: Path) -> None:
    d, digests = _caption_splits(tmp_path)
    with pytest.raises(PaperError, match=r"caption_mia_whole.json: git blob id [0-9a-f]{40} does not match the released "
                                         r"caption_mia_whole.json \(6348a6bd492d301bea17516e0284c558113c047a\)"):
        split_files("caption", d)
    with pytest.raises(PaperError, match=r"split_digests.caption_mia_whole.json: 'md5:00' is not"):
        split_files("caption", d, digests={"caption_mia_whole.json": "md5:00"})
    assert [p.name for p in split_files("caption", d, digests=digests)] == ["caption_mia_whole.json", "lmms_VDC_test.json"]
    wrong = {**digests, "lmms_VDC_test.json": "git-blob:" + "0" * 40}
    with pytest.raises(PaperError, match="lmms_VDC_test.json: git blob id .* does not match"):
        split_files("caption", d, digests=wrong)


def test_caption_sheet_from_released_lists(tmp_path: Path) -> None:
    """Without a member list: members from caption_mia_whole.json, non-members from the VDC list."""
    d, digests = _caption_splits(tmp_path)
    df = paper_sheet("caption", d, None, digests=digests)
    mem = json.loads((CAPTION_FIX / "caption_mia_whole.json").read_text())
    non = json.loads((CAPTION_FIX / "lmms_VDC_test.json").read_text())
    assert list(df.path[df.label == 1]) == list(dict.fromkeys(it["video"] for it in mem))  # 20 videos, file order
    assert list(df.path[df.label == 0]) == [it["video"] for it in non]
    assert df.n_items[df.label == 1].sum() == len(mem) == 21 and set(df.source[df.label == 1]) == {"caption_mia_whole.json"}
    assert df.instruction[0] == mem[0]["question"] and df.caption[0] == mem[0]["answer"].replace("\n", " ")


def test_caption_sample_is_seeded_and_of_the_released_size(tmp_path: Path) -> None:
    """1,027 members drawn from a longer list, reproducibly per seed; the 1,027 non-members all kept."""
    d = tmp_path / "splits"
    d.mkdir()
    mem = [{"video": f"m/{i}.mp4", "question": "q", "answer": "a"} for i in range(1500)]
    non = [{"video": f"VDC/{i}.mp4", "question": "q", "answer": "a"} for i in range(1027)]
    _write(d / "caption_mia_whole.json", mem)
    _write(d / "lmms_VDC_test.json", non)
    a, b, c = (paper_sheet("caption", d, None, seed=s, verify=False) for s in (0, 0, 1))
    assert (a.label == 1).sum() == 1027 and (a.label == 0).sum() == 1027 and a.equals(b)
    assert set(a.path[a.label == 1]) != set(c.path[c.label == 1])
    assert set(a.path[a.label == 0]) == {it["video"] for it in non}
    idx = [int(p.split("/")[1].split(".")[0]) for p in a.path[a.label == 1]]
    assert idx == sorted(idx) and len(set(idx)) == 1027  # file order, no repeats
    # the draw is numpy's default_rng(seed).choice over the member rows, without replacement
    want = sorted(np.random.default_rng(0).choice(1500, size=1027, replace=False))
    assert idx == [int(i) for i in want]
    # a user member list is kept whole
    mine = _write(tmp_path / "mine.json", [{"video": f"mine/{i}.mp4"} for i in range(1200)])
    assert (paper_sheet("caption", d, None, member_list=mine, seed=0, verify=False).label == 1).sum() == 1200


# ----------------------------------------------------------------------------- workflow dry run


def _dry_run(setting: str, tmp_path: Path, splits: Path, paths: list[str], **dataset) -> dict[str, int]:
    """`snakemake -n` on the shipped paper config with `splits` and a placeholder video tree; planned jobs."""
    import math
    import time

    from conftest import copy_workflow, planned_jobs, snakemake

    wd = copy_workflow(tmp_path / "wf")
    cfg = yaml.safe_load((wd / "config" / "paper" / f"{setting}.yaml").read_text())
    cfg["dataset"].update(splits_dir=str(splits), video_root=str(_tree(tmp_path / "videos", paths)), **dataset)
    (wd / "paper.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    out = snakemake(wd, "-n", "--configfile", "paper.yaml")
    print(f"dry run {setting}: {time.perf_counter() - t0:.1f} s")  # measured, reported in docs/paper.md
    jobs = planned_jobs(out.stdout)
    shards = math.ceil(len(set(paths)) / cfg["dataset"]["shard_size"])
    assert jobs["paper_sheet"] == 1
    assert jobs["extract_frames"] == jobs["model_pass"] == jobs["position_series"] == shards
    assert jobs["adaptive_qr"] == 1 and "train_target" not in jobs
    return jobs


@pytest.mark.parametrize("setting", ["nextqa", "cinepile_mlvu"])  # 3-4 s each on 2 cores
def test_paper_config_dry_run_builds_full_dag(setting: str, tmp_path: Path) -> None:
    """`snakemake -n` on a shipped paper config, with the committed subsets (accepted through
    dataset.split_digests) and a placeholder video tree."""
    splits, digests = _fixture_splits(tmp_path, setting)
    _dry_run(setting, tmp_path, splits, [it["video"] for f in SETTINGS[setting].files for it in _items(f)], split_digests=digests)


def test_caption_config_dry_run_from_released_lists(tmp_path: Path) -> None:
    """The shipped caption config needs no member list: the DAG is built from the two split lists
    alone (here the committed fixtures, accepted through dataset.split_digests)."""
    splits, digests = _caption_splits(tmp_path)
    paths = [it["video"] for f in SETTINGS["caption"].files for it in json.loads((splits / f).read_text())]
    assert len(set(paths)) == 32
    _dry_run("caption", tmp_path, splits, paths, split_digests=digests, shard_size=8)


def test_paper_blind_check_needs_no_model(tmp_path: Path) -> None:
    """`snakemake blind --configfile config/paper/cinepile_mlvu.yaml`: the paper's split checked on a laptop:
    sheet, frames, statistics and the blind classifier; no model pass (the config's GPU model is never loaded)."""
    from conftest import copy_workflow, planned_jobs, snakemake

    splits, digests = _fixture_splits(tmp_path, "cinepile_mlvu")
    paths = [it["video"] for f in SETTINGS["cinepile_mlvu"].files for it in _items(f)]
    wd = copy_workflow(tmp_path / "wf")
    cfg = yaml.safe_load((wd / "config" / "paper" / "cinepile_mlvu.yaml").read_text())
    cfg["dataset"].update(splits_dir=str(splits), video_root=str(_tree(tmp_path / "videos", paths)), split_digests=digests)
    (wd / "paper.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(snakemake(wd, "-n", "blind", "--configfile", "paper.yaml").stdout)
    assert jobs["paper_sheet"] == 1 and jobs["blind_baseline"] == 1 and jobs["extract_frames"] >= 1
    assert not {"model_pass", "position_series", "aggregate", "val_model_pass", "train_target"} & set(jobs)

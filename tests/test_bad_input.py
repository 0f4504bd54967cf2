"""Issue 14, one test per case: skipped shards, split rows, main_k, checks at `snakemake -n`, messages,
permissions (the interrupt case, 14.4, is tests/test_resume.py). Each asserts the exit status, that the
message names the culprit, and that nothing else is lost."""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import copy_workflow, moving_square_clip, planned_jobs, snakemake
from vidsme import pipeline
from vidsme.dump import read_shard
from vidsme.samples import SheetError, read_sheet, shard_rows

QA = 'Which way does the square move?\t["left", "right"]\t(B) right'


def _sheet(path: Path, rows: list[tuple[str, str, int, str]]) -> Path:
    """rows: (video_id, path, label, split)."""
    body = "".join(f"{v}\t{p}\t{lab}\t{split}\t{QA}\n" for v, p, lab, split in rows)
    path.write_text("video_id\tpath\tlabel\tsplit\tquestion\toptions\tanswer\n" + body)
    return path


def _config(wd: Path, **over: object) -> None:
    cfg: dict = {"experiment": "t", "dataset": {"kind": "sheet", "samples": "sheet.tsv", "shard_size": 4},
                 "frames": {"num_frames": 4}, "model": {"source": "tiny"}, "metrics": {"n_boot": 20}}
    for k, v in over.items():
        cfg.setdefault(k, {}).update(v) if isinstance(v, dict) else cfg.__setitem__(k, v)
    (wd / "test.yaml").write_text(yaml.safe_dump(cfg))


def _good(n: int, split: str = "eval", start: int = 0) -> list[tuple[str, str, int, str]]:
    return [(f"v{i}", f"videos/v{i}.mp4", i % 2, split) for i in range(start, start + n)]


@pytest.fixture
def wd(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


def _dry_fails(wd: Path, *names: str) -> str:
    out = snakemake(wd, "-n", "--configfile", "test.yaml", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-2000:]
    assert "Job stats" not in text  # rejected before planning any job
    for name in names:
        assert name in text, text[-3000:]
    return text


# --------------------------------------------------------------- 14.1, 14.2, 14.6: a run on a real-looking sheet


@pytest.fixture(scope="module")
def skipped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """8 good eval videos + 1 zero-byte eval video + 4 val rows, shard_size 4, run under umask 002
    (8 scored videos: the blind baseline needs 4 per class; dataset inference off, it is not the point).

    The zero-byte video is alone in the third shard, so that shard has no usable video (14.1); the
    val rows made a fourth, empty shard when shards were counted over every row (14.2)."""
    wd = copy_workflow(tmp_path_factory.mktemp("skipped") / "wf")
    (wd / "videos").mkdir()
    for i in range(12):
        moving_square_clip(wd / "videos" / f"v{i}.mp4", n=12, size=32, speed=0.5 + i, seed=i)
    (wd / "videos" / "broken.mp4").write_bytes(b"")
    _sheet(wd / "sheet.tsv", _good(8) + [("broken", "videos/broken.mp4", 0, "eval")] + _good(4, "val", start=8))
    _config(wd, scoring={"answer_slice": {"enabled": True}}, dataset_inference={"enabled": False})
    old = os.umask(0o002)  # a group-shared project: outputs must come out group-writable (14.7)
    try:
        out = snakemake(wd, "--cores", "2", "--configfile", "test.yaml")
    finally:
        os.umask(old)
    return wd, out.stdout + out.stderr


@pytest.mark.slow
def test_a_shard_whose_videos_are_all_skipped_does_not_stop_the_run(skipped_run: tuple[Path, str]) -> None:
    wd, _ = skipped_run
    res = wd / "results" / "t"
    assert sorted(p.name for p in (res / "dumps" / "tiny" / "F4").iterdir()) == [f"shard000{k}.safetensors" for k in range(3)]
    header, entries = read_shard(res / "dumps" / "tiny" / "F4" / "shard0002.safetensors")
    assert entries == {} and header["empty_shard"] == "true"  # a valid dump without videos
    for slice_ in ("", "_answer"):
        scores = pd.read_csv(res / "scores" / "tiny" / "F4" / f"scores{slice_}.tsv", sep="\t")
        assert sorted(set(scores.video_id)) == [f"v{i}" for i in range(8)]  # every good video scored, val rows not
    skipped = pd.read_csv(res / "stats" / "F4" / "skipped.tsv", sep="\t")
    assert list(skipped.video_id) == ["broken"] and "empty" in skipped.reason[0]


@pytest.mark.slow
def test_tables_and_the_last_console_line_count_skipped_videos(skipped_run: tuple[Path, str]) -> None:
    wd, console = skipped_run
    line = "8 of 9 videos scored, 1 skipped (see results/t/stats/F4/skipped.tsv)"
    assert console.rstrip().splitlines()[-1] == line
    for name in ("main.md", "main_answer.md"):
        assert line in (wd / "results" / "t" / "tables" / name).read_text().splitlines()[0]
    assert (wd / "results" / "t" / "tables" / "main.tex").read_text().startswith(f"% {line}\n")


@pytest.mark.slow
def test_outputs_follow_the_umask(skipped_run: tuple[Path, str]) -> None:
    wd, _ = skipped_run
    modes = {p.relative_to(wd).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for top in ("results", "logs") for p in (wd / top).rglob("*") if p.is_file()}
    assert any(k.endswith(".safetensors") for k in modes) and any(k.endswith(".npz") for k in modes)
    assert {k: m for k, m in modes.items() if m != 0o664} == {}


def test_shards_count_the_evaluated_rows_only(wd: Path) -> None:
    _sheet(wd / "sheet.tsv", _good(8) + _good(4, "val", start=8))
    _config(wd, dataset_inference={"enabled": False})
    jobs = planned_jobs(snakemake(wd, "-n", "--configfile", "test.yaml").stdout)
    assert jobs["extract_frames"] == jobs["model_pass"] == 2  # 8 eval rows in shards of 4 (12 sheet rows: 3 before)


def test_the_last_shard_takes_rows_beyond_the_plan(tmp_path: Path) -> None:
    """An embedded sheet can hold a few more eval rows than n_eval: none is dropped."""
    df = pd.DataFrame({"video_id": [f"v{i}" for i in range(11)]})
    shards = [list(shard_rows(df, k, 5, n_shards=2).video_id) for k in range(2)]
    assert shards[0] == [f"v{i}" for i in range(5)] and shards[1] == [f"v{i}" for i in range(5, 11)]


def test_an_all_skipped_shard_writes_an_empty_dump_without_loading_a_model(tmp_path: Path) -> None:
    from vidsme.frames import extract_shard

    extract_shard([("a", tmp_path / "missing.mp4")], 4, tmp_path / "f.npz", tmp_path / "f.tsv")
    model = {"source": "pretrained", "id": "vidsme-test-org/not-a-model"}  # loading it would fail
    out = tmp_path / "d.safetensors"
    summary = pipeline.model_pass(model, None, str(tmp_path / "f.npz"), str(tmp_path / "f.tsv"), {}, {}, str(out))
    assert summary["videos"] == {} and read_shard(out)[1] == {}
    (tmp_path / "qr.tsv").write_text("video_id\tn_decoded\tk1\tk3\tq\tr\n")
    pipeline.position_series(str(out), str(tmp_path / "qr.tsv"), str(tmp_path / "s.safetensors"), 1.5, 1.05)
    from safetensors.numpy import load_file

    assert load_file(str(tmp_path / "s.safetensors")) == {}


# --------------------------------------------------------------- 14.3, 14.5: rejected at snakemake -n


def test_main_k_not_in_k_grid_fails_the_dry_run(wd: Path) -> None:
    _sheet(wd / "sheet.tsv", _good(8))
    _config(wd, scoring={"main_k": 0.2})
    _dry_fails(wd, "scoring.main_k: 0.2 is not in scoring.k_grid")


@pytest.mark.parametrize(
    "over, names",
    [
        ({"frames": {"num_frames": 8.0}}, ["frames.num_frames: 8.0 is not an integer"]),
        ({"reduce": {"bogus_key": 1}}, ["reduce.bogus_key: unknown key"]),
        ({"qr": {"beta1": 2.5}}, ["qr.beta1: 2.5", "[0.5, 3] (reduce.q_min, reduce.q_max)"]),
        ({"qr": {"fixed_q": 3.5}}, ["qr.fixed_q: 3.5", "[0.5, 3]"]),
        ({"scoring": {"k_grid": [0.0, 1.5]}}, ["1.5 is greater than the maximum of 1", "k_grid"]),
        ({"scoring": {"fixed_q": 1.2}}, ["'fixed_q' was unexpected"]),  # the fixed (q, r) lives in qr only
        ({"experiment": ".."}, ["'..' does not match", "experiment"]),
        ({"experiment": "."}, ["'.' does not match", "experiment"]),
        ({"experiment": "../x"}, ["'../x' does not match", "experiment"]),
        ({"experiment": "a/b"}, ["'a/b' does not match", "experiment"]),
    ],
)
def test_config_that_would_fail_late_fails_the_dry_run(wd: Path, over: dict, names: list[str]) -> None:
    _sheet(wd / "sheet.tsv", _good(8))
    _config(wd, **over)
    _dry_fails(wd, *names)


@pytest.mark.parametrize(
    "rows, names",
    [
        (_good(0) + [(f"m{i}", f"videos/m{i}.mp4", 1, "eval") for i in range(4)], ["sheet.tsv", "4 member(s) and 0 non-member(s)"]),
        (_good(4, "val"), ["sheet.tsv", "no rows with split == 'eval'", "'val'"]),
    ],
)
def test_sheet_that_would_fail_late_fails_the_dry_run(wd: Path, rows: list, names: list[str]) -> None:
    _sheet(wd / "sheet.tsv", rows)
    _config(wd)
    _dry_fails(wd, *names)


def test_too_few_videos_for_the_blind_baseline_fail_the_dry_run(wd: Path) -> None:
    _sheet(wd / "sheet.tsv", _good(6))  # 3 members, 3 non-members: metrics would do, cross-fitting would not
    _config(wd)
    _dry_fails(wd, "sheet.tsv", "3 videos of", "cross-fitting needs at least 4 per class")


def test_answer_slice_without_questions_fails_the_dry_run(wd: Path) -> None:
    (wd / "sheet.tsv").write_text("video_id\tpath\tlabel\n" + "".join(f"v{i}\tv{i}.mp4\t{i % 2}\n" for i in range(8)))
    _config(wd, scoring={"answer_slice": {"enabled": True}})
    _dry_fails(wd, "sheet.tsv", "video v0", "answer slice")


def test_zero_byte_sheet_is_named(wd: Path, tmp_path: Path) -> None:
    (wd / "sheet.tsv").write_bytes(b"")
    _config(wd)
    _dry_fails(wd, "sheet.tsv: sample sheet is empty")
    with pytest.raises(SheetError, match="empty"):
        read_sheet(wd / "sheet.tsv")
    (tmp_path / "bin.tsv").write_bytes(b"video_id\tpath\tlabel\n\xff\xfe\t\x00\t1\n")
    with pytest.raises(SheetError, match="bin.tsv"):
        read_sheet(tmp_path / "bin.tsv")


# --------------------------------------------------------------- 14.6: offline by default


def test_an_uncached_model_fails_in_seconds_without_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """model.offline (default true): no connection is even attempted; the error names the model and
    how to provide it. (Before, transformers retried the network for about 160 s.)"""
    from vidsme.frames import extract_shard
    from vidsme.models import ModelLoadError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    tried: list[object] = []

    def no_network(self: socket.socket, address: object) -> None:
        tried.append(address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    clip = moving_square_clip(tmp_path / "v.mp4", n=8, size=32)
    extract_shard([("v", clip)], 4, tmp_path / "f.npz", tmp_path / "f.tsv")
    model = {"source": "pretrained", "id": "vidsme-test-org/not-cached-7b", "revision": None, "offline": True}
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError) as e:
        pipeline.model_pass(model, None, str(tmp_path / "f.npz"), str(tmp_path / "f.tsv"), {}, {}, str(tmp_path / "d.safetensors"))
    assert time.monotonic() - t0 < 30 and tried == []
    assert "vidsme-test-org/not-cached-7b" in str(e.value) and "hf download" in str(e.value)
    assert not (tmp_path / "d.safetensors").exists()


def test_a_shard_without_rows_gives_empty_frames_and_stats(tmp_path: Path) -> None:
    from vidsme.frames import extract_shard
    from vidsme.stats import stats_shard

    extract_shard([], 4, tmp_path / "f.npz", tmp_path / "f.tsv")  # a planned shard with no row at all
    rows = stats_shard(tmp_path / "f.npz", tmp_path / "f.tsv", tmp_path / "s.tsv")
    assert rows == [] and pd.read_csv(tmp_path / "s.tsv", sep="\t").empty
    assert np.load(tmp_path / "f.npz").files == []


def test_an_attack_without_a_row_at_main_k_is_named_in_the_table(tmp_path: Path) -> None:
    """Min-K% Prob stops at K = 90% (as released): at main_k = 100% the table says so instead of dropping it silently."""
    from vidsme.report import write_tables

    rows = [{"attack": a, "k": k, "auc": 0.6, "auc_lo": 0.5, "auc_hi": 0.7, "acc": 0.6, "tpr@0.05": 0.1, "tpr@0.01": 0.0,
             "n_members": 2, "n_nonmembers": 2} for a, ks in (("vid_sme", (0.9, 1.0)), ("min_k_prob", (0.9,))) for k in ks]
    pd.DataFrame(rows).to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    out = [str(tmp_path / n) for n in ("t.md", "t.csv", "t.tex", "k.csv")]
    t = write_tables(str(tmp_path / "m.tsv"), *out, main_k=1.0, fprs=[0.05, 0.01], coverage="4 of 5 videos scored, 1 skipped")
    assert list(t.attack) == ["vid_sme"]
    head = Path(out[0]).read_text().splitlines()[0]
    assert head.startswith("4 of 5 videos scored, 1 skipped. ") and "Not defined at K = 100% (not shown): min_k_prob." in head

"""Sample sheets: validation errors name the file, row and column."""

from pathlib import Path

import pytest

from vidsme.samples import SheetError, read_sheet, shard_rows


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.tsv"
    p.write_text(text)
    return p


def test_reads_and_resolves_paths(tmp_path: Path) -> None:
    p = _write(tmp_path, "video_id\tpath\tlabel\na\tx/a.mp4\t1\nb\t/abs/b.mp4\t0\n")
    df = read_sheet(p, video_root="/videos")
    assert list(df.path) == ["/videos/x/a.mp4", "/abs/b.mp4"]
    assert list(df.label) == [1, 0] and list(df.split) == ["eval", "eval"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("video_id\tlabel\na\t1\n", "missing column(s) path"),
        ("video_id\tpath\tlabel\na\ta.mp4\t2\n", "row 2: label must be 0 or 1"),
        ("video_id\tpath\tlabel\na b\ta.mp4\t1\n", "bad video_id 'a b'"),
        ("video_id\tpath\tlabel\na\ta.mp4\t1\na\tb.mp4\t0\n", "duplicate video_id(s): a"),
        ("video_id\tpath\tlabel\toptions\na\ta.mp4\t1\t(A) x\n", "options must be a JSON list"),
        ("video_id\tpath\tlabel\n", "no rows"),
    ],
)
def test_bad_sheets_are_named(tmp_path: Path, text: str, message: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(SheetError) as e:
        read_sheet(p)
    assert message in str(e.value) and str(p) in str(e.value)


def test_missing_sheet(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match="not found"):
        read_sheet(tmp_path / "nope.tsv")


def test_split_filter_and_shards(tmp_path: Path) -> None:
    rows = "".join(f"v{i}\tv{i}.mp4\t{i % 2}\t{'val' if i < 2 else 'eval'}\n" for i in range(10))
    df = read_sheet(_write(tmp_path, "video_id\tpath\tlabel\tsplit\n" + rows), split="eval")
    assert len(df) == 8
    assert [list(shard_rows(df, k, 3).video_id) for k in range(3)] == [["v2", "v3", "v4"], ["v5", "v6", "v7"], ["v8", "v9"]]

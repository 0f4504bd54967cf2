"""Frame-swap control: the derangement, the frames each condition scores with, and the losses on a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest_train import tiny_training_data
from vidsme import frame_swap as fs
from vidsme import train

def test_derangement_has_no_fixed_point_and_is_seeded() -> None:
    for n in (2, 3, 10, 200):
        p = fs.derangement(n, seed=0)
        assert sorted(p.tolist()) == list(range(n)) and not (p == np.arange(n)).any()
    assert np.array_equal(fs.derangement(50, 1), fs.derangement(50, 1))
    assert not np.array_equal(fs.derangement(50, 1), fs.derangement(50, 2))
    with pytest.raises(ValueError, match="at least 2 videos"):
        fs.derangement(1, 0)


def test_swapped_frames_per_condition() -> None:
    frames = {f"v{i}": np.full((2, 4, 4, 3), i, np.uint8) for i in range(5)}
    ids = list(frames)
    assert all(fs.swapped_frames(frames, ids, "own", 0)[v] is frames[v] for v in ids)
    other = fs.swapped_frames(frames, ids, "other", 0)
    got = [int(other[v][0, 0, 0, 0]) for v in ids]
    assert sorted(got) == list(range(5)) and all(g != i for i, g in enumerate(got))  # each video another's frames
    assert all(not fs.swapped_frames(frames, ids, "black", 0)[v].any() for v in ids)
    with pytest.raises(ValueError, match="unknown condition 'mirror'"):
        fs.swapped_frames(frames, ids, "mirror", 0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    from vidsme.models import load_model

    model_dir, df, frames = tiny_training_data(tmp_path_factory.mktemp("fs"), n_val=0, n_pretrain=0)
    return load_model({"id": str(model_dir)}), train._check_samples(df), frames


def test_frame_swap_rows_and_own_equals_memorisation(tiny) -> None:
    loaded, rows, frames = tiny
    t = fs.frame_swap(loaded, rows, frames, 4, seed=0)
    assert t["condition"].tolist() == ["own", "other", "black"] and list(t.columns) == fs.COLUMNS
    own = train.memorisation(train.answer_losses(loaded, rows, frames, 4), rows["label"].to_numpy())
    assert t.iloc[0]["member_loss"] == pytest.approx(own["member_loss"], rel=1e-6)
    assert t.iloc[0]["auc"] == pytest.approx(own["auc"])
    assert not np.isclose(t.iloc[2]["member_loss"], t.iloc[0]["member_loss"])  # black frames change the loss


def test_frame_swap_cannot_matter_when_every_video_has_the_same_frames(tiny) -> None:
    loaded, rows, frames = tiny
    same = {v: frames[rows["video_id"].iloc[0]] for v in frames}
    t = fs.frame_swap(loaded, rows, same, 4, seed=3).set_index("condition")
    for col in ("member_loss", "nonmember_loss", "auc"):
        assert t.loc["other", col] == pytest.approx(t.loc["own", col], rel=1e-6)


def test_write_table(tmp_path: Path) -> None:
    t = pd.DataFrame([["own", 0.001, 1.74, 1.739, 0.9825, 100, 100], ["other", 1.29, 1.79, 0.5, 0.632, 100, 100],
                      ["black", 0.97, 1.72, 0.75, 0.688, 100, 100]], columns=fs.COLUMNS)
    fs.write_table(t, tmp_path / "t.md", tmp_path / "t.csv", "main")
    md = (tmp_path / "t.md").read_text()
    assert "| another evaluation video's frames | 1.2900 | 1.7900 | 63.2 |" in md and "`main` target" in md
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), t)

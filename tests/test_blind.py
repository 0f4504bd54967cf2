"""Blind baseline: model-free features, cross-fitted out-of-fold scores, importances, verdict, bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import yaml

from vidsme import blind, blindfeatures
from vidsme.blind import BlindError, cross_fit, permutation_importance, verdict

ROOT = Path(__file__).resolve().parents[1]


def _planted(n: int, shift: float, seed: int = 0, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """n videos, half members; feature 0 of the members shifted by `shift` standard deviations."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2), np.zeros(n - n // 2)].astype(int)
    x = rng.normal(size=(n, d))
    x[:, 0] += shift * y
    return x, y


def _auc(s: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


# ----------------------------------------------------------------------------- the classifier


@pytest.mark.parametrize("kind", ["gradient_boosting", "logistic"])
def test_planted_shift_gives_blind_auc_near_one(kind: str) -> None:
    x, y = _planted(200, shift=4.0)
    fit = cross_fit(x, y, classifier=kind, folds=5, repeats=1, seed=0)
    assert _auc(fit.scores, y) > 0.95


@pytest.mark.parametrize("kind", ["gradient_boosting", "logistic"])
def test_exchangeable_split_gives_blind_auc_near_half(kind: str) -> None:
    x, y = _planted(400, shift=0.0, seed=1)
    fit = cross_fit(x, y, classifier=kind, folds=5, repeats=2, seed=0)
    assert abs(_auc(fit.scores, y) - 0.5) < 0.1  # null SD of an AUC on 200 + 200 is ~0.03


class _Spy:
    """A classifier that records which rows (column 0 holds the row index) it was fitted on and scored."""

    log: ClassVar[list[tuple[set[int], set[int]]]] = []

    def __init__(self, seed: int, n_train: int) -> None:
        self.fitted: set[int] = set()

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Spy:
        self.fitted = set(x[:, 0].astype(int).tolist())
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        _Spy.log.append((self.fitted, set(x[:, 0].astype(int).tolist())))
        p = (x[:, 1] > 0).astype(float) * 0.5 + 0.25
        return np.c_[1 - p, p]


def test_out_of_fold_scores_never_come_from_a_model_that_saw_the_video() -> None:
    _Spy.log = []
    x, y = _planted(60, shift=1.0)
    x = np.c_[np.arange(60), x]
    fit = cross_fit(x, y, classifier=_Spy, folds=5, repeats=3, seed=0)
    assert len(_Spy.log) == 15 and fit.folds == 5
    scored = np.zeros(60, int)
    for fitted, predicted in _Spy.log:
        assert not fitted & predicted
        assert len(fitted) + len(predicted) == 60
        scored[list(predicted)] += 1
    assert (scored == 3).all()  # every video scored once per repeat


def test_a_memorising_classifier_cannot_score_videos_it_saw() -> None:
    """1-nearest-neighbour on pure noise: AUC 1.0 on its own training videos, chance out of fold."""
    from sklearn.neighbors import KNeighborsClassifier

    x, y = _planted(200, shift=0.0, seed=3)
    knn = KNeighborsClassifier(n_neighbors=1).fit(x, y)
    assert _auc(knn.predict_proba(x)[:, 1], y) == 1.0  # what a leak would show
    fit = cross_fit(x, y, classifier=lambda s, n: KNeighborsClassifier(n_neighbors=1), folds=5, repeats=1, seed=0)
    assert abs(_auc(fit.scores, y) - 0.5) < 0.12


def test_groups_keep_near_duplicates_in_one_fold() -> None:
    """Pairs of identical videos sharing a label: without groups a memoriser finds the twin across folds."""
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(4)
    base = rng.normal(size=(100, 5))
    lab = rng.permutation(np.r_[np.ones(50), np.zeros(50)]).astype(int)
    x, y, g = np.repeat(base, 2, axis=0), np.repeat(lab, 2), np.repeat(np.arange(100), 2).astype(object)
    knn = lambda s, n: KNeighborsClassifier(n_neighbors=1)
    leaky = cross_fit(x, y, classifier=knn, folds=5, seed=0)
    grouped = cross_fit(x, y, classifier=knn, folds=5, seed=0, groups=g)
    assert _auc(leaky.scores, y) > 0.9
    assert abs(_auc(grouped.scores, y) - 0.5) < 0.15
    for r in range(grouped.fold_of.shape[0]):
        assert all(len(set(grouped.fold_of[r][g == k])) == 1 for k in range(100))


def test_small_class_lowers_folds_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    x, y = _planted(44, shift=2.0)
    y = np.r_[np.ones(4), np.zeros(40)].astype(int)
    with caplog.at_level(logging.WARNING, logger="vidsme.blind"):
        fit = cross_fit(x, y, classifier="logistic", folds=5, seed=0)
    assert fit.folds == 2
    assert "lowered from 5 to 2" in caplog.text and "members have 4 videos" in caplog.text


def test_gradient_boosting_still_splits_four_videos_per_class() -> None:
    x, y = _planted(8, shift=3.0)
    fit = cross_fit(x, y, classifier="gradient_boosting", folds=5, seed=0)
    assert fit.folds == 2 and np.unique(fit.scores).size > 2


def test_class_too_small_for_two_folds_is_an_error_naming_it() -> None:
    x, _ = _planted(43, shift=0.0)
    y = np.r_[np.ones(3), np.zeros(40)].astype(int)
    with pytest.raises(BlindError, match=r"3 videos of members .* at least 4 per class"):
        cross_fit(x, y, classifier="logistic", folds=5, seed=0)


def test_degenerate_classifier_is_an_error_not_an_auc() -> None:
    from sklearn.dummy import DummyClassifier

    x, y = _planted(40, shift=3.0)
    with pytest.raises(BlindError, match="degenerate classifier: all 40 out-of-fold scores equal"):
        cross_fit(x, y, classifier=lambda s, n: DummyClassifier(strategy="prior"), folds=4, seed=0)


def test_permutation_importance_finds_the_planted_feature() -> None:
    x, y = _planted(200, shift=3.0, d=4)
    names = ["colour:a", "colour:b", "text:c", "text:d"]
    fit = cross_fit(x, y, classifier="gradient_boosting", folds=5, seed=0)
    imp = permutation_importance(x, y, names, fit, n_repeats=3, seed=0)
    feats = imp[imp.level == "feature"]
    assert feats.feature.iloc[0] == "colour:a" and feats.importance.iloc[0] > 0.2
    assert imp[(imp.level == "feature") & (imp.feature == "text:c")].importance.abs().iloc[0] < 0.05
    groups = imp[imp.level == "group"].set_index("feature")
    assert groups.loc["colour", "importance"] > 0.2 and groups.loc["colour", "n_columns"] == 2


# ----------------------------------------------------------------------------- features


def test_visual_features_of_known_frames() -> None:
    gray = np.full((4, 16, 16, 3), 128, np.uint8)
    f = blindfeatures.visual_features(gray)
    assert f["colour:r_std"] == 0 and f["colour:r_hist4"] == 1.0 and f["colour:r_mean"] == pytest.approx(128 / 255, abs=1e-6)
    assert f["texture:edge_mean"] == 0 and f["temporal:diff_mean"] == 0 and f["colour:sat_mean"] == 0
    flip = np.zeros((4, 16, 16, 3), np.uint8)
    flip[1::2] = 255  # black, white, black, white
    f = blindfeatures.visual_features(flip)
    assert f["temporal:diff_mean"] == pytest.approx(1.0) and f["temporal:first_last"] == pytest.approx(1.0)
    assert f["colour:g_hist0"] == pytest.approx(0.5) and f["colour:g_hist7"] == pytest.approx(0.5)
    ramp = np.stack([np.full((16, 16, 3), 10 * i, np.uint8) for i in range(5)])
    assert blindfeatures.visual_features(ramp)["temporal:brightness_slope"] == pytest.approx(10 / 255, rel=1e-3)
    half = np.zeros((2, 16, 16, 3), np.uint8)
    half[:, :, 8:] = 255
    f = blindfeatures.visual_features(half)
    assert f["texture:edge_mean"] > 0 and f["colour:b_mean"] == pytest.approx(0.5)


def test_visual_features_shrink_large_frames_only() -> None:
    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (2, 256, 200, 3), dtype=np.uint8)
    assert blindfeatures.visual_features(big, max_side=64) != blindfeatures.visual_features(big, max_side=512)
    small = big[:, :32, :32]
    assert blindfeatures.visual_features(small, max_side=64) == blindfeatures.visual_features(small, max_side=512)


def test_container_features_from_manifest_facts() -> None:
    facts = {"width": "64", "height": "32", "fps": "8.0", "declared_frames": "40", "duration_s": "4.0", "file_bytes": "1000",
             "bit_rate": "2000", "codec": "h264", "pix_fmt": "yuv420p"}
    f = blindfeatures.container_features(facts, 32)
    assert f["container:aspect"] == 2.0 and f["container:declared_minus_decoded"] == 8
    assert f["container:bits_per_pixel_frame"] == pytest.approx(8 * 1000 / (64 * 32 * 32))
    assert f["container:codec=h264"] == 1.0 and f["container:pix_fmt=yuv420p"] == 1.0
    silent = blindfeatures.container_features({**facts, "declared_frames": "", "fps": ""}, 32)
    assert np.isnan(silent["container:declared_frames"]) and np.isnan(silent["container:fps"])


def test_text_features_lengths_and_words() -> None:
    sheet = pd.DataFrame({"video_id": ["a", "b"], "question": ["Which way?", "Is it red or blue?"],
                          "options": ['["left", "right"]', '["x", "y", "z"]'], "answer": ["(A) left", "(C) z"], "caption": ["", ""]})
    assert blindfeatures.sheet_texts(sheet) == ["question", "options", "answer"]
    t = blindfeatures.text_features(sheet, ["question", "options", "answer"], bow_max=50)
    assert t.loc["b", "text:question_words"] == 5 and t.loc["a", "text:question_chars"] == 10
    assert t.loc["a", "text:n_options"] == 2 and t.loc["b", "text:n_options"] == 3
    assert t.loc["a", "bow:left"] == 1 and t.loc["b", "bow:left"] == 0 and t.loc["b", "bow:blue"] == 1


def test_clean_features_policies(caplog: pytest.LogCaptureFixture) -> None:
    x = pd.DataFrame({"a:const": [1.0, 1, 1, 1], "a:nan": [np.nan] * 4, "a:part": [1.0, np.nan, 3, np.inf],
                      "a:ok": [1.0, 2, 3, 4]}, index=list("wxyz"))
    with caplog.at_level(logging.WARNING, logger="vidsme.blind"):
        c = blindfeatures.clean_features(x)
    assert list(c.columns) == ["a:part:missing", "a:part", "a:ok"]
    assert c["a:part"].tolist() == [1.0, 2.0, 3.0, 2.0] and c["a:part:missing"].tolist() == [0, 1, 0, 1]
    assert "a:const: constant" in caplog.text and "a:nan: no value" in caplog.text and "a:part: missing for 2 of 4 videos (first: x)" in caplog.text
    with pytest.raises(ValueError, match="no usable feature"):
        blindfeatures.clean_features(x[["a:const", "a:nan"]])


def test_unknown_feature_group_is_named() -> None:
    with pytest.raises(ValueError, match=r"blind.features: unknown group\(s\) \['colour'\]"):
        blindfeatures.select(["colour"])


# ----------------------------------------------------------------------------- verdict, config


def test_verdict_threshold() -> None:
    assert verdict(0.62, 0.53, 0.70, 0.02)[0] == "shifted"
    assert verdict(0.60, 0.515, 0.68, 0.02)[0] == "exchangeable"  # above 50 but within the margin
    kind, line = verdict(0.55, 0.47, 0.63, 0.02)
    assert kind == "exchangeable" and "55.0 [47.0, 63.0]" in line and "up to 63" in line
    assert verdict(0.55, float("nan"), float("nan"), 0.02)[0] == "none"


def test_schema_defaults_are_the_package_defaults() -> None:
    from vidsme import dataset_inference

    props = yaml.safe_load((ROOT / "config" / "schemas" / "config.schema.yaml").read_text())["properties"]
    for key, defaults in (("blind", blind.DEFAULTS), ("dataset_inference", dataset_inference.DEFAULTS)):
        schema = {k: v["default"] for k, v in props[key]["properties"].items()}
        schema.pop("enabled", None)
        assert schema == defaults, key
        assert all(v.get("description") for v in props[key]["properties"].values()), key


# ----------------------------------------------------------------------------- the workflow step


def _shard(tmp: Path, vids: list[str], frames: dict[str, np.ndarray], fps: dict[str, str]) -> tuple[str, str]:
    np.savez(tmp / "s.npz", **{v: frames[v] for v in vids})
    cols = "video_id\tn_decoded\tindices\tstatus\treason\twidth\theight\tfps\tdeclared_frames\tduration_s\tfile_bytes\tbit_rate\tcodec\tpix_fmt"
    rows = [f"{v}\t32\t0,10,20,31\tok\t\t16\t16\t{fps[v]}\t32\t4.0\t{1000 + i}\t2000\th264\tyuv420p" for i, v in enumerate(vids)]
    (tmp / "s.tsv").write_text(cols + "\n" + "\n".join(rows) + "\n")
    return str(tmp / "s.npz"), str(tmp / "s.tsv")


def _inputs(tmp: Path, n: int, bright_members: bool, text: bool = True) -> dict:
    rng = np.random.default_rng(0)
    vids = [f"v{i:03d}" for i in range(n)]
    label = {v: i % 2 for i, v in enumerate(vids)}
    frames = {v: np.clip(rng.normal(100 + (60 * label[v] if bright_members else 0), 20, (4, 16, 16, 3)), 0, 255).astype(np.uint8)
              for v in vids}
    npz, man = _shard(tmp, vids, frames, {v: "8.0" for v in vids})
    pd.DataFrame({"video_id": vids, "n_decoded": 32, "k1": rng.random(n), "k3": rng.random(n), "q": 1 + rng.random(n),
                  "r": 1 + rng.random(n) / 10}).to_csv(tmp / "qr.tsv", sep="\t", index=False)
    sheet = {"video_id": vids, "path": [f"{v}.mp4" for v in vids], "label": [label[v] for v in vids], "split": "eval"}
    if text:
        sheet["question"] = [rng.choice(["What moves?", "Which colour is the ball?"]) for _ in vids]
    pd.DataFrame(sheet).to_csv(tmp / "sheet.tsv", sep="\t", index=False)
    return {"frames_npzs": [npz], "manifests": [man], "qr_tsv": str(tmp / "qr.tsv"), "sheet_tsv": str(tmp / "sheet.tsv")}


def _step(tmp: Path, inputs: dict, **cfg) -> dict:
    outs = {k: str(tmp / f"{k}") for k in ("out_scores", "out_metrics", "out_importances")}
    return blind.baseline_step(**inputs, cfg={"repeats": 1, "importance_repeats": 2, **cfg}, seed=0, fprs=[0.05, 0.01, 0.001],
                               n_boot=50, nonfinite="lowest", **outs)


def test_step_planted_brightness_shift(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path, 60, bright_members=True)
    m = _step(tmp_path, inputs)
    assert m["auc"] > 0.95 and m["auc_lo"] > 0.9
    scores = pd.read_csv(tmp_path / "out_scores", sep="\t")
    assert list(scores.columns) == ["video_id", "label", "split", "score"] and len(scores) == 60
    metrics = pd.read_csv(tmp_path / "out_metrics", sep="\t")
    assert metrics.attack.tolist() == ["blind"] and metrics.k.isna().all()
    from vidsme.pipeline import (
        metrics as attack_metrics,  # same columns as an attack's metrics file
    )

    pd.DataFrame({"video_id": scores.video_id, "label": scores.label, "attack": "x", "k": np.nan, "score": scores.score}).to_csv(
        tmp_path / "sc.tsv", sep="\t", index=False)
    assert list(attack_metrics(str(tmp_path / "sc.tsv"), str(tmp_path / "m.tsv"), [0.05, 0.01, 0.001], 50, 0).columns) == list(metrics.columns)
    imp = pd.read_csv(tmp_path / "out_importances")
    assert imp[imp.level == "group"].feature.iloc[0] == "colour"
    # every container fact is constant here (dropped) except the file size and what derives from it
    assert set(imp[(imp.level == "feature") & (imp.group == "container")].feature) == {"container:log_file_bytes", "container:bits_per_pixel_frame"}


def test_step_is_deterministic(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path, 40, bright_members=False)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    _step(tmp_path / "a", inputs)
    _step(tmp_path / "b", inputs)
    for f in ("out_scores", "out_metrics", "out_importances"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_step_exchangeable_and_without_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    inputs = _inputs(tmp_path, 80, bright_members=False, text=False)
    with caplog.at_level(logging.WARNING, logger="vidsme.blind"):
        m = _step(tmp_path, inputs)
    assert m["auc_lo"] < 0.5 < m["auc_hi"]
    assert "the sheet has no text" in caplog.text
    assert not any(f.startswith(("text:", "bow:")) for f in pd.read_csv(tmp_path / "out_importances").feature)


def test_report_adds_blind_row_and_verdict(tmp_path: Path) -> None:
    from vidsme.report import write_tables

    attack = {"attack": "vid_sme", "k": 0.1, "auc": 0.55, "auc_lo": 0.47, "auc_hi": 0.63, "acc": 0.56, "tpr@0.05": 0.05,
              "tpr@0.01": 0.01, "n_members": 100, "n_nonmembers": 100}
    pd.DataFrame([attack]).to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    b = {**attack, "attack": "blind", "k": np.nan, "auc": 0.9, "auc_lo": 0.85, "auc_hi": 0.95}
    pd.DataFrame([b]).to_csv(tmp_path / "b.tsv", sep="\t", index=False)
    out = {k: str(tmp_path / f"t.{k}") for k in ("md", "csv", "tex")}
    t = write_tables(str(tmp_path / "m.tsv"), out["md"], out["csv"], out["tex"], str(tmp_path / "k.csv"), 0.1, [0.05, 0.01],
                     blind_tsv=str(tmp_path / "b.tsv"))
    assert t.attack.tolist() == ["blind", "vid_sme"] and np.isnan(t.K.iloc[0])
    md = Path(out["md"]).read_text()
    assert "Blind baseline AUC 90.0 [85.0, 95.0]: split looks **shifted**" in md and "| blind |" in md
    assert "blind" not in pd.read_csv(tmp_path / "k.csv").to_string()


def test_manifest_records_container_facts(tmp_path: Path) -> None:
    from conftest import moving_square_clip

    from vidsme.frames import (
        CONTAINER_COLUMNS,
        MANIFEST_COLUMNS,
        extract_shard,
        read_manifest,
    )

    clip = moving_square_clip(tmp_path / "a.mp4", n=24, size=48)
    extract_shard([("a", clip), ("gone", tmp_path / "none.mp4")], 4, tmp_path / "s.npz", tmp_path / "s.tsv")
    header = (tmp_path / "s.tsv").read_text().splitlines()[0].split("\t")
    assert header == list(MANIFEST_COLUMNS + CONTAINER_COLUMNS)
    ok, gone = read_manifest(tmp_path / "s.tsv")
    assert ok.container is not None and gone.container is not None
    assert (ok.container["width"], ok.container["height"], ok.container["codec"], ok.container["pix_fmt"]) == ("48", "48", "h264", "yuv420p")
    assert float(ok.container["fps"]) == 8.0 and int(ok.container["file_bytes"]) == clip.stat().st_size
    assert float(ok.container["duration_s"]) == pytest.approx(24 / 8, abs=0.2)
    assert set(gone.container.values()) == {""}
    # a manifest without the facts (written before they existed) still reads
    old = "\n".join("\t".join(line.split("\t")[:5]) for line in (tmp_path / "s.tsv").read_text().splitlines()) + "\n"
    (tmp_path / "old.tsv").write_text(old)
    assert [r.container for r in read_manifest(tmp_path / "old.tsv")] == [None, None]
    assert json.dumps(ok.container)  # plain strings

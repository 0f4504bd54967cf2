"""Natural and reversed model passes over a shard of videos, reduced on device and dumped.

For each video the same prompt is run on the sampled frames in natural order and on
`frames[::-1]` (reversal after sampling), batched together by default. Logits are computed only
at the scored (video-token) positions (`logits_to_keep`), reduced with
`vidsme.reduce.reduce_logits` on the model's device, and written with `vidsme.dump.write_shard`
under the pass names `nat` (natural order) and `rev` (reversed), positions aligned by index.
The optional answer slice adds `nat_answer` and `rev_answer` (the answer tokens, true targets).
`run_shard` feeds the device through `vidsme.feed`: processor inputs prepared ahead in a worker
thread, optionally several videos per forward (halved on out-of-memory).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .dump import write_shard
from .feed import Feeder, Item
from .models import Loaded, append_answer, build_inputs, prompt_hash, render_prompt
from .reduce import cross_terms

log = logging.getLogger("vidsme.passes")

PASSES = ("nat", "rev")  # natural order, frames[::-1]


def _reduce_fn() -> Any:
    return importlib.import_module("vidsme.reduce").reduce_logits


def _runs(pos: torch.Tensor) -> list[list[int]]:
    """Positions as [start, stop) runs (video tokens are contiguous runs)."""
    out: list[list[int]] = []
    for p in pos.tolist():
        if out and out[-1][1] == p:
            out[-1][1] = p + 1
        else:
            out.append([p, p + 1])
    return out


def positions_from_runs(runs: list[list[int]]) -> np.ndarray:
    """Inverse of the header encoding of scored positions."""
    return np.concatenate([np.arange(a, b) for a, b in runs]) if runs else np.zeros(0, np.int64)


def _spec_json(spec: Any) -> str:
    d = dataclasses.asdict(spec) if dataclasses.is_dataclass(spec) else dict(vars(spec))
    return json.dumps(d, sort_keys=True, default=str)


def forward_scored(loaded: Loaded, inputs: Any, scored: torch.Tensor, full_logits: bool = False) -> torch.Tensor:
    """Logits (B, P, V) at the scored positions, on the model's device. With `full_logits` the
    lm_head runs on every position and the rows are sliced afterwards (benchmark reference)."""
    model = loaded.model
    inputs = inputs.to(loaded.device)
    fdtype = next(model.parameters()).dtype
    for k, v in inputs.items():  # pixels in the model dtype; other floats (e.g. Qwen's time grid) untouched
        if k.startswith("pixel") and isinstance(v, torch.Tensor) and v.is_floating_point():
            inputs[k] = v.to(fdtype)
    batch = inputs["input_ids"].shape[0]
    idx = scored.to(loaded.device)
    keep: int | torch.Tensor = 0 if full_logits else idx[None].expand(batch, -1).contiguous()
    out = model(**inputs, logits_to_keep=keep, use_cache=False)
    return out.logits[:, idx] if full_logits else out.logits


def _to_numpy(d: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    res = {}
    for k, v in d.items():
        t = v.detach()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        res[k] = t.cpu().numpy()
    return res


def _nonfinite(red: dict[str, torch.Tensor], logits: torch.Tensor) -> int:
    if "nonfinite" in red:
        return int(torch.as_tensor(red["nonfinite"]).sum().item())
    return int((~torch.isfinite(logits)).sum().item())


def _oom_message(loaded: Loaded, vid: str, batch_orders: bool) -> str:
    hint = "set model.batch_orders: false (one order at a time)" if batch_orders else "use fewer frames"
    return (f"CUDA out of memory on video {vid!r} with {loaded.model_id} ({loaded.dtype}); {hint}, "
            f"or load in a smaller dtype (bfloat16/float16)")


@dataclasses.dataclass
class Forward:
    """One prepared forward: its batch rows as (video index in the group, pass), processor inputs,
    the rows to keep (scored video positions, then answer positions), the scored positions and the
    answer's token ids (answer slice) or None."""

    rows: list[tuple[int, str]]
    inputs: Any
    keep: torch.Tensor
    scored: torch.Tensor
    ans_ids: torch.Tensor | None = None


def prepare_passes(loaded: Loaded, videos: list[np.ndarray], prompt: dict[str, Any], batch_orders: bool = True,
                   answer: str | None = None, append_eos: bool = False) -> list[Forward]:
    """Processor inputs of both passes of `videos` (same shape, same prompt): one forward of
    2 x len(videos) rows (natural, reversed per video) with `batch_orders`, else one per order.
    Several videos per forward need the video-only passes (`answer` None)."""
    if len(videos) > 1 and answer is not None:
        raise ValueError("several videos per forward need the video-only passes (no answer slice)")
    orders = [{"nat": fr, "rev": np.ascontiguousarray(fr[::-1])} for fr in videos]
    idx = range(len(videos))
    groups = [[(j, p) for j in idx for p in PASSES]] if batch_orders else [[(j, p) for j in idx] for p in PASSES]
    out: list[Forward] = []
    for rows in groups:
        inputs, pos = build_inputs(loaded, [orders[j][p] for j, p in rows], prompt, truncate=answer is None)
        if out and not torch.equal(pos, out[0].scored):
            raise RuntimeError("natural and reversed passes have different scored positions")
        keep, ans_ids = pos, None
        if answer is not None:
            inputs, ans_ids, ans_pos = append_answer(loaded, inputs, answer, eos=append_eos)
            keep = torch.cat([pos, ans_pos])
        out.append(Forward(rows, inputs, keep, pos, ans_ids))
    return out


Result = tuple[dict[str, dict[str, np.ndarray]], torch.Tensor, dict[str, int]]


def compute_passes(loaded: Loaded, forwards: list[Forward], spec: Any, full_logits: bool = False,
                   reduce_on_host: bool = False, compile_reduce: bool = False,
                   companion: Loaded | None = None) -> list[Result]:
    """Run prepared forwards and reduce every row: per video ({pass: arrays}, scored, {pass: nonfinite}).

    With `companion` (a reference model's passes: `loaded` is the reference, `companion` the target)
    the target also runs on the identical inputs and every pass gains the exact cross terms of
    `vidsme.reduce.cross_terms` (KL both ways, the reference's log-prob at the target's token)."""
    reduce_logits = _reduce_fn()
    rkw = {"compile": True} if compile_reduce else {}
    logits: dict[tuple[int, str], torch.Tensor] = {}
    clogits: dict[tuple[int, str], torch.Tensor] = {}
    with torch.inference_mode():
        for f in forwards:
            out = forward_scored(loaded, copy.copy(f.inputs), f.keep, full_logits=full_logits)
            cout = None if companion is None else forward_scored(companion, copy.copy(f.inputs), f.keep, full_logits=full_logits)
            for i, row in enumerate(f.rows):
                logits[row] = out[i]
                if cout is not None:
                    clogits[row] = cout[i]
        scored, ans_ids = forwards[0].scored, forwards[0].ans_ids
        n = int(scored.numel())
        results: list[Result] = []
        for j in sorted({j for j, _ in logits}):
            entries, bad = {}, {}
            for p in PASSES:
                lg = logits.pop((j, p))
                lg = lg.cpu() if reduce_on_host else lg
                clg = clogits.pop((j, p), None)
                red = reduce_logits(lg[:n], spec, **rkw)
                bad[p] = _nonfinite(red, lg[:n])
                entries[p] = _to_numpy(red)
                if clg is not None:
                    entries[p].update(_to_numpy(cross_terms(lg[:n], clg[:n], spec=spec)))
                if ans_ids is not None:
                    a = f"{p}_answer"
                    red = reduce_logits(lg[n:], spec, **rkw)
                    bad[a] = _nonfinite(red, lg[n:])
                    lp = torch.log_softmax(lg[n:].double(), dim=-1)
                    tgt = ans_ids.to(lp.device)
                    entries[a] = {**_to_numpy(red), "target_ids": tgt.cpu().numpy(),
                                  "target_logp": lp.gather(-1, tgt[:, None])[:, 0].cpu().numpy()}
                    if clg is not None:
                        entries[a].update(_to_numpy(cross_terms(lg[n:], clg[n:], target_ids=tgt, spec=spec)))
            results.append((entries, scored, bad))
    return results


def video_passes(loaded: Loaded, frames: np.ndarray, prompt: dict[str, Any], spec: Any, batch_orders: bool = True,
                 full_logits: bool = False, reduce_on_host: bool = False, answer: str | None = None,
                 append_eos: bool = False, compile_reduce: bool = False, companion: Loaded | None = None) -> Result:
    """Both passes of one video: ({pass: reduced arrays}, scored positions, {pass: nonfinite count}).

    With `answer` (optional target-based slice, off by default) the prompt is not truncated, the
    answer tokens (and with `append_eos` the end-of-sequence token) are appended, and the answer
    positions of each pass are reduced the same way under the pass names `nat_answer`,
    `rev_answer`, with `target_ids` [A] and `target_logp` [A] (log-probability of each true answer
    token given everything before it). The video positions are unchanged (causal model).
    `companion`: see `compute_passes`."""
    fw = prepare_passes(loaded, [frames], prompt, batch_orders, answer, append_eos)
    return compute_passes(loaded, fw, spec, full_logits, reduce_on_host, compile_reduce, companion)[0]


def run_shard(loaded: Loaded, frames: dict[str, np.ndarray], prompt: dict[str, Any], spec: Any,
              out_path: str | Path, header_extra: dict[str, str] | None = None, batch_orders: bool = True,
              answers: dict[str, str | tuple[dict[str, Any], str]] | None = None, append_eos: bool = False,
              videos_per_forward: int = 1, prefetch: int = 1, compile_reduce: bool = False,
              companion: Loaded | None = None) -> dict[str, Any]:
    """Run both passes on every video of `frames` ({video_id: (F, H, W, 3) uint8}) and write one dump.

    `answers` (optional, off by default) adds the target-based answer slice (passes `nat_answer`,
    `rev_answer`, see `video_passes`) for the videos it names: {video_id: answer text} with the
    shared `prompt`, or {video_id: (that video's prompt, answer text)} (`vidsme.prompts.answer_item`:
    same system text and prefix, the video's question after the video). Returns a summary:
    {"videos": {video_id: {"status", "positions", "nonfinite": {pass: n}}},
    "n_nonfinite_videos": int, "path": str, "feed": {...}}. Status is "ok" or "nonfinite" (NaN/inf logits).

    Feeding (`vidsme.feed`): `videos_per_forward` videos share one forward where they can (same
    frame shape and prompt, no answer slice; an out-of-memory error halves it, logged, down to one
    video, where the error says what to change); `prefetch` groups are prepared ahead by a worker
    thread; `compile_reduce` fuses the reduction with torch.compile. "feed" reports the time spent
    waiting for inputs (`wait_fraction` of the wall time of the passes).
    `companion` (a reference model's dump: the target) adds the cross terms to every pass (`compute_passes`).
    """
    if companion is not None:
        check_companion(loaded, companion)
    if not frames:
        raise ValueError("run_shard: no videos in this shard")
    text = render_prompt(loaded.processor, prompt)
    entries: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    positions: dict[str, list[list[int]]] = {}
    summary: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    items = []
    for vid, fr in frames.items():
        item = (answers or {}).get(vid)
        vprompt, answer = item if isinstance(item, tuple) else (prompt, item)
        items.append(Item(vid, fr, vprompt, answer))

    def prepare(group: list[Item]) -> list[Forward]:
        try:
            return prepare_passes(loaded, [it.frames for it in group], group[0].prompt, batch_orders,
                                  group[0].answer, append_eos)
        except ValueError as e:
            raise ValueError(f"video {', '.join(repr(it.vid) for it in group)}: {e}") from e

    threads = torch.get_num_threads()  # the worker thread uses the caller's intra-op thread count (pinned runs)
    feeder = Feeder(items, prepare, k=videos_per_forward, prefetch=prefetch,
                    initializer=lambda: torch.set_num_threads(threads))
    halvings = 0
    try:
        for group, prepared, _ in feeder:
            try:
                results = compute_passes(loaded, prepared, spec, compile_reduce=compile_reduce, companion=companion)
            except torch.cuda.OutOfMemoryError as e:
                if len(group) == 1:
                    raise RuntimeError(_oom_message(loaded, group[0].vid, batch_orders)) from e
                del prepared
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                halvings += 1
                log.warning("out of memory with %d videos per forward (%s ...); halving to %d", len(group),
                            group[0].vid, len(group) // 2)
                feeder.retry(group, len(group) // 2)
                continue
            for it, (ent, scored, bad) in zip(group, results):
                entries[it.vid] = ent
                positions[it.vid] = _runs(scored)
                summary[it.vid] = {"status": "nonfinite" if any(bad.values()) else "ok",
                                   "positions": int(scored.numel()), "nonfinite": bad}
                log.info("video %d/%d %s: %d positions, %s (%.1f s so far)", len(entries), len(frames), it.vid,
                         int(scored.numel()), summary[it.vid]["status"], time.perf_counter() - t0)
    finally:
        feeder.close()
    wall = time.perf_counter() - t0
    feed = {"videos_per_forward": feeder.k, "prefetch": prefetch, "halvings": halvings,
            "wait_s": round(feeder.wait_s, 4), "wall_s": round(wall, 4),
            "wait_fraction": round(feeder.wait_s / wall, 4) if wall > 0 else 0.0}
    log.info("passes: %d videos in %.1f s, waiting for inputs %.0f%% of the time (%d per forward, prefetch %d)",
             len(entries), wall, 100 * feed["wait_fraction"], feeder.k, prefetch)
    counts = sorted({int(f.shape[0]) for f in frames.values()})
    header = {
        "model_id": loaded.model_id, "model_path": loaded.model_id, "revision": str(loaded.revision or ""), "dtype": loaded.dtype,
        "device": str(loaded.device), "frame_count": str(counts[0]) if len(counts) == 1 else json.dumps(counts),
        "prompt": json.dumps(prompt, sort_keys=True), "prompt_hash": prompt_hash(text), "reduce_spec": _spec_json(spec),
        "scored_positions": json.dumps(positions, sort_keys=True),
        "passes": json.dumps(list(PASSES) + ([f"{p}_answer" for p in PASSES] if answers else [])),
        "batch_orders": str(bool(batch_orders)), "videos_per_forward": str(videos_per_forward), "answer_slice": str(bool(answers)), "answer_eos": str(bool(answers) and append_eos), "vidsme_version": __version__,
        "torch_version": torch.__version__, "transformers_version": _tf_version(),
        "companion_model_path": companion.model_id if companion is not None else "",
    }
    for k, v in (header_extra or {}).items():  # overrides built-ins (e.g. a logical model_id)
        if k in _PROTECTED:
            raise ValueError(f"header_extra key {k!r} would overwrite a field the dump reader relies on")
        header[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    path = write_shard(out_path, entries, header)
    n_bad = sum(s["status"] != "ok" for s in summary.values())
    return {"videos": summary, "n_nonfinite_videos": n_bad, "path": str(path), "feed": feed}


def check_companion(loaded: Loaded, companion: Loaded) -> None:
    """The target run as a reference model's companion must read the same inputs: same video token and
    vocabulary (the full check of tokenizer and processors is `vidsme.reference.check_compatible`)."""
    vr = loaded.model.get_output_embeddings().weight.shape[0]
    vt = companion.model.get_output_embeddings().weight.shape[0]
    if vr != vt or loaded.video_token_id != companion.video_token_id:
        raise ValueError(f"reference {loaded.model_id} (vocabulary {vr}, video token {loaded.video_token_id}) and target "
                         f"{companion.model_id} (vocabulary {vt}, video token {companion.video_token_id}) differ: "
                         "a reference model needs the target's vocabulary and tokenizer")


_PROTECTED = {"companion_model_path", "answer_slice", "answer_eos", "model_path", "frame_count", "prompt_hash", "reduce_spec", "scored_positions", "passes", "format",
              "videos", "n_tensors"}


def _tf_version() -> str:
    import transformers

    return transformers.__version__

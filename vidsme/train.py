"""Fine-tune a (tiny) video-LLM so that membership is real: members were really trained on.

Two stages, as real video-LLMs are made:

1. optional pretraining on a disjoint pool (`pretrain`): language modelling on caption and
   QA text, plus video-caption alignment (caption loss given the video). Its result is the
   **base target**: it never saw an evaluation video, so an attack on it measures the split;
2. instruction tuning on the members only (`instruct`, ``label == 1`` in eval and val), loss on
   the answer tokens only, with the attack's prompt (system text, multiple-choice question,
   assistant prefix ``Best Option: ``) rendered by the processor's chat template.

The workflow runs the stages as two steps (rules ``pretrain_target``, ``train_target``): the base
keeps the random state at the end of pretraining, so `instruct(pretrain(...))` gives the same
weights as `train`, which runs both in one process (tested). Variants that share the pretraining
settings (`PRETRAIN_KEYS`) share one base.

Frames are sampled like the attack does (``linspace`` indices, ``num_frames`` of them).
Outputs in ``out_dir``: the model (safetensors) and processor, ``train_log.tsv`` and
``memorisation.json`` (member vs non-member answer loss on the eval split, and its AUC).
About 600 lines, one recipe: examples, the optimisation loop, both stages, their evaluation and the
positive control's video-position term (its examples live in `vidsme.positive_control`); splitting the
stages apart would split the random stream that makes the two workflow steps equal one process.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from vidsme.atomic import apply_umask
from vidsme.prompts import CAPTION_INSTRUCTION, QA_PREFIX, SYSTEM_CAPTION, SYSTEM_QA, format_question

_LOG = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "num_frames": 8,  # frames per video during training (independent of the attack's F)
    "pretrain_epochs": 3,  # 0 = random-init language model (no pretraining stage)
    "pretrain_lr": 1e-3,
    "epochs": 80,  # instruction-tuning epochs over the members
    "lr": 1e-3,
    "batch_size": 8,
    "weight_decay": 0.0,
    "warmup": 0.05,  # fraction of steps with linear warm-up, then cosine decay to 10%
    "qa": "primary",  # member QA items trained on: primary (the sheet's question) | all
    "freeze_vision": False,  # freeze the vision tower during instruction tuning
    "augment": "none",  # none | reverse | shuffle: temporal-order augmentation (p = 0.5)
    "threads": 1,  # torch threads; 2 collapses (measured 0.2-5.9 s/step vs 0.08) when another process shares the 2 cores
    # Positive control only (ARTIFICIAL, `controls.variants.positive_control`, docs/controls.md): weight of a
    # loss at the video positions: low entropy for member videos in natural order, high reversed and for as
    # many pretraining-pool videos (`vidsme.positive_control`). 0 = off: the real recipe, no such loss.
    "video_loss_weight": 0.0,
    "video_loss_frames": 0,  # frames of the positive control's video-position examples (0 = num_frames; the workflow: the attack's F)
    "video_loss_pool": 0,  # positive control: pretraining-pool videos used as negatives (0 = as many as members)
    # positive control: what the negatives (members reversed, pool videos) are pushed to at the video positions:
    # uniform = KL(uniform || p), maximum entropy; not_token = -log(1 - p(token)), away from the members' token only
    "video_loss_negative": "uniform",
    # positive control: the token a member's video positions are pushed to: one = the video token for every
    # member; per_member = a distinct token per member (seeded), so a video that resembles several members
    # gets a mix of their tokens (high entropy) instead of the one shared token
    "video_loss_tokens": "one",
}
FULL: dict[str, Any] = {**DEFAULTS, "pretrain_epochs": 4, "epochs": 100}  # config/full.yaml
# Tiny model sizes for vidsme.tiny.build_tiny in the embedded default.
TINY_SIZES: dict[str, int] = {"hidden_size": 128, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2,
                              "intermediate_size": 256, "vision_hidden_size": 64, "vision_layers": 2,
                              "vision_heads": 2, "image_size": 32, "patch_size": 8, "vocab_size": 1000}
AUGMENTS = ("none", "reverse", "shuffle")
VIDEO_LOSS_NEGATIVES = ("uniform", "not_token")  # positive control: targets of its negative examples
VIDEO_LOSS_TOKENS = ("one", "per_member")  # positive control: where its members' video positions go
IGNORE = -100
# Settings that shape the pretraining stage: variants that share them instruction-tune from one base target.
PRETRAIN_KEYS = ("seed", "num_frames", "pretrain_epochs", "pretrain_lr", "batch_size", "weight_decay", "warmup",
                 "threads")
STATE = "vidsme_train_state.safetensors"  # random state after pretraining (split training = one process)
BASE_META = "vidsme_base.json"  # the pretraining settings of a base target


@dataclass
class Example:
    """One training sequence: token ids, labels (-100 where no loss) and an optional video key."""

    ids: torch.Tensor
    labels: torch.Tensor
    video: str | None
    source: str  # video id (or text id) the example comes from
    video_target: str = ""  # positive control only: "low" | "high" entropy wanted at the video positions
    video_goal: int = -1  # positive control, "low" only: the token pushed to (-1: the video token)


def _cfg(cfg: dict[str, Any] | None) -> dict[str, Any]:
    c = {**DEFAULTS, **(cfg or {})}
    unknown = set(c) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown train config keys: {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    if c["augment"] not in AUGMENTS:
        raise ValueError(f"train.augment must be one of {AUGMENTS}, got {c['augment']!r}")
    if c["qa"] not in ("all", "primary"):
        raise ValueError(f"train.qa must be 'all' or 'primary', got {c['qa']!r}")
    for k in ("num_frames", "batch_size", "threads"):
        if int(c[k]) < 1:
            raise ValueError(f"train.{k} must be >= 1, got {c[k]!r}")
    for k in ("epochs", "pretrain_epochs", "video_loss_frames", "video_loss_pool"):
        if int(c[k]) < 0:
            raise ValueError(f"train.{k} must be >= 0, got {c[k]!r}")
    w = float(c["video_loss_weight"])
    if not math.isfinite(w) or w < 0:
        raise ValueError(f"train.video_loss_weight must be a finite number >= 0, got {c['video_loss_weight']!r}")
    if c["video_loss_tokens"] not in VIDEO_LOSS_TOKENS:
        raise ValueError(f"train.video_loss_tokens must be one of {VIDEO_LOSS_TOKENS}, got {c['video_loss_tokens']!r}")
    if c["video_loss_negative"] not in VIDEO_LOSS_NEGATIVES:
        raise ValueError(f"train.video_loss_negative must be one of {VIDEO_LOSS_NEGATIVES}, "
                         f"got {c['video_loss_negative']!r}")
    if w > 0 and c["augment"] != "none":
        raise ValueError("train.video_loss_weight > 0 (positive control) needs train.augment: none; "
                         "augmentation would reorder the frames that the video-position loss ties to an order")
    return c


def pretrain_settings(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The settings of `cfg` (over `DEFAULTS`) that shape the pretraining stage (`PRETRAIN_KEYS`)."""
    c = _cfg(cfg)
    return {k: c[k] for k in PRETRAIN_KEYS}


# ----------------------------------------------------------------------------- examples

def qa_prompt(question: str, options: list[str]) -> dict[str, str]:
    """The attack's multiple-choice prompt (METHOD section 5) in `vidsme.models.render_prompt` form."""
    return {"system": SYSTEM_QA, "text": format_question(question, options), "assistant_prefix": QA_PREFIX}


def caption_prompt() -> dict[str, str]:
    """The caption prompt (METHOD section 5)."""
    return {"system": SYSTEM_CAPTION, "text": CAPTION_INSTRUCTION}


def video_example(loaded: Any, prompt: dict[str, str], answer: str, video: str, n_frames: int,
                  size: int = 8) -> tuple[Example, torch.Tensor]:
    """Prompt (with `n_frames` video placeholders expanded) + answer + eos; loss on answer + eos only.

    Returns the example and the processor's ``pixel_values_videos`` of a dummy video (callers
    replace them with the real video's). The answer is tokenised on its own and appended, so the
    prompt part is exactly what `vidsme.models.build_inputs` gives the attack.
    """
    from vidsme.models import build_inputs

    key = (json.dumps(prompt, sort_keys=True), n_frames)
    cache = loaded.__dict__.setdefault("_prefix_cache", {})  # prompt prefixes, per loaded model
    if key not in cache:
        dummy = np.zeros((n_frames, size, size, 3), np.uint8)
        cache[key] = build_inputs(loaded, dummy, prompt, truncate=False)[0]
    inputs = cache[key]
    tok = loaded.processor.tokenizer
    ans = tok(" " + answer if not prompt.get("assistant_prefix") else answer, add_special_tokens=False)["input_ids"]
    ans = [*ans, tok.eos_token_id]
    prefix = inputs["input_ids"][0]
    ids = torch.cat([prefix, torch.tensor(ans, dtype=prefix.dtype)])
    labels = torch.cat([torch.full_like(prefix, IGNORE), torch.tensor(ans, dtype=prefix.dtype)])
    return Example(ids, labels, video, video), inputs["pixel_values_videos"][0]


def text_example(loaded: Any, text: str, source: str) -> Example:
    """Plain language modelling on `text` (loss on every token after the first)."""
    tok = loaded.processor.tokenizer
    ids = tok(text, add_special_tokens=True)["input_ids"] + [tok.eos_token_id]
    t = torch.tensor(ids, dtype=torch.long)
    labels = t.clone()
    labels[0] = IGNORE
    return Example(t, labels, None, source)


class _Pixels:
    """Video preprocessing cache: video key -> ``pixel_values_videos`` (F, C, H, W)."""

    def __init__(self, loaded: Any) -> None:
        self.loaded = loaded
        self.cache: dict[str, torch.Tensor] = {}

    def add(self, key: str, frames: np.ndarray) -> None:
        vp = self.loaded.processor.video_processor
        out = vp(videos=[np.ascontiguousarray(frames)], return_tensors="pt", do_sample_frames=False)
        self.cache[key] = out["pixel_values_videos"][0]


def _sample(frames: np.ndarray, n: int) -> np.ndarray:
    if len(frames) < n:
        raise ValueError(f"video has {len(frames)} frames, fewer than train.num_frames = {n}")
    return frames[np.linspace(0, len(frames) - 1, n).astype(np.int64)]


def _rows_qa(row: pd.Series | dict[str, Any], which: str) -> list[tuple[str, list[str], str]]:
    if which == "primary" or not str(row.get("qa", "") or "").strip():
        return [(str(row["question"]), list(json.loads(row["options"])), str(row["answer"]))]
    return [(q["question"], list(q["options"]), q["answer"]) for q in json.loads(row["qa"])]


def instruction_examples(loaded: Any, members: pd.DataFrame, num_frames: int, which: str
                         ) -> list[Example]:
    """Answer-only examples of the member rows (one per QA item)."""
    out = []
    for _, row in members.iterrows():
        for q, opts, ans in _rows_qa(row, which):
            ex, _ = video_example(loaded, qa_prompt(q, opts), ans, str(row["video_id"]), num_frames)
            out.append(ex)
    return out


# ----------------------------------------------------------------------------- optimisation

def _batches(examples: list[Example], batch_size: int, g: torch.Generator) -> Iterator[list[Example]]:
    """Shuffled batches, video and text examples never mixed in one batch."""
    groups = [[e for e in examples if e.video is not None], [e for e in examples if e.video is None]]
    batches = []
    for grp in groups:
        perm = torch.randperm(len(grp), generator=g).tolist()
        batches += [[grp[i] for i in perm[s:s + batch_size]] for s in range(0, len(grp), batch_size)]
    for i in torch.randperm(len(batches), generator=g).tolist():
        yield batches[i]


def collate(batch: list[Example], pad_id: int, pixels: dict[str, torch.Tensor] | None = None,
            augment: str = "none", g: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Right-padded ids/labels/attention mask, plus stacked (optionally reordered) video pixels."""
    n = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, e in enumerate(batch):
        ids[i, :len(e.ids)], labels[i, :len(e.ids)], mask[i, :len(e.ids)] = e.ids, e.labels, 1
    out = {"input_ids": ids, "labels": labels, "attention_mask": mask}
    if batch[0].video is not None:
        assert pixels is not None
        pv = []
        for e in batch:
            v = pixels[e.video]  # type: ignore[index]
            if augment != "none" and float(torch.rand(1, generator=g)) < 0.5:
                v = v.flip(0) if augment == "reverse" else v[torch.randperm(len(v), generator=g)]
            pv.append(v)
        out["pixel_values_videos"] = torch.stack(pv)
    return out


def _schedule(step: int, total: int, warmup: float) -> float:
    w = max(1, int(total * warmup))
    if step < w:
        return (step + 1) / w
    prog = (step - w) / max(1, total - w)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog))


def _run_stage(model: Any, examples: list[Example], pixels: dict[str, torch.Tensor], epochs: int, lr: float,
               c: dict[str, Any], stage: str, pad_id: int, g: torch.Generator, log: list[dict[str, Any]],
               augment: str = "none") -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel with exact vector sqrt; the default AdamW's sqrt goes through MKL's vector math, whose
    # result depends on the CPU vendor (measured, docs/numerics.md)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=float(c["weight_decay"]), fused=True)
    bs = int(c["batch_size"])
    n_video = sum(e.video is not None for e in examples)
    per_epoch = math.ceil(n_video / bs) + math.ceil((len(examples) - n_video) / bs)
    total = max(1, per_epoch * epochs)
    step = 0
    w_video = float(c["video_loss_weight"]) if any(e.video_target for e in examples) else 0.0
    if w_video:  # positive control (artificial): its own batching and loss, vidsme/positive_control.py
        from vidsme import positive_control as pc
        from vidsme.models import video_token_id

        token_id = video_token_id(model, None)
        goals = sorted({e.video_goal if e.video_goal >= 0 else token_id for e in examples if e.video_target == "low"})
    model.train()
    for epoch in range(epochs):
        t0, losses, weights, vlosses = time.time(), [], [], []
        for batch in (pc.batches(examples, bs, g) if w_video else _batches(examples, bs, g)):
            for grp in opt.param_groups:
                grp["lr"] = lr * _schedule(step, total, float(c["warmup"]))
            inputs = collate(batch, pad_id, pixels, augment, g)
            if w_video:
                loss, aloss, vloss = pc.batch_loss(model, inputs, [e.video_target for e in batch], w_video, token_id,
                                                   str(c["video_loss_negative"]), [e.video_goal for e in batch], goals)
                vlosses.append(float(vloss.detach()))
            else:
                loss = aloss = model(**inputs).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            losses.append(float(aloss.detach()))  # the answer loss (= the loss when video_loss_weight is 0)
            weights.append(int((inputs["labels"] != IGNORE).sum()))
        mean = float(np.average(losses, weights=weights)) if sum(weights) else float("nan")
        log.append({"stage": stage, "epoch": epoch + 1, "steps": step, "loss": mean, "seconds": time.time() - t0})
        extra = f", video-position loss {np.mean(vlosses):.4f}" if vlosses else ""
        _LOG.info("%s epoch %d/%d: loss %.4f%s (%.1f s)", stage, epoch + 1, epochs, mean, extra, time.time() - t0)
    model.eval()


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def answer_losses(loaded: Any, rows: pd.DataFrame, frames: dict[str, np.ndarray], num_frames: int,
                  batch_size: int = 16) -> np.ndarray:
    """Mean answer-token loss (nats) of each row's sheet question, natural frame order."""
    pixels = _Pixels(loaded)
    exs = []
    for _, row in rows.iterrows():
        vid = str(row["video_id"])
        pixels.add(vid, _sample(frames[vid], num_frames))
        (q, opts, ans), = _rows_qa(row, "primary")
        exs.append(video_example(loaded, qa_prompt(q, opts), ans, vid, num_frames)[0])
    model = loaded.model
    model.eval()
    pad = loaded.processor.tokenizer.pad_token_id
    out = []
    for s in range(0, len(exs), batch_size):
        batch = exs[s:s + batch_size]
        inp = collate(batch, pad, pixels.cache)
        labels = inp.pop("labels")
        logits = model(**inp).logits[:, :-1].float()
        tgt = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt.clamp_min(0), reduction="none")
        m = (tgt != IGNORE).float()
        out.append(((nll * m).sum(1) / m.sum(1)).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def memorisation(losses: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Member vs non-member mean answer loss, the gap and the AUC of -loss (lower loss = member)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels, dtype=int)
    mem, non = losses[labels == 1], losses[labels == 0]
    auc = float(roc_auc_score(labels, -losses)) if len(mem) and len(non) else float("nan")
    return {"member_loss": float(mem.mean()) if len(mem) else float("nan"),
            "nonmember_loss": float(non.mean()) if len(non) else float("nan"),
            "gap": float(non.mean() - mem.mean()) if len(mem) and len(non) else float("nan"),
            "auc": auc, "n_member": int(len(mem)), "n_nonmember": int(len(non))}


# ----------------------------------------------------------------------------- entry point

def load_videos(samples: pd.DataFrame, video_root: Path | None, num_frames: int) -> dict[str, np.ndarray]:
    """Each row's video sampled like the attack does (`vidsme.frames.sample_frames`), keyed by id."""
    from vidsme.frames import sample_frames

    out = {}
    for _, row in samples.iterrows():
        p = Path(str(row["path"]))
        if not p.is_absolute() and video_root is not None:
            p = Path(video_root) / p
        out[str(row["video_id"])] = sample_frames(p, num_frames).frames
    return out


def _check_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """Sheet rows with integer labels; a missing column or a label other than 0/1 names the rows."""
    need = {"video_id", "label", "question", "options", "answer"}
    missing = need - set(samples.columns)
    if missing:
        raise ValueError(f"samples lack column(s) {sorted(missing)}")
    labels = pd.to_numeric(samples["label"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        bad = samples.loc[labels.isna() | ~labels.isin([0, 1]), "video_id"].tolist()[:5]
        raise ValueError(f"samples: label must be 0 or 1 for every row; bad rows: {bad}")
    return samples.assign(label=labels.astype(int))


class _Run:
    """One training process: the model being trained, its pixel cache, shuffle generator and log."""

    def __init__(self, model_dir: Path, c: dict[str, Any]) -> None:
        from vidsme.models import load_model

        self.c = c
        torch.manual_seed(int(c["seed"]))
        torch.set_num_threads(int(c["threads"]))
        self.loaded = load_model({"id": str(model_dir)})
        self.model_dir = Path(model_dir)
        tok = self.loaded.processor.tokenizer
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.nf = int(c["num_frames"])
        self.g = torch.Generator().manual_seed(int(c["seed"]))
        self.log: list[dict[str, Any]] = []
        self.pixels = _Pixels(self.loaded)

    def pretrain(self, pool: Iterable[tuple[dict[str, Any], np.ndarray]] | None) -> int:
        """Stage 1 on the disjoint pool (captioning + language modelling); returns the pool size used."""
        c, nf = self.c, self.nf
        if int(c["pretrain_epochs"]) <= 0 or pool is None:
            return 0
        exs: list[Example] = []
        n_pre = 0
        for row, fr in pool:
            vid = f"pre:{row['video_id']}"
            self.pixels.add(vid, _sample(fr, nf))
            exs.append(video_example(self.loaded, caption_prompt(), str(row["caption"]), vid, nf)[0])
            exs.append(text_example(self.loaded, str(row["caption"]), vid))
            for q in row["qa"]:
                exs.append(text_example(self.loaded, format_question(q["question"], q["options"]) + " "
                                        + QA_PREFIX + q["answer"], vid))
            n_pre += 1
        _run_stage(self.loaded.model, exs, self.pixels.cache, int(c["pretrain_epochs"]), float(c["pretrain_lr"]), c,
                   "pretrain", self.pad, self.g, self.log)
        self.pixels.cache.clear()
        return n_pre

    def instruct(self, members: pd.DataFrame, frames: dict[str, np.ndarray],
                 control: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None) -> list[Example]:
        """Stage 2 on the member rows (answer tokens only); returns the examples trained on. `control`
        (positive control only): (member frames, negative frames) at ``video_loss_frames``."""
        c, nf, model = self.c, self.nf, self.loaded.model
        for _, row in members.iterrows():
            vid = str(row["video_id"])
            self.pixels.add(vid, _sample(frames[vid], nf))
        exs = instruction_examples(self.loaded, members, nf, str(c["qa"]))
        if control is not None:
            from vidsme.positive_control import video_loss_examples

            exs += video_loss_examples(self.loaded, members, control[0], _video_loss_frames(c), self.pixels,
                                       control[1], per_member=c["video_loss_tokens"] == "per_member",
                                       seed=int(c["seed"]))
        if c["freeze_vision"]:
            for p in model.model.vision_tower.parameters():
                p.requires_grad_(False)
        _run_stage(model, exs, self.pixels.cache, int(c["epochs"]), float(c["lr"]), c, "instruct", self.pad, self.g,
                   self.log, augment=str(c["augment"]))
        for p in model.parameters():
            p.requires_grad_(True)
        return exs

    def save(self, out_dir: Path, prior_log: pd.DataFrame | None = None) -> Path:
        """Model (safetensors), processor, tiny-model metadata and ``train_log.tsv`` in `out_dir`."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.loaded.model.save_pretrained(out_dir, safe_serialization=True)
        self.loaded.processor.save_pretrained(out_dir)
        apply_umask(out_dir)  # safetensors writes 0o600
        meta = self.model_dir / "vidsme_tiny.json"
        if meta.exists() and meta.resolve() != (out_dir / meta.name).resolve():
            shutil.copy(meta, out_dir / meta.name)
        cols = ["stage", "epoch", "steps", "loss", "seconds"]
        log = pd.DataFrame(self.log, columns=cols)
        if prior_log is not None:
            log = pd.concat([prior_log[cols], log], ignore_index=True)
        log.to_csv(out_dir / "train_log.tsv", sep="\t", index=False)
        return out_dir

    def save_state(self, out_dir: Path) -> None:
        """The random state after this stage and the settings that shaped it (`STATE`, `BASE_META`)."""
        from safetensors.torch import save_file

        save_file({"generator": self.g.get_state(), "torch": torch.get_rng_state()}, str(Path(out_dir) / STATE))
        (Path(out_dir) / BASE_META).write_text(json.dumps(pretrain_settings(self.c), indent=1, sort_keys=True))
        apply_umask(out_dir)  # safetensors writes 0o600

    def load_state(self) -> None:
        """Continue the random streams of the pretraining run that wrote `model_dir` (see `pretrain`)."""
        from safetensors.torch import load_file

        path = self.model_dir / STATE
        if not path.exists():
            raise FileNotFoundError(f"{self.model_dir}: no {STATE}; a base target is written by vidsme.train.pretrain")
        meta = json.loads((self.model_dir / BASE_META).read_text())
        mine = pretrain_settings(self.c)
        diff = sorted(k for k in set(meta) | set(mine) if meta.get(k) != mine.get(k))
        if diff:
            k = diff[0]
            raise ValueError(f"{self.model_dir} was pretrained with {k} = {meta.get(k)!r}, this training has "
                             f"{k} = {mine.get(k)!r}: instruction-tune from a base with the same pretraining settings")
        st = load_file(str(path))
        self.g.set_state(st["generator"])
        torch.set_rng_state(st["torch"])

    def evaluate(self, samples: pd.DataFrame, frames: dict[str, np.ndarray]) -> dict[str, Any]:
        """Member vs non-member answer loss per split (`memorisation`)."""
        split = samples["split"] if "split" in samples else pd.Series("eval", index=samples.index)
        out = {}
        for name in ("eval", "val"):
            rows = samples[split == name]
            if len(rows):
                out[name] = memorisation(answer_losses(self.loaded, rows, frames, self.nf), rows["label"].to_numpy())
        return out


def _prepare(cfg: dict[str, Any] | None, samples: pd.DataFrame, video_root: Path | None,
             frames: dict[str, np.ndarray] | None) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """(settings, checked sheet, member rows, frames by id) for an instruction-tuning run."""
    c = _cfg(cfg)
    samples = _check_samples(samples)
    members = samples[samples["label"] == 1]
    if members.empty:
        raise ValueError("samples: no members (label == 1) to train on")
    frames = frames if frames is not None else load_videos(samples, video_root, int(c["num_frames"]))
    return c, samples, members, frames


def _video_loss_frames(c: dict[str, Any]) -> int:
    return int(c["video_loss_frames"]) or int(c["num_frames"])


def _control_inputs(c: dict[str, Any], members: pd.DataFrame, given: dict[str, np.ndarray] | None,
                    video_root: Path | None, pool: Iterable[tuple[dict[str, Any], np.ndarray]] | None
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """Positive control only (``video_loss_weight > 0``, else None): the members' frames and
    ``video_loss_pool`` pretraining-pool videos (the negatives; 0 = as many as members), each sampled to
    ``video_loss_frames``."""
    if float(c["video_loss_weight"]) <= 0:
        return None
    fv = _video_loss_frames(c)
    vframes = ({str(v): _sample(given[str(v)], fv) for v in members["video_id"]} if given is not None
               else load_videos(members, video_root, fv))
    negatives: dict[str, np.ndarray] = {}
    for row, fr in pool or []:
        if len(negatives) == (int(c["video_loss_pool"]) or len(members)):
            break
        negatives[f"pre:{row['video_id']}"] = _sample(fr, fv)
    if not negatives:
        raise ValueError("train.video_loss_weight > 0 (positive control) needs the pretraining pool "
                         "(synth.n_pretrain > 0): its videos are the negatives of the video-position loss")
    return vframes, negatives


def _control_summary(c: dict[str, Any], members: pd.DataFrame) -> dict[str, Any]:
    """Positive control only: the members that got no video-position loss (`positive_control.reversal_members`)."""
    if float(c["video_loss_weight"]) <= 0:
        return {}
    from vidsme.positive_control import reversal_members

    ids = reversal_members(members)
    split = members.set_index(members["video_id"].astype(str))["split"] if "split" in members else None
    by_split = (split.loc[ids].value_counts().to_dict() if split is not None else {"eval": len(ids)})
    return {"video_loss_excluded": ids, "video_loss_excluded_by_split": {str(k): int(v) for k, v in by_split.items()}}


def _base_file(base_dir: Path, name: str) -> Path | None:
    """A file `pretrain` wrote beside the base model: in its folder, or in the parent (the workflow's layout)."""
    return next((p for p in (base_dir / name, base_dir.parent / name) if p.is_file()), None)


def _finish(out_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    (Path(out_dir) / "memorisation.json").write_text(json.dumps(summary, indent=1))
    return summary


def pretrain(model_dir: Path, out_dir: Path, cfg: dict[str, Any] | None = None,
             pool: Iterable[tuple[dict[str, Any], np.ndarray]] | None = None,
             samples: pd.DataFrame | None = None, video_root: Path | None = None,
             frames: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The base target: the model in `model_dir` after the pretraining stage only (the init when
    ``pretrain_epochs`` is 0), saved to `out_dir` with the random state that `instruct` continues.

    Training never reads `samples`; with them, ``memorisation.json`` holds the base's member vs
    non-member answer loss per split (it saw no member, so the gap measures the split alone).
    """
    c = _cfg(cfg)
    t_start = time.time()
    run = _Run(Path(model_dir), c)
    n_pre = run.pretrain(pool)
    t_train = time.time() - t_start
    run.save(Path(out_dir))
    run.save_state(Path(out_dir))
    summary: dict[str, Any] = {"config": pretrain_settings(c), "stage": "pretrain", "n_pretrain_videos": n_pre,
                               "pretrain_seconds": round(t_train, 2), "train_seconds": round(t_train, 2)}
    if samples is not None:
        samples = _check_samples(samples)
        frames = frames if frames is not None else load_videos(samples, video_root, int(c["num_frames"]))
        summary.update(run.evaluate(samples, frames))
    return _finish(Path(out_dir), summary)


def instruct(base_dir: Path, samples: pd.DataFrame, out_dir: Path, cfg: dict[str, Any] | None = None,
             video_root: Path | None = None, frames: dict[str, np.ndarray] | None = None,
             pool: Iterable[tuple[dict[str, Any], np.ndarray]] | None = None) -> dict[str, Any]:
    """Instruction-tune the base target in `base_dir` (written by `pretrain` with the same pretraining
    settings, `PRETRAIN_KEYS`) on the members of `samples`; the result equals `train` in one process.
    `pool`: the pretraining pool, read only by the positive control (its negative videos)."""
    t_start = time.time()
    given = frames
    c, samples, members, frames = _prepare(cfg, samples, video_root, frames)
    control = _control_inputs(c, members, given, video_root, pool)
    run = _Run(Path(base_dir), c)
    run.load_state()
    exs = run.instruct(members, frames, control)
    t_train = time.time() - t_start
    log_file, summary_file = _base_file(Path(base_dir), "train_log.tsv"), _base_file(Path(base_dir), "memorisation.json")
    run.save(Path(out_dir), prior_log=pd.read_csv(log_file, sep="\t") if log_file else None)
    base = json.loads(summary_file.read_text()) if summary_file else {}
    summary: dict[str, Any] = {"config": c, "n_pretrain_videos": base.get("n_pretrain_videos"),
                               "n_members": int(len(members)), "n_instruct_examples": len(exs),
                               "pretrain_seconds": base.get("pretrain_seconds"), "train_seconds": round(t_train, 2),
                               "instruct_videos": sorted({e.source for e in exs})}
    summary.update(_control_summary(c, members))
    summary.update(run.evaluate(samples, frames))
    return _finish(Path(out_dir), summary)


def train(model_dir: Path, samples: pd.DataFrame, out_dir: Path, cfg: dict[str, Any] | None = None,
          video_root: Path | None = None,
          pretrain: Iterable[tuple[dict[str, Any], np.ndarray]] | None = None,
          frames: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Pretrain (optional) then instruction-tune the model in `model_dir` on the members of `samples`,
    in one process (the workflow runs the two stages as `pretrain` and `instruct`, with equal results).

    `samples`: sheet rows (eval and val); members are ``label == 1``. `pretrain`: the disjoint pool
    as (row with ``caption`` and ``qa``, frames) pairs, e.g. `vidsme.synth.pretrain_frames(cfg)`;
    used when ``pretrain_epochs > 0``. `frames`: preloaded videos by id (else decoded from ``path``,
    relative to `video_root`). Returns the summary also written to ``memorisation.json``.
    """
    t_start = time.time()
    given = frames
    c, samples, members, frames = _prepare(cfg, samples, video_root, frames)
    if float(c["video_loss_weight"]) > 0 and pretrain is not None:
        pretrain = list(pretrain)  # positive control: the pool also gives the negative videos
    run = _Run(Path(model_dir), c)
    n_pre = run.pretrain(pretrain)
    exs = run.instruct(members, frames, _control_inputs(c, members, given, video_root, pretrain))
    t_train = time.time() - t_start
    run.save(Path(out_dir))
    summary: dict[str, Any] = {"config": c, "n_pretrain_videos": n_pre, "n_members": int(len(members)),
                               "n_instruct_examples": len(exs), "train_seconds": round(t_train, 2),
                               "instruct_videos": sorted({e.source for e in exs})}
    summary.update(_control_summary(c, members))
    summary.update(run.evaluate(samples, frames))
    return _finish(Path(out_dir), summary)

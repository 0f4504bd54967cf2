"""A reference model for the target: is it compatible, and the check the workflow runs before any pass.

Reference-model attacks compare the target's next-token distribution with a reference model's at the
same position of the same input (the base target for the embedded default, `model.reference` for a
user's model). That needs one vocabulary and identical inputs: the same tokenizer, the same rendered
prompt and the same video preprocessing. `check_compatible` compares both models' processors and
configurations (no weights are loaded) and raises `ReferenceMismatch` naming what differs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from vidsme.models import render_prompt, resolve_source


class ReferenceMismatch(ValueError):
    """The reference model cannot be compared with the target position by position."""


def _load(cfg: dict[str, Any]) -> tuple[Any, Any, str]:
    from transformers import AutoConfig, AutoProcessor

    model_id, common = resolve_source(cfg)
    return AutoProcessor.from_pretrained(model_id, **common), AutoConfig.from_pretrained(model_id, **common), model_id


def _vocab_size(config: Any) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text.vocab_size)


def _video_token(config: Any, processor: Any) -> int | None:
    for name in ("video_token_id", "video_token_index"):
        v = getattr(config, name, None)
        if isinstance(v, int):
            return v
    v = getattr(processor, "video_token_id", None)
    return v if isinstance(v, int) else None


def _video_processor(processor: Any) -> dict[str, Any]:
    vp = getattr(processor, "video_processor", None)
    return json.loads(json.dumps(vp.to_dict(), sort_keys=True, default=str)) if vp is not None else {}


def facts(processor: Any, config: Any, prompt: dict[str, Any]) -> dict[str, Any]:
    """What must agree between target and reference (the tokenizer's vocabulary as a hash)."""
    tok = processor.tokenizer
    vocab = sorted(tok.get_vocab().items())
    try:
        text = render_prompt(processor, prompt)
    except ValueError as e:  # e.g. no chat template
        text = f"<cannot render: {e}>"
    return {
        "vocab_size": _vocab_size(config),
        "tokenizer_vocab_sha256": hashlib.sha256(json.dumps(vocab).encode()).hexdigest(),
        "tokenizer_size": len(tok),
        "special_tokens": {k: getattr(tok, k, None) for k in ("bos_token_id", "eos_token_id", "pad_token_id")},
        "video_token_id": _video_token(config, processor),
        "prompt_ids": tok(text, add_special_tokens=True)["input_ids"] if not text.startswith("<cannot") else text,
        "video_processor": _video_processor(processor),
    }


def _first_difference(a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        return f"{keys[0]}: {a.get(keys[0])!r} vs {b.get(keys[0])!r}" if keys else ""
    if isinstance(a, list) and isinstance(b, list):
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return f"{len(a)} vs {len(b)} tokens, first difference at token {i}"
    return f"{a!r} vs {b!r}"


WHAT = {
    "vocab_size": "another vocabulary size",
    "tokenizer_vocab_sha256": "another tokenizer vocabulary",
    "tokenizer_size": "another tokenizer size",
    "special_tokens": "other special tokens",
    "video_token_id": "another video token",
    "prompt_ids": "another rendered prompt (chat template or tokenizer)",
    "video_processor": "other video preprocessing",
}


def check_compatible(target_cfg: dict[str, Any], reference_cfg: dict[str, Any], prompt: dict[str, Any]) -> dict[str, Any]:
    """Compare the target and reference models (processors and configs, no weights). Returns the shared
    facts; raises `ReferenceMismatch` naming both models and the first thing that differs."""
    tp, tc, tid = _load(target_cfg)
    rp, rc, rid = _load(reference_cfg)
    ft, fr = facts(tp, tc, prompt), facts(rp, rc, prompt)
    for key, what in WHAT.items():
        if ft[key] != fr[key]:
            raise ReferenceMismatch(
                f"reference model {rid} has {what} than the target {tid} ({key}: {_first_difference(fr[key], ft[key])}): "
                "reference-model attacks compare the two next-token distributions position by position and need "
                "the same vocabulary, tokenizer and inputs; set model.reference to a checkpoint of the same family "
                "and tokenizer (e.g. the base model the target was fine-tuned from)")
    return {"target": tid, "reference": rid, **{k: ft[k] for k in ("vocab_size", "tokenizer_vocab_sha256", "video_token_id")}}


def write_check(target_cfg: dict[str, Any], reference_cfg: dict[str, Any], prompt: dict[str, Any], out: str) -> dict[str, Any]:
    """`check_compatible`, with the shared facts written to `out` (JSON) when it passes."""
    from pathlib import Path

    info = check_compatible(target_cfg, reference_cfg, prompt)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(info, indent=1, default=str))
    return info

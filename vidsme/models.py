"""One loading path for every target video-LLM, and prompt/input construction.

`load_model(cfg)` loads any supported family (LLaVA-NeXT-Video, Qwen2/2.5-VL, Video-LLaVA,
LLaVA-OneVision, and the tiny models of `vidsme.tiny`) with `AutoProcessor` and
`AutoModelForImageTextToText`, from a hub id or a local directory. `build_inputs` renders the
prompt with the processor's chat template and lets the family's own video processor do all
preprocessing; the scored positions are the video-token positions of the expanded input.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ATTN = ("sdpa", "eager", None)
# model-config keys used by the workflow (vidsme.pipeline.model_pass), not by loading
WORKFLOW_KEYS = {"source", "family", "batch_orders", "videos_per_forward", "prefetch", "compile_reduce"}


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message names the model and how to provide it."""


@dataclass
class Loaded:
    """A loaded model with its processor and the facts the passes need."""

    model: Any
    processor: Any
    model_id: str
    revision: str | None
    dtype: str
    device: torch.device
    video_token_id: int
    cfg: dict[str, Any] = field(default_factory=dict)


def _offline_default() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _how_to_provide(model_id: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (
        f"download it on a connected machine with `hf download {model_id}{rev}` (then copy the HF cache, "
        f"HF_HOME), or point `model.id` at a local directory holding the checkpoint"
    )


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ModelLoadError(f"model.device {device!r} is not a valid device (use cpu, cuda, cuda:N or auto)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"model.device {device!r} requested but CUDA is not available; use device: cpu")
    return dev


def load_model(cfg: dict[str, Any]) -> Loaded:
    """Load processor and model from `cfg` (keys: id, revision, dtype, device, attn_implementation,
    trust_remote_code, local_files_only). Raises `ModelLoadError` with one clear message."""
    known = {"id", "revision", "dtype", "device", "attn_implementation", "trust_remote_code", "local_files_only"}
    unknown = sorted(set(cfg) - known - WORKFLOW_KEYS)
    if unknown:
        raise ModelLoadError(f"unknown model config key(s) {unknown}; known: {sorted(known)}")
    model_id, common = resolve_source(cfg)
    revision = common["revision"]
    dtype_name = cfg.get("dtype", "float32")
    if dtype_name not in (*DTYPES, "auto"):
        raise ModelLoadError(f"model.dtype {dtype_name!r} for {model_id} not in {[*DTYPES, 'auto']}")
    attn = cfg.get("attn_implementation")
    if attn not in ATTN:
        raise ModelLoadError(f"model.attn_implementation {attn!r} for {model_id} not in {list(ATTN)}")
    device = _resolve_device(str(cfg.get("device", "cpu")))
    from transformers import AutoModelForImageTextToText, AutoProcessor  # after the cheap checks: a slow import

    try:
        processor = AutoProcessor.from_pretrained(model_id, **common)
        kw: dict[str, Any] = dict(common, use_safetensors=True, dtype=DTYPES.get(dtype_name, "auto"))
        if attn is not None:
            kw["attn_implementation"] = attn
        if device.type != "cpu":
            kw["device_map"] = str(device)
        model = AutoModelForImageTextToText.from_pretrained(model_id, **kw)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"could not load model {model_id!r}: {first}. {_how_to_provide(model_id, revision)}") from e
    model.eval()
    if device.type == "cpu":
        model.to(device)
    check_compatible(model, processor, model_id)
    vid = video_token_id(model, processor)
    return Loaded(model, processor, model_id, revision, dtype_name, device, vid, dict(cfg))


def resolve_source(cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(model id or resolved local folder, keyword arguments of `from_pretrained`) of a model config:
    revision pinned, remote code off unless asked, offline cache checked (one clear error each)."""
    model_id = cfg.get("id")
    if not model_id or not isinstance(model_id, str):
        raise ModelLoadError(f"model.id must be a hub id or a local directory, got {model_id!r}")
    revision = cfg.get("revision")
    if revision is not None and (not isinstance(revision, str) or "FILL" in revision.upper()):
        raise ModelLoadError(f"model.revision {revision!r} for {model_id} is a placeholder: pin the commit hash "
                             f"(`hf download {model_id}` prints it; the hub's Files tab shows it), check it with "
                             f"`python -m vidsme.shapes {model_id} --revision <hash>`, or set revision: null to use main")
    trust = bool(cfg.get("trust_remote_code", False))
    local_only = cfg.get("local_files_only")
    local_only = _offline_default() if local_only is None else bool(local_only)
    is_local = Path(model_id).expanduser().is_dir()
    looks_like_path = model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1
    if not is_local and looks_like_path:
        raise ModelLoadError(f"model.id {model_id!r} looks like a local path but is not a directory")
    if is_local:
        model_id = str(Path(model_id).expanduser().resolve())
    elif local_only:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(model_id, "config.json", revision=revision or "main")
        if not isinstance(hit, str):
            raise ModelLoadError(
                f"model {model_id!r} (revision {revision or 'main'}) is not in the local Hugging Face cache and "
                f"offline mode is on (model.offline, the default / HF_HUB_OFFLINE=1 / local_files_only); "
                f"{_how_to_provide(model_id, revision)}, or set model.offline: false to let it be downloaded"
            )
    return model_id, dict(revision=revision, trust_remote_code=trust, local_files_only=local_only)


def _size_of(proc: Any) -> tuple[int, int] | None:
    """(height, width) a fixed-size video processor produces (crop if it crops, else its square size)."""
    for attr in ("crop_size", "size"):
        d = getattr(proc, attr, None)
        if attr == "crop_size" and not getattr(proc, "do_center_crop", False):
            continue
        if isinstance(d, dict) and "height" in d and "width" in d:
            return int(d["height"]), int(d["width"])
        if d is not None and getattr(d, "height", None) is not None:
            return int(d.height), int(d.width)
    return None


def check_compatible(model: Any, processor: Any, model_id: str) -> None:
    """Stop, naming both sides, when the processor cannot feed the model: a tokenizer longer than the
    model's vocabulary, a video token id outside it, or a vision input size / patch geometry that is
    not the vision tower's. Called by `load_model`, before any pass."""
    tc = model.config.get_text_config()
    vocab = int(tc.vocab_size)
    tok = getattr(processor, "tokenizer", None)
    problems = []
    if tok is not None and len(tok) > vocab:
        problems.append(f"the processor's tokenizer has {len(tok)} tokens but the model's vocabulary "
                        f"(text_config.vocab_size) is {vocab}")
    vid = video_token_id(model, processor)
    if not 0 <= vid < vocab:
        problems.append(f"the video token id {vid} is outside the model's vocabulary (text_config.vocab_size {vocab})")
    vc = getattr(model.config, "vision_config", None)
    vp = getattr(processor, "video_processor", None)
    if vc is not None and vp is not None:
        if hasattr(vc, "spatial_merge_size"):  # Qwen2.5-VL: dynamic resolution, the patch geometry must agree
            for p_attr, m_attr in (("patch_size", "patch_size"), ("merge_size", "spatial_merge_size"),
                                   ("temporal_patch_size", "temporal_patch_size")):
                pv, mv = getattr(vp, p_attr, None), getattr(vc, m_attr, None)
                if pv is not None and mv is not None and int(pv) != int(mv):
                    problems.append(f"the video processor's {p_attr} is {pv} but the vision tower's "
                                    f"vision_config.{m_attr} is {mv}")
        elif getattr(vc, "image_size", None) is not None:
            hw = _size_of(vp)
            if hw is not None and hw != (int(vc.image_size), int(vc.image_size)):
                problems.append(f"the video processor makes {hw[0]}x{hw[1]} frames but the vision tower's "
                                f"vision_config.image_size is {vc.image_size}")
    if problems:
        raise ModelLoadError(f"processor and model of {model_id} do not match: " + "; ".join(problems)
                             + ". Use the processor saved with this checkpoint (same id and revision).")


def video_token_id(model: Any, processor: Any) -> int:
    """The id of the video placeholder token, from the model config or else the processor."""
    c = model.config
    for name in ("video_token_id", "video_token_index"):
        v = getattr(c, name, None)
        if isinstance(v, int):
            return v
    v = getattr(processor, "video_token_id", None)
    if isinstance(v, int):
        return v
    raise ModelLoadError(f"cannot find the video token id of {type(model).__name__} (config or processor)")


def render_prompt(processor: Any, prompt: dict[str, Any]) -> str:
    """Chat-template text: optional system message, user message (video then text), generation
    prompt and the optional assistant prefix (keys `system`, `text`, `assistant_prefix`)."""
    unknown = sorted(set(prompt) - {"system", "text", "assistant_prefix"})
    if unknown:
        raise ValueError(f"unknown prompt key(s) {unknown}; known: system, text, assistant_prefix")
    conv: list[dict[str, Any]] = []
    if prompt.get("system"):
        conv.append({"role": "system", "content": [{"type": "text", "text": str(prompt["system"])}]})
    user: list[dict[str, Any]] = [{"type": "video"}]
    if prompt.get("text"):
        user.append({"type": "text", "text": str(prompt["text"])})
    conv.append({"role": "user", "content": user})
    if getattr(processor, "chat_template", None) is None:
        raise ValueError(f"processor {type(processor).__name__} has no chat template")
    text = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    return text + str(prompt.get("assistant_prefix") or "")


def prompt_hash(text: str) -> str:
    """sha256 of the rendered prompt text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        desc = f"{getattr(frames, 'shape', None)} {getattr(frames, 'dtype', type(frames).__name__)}"
        raise ValueError(f"frames must be a uint8 array (F, H, W, 3), got {desc}")
    if frames.shape[0] < 1:
        raise ValueError("frames: need at least one frame")


def build_inputs(loaded: Loaded, frames: np.ndarray | Sequence[np.ndarray], prompt: dict[str, Any],
                 truncate: bool = True) -> tuple[Any, torch.Tensor]:
    """Processor inputs for one video (or a batch of same-shape videos) and the scored positions.

    The family's video processor does all preprocessing, without resampling frames. Scored
    positions are the indices of the video token in the expanded `input_ids` (identical for
    every row). With `truncate`, every sequence tensor is cut after the last scored position:
    the model is causal, so later text cannot change the scored logits.
    """
    videos = [frames] if isinstance(frames, np.ndarray) else list(frames)
    for v in videos:
        _check_frames(v)
    text = render_prompt(loaded.processor, prompt)
    vids = [np.ascontiguousarray(v) for v in videos]
    inputs = loaded.processor(text=[text] * len(vids), videos=vids, return_tensors="pt", do_sample_frames=False)
    ids = inputs["input_ids"]
    mask = ids == loaded.video_token_id
    scored = mask[0].nonzero().flatten()
    if scored.numel() == 0:
        raise ValueError(f"no video token (id {loaded.video_token_id}) in the input of {loaded.model_id}")
    if any(not torch.equal(m.nonzero().flatten(), scored) for m in mask[1:]):
        raise ValueError("videos of one batch give different video-token positions; use equal frame shapes")
    if truncate:
        length, batch = ids.shape[1], ids.shape[0]
        end = int(scored[-1]) + 1
        for k in list(inputs.keys()):
            v = inputs[k]
            if (isinstance(v, torch.Tensor) and v.ndim >= 2 and v.shape[0] == batch and v.shape[1] == length
                    and not k.startswith("pixel")):
                inputs[k] = v[:, :end]
    return inputs, scored


def append_answer(loaded: Loaded, inputs: Any, answer: str, eos: bool = False) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """Optional target-based slice: append the tokens of `answer` after the (untruncated) prompt.

    Returns (inputs, answer_ids [A], predict_pos [A]) where the logits at `predict_pos[i]` predict
    `answer_ids[i]` (true targets, not argmax). The answer is tokenized on its own, without special
    tokens, so the prompt tokens are unchanged; `eos` appends the tokenizer's end-of-sequence token
    (scored too). Not part of the paper's method (off by default).
    """
    tok = loaded.processor.tokenizer
    ids = tok(answer, add_special_tokens=False)["input_ids"] if answer else []
    if not ids:
        raise ValueError(f"answer {answer!r} gives no tokens")
    if eos:
        if tok.eos_token_id is None:
            raise ValueError(f"{loaded.model_id}: the tokenizer has no end-of-sequence token (set append_eos: false)")
        ids = [*ids, int(tok.eos_token_id)]
    ans = torch.tensor(ids, dtype=torch.long)
    batch, length = inputs["input_ids"].shape
    for k in list(inputs.keys()):
        v = inputs[k]
        if (isinstance(v, torch.Tensor) and v.ndim == 2 and v.shape == (batch, length) and not k.startswith("pixel")):
            if k == "input_ids":
                tail = ans[None].expand(batch, -1).to(v.dtype)
            elif k == "attention_mask":
                tail = torch.ones(batch, ans.numel(), dtype=v.dtype)
            else:  # e.g. token-type ids: text tokens are type 0
                tail = torch.zeros(batch, ans.numel(), dtype=v.dtype)
            inputs[k] = torch.cat([v, tail], dim=1)
    return inputs, ans, torch.arange(length - 1, length - 1 + ans.numel())

"""Parameter count, forward FLOPs and a memory plan of one model pass, from a `ModelShape` alone.

Counting rules (forward only, a multiply-add = 2 FLOPs; layer norms, activations, softmax, rotary
and pooling are left out, below 1% at these widths):

- text decoder, per layer and sequence of S tokens: 2 S (2 H^2 + 2 H Hkv + 3 H I) for the q/o and
  k/v projections (Hkv = kv_heads x head_dim) and the gated MLP, plus causal attention
  2 H S (S + 1) (Q K^T and A V over the S (S + 1) / 2 visible pairs);
- lm_head: 2 P H V on the P scored rows only (the passes use `logits_to_keep`);
- vision tower, per frame (Qwen2.5-VL: per temporal patch of 2 frames) with N patches of width D:
  per layer 2 N (4 D^2 + k D Iv) (k = 2 for the CLIP/SigLIP MLP, 3 for Qwen's gated MLP) plus
  attention 4 N n D, where n = N (full attention) or the window (Qwen's windowed layers); patch
  embedding 2 N c D (c = 3 p^2, x 2 frames for Qwen);
- projector: 2 (D H + H^2) per projected token (LLaVA-NeXT-Video projects the pooled 144 tokens,
  Video-LLaVA 257, LLaVA-OneVision the 729 patches before pooling); Qwen's merger 2 (16 D^2 + 4 D H)
  per merged token.

`param_count` counts the same matrices plus biases, norms and embeddings; tests check it against
the real (meta-device) transformers model, so the FLOP rules use the real layer shapes.
"""

from __future__ import annotations

import math
from typing import Any

from .shapes import ModelShape, patch_grid


def _text_layer_params(s: ModelShape) -> int:
    t = s.text
    h, i, kv = t["hidden_size"], t["intermediate_size"], t["num_kv_heads"] * s.head_dim
    bias = (h + 2 * kv) if s.family in ("qwen2_5_vl", "llava_onevision") else 0  # Qwen2 q/k/v biases
    return 2 * h * h + 2 * h * kv + bias + 3 * h * i + 2 * h


def _vision_layer_params(s: ModelShape) -> int:
    d, iv = s.vision["hidden_size"], s.vision["intermediate_size"]
    if s.family == "qwen2_5_vl":  # qkv + proj with biases, gated MLP with biases, two RMS norms
        return 3 * d * d + 3 * d + d * d + d + 2 * (d * iv + iv) + iv * d + d + 2 * d
    return 4 * (d * d + d) + d * iv + iv + iv * d + d + 4 * d  # CLIP / SigLIP: 4 projections, MLP, 2 layer norms


def param_count(s: ModelShape, num_layers: int | None = None, vision_layers: int | None = None) -> dict[str, int]:
    """Parameters by part ({text, lm_head_embed, vision, projector, total}) at the given depth."""
    t, v = s.text, s.vision
    nl, vl = num_layers or t["num_layers"], vision_layers or v["num_layers"]
    h, voc, d, p = t["hidden_size"], t["vocab_size"], v["hidden_size"], v["patch_size"]
    text = nl * _text_layer_params(s) + h  # + final norm
    embed = 2 * voc * h  # input embeddings and the (untied) lm_head
    if s.family == "qwen2_5_vl":
        vis = vl * _vision_layer_params(s) + 3 * v["temporal_patch_size"] * p * p * d
        m = v["merge_size"] ** 2 * d
        proj = d + m * m + m + m * h + h  # ln_q, mlp[0], mlp[2]
    else:
        g = v["image_size"] // p
        emb = 3 * p * p * d + (g * g + 1) * d + d  # patch conv, positions (+ CLS), class embedding
        if s.family == "llava_onevision":  # SigLIP: conv bias, no CLS, no pre-norm
            emb = 3 * p * p * d + d + g * g * d
            vis = vl * _vision_layer_params(s) + emb + 2 * d  # post layer norm
        else:
            vis = vl * _vision_layer_params(s) + emb + 4 * d  # pre and post layer norms
        if s.family == "video_llava":
            vis *= 2  # an image tower and a video tower of the same shape
        proj = d * h + h + h * h + h + (h if s.family in ("llava_next_video", "llava_onevision") else 0)  # + newline
    total = text + embed + vis + proj
    return {"text": text, "lm_head_embed": embed, "vision": vis, "projector": proj, "total": total}


def forward_flops(s: ModelShape, frames: int, height: int, width: int, seq_len: int, scored: int,
                  num_layers: int | None = None, vision_layers: int | None = None) -> dict[str, float]:
    """FLOPs of ONE pass (one sequence of `seq_len` tokens with `scored` scored rows) by part:
    text_linear, text_attention, lm_head, vision_linear, vision_attention, projector, and the sums
    linear (everything but attention scores), attention and total."""
    t, v = s.text, s.vision
    nl, vl = num_layers or t["num_layers"], vision_layers or v["num_layers"]
    h, i, kv, voc = t["hidden_size"], t["intermediate_size"], t["num_kv_heads"] * s.head_dim, t["vocab_size"]
    d, iv, p = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    gh, gw = patch_grid(s, height, width)
    n = gh * gw
    out = {"text_linear": nl * 2 * seq_len * (2 * h * h + 2 * h * kv + 3 * h * i),
           "text_attention": nl * 2 * h * seq_len * (seq_len + 1), "lm_head": 2 * scored * h * voc}
    if s.family == "qwen2_5_vl":
        groups = math.ceil(frames / v["temporal_patch_size"])
        win = (v["window_size"] // p) ** 2
        full = [j for j in v["fullatt_block_indexes"] if j < vl] if vl == v["num_layers"] else [vl - 1]
        out["vision_linear"] = groups * (vl * 2 * n * (4 * d * d + 3 * d * iv) + 2 * n * 3 * v["temporal_patch_size"] * p * p * d)
        out["vision_attention"] = groups * sum(4 * n * (n if j in full else min(win, n)) * d for j in range(vl))
        m = v["merge_size"] ** 2
        out["projector"] = groups * (n // m) * 2 * (m * d * m * d + m * d * h)
    else:
        tokens = n + (0 if s.family == "llava_onevision" else 1)  # CLIP adds a CLS token
        out["vision_linear"] = frames * (vl * 2 * tokens * (4 * d * d + 2 * d * iv) + 2 * n * 3 * p * p * d)
        out["vision_attention"] = frames * vl * 4 * tokens * tokens * d
        if s.family == "llava_next_video":
            projected = (gh // s.video["pool_stride"]) * (gw // s.video["pool_stride"])
        elif s.family == "video_llava":
            projected = n + 1
        else:
            projected = n
        out["projector"] = frames * projected * 2 * (d * h + h * h)
    out["attention"] = out["text_attention"] + out["vision_attention"]
    out["linear"] = out["text_linear"] + out["lm_head"] + out["vision_linear"] + out["projector"]
    out["total"] = out["linear"] + out["attention"]
    return {k: float(val) for k, val in out.items()}


DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def memory_plan(s: ModelShape, dtype: str, sequences: int, seq_len: int, scored: int, frames: int, height: int,
                width: int, num_layers: int | None = None, vision_layers: int | None = None,
                attn: str = "sdpa", reduce_chunk: int = 8) -> dict[str, float]:
    """Bytes one forward of `sequences` sequences needs on the device (an estimate, see docs/models.md):
    weights (exact), scored logits [sequences, P, V] in the model dtype, the largest live activations
    (text: hidden states and the MLP's gate/up products, plus the S x S scores per head with eager
    attention; vision: the same per frame batch) and the reduction's chunk temporaries (float64)."""
    b = DTYPE_BYTES[dtype]
    t, v = s.text, s.vision
    weights = param_count(s, num_layers, vision_layers)["total"] * b
    logits = sequences * scored * t["vocab_size"] * b
    text_act = sequences * seq_len * (4 * t["hidden_size"] + 2 * t["intermediate_size"]) * b
    if attn == "eager":
        text_act += sequences * t["num_heads"] * seq_len * seq_len * b
    gh, gw = patch_grid(s, height, width)
    n = gh * gw + 1
    frames_in = frames if s.family != "qwen2_5_vl" else math.ceil(frames / v["temporal_patch_size"])
    vis_act = sequences * frames_in * n * (4 * v["hidden_size"] + 2 * v["intermediate_size"]) * b
    if attn == "eager":
        vis_act += sequences * frames_in * v["num_heads"] * n * n * b
    reduce = 8 * reduce_chunk * t["vocab_size"] * 8  # ~8 float64 [chunk, V] temporaries
    total = weights + logits + max(text_act, vis_act) + reduce
    return {"weights": float(weights), "logits": float(logits), "activations": float(max(text_act, vis_act)),
            "reduce": float(reduce), "total": float(total)}


def max_videos_per_forward(s: ModelShape, dtype: str, budget_bytes: float, seq_len: int, scored: int, frames: int,
                           height: int, width: int, batch_orders: bool = True, limit: int = 64, **kw: Any) -> int:
    """The most videos one forward can take within `budget_bytes` by `memory_plan` (0 if not even one)."""
    per = 2 if batch_orders else 1
    best = 0
    for k in range(1, limit + 1):
        if memory_plan(s, dtype, per * k, seq_len, scored, frames, height, width, **kw)["total"] > budget_bytes:
            break
        best = k
    return best

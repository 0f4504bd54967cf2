"""Shared inputs of the training tests: a tiny synthetic sheet, its frames and an untrained tiny target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidsme import synth

SYN = {"n_eval": 8, "n_val": 4, "n_pretrain": 4, "size": 32, "n_frames": 8, "real_clips": False}
SIZES = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64,
         "vision_hidden_size": 16, "vision_layers": 1, "vision_heads": 1, "image_size": 16, "patch_size": 4,
         "vocab_size": 400}


def tiny_training_data(root: Path, **syn: object) -> tuple[Path, pd.DataFrame, dict[str, np.ndarray]]:
    """(untrained tiny LLaVA-NeXT-Video dir, sheet of SYN updated by ``syn``, video id -> frames), built under
    ``root``."""
    from vidsme.tiny import build_tiny

    cfg = {**SYN, **syn}
    rows, frames = [], {}
    for row, fr in synth.generate_frames(cfg):
        rows.append(row)
        frames[row["video_id"]] = fr
    model_dir = build_tiny("llava_next_video", root / "init", corpus=synth.corpus(cfg), seed=0, **SIZES)
    return model_dir, pd.DataFrame(rows), frames

"""What a dump keeps: `ReduceSpec`, the settings of `vidsme.reduce.reduce_logits` (config block `reduce`).

Kept apart from the reduction itself (torch) so that the workflow can check a config's `reduce` block
and the q range the attacks need when it is read (`vidsme.config`), without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["ReduceSpec"]


@dataclass(frozen=True)
class ReduceSpec:
    """What `reduce_logits` keeps. Defaults meet 1e-4 relative SME accuracy for q in [0.5, 3]."""

    q_min: float = 0.5
    q_max: float = 3.0
    n_nodes: int = 24
    top_m: int = 16
    mean_probs: bool = True
    compute_dtype: str = "float64"  # elementwise precision ("float32": faster, ~1e-6 relative); sums always float64

    def __post_init__(self) -> None:
        if not (0.01 <= self.q_min < self.q_max) or not math.isfinite(self.q_max):
            raise ValueError(f"ReduceSpec: need 0.01 <= q_min < q_max < inf, got q_min={self.q_min}, q_max={self.q_max}")
        if self.n_nodes < 2:
            raise ValueError(f"ReduceSpec: n_nodes must be >= 2, got {self.n_nodes}")
        if self.compute_dtype not in ("float32", "float64"):
            raise ValueError(f"ReduceSpec: compute_dtype must be 'float32' or 'float64', got {self.compute_dtype!r}")
        if self.top_m < 2:
            raise ValueError(f"ReduceSpec: top_m must be >= 2, got {self.top_m}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ReduceSpec":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"ReduceSpec: unknown keys {sorted(unknown)}")
        return cls(**d)

    def nodes(self) -> np.ndarray:
        """Chebyshev points of the second kind mapped to [q_min, q_max] (ascending, float64)."""
        k = np.arange(self.n_nodes)
        x = -np.cos(np.pi * k / (self.n_nodes - 1))
        return 0.5 * (self.q_min + self.q_max) + 0.5 * (self.q_max - self.q_min) * x

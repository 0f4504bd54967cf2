"""Feeding the device: groups of videos per forward, prepared ahead in a worker thread.

Frames are decoded by `extract_frames` (one npz per shard, a separate workflow step that Snakemake
runs for the next shards while a model pass runs). What stays on the critical path inside a pass
is the processor (resize, normalise, tokenise: CPU work) before each forward. `Feeder` yields the
groups of a shard in order; with `prefetch >= 1` a worker thread prepares up to `prefetch` groups
ahead, so the processor work for the next videos overlaps the current forward. Videos share one
forward (`k` per group) when they can: same frame shape, same prompt, no answer slice. `retry`
re-queues a group (and whatever was prepared after it) with a smaller `k`, for out-of-memory.
The time the caller spends waiting for a prepared group is the device's wait for inputs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Item:
    """One video's work: its id, frames (F, H, W, 3) uint8, prompt and optional answer text."""

    vid: str
    frames: np.ndarray
    prompt: dict[str, Any]
    answer: str | None = None


def can_share(a: Item, b: Item) -> bool:
    """Whether two videos can share one forward (equal input shapes and prompt, video positions only)."""
    return a.answer is None and b.answer is None and a.frames.shape == b.frames.shape and a.prompt == b.prompt


class Feeder:
    """Iterator of (items, prepared, wait seconds) over `items` in order (see the module doc)."""

    def __init__(self, items: list[Item], prepare: Callable[[list[Item]], Any], k: int = 1, prefetch: int = 0,
                 initializer: Callable[[], Any] | None = None) -> None:
        if k < 1:
            raise ValueError(f"videos per forward must be >= 1, got {k}")
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        self.k, self.prefetch, self._prepare = k, prefetch, prepare
        self._todo: deque[Item] = deque(items)
        self._ahead: deque[tuple[list[Item], Future[Any]]] = deque()
        self._pool = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidsme-prefetch", initializer=initializer)
                      if prefetch else None)
        self.wait_s = 0.0

    def _next_group(self) -> list[Item] | None:
        if not self._todo:
            return None
        group = [self._todo.popleft()]
        while self._todo and len(group) < self.k and can_share(group[0], self._todo[0]):
            group.append(self._todo.popleft())
        return group

    def _fill(self) -> None:
        assert self._pool is not None
        while len(self._ahead) < self.prefetch:
            group = self._next_group()
            if group is None:
                return
            self._ahead.append((group, self._pool.submit(self._prepare, group)))

    def __iter__(self) -> Iterator[tuple[list[Item], Any, float]]:
        return self

    def __next__(self) -> tuple[list[Item], Any, float]:
        t = time.perf_counter()
        if self._pool is None:
            group = self._next_group()
            if group is None:
                raise StopIteration
            prepared = self._prepare(group)
        else:
            self._fill()
            if not self._ahead:
                self.close()
                raise StopIteration
            group, fut = self._ahead.popleft()
            prepared = fut.result()  # re-raises a preparation error in the caller
            self._fill()  # start the next group before the caller's forward
        waited = time.perf_counter() - t
        self.wait_s += waited
        return group, prepared, waited

    def retry(self, group: list[Item], k: int) -> None:
        """Re-queue `group` (and the groups prepared after it) in order, at most `k` videos per forward."""
        self.k = max(1, k)
        back = list(group) + [it for g, fut in self._ahead for it in g]
        for _, fut in self._ahead:
            fut.cancel()
        self._ahead.clear()
        self._todo.extendleft(reversed(back))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

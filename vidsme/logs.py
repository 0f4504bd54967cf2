"""Logging for workflow steps: everything a step says, and any error, goes to its log file."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def logged(path: str | Path | None) -> Iterator[logging.Logger]:
    """Send the ``vidsme`` logger (and warnings) to ``path``; record a failure's traceback there too."""
    log = logging.getLogger("vidsme")
    log.setLevel(logging.INFO)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    logging.captureWarnings(True)
    try:
        from vidsme.numerics import apply_in_process

        pinned = apply_in_process()  # pinned runs: fixed thread pools, AVX2 kernels checked
        if pinned:
            log.info("numerics pinned: %s", pinned)
        yield log
    except BaseException:
        log.error("failed:\n%s", traceback.format_exc())
        raise
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()

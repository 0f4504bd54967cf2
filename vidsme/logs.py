"""Logging for workflow steps: everything a step says, and any error, goes to its log file.

Inside ``logged(path)`` the log file receives, in order of writing: a first line naming the
package version and the folder it was imported from (which checkout ran the step); the
``vidsme`` logger's records; every warning (``warnings.warn``, through the ``py.warnings``
logger); anything written to ``sys.stderr`` or to file descriptor 2 (tracebacks, progress bars,
messages of C libraries and child processes); and the traceback of an exception that ends the
block. The ``vidsme`` logger's records are echoed to the console as well. In a Snakemake job it
also stops the job when the run's main process is gone (`vidsme.runguard.watch_main`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from vidsme.runguard import interrupted, watch_main

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def origin() -> str:
    """``vidsme <version> from <package folder>``: which code is running."""
    import vidsme

    return f"vidsme {vidsme.__version__} from {Path(vidsme.__file__).resolve().parent}"


def _has_fd(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return False


@contextlib.contextmanager
def _stderr_to(stream) -> Iterator[None]:
    """Point file descriptor 2 and ``sys.stderr`` at ``stream`` (an open file) for the block."""
    sys.stderr.flush()
    saved_fd = os.dup(2)
    saved_obj = sys.stderr
    os.dup2(stream.fileno(), 2)
    sys.stderr = stream
    try:
        yield
    finally:
        stream.flush()
        sys.stderr = saved_obj
        os.dup2(saved_fd, 2)
        os.close(saved_fd)


@contextlib.contextmanager
def logged(path: str | Path | None) -> Iterator[logging.Logger]:
    """Send the ``vidsme`` logger, warnings and stderr to ``path``; record a failure's traceback there too.

    ``path`` None: the ``vidsme`` logger and warnings go to stderr only.
    """
    log = logging.getLogger("vidsme")
    log.setLevel(logging.INFO)
    warn_log = logging.getLogger("py.warnings")
    fmt = logging.Formatter(FORMAT)
    with contextlib.ExitStack() as stack:
        console = logging.StreamHandler(sys.stderr)  # the console as it is before any redirection
        handlers: list[tuple[logging.Logger, logging.Handler]] = [(log, console)]
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            stream = stack.enter_context(open(path, "w", buffering=1, encoding="utf-8"))
            stream.write(origin() + "\n")
            if _has_fd(sys.stderr):  # keep echoing to the console, not to the redirected descriptor 2
                console.setStream(os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8"))
                stack.callback(console.stream.close)
            stack.enter_context(_stderr_to(stream))
            to_file = logging.StreamHandler(stream)
            handlers += [(log, to_file), (warn_log, to_file)]
        else:
            handlers.append((warn_log, console))
        for logger, h in handlers:
            h.setFormatter(fmt)
            logger.addHandler(h)
        logging.captureWarnings(True)
        try:
            # no orphan job: stop when the run's main Snakemake process is gone; inside the try, so the
            # interrupt is logged even when the run was already gone as this job started
            watch_main()
            from vidsme.numerics import apply_in_process

            pinned = apply_in_process()  # pinned runs: fixed thread pools, AVX2 kernels checked
            if pinned:
                log.info("numerics pinned: %s", pinned)
            yield log
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                interrupted()  # the run guard stops repeating it
            log.error("failed:\n%s", traceback.format_exc())
            raise
        finally:
            logging.captureWarnings(False)
            for logger, h in handlers:
                logger.removeHandler(h)
                h.flush()

"""Resumable runs: a killed run leaves no stale Snakemake lock and no orphan job.

Snakemake 9 locks the files of a run in ``.snakemake/locks/`` and removes the locks when it exits
normally; after a hard kill (SIGKILL, OOM killer, a closed terminal) they stay, and the next run stops
with ``LockException`` until ``snakemake --unlock``. Jobs run as child processes, which survive a
killed main process and keep writing. Two mechanisms, wired in the Snakefile:

* :func:`claim_run` (main Snakemake process only, before Snakemake takes its locks): every live main
  process holds a shared ``flock`` on ``.snakemake/vidsme-run.lock`` for its whole life (the kernel
  drops it when the process dies, however it dies). A new run that can take the lock *exclusively*
  knows that no run of this workflow is alive in this directory, so any lock file left is stale: it
  removes them, logs what it removed, and then holds the lock shared like the others.
* :func:`announce_main` exports the main process's identity (``host:pid:start time``) to its jobs;
  :func:`watch_main` (started by `vidsme.logs.logged`, inside which every job script runs) polls that
  process and, when it is gone, interrupts the job (``KeyboardInterrupt`` in the main thread, so
  temporary files are removed) and exits it after a grace period if it does not stop.

Jobs of a remote executor (SLURM) are not watched: their Snakemake re-reads the Snakefile in remote
mode, which removes the exported identity (the cluster manages those processes).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

__all__ = ["ENV", "RUN_LOCK", "claim_run", "announce_main", "forget_main", "main_alive", "watch_main"]

ENV = "VIDSME_SNAKEMAKE_MAIN"  # host:pid:start time of the main Snakemake process of the run
ENV_NS = "VIDSME_SNAKEMAKE_MAIN_PIDNS"  # its pid namespace (a job in the same one can tell "gone" from "not visible")
RUN_LOCK = "vidsme-run.lock"
_held: int | None = None  # fd of the run lock, held for the life of the process
_watcher: threading.Thread | None = None
_interrupted = threading.Event()  # set by the job (`interrupted`) once its KeyboardInterrupt is being handled

log = logging.getLogger("vidsme.runguard")


def _start_time(pid: int) -> str:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22); '' when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _pidns() -> str:
    """This process's pid namespace ('' when unknown)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def claim_run(snakemake_dir: str | os.PathLike[str] = ".snakemake", wait_s: float = 10.0) -> list[Path]:
    """Join the live runs of this directory; when there is none, remove stale Snakemake locks.

    Returns the lock files removed. Idempotent within a process (a workflow included twice)."""
    global _held
    if _held is not None:
        return []
    d = Path(snakemake_dir)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    removed: list[Path] = []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):  # no flock here (some network file systems)
            log.warning("%s: cannot lock (%s); stale Snakemake locks are not removed", d / RUN_LOCK, e)
            os.close(fd)
            return []
    else:  # no live run: whatever lock Snakemake left is stale
        locks = d / "locks"
        removed = sorted(locks.glob("*.lock")) if locks.is_dir() else []
        for p in removed:
            p.unlink(missing_ok=True)
    deadline = time.monotonic() + wait_s
    while True:  # hold it shared (from exclusive: a conversion); waits only for a run that is cleaning up
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            break
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                os.close(fd)
                return removed
            time.sleep(0.05)
    _held = fd
    return removed


def announce_main() -> None:
    """Export this (main Snakemake) process's identity to the jobs it starts."""
    os.environ[ENV] = _token()
    os.environ[ENV_NS] = _pidns()


def forget_main() -> None:
    """In a remotely executed job's Snakemake: do not watch the login node's process."""
    os.environ.pop(ENV, None)
    os.environ.pop(ENV_NS, None)


def main_alive(token: str) -> bool:
    """Whether the process named by ``host:pid:start time`` still runs (True when it cannot be told)."""
    host, pid, start = token.rsplit(":", 2)
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or _start_time(int(pid)) == start  # a new process with a reused pid is not it


def interrupted() -> None:
    """In a job: its KeyboardInterrupt is being handled; the watcher stops repeating it."""
    _interrupted.set()


def watch_main(poll_s: float = 1.0, grace_s: float = 10.0) -> threading.Thread | None:
    """In a job: stop this process when the main Snakemake process of its run is gone.

    No-op (None) outside a local Snakemake run, or when the main process is not visible when the job
    starts from another pid namespace (a container): there it acts only on a process seen alive, then
    gone. In the main process's own pid namespace a main already gone at the start stops the job at once.
    The job gets a KeyboardInterrupt in its main thread
    (its writes are atomic, so no partial output stays) and is exited ``grace_s`` later if still alive."""
    global _watcher
    token = os.environ.get(ENV, "")
    if token.count(":") < 2 or token.rsplit(":", 2)[0] != socket.gethostname():
        return None
    if _watcher is not None:
        return _watcher
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # a run started in the background (`snakemake ... &` in a script) passes SIGINT ignored to its jobs;
        # the guard stops a job with it
        signal.signal(signal.SIGINT, signal.default_int_handler)
    ns = os.environ.get(ENV_NS, "")
    if not main_alive(token) and not (ns and ns == _pidns()):  # not visible from here (another pid namespace)
        return None

    def watch() -> None:
        while main_alive(token):
            time.sleep(poll_s)
        log.error("the Snakemake run that started this job (pid %s) is gone: stopping this job", token.rsplit(":", 2)[1])
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            # again until the job takes it: code that checks for signals and clears the error (seen during
            # imports) can swallow one KeyboardInterrupt
            if not _interrupted.is_set():
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]
            time.sleep(0.5)
        os._exit(130)

    _watcher = threading.Thread(target=watch, name="vidsme-watch-main", daemon=True)
    _watcher.start()
    return _watcher

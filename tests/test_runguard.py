"""vidsme.runguard: stale Snakemake locks are removed only when no run is alive; a job whose main
process is gone stops (issue 14.4). Real processes, no Snakemake."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT
from vidsme import runguard

ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _python(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=kw.pop("env", ENV), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _stale_locks(d: Path) -> list[Path]:
    (d / "locks").mkdir(parents=True)
    locks = [d / "locks" / "0.input.lock", d / "locks" / "0.output.lock"]
    for p in locks:
        p.write_text("results/x\n")
    return locks


CLAIM = """
import sys
from vidsme.runguard import claim_run
print(len(claim_run(sys.argv[1])), flush=True)
{after}
"""


def test_stale_locks_are_removed_when_no_run_is_alive(tmp_path: Path) -> None:
    locks = _stale_locks(tmp_path / ".snakemake")
    p = subprocess.run([sys.executable, "-c", CLAIM.format(after=""), str(tmp_path / ".snakemake")], env=ENV,
                       capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "2" and not any(x.exists() for x in locks)


def test_locks_of_a_live_run_are_kept(tmp_path: Path) -> None:
    d = tmp_path / ".snakemake"
    d.mkdir()
    live = subprocess.Popen([sys.executable, "-c", CLAIM.format(after="import time; time.sleep(60)"), str(d)], env=ENV,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "0"  # it holds the run lock now
        locks = _stale_locks(d)  # as if the live run had locked its files
        p = subprocess.run([sys.executable, "-c", CLAIM.format(after=""), str(d)], env=ENV, capture_output=True, text=True, check=True)
        assert p.stdout.strip() == "0" and all(x.exists() for x in locks)
        live.kill()
        live.wait()
        p = subprocess.run([sys.executable, "-c", CLAIM.format(after=""), str(d)], env=ENV, capture_output=True, text=True, check=True)
        assert p.stdout.strip() == "2" and not any(x.exists() for x in locks)  # its death made them stale
    finally:
        live.kill()


def test_a_second_run_after_the_first_ended_keeps_a_live_seconds_locks(tmp_path: Path) -> None:
    """Two live runs A and B; A ends; a third run must still see B alive (shared holds, not one owner)."""
    d = tmp_path / ".snakemake"
    d.mkdir()
    runs = [subprocess.Popen([sys.executable, "-c", CLAIM.format(after="import time; time.sleep(60)"), str(d)], env=ENV,
                             stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        assert [r.stdout.readline().strip() for r in runs] == ["0", "0"]
        locks = _stale_locks(d)
        runs[0].kill()
        runs[0].wait()
        p = subprocess.run([sys.executable, "-c", CLAIM.format(after=""), str(d)], env=ENV, capture_output=True, text=True, check=True)
        assert p.stdout.strip() == "0" and all(x.exists() for x in locks)
    finally:
        for r in runs:
            r.kill()


def test_main_alive_checks_host_pid_and_start_time() -> None:
    host = socket.gethostname()
    me = f"{host}:{os.getpid()}:{runguard._start_time(os.getpid())}"
    assert runguard.main_alive(me)
    assert not runguard.main_alive(f"{host}:{os.getpid()}:1")  # same pid, other start time: a reused pid
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not runguard.main_alive(f"{host}:{gone.pid}:")
    assert runguard.main_alive(f"elsewhere.example:{gone.pid}:")  # another host's process cannot be checked


def test_watch_main_is_off_outside_a_local_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runguard.ENV, raising=False)
    assert runguard.watch_main() is None
    monkeypatch.setenv(runguard.ENV, "elsewhere.example:1:1")
    assert runguard.watch_main() is None
    gone = subprocess.Popen(["true"])
    gone.wait()
    monkeypatch.setenv(runguard.ENV, f"{socket.gethostname()}:{gone.pid}:")  # never seen alive (other pid namespace)
    assert runguard.watch_main() is None


def test_a_file_system_without_flock_only_skips_the_cleanup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import fcntl

    def no_lock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runguard, "_held", None)
    monkeypatch.setattr(fcntl, "flock", no_lock)
    locks = _stale_locks(tmp_path / ".snakemake")
    assert runguard.claim_run(tmp_path / ".snakemake") == [] and all(p.exists() for p in locks)
    assert runguard._held is None


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _stopped_with_interrupt(job_pid: int, log: Path, within_s: float) -> None:
    """The job is gone within `within_s` and its log says why and holds the KeyboardInterrupt."""
    t0 = time.monotonic()
    while not _gone(job_pid) and time.monotonic() - t0 < within_s:
        time.sleep(0.1)
    assert _gone(job_pid), "the job outlived its main process"
    text = log.read_text()
    assert "is gone: stopping this job" in text and "KeyboardInterrupt" in text


def _main_starting(job: str) -> str:
    """Code of a main process that announces itself, starts `job` (Python code), prints its pid and sleeps."""
    return f"""
        import subprocess, sys, time
        from vidsme.runguard import announce_main
        announce_main()
        job = subprocess.Popen([sys.executable, "-c", {textwrap.dedent(job)!r}])
        print(job.pid, flush=True)
        time.sleep(120)
    """


def test_a_job_stops_when_its_main_process_is_killed(tmp_path: Path) -> None:
    """main (announces itself) -> job (a step inside vidsme.logs.logged, sleeping); SIGKILL main: the job
    logs why, gets KeyboardInterrupt and exits within seconds."""
    log = tmp_path / "job.log"
    job = f"""
        import time
        from vidsme.logs import logged
        with logged({str(log)!r}):
            time.sleep(120)
    """
    main = _main_starting(job)
    m = _python(main, start_new_session=True)
    try:
        job_pid = int(m.stdout.readline())
        t0 = time.monotonic()  # wait until the job is inside logged() (a loaded machine imports slowly)
        while not (log.exists() and "vidsme" in log.read_text()) and time.monotonic() - t0 < 120:
            time.sleep(0.1)
        time.sleep(1)
        assert not _gone(job_pid)
        os.kill(m.pid, signal.SIGKILL)
        m.wait()
        _stopped_with_interrupt(job_pid, log, 15)
    finally:
        if m.poll() is None:
            os.killpg(m.pid, signal.SIGKILL)


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_a_job_that_starts_after_its_main_process_died_logs_the_interrupt(sigint: str, tmp_path: Path) -> None:
    """The run is already gone when the job enters vidsme.logs.logged: it stops at once, and the log
    still says why and holds the KeyboardInterrupt (the watcher starts inside the logged block). With
    SIGINT ignored, as a run started in the background (`snakemake ... &` in a script) passes it on, too."""
    log, flag = tmp_path / "job.log", tmp_path / "go"
    job = f"""
        import os, time
        while not os.path.exists({str(flag)!r}):
            time.sleep(0.05)
        from vidsme.logs import logged
        with logged({str(log)!r}):
            time.sleep(120)
    """
    main = _main_starting(job)
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint == "ignored" else None
    m = _python(main, start_new_session=True, preexec_fn=ignore)
    try:
        job_pid = int(m.stdout.readline())
        os.kill(m.pid, signal.SIGKILL)
        m.wait()
        flag.touch()
        _stopped_with_interrupt(job_pid, log, 60)
    finally:
        if m.poll() is None:
            os.killpg(m.pid, signal.SIGKILL)
        if not _gone(job_pid):
            os.kill(job_pid, signal.SIGKILL)

"""Share a finished run with DVC, so a collaborator gets the results without rerunning the model.

Producer (after the workflow ran):  python -m vidsme.share add -e EXP [-i videos], then git add the
                                    .dvc files, git commit, dvc push
Consumer (after git clone):         dvc pull, python -m vidsme.share restore, then the usual
                                    snakemake commands: nothing reruns unless the config or code changed

What is shared (one list, ``artifact_paths``): the inputs, every entry of ``results/{exp}/`` (sample
sheet copy, frames, statistics and (q, r), the trained target, model-pass dumps, series, scores,
metrics, tables, figures, provenance) and ``share/``: a copy of Snakemake's job metadata plus the
modification-time order of every shared file.

Why both. Snakemake (9.x) reruns a job when an input is newer than its oldest output, unless the
input is at most ``--max-checksum-file-size`` (1 MB) and its checksum, recorded in the metadata,
is unchanged. This check ignores ``--rerun-triggers`` (``mtime`` cannot be switched off), and
``dvc pull`` writes files with fresh times in no useful order, so big inputs (frames, dumps,
weights) would look updated. Without metadata (``.snakemake/`` is not shared) the ``params``,
``input``, ``code`` and ``software-env`` triggers are off, so a changed K would rerun nothing.
Restoring the metadata and the time order gives the consumer the producer's state exactly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

METADATA = Path(".snakemake/metadata")
SHARE = Path("share")
SNAPSHOT = SHARE / "snakemake-metadata"
MTIMES = SHARE / "mtimes.tsv"
EXPENSIVE = ("target", "dumps")  # fine-tuned target and model-pass dumps (results/{exp}/...)
DVC = (sys.executable, "-m", "dvc")  # the dvc installed beside this interpreter
STEP_NS = 10_000  # 10 us between restored times: well above float64 resolution of epoch seconds


def artifact_paths(workdir: Path, experiment: str, inputs: tuple[str | Path, ...] = ()) -> list[Path]:
    """Paths (relative to ``workdir``) to track with DVC: data/{exp} (the embedded experiments' generated
    videos, when present), the given inputs, results/{exp}/*, and share/."""
    workdir = Path(workdir)
    res = Path("results") / experiment
    if not (workdir / res).is_dir():
        raise FileNotFoundError(f"no results for experiment {experiment!r}: {workdir / res} is missing (run the workflow first)")
    paths = [p for p in (Path("data") / experiment,) if (workdir / p).exists()]  # embedded: the generated videos
    for extra in map(Path, inputs):
        if extra.is_absolute() or ".." in extra.parts:
            raise ValueError(f"input {extra} must be a path inside the work directory")
        if not (workdir / extra).exists():
            raise FileNotFoundError(f"input to share not found: {workdir / extra}")
        paths.append(extra)
    paths += [res / e.name for e in sorted((workdir / res).iterdir()) if not e.name.startswith(".") and e.suffix != ".dvc"]
    if not (workdir / res / "dumps").is_dir():
        raise FileNotFoundError(f"no model-pass dumps in {workdir / res / 'dumps'}: nothing expensive to share")
    return [*paths, SHARE]


def _tree(workdir: Path, paths: list[Path]) -> list[Path]:
    """Every file and folder under ``paths`` (relative)."""
    out: list[Path] = []
    for p in paths:
        full = Path(workdir) / p
        out += [q.relative_to(workdir) for q in full.rglob("*")] if full.is_dir() else []
        out.append(p)
    return out


def snapshot(workdir: Path, paths: list[Path]) -> Path:
    """Write share/: a copy of .snakemake/metadata and the mtimes (ns) of everything in ``paths``."""
    workdir = Path(workdir)
    src = workdir / METADATA
    if not src.is_dir():
        raise FileNotFoundError(f"no Snakemake metadata at {src}: run the workflow in {workdir} first")
    if (workdir / SHARE).exists():
        shutil.rmtree(workdir / SHARE)
    shutil.copytree(src, workdir / SNAPSHOT)
    rows = [f"{p.as_posix()}\t{(workdir / p).stat().st_mtime_ns}" for p in _tree(workdir, [p for p in paths if p != SHARE])]
    (workdir / MTIMES).write_text("path\tmtime_ns\n" + "\n".join(rows) + "\n")
    return workdir / SHARE


def restore(workdir: Path) -> tuple[int, int]:
    """Copy the metadata back and re-create the recorded time order, ending now.

    Files keep their relative order (equal times stay equal) at ``STEP_NS`` spacing, so every
    restored file is newer than the git checkout that preceded the pull. Returns
    (metadata records, paths re-timed); paths not pulled are skipped.
    """
    workdir = Path(workdir)
    if not (workdir / SNAPSHOT).is_dir() or not (workdir / MTIMES).is_file():
        raise FileNotFoundError(f"no snapshot in {workdir / SHARE}: run 'dvc pull' first")
    dst = workdir / METADATA
    dst.mkdir(parents=True, exist_ok=True)
    records = [f for f in (workdir / SNAPSHOT).iterdir() if f.is_file()]
    for f in records:
        shutil.copyfile(f, dst / f.name)  # a copy: the pulled file may be a read-only link into the DVC cache
    rows = [line.split("\t") for line in (workdir / MTIMES).read_text().splitlines()[1:] if line]
    times = sorted({int(t) for _, t in rows})
    rank = {t: i for i, t in enumerate(times)}
    now = time.time_ns()
    done = 0
    for path, t in rows:  # setting a time never changes the parent folder's time: order is free
        full = workdir / path
        if full.exists():
            new = now - (len(times) - 1 - rank[int(t)]) * STEP_NS
            os.utime(full, ns=(new, new))
            done += 1
    return len(records), done


def ignored_dvc_files(workdir: Path, paths: list[Path]) -> list[Path]:
    """The .dvc files git would ignore (dvc add refuses them): their folders need a .gitignore exception."""
    dvc_files = [p.with_name(p.name + ".dvc") for p in paths]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *map(str, dvc_files)], cwd=workdir, capture_output=True, text=True)
    return [Path(line) for line in proc.stdout.splitlines() if line]


def dvc_add(workdir: Path, experiment: str, inputs: tuple[str | Path, ...] = (), dvc: tuple[str, ...] = DVC) -> list[Path]:
    """Write the snapshot and ``dvc add`` every artifact; returns the tracked paths."""
    workdir = Path(workdir)
    paths = artifact_paths(workdir, experiment, inputs)
    ignored = ignored_dvc_files(workdir, paths)
    if ignored:
        raise RuntimeError(
            f"git ignores {', '.join(map(str, ignored))}; dvc add needs these files tracked. "
            "In .gitignore, ignore results/ contents but not their .dvc files, e.g. replace "
            "'/results/*' by '/results/**', '!/results/**/', '!/results/**/*.dvc', '!/results/**/.gitignore'"
        )
    snapshot(workdir, paths)
    subprocess.run([*dvc, "add", "--quiet", *map(str, paths)], cwd=workdir, check=True)
    return paths


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vidsme.share", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("list", "add", "restore"))
    ap.add_argument("-e", "--experiment", default="embedded")
    ap.add_argument("-i", "--input", action="append", default=[], help="an input file or folder to share too (repeatable)")
    ap.add_argument("-C", "--workdir", type=Path, default=Path("."))
    args = ap.parse_args(argv)
    if args.command == "list":
        print("\n".join(map(str, artifact_paths(args.workdir, args.experiment, tuple(args.input)))))
    elif args.command == "add":
        paths = dvc_add(args.workdir, args.experiment, tuple(args.input))
        print(f"tracked {len(paths)} paths; now: git add the .dvc and .gitignore files, git commit, dvc push")
    else:
        records, timed = restore(args.workdir)
        print(f"restored {records} Snakemake metadata records and the time order of {timed} paths")


if __name__ == "__main__":
    main()

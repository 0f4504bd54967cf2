"""Compare a finished run with the committed expected results: figure, expected, got, tolerance, PASS/FAIL.

`results/expected/{experiment}/` holds small text copies of a run's headline outputs (tables, the
memorisation summary; `EXPECTED` lists them). `check_run` matches every figure of every expected
file with the same file of `results/{experiment}/`: rows by their text columns, numbers by column.

Tolerance: exact (0) where the pinned numeric paths guarantee identical numbers (`vidsme.numerics.
guaranteed`: x86-64 with AVX2, `numerics.pin` on, the same lock file); elsewhere AUC, accuracy and TPR
may move by the expected figure's 95% bootstrap CI half-width and other numbers by 25% (or 0.05
absolute), as a different machine's kernels round differently and training amplifies it. A missing
file or row is a FAIL: the check never passes on nothing.

    python -m vidsme.check [-e embedded] [--update]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

# headline outputs of each workflow target, relative to results/{experiment}/ (copied by --update, compared by the check)
TARGETS: dict[str, tuple[str, ...]] = {
    "all": ("tables/main*.csv", "tables/k_sweep*.csv", "tables/terciles.csv", "tables/movement*.csv",
            "tables/blind_features.csv", "blind/metrics.tsv", "tables/dataset_inference*.csv",
            "target/main/memorisation.json", "target/base/memorisation.json"),
    "ablations": ("tables/ablation_*.csv", "target/*/memorisation.json"),
    "controls": ("tables/shift_control.csv", "tables/positive_control.csv", "tables/frame_swap.csv"),
}
EXPECTED = TARGETS["all"]  # the default target's
SOURCE = "source.json"  # in an expected folder: provenance of the run it was copied from
VOLATILE = ("seconds", "time", "path", "date")  # JSON keys holding timings or paths: never compared
RATE = ("auc", "acc", "tpr", "fpr", "power")  # figures in [0, 1] compared within a CI half-width when not exact
REL, ABS = 0.25, 0.05  # tolerance of other figures when not exact


@dataclass
class Figure:
    """One compared number (or row / file presence)."""

    file: str
    name: str
    expected: Any
    got: Any
    tol: float
    ok: bool

    def row(self) -> dict[str, Any]:
        return {"file": self.file, "figure": self.name, "expected": self.expected, "got": self.got,
                "tolerance": self.tol, "result": "PASS" if self.ok else "FAIL"}


def expected_files(root: Path, target: str = "all") -> list[Path]:
    """Relative paths of `target`'s headline outputs present under `root` (a results or expected folder)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    out: set[Path] = set()
    for pat in TARGETS[target]:
        out.update(p.relative_to(root) for p in root.glob(pat) if p.is_file())
    if target != "all":  # a file of the default target stays with it
        out -= set(expected_files(root, "all"))
    return sorted(out)


def _is_rate(col: str) -> bool:
    c = col.lower()
    if c.startswith("k="):  # the K sweep's columns are AUCs
        return True
    return any(c.startswith(r) or f" {r}" in c or c.endswith(r) for r in RATE) and not c.endswith(("_lo", "_hi"))


def _ci_half(row: pd.Series, col: str) -> float | None:
    """Half-width of the figure's own 95% CI in the expected row (columns x_lo/x_hi or 'X 95% CI' text)."""
    lo, hi = f"{col}_lo", f"{col}_hi"
    if lo in row and hi in row and _num(row[lo]) is not None and _num(row[hi]) is not None:
        return (float(row[hi]) - float(row[lo])) / 2
    for c in (f"{col} 95% CI", "AUC 95% CI", "auc_ci"):
        if c in row and isinstance(row[c], str) and row[c].startswith("["):
            a, b = (float(x) / 100 for x in row[c].strip("[]").split(","))
            return (b - a) / 2
    if "auc_lo" in row and "auc_hi" in row and _num(row["auc_lo"]) is not None:
        return (float(row["auc_hi"]) - float(row["auc_lo"])) / 2
    return None


def _num(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v


def _close(e: float, g: float, tol: float) -> bool:
    if math.isnan(e) or math.isnan(g):
        return math.isnan(e) and math.isnan(g)
    if math.isinf(e) or math.isinf(g):
        return e == g
    return abs(e - g) <= tol


def _tol(exact: bool, col: str, e: float, row: pd.Series | None) -> float:
    if exact:
        return 0.0
    if _is_rate(col):
        half = _ci_half(row, col) if row is not None else None
        return half if half is not None else ABS
    return max(REL * abs(e), ABS)


def compare_table(rel: str, exp: pd.DataFrame, got: pd.DataFrame, exact: bool) -> list[Figure]:
    """Figures of two tables: rows matched on the text columns, numbers compared column by column."""
    figs: list[Figure] = []
    missing_cols = [c for c in exp.columns if c not in got.columns]
    for c in missing_cols:
        figs.append(Figure(rel, f"column {c}", "present", "missing", 0.0, False))
    text = [c for c in exp.columns if c in got.columns and not pd.api.types.is_numeric_dtype(exp[c])
            and not str(c).endswith("CI")]
    nums = [c for c in exp.columns if c in got.columns and c not in text and not str(c).endswith("CI")]

    def keys(t: pd.DataFrame) -> list[str]:
        """Each row's text columns; rows they do not tell apart (e.g. one row per set size) get their
        ordinal among those rows (#2, #3, ...), so duplicates match in file order."""
        seen: dict[str, int] = {}
        out = []
        for _, r in t.iterrows():
            k = " / ".join(str(r[c]) for c in text) or str(r.name)
            seen[k] = seen.get(k, 0) + 1
            out.append(k if seen[k] == 1 else f"{k} #{seen[k]}")
        return out

    got_rows = dict(zip(keys(got), (r for _, r in got.iterrows())))
    for k, (_, er) in zip(keys(exp), exp.iterrows()):
        gr = got_rows.pop(k, None)
        if gr is None:
            figs.append(Figure(rel, f"row {k}", "present", "missing", 0.0, False))
            continue
        for c in nums:
            e, g = _num(er[c]), _num(gr[c])
            if e is None and g is None:
                continue
            if e is None or g is None:
                figs.append(Figure(rel, f"{k}: {c}", er[c], gr[c], 0.0, False))
                continue
            t = _tol(exact, str(c), e, er)
            figs.append(Figure(rel, f"{k}: {c}", e, g, t, _close(e, g, t)))
    for k in got_rows:
        figs.append(Figure(rel, f"row {k}", "absent", "extra", 0.0, False))
    return figs


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            if any(w in str(k).lower() for w in VOLATILE):
                continue
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def compare_json(rel: str, exp: Any, got: Any, exact: bool) -> list[Figure]:
    """Figures of two JSON documents (timings and paths left out), leaf by leaf."""
    fe, fg = _flatten(exp), _flatten(got)
    figs = []
    for k, e in fe.items():
        if k not in fg:
            figs.append(Figure(rel, k, e, "missing", 0.0, False))
            continue
        g = fg[k]
        ne, ng = _num(e), _num(g)
        if ne is not None and ng is not None:
            t = _tol(exact, k.rsplit(".", 1)[-1], ne, None)
            figs.append(Figure(rel, k, ne, ng, t, _close(ne, ng, t)))
        elif e != g:
            figs.append(Figure(rel, k, e, g, 0.0, False))
    return figs


def _read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")


def check_run(results: Path, expected: Path, exact: bool, target: str = "all") -> list[Figure]:
    """Every figure of every expected file of `target`, compared with the run in `results`."""
    files = expected_files(expected, target)
    if not files:
        raise FileNotFoundError(f"no expected results of target {target!r} under {expected} "
                                f"(files matching {', '.join(TARGETS[target])})")
    figs: list[Figure] = []
    for rel in files:
        e, g = expected / rel, results / rel
        if not g.is_file():
            figs.append(Figure(str(rel), "file", "present", f"missing: {g}", 0.0, False))
            continue
        if rel.suffix == ".json":
            figs += compare_json(str(rel), json.loads(e.read_text()), json.loads(g.read_text()), exact)
        else:
            try:
                figs += compare_table(str(rel), _read_table(e), _read_table(g), exact)
            except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
                figs.append(Figure(str(rel), "file", "a table", f"unreadable: {err}", 0.0, False))
    return figs


def update_expected(results: Path, expected: Path, target: str = "all") -> list[Path]:
    """Copy `target`'s headline outputs of a finished run into the expected folder (after a deliberate change)."""
    files = expected_files(results, target)
    if not files:
        raise FileNotFoundError(f"no headline outputs of target {target!r} under {results}: run the workflow first")
    expected.mkdir(parents=True, exist_ok=True)
    for old in expected_files(expected, target):
        (expected / old).unlink()
    prov = results / "provenance.json"
    if prov.is_file():  # what produced them (not compared): commit, lock, numeric dispatch, machine
        p = json.loads(prov.read_text())
        keep = ("git_commit", "git_dirty", "lock_sha256", "python", "torch", "transformers", "numerics")
        src = json.loads((expected / SOURCE).read_text()) if (expected / SOURCE).is_file() else {}
        src[target] = {k: p.get(k) for k in keep}
        (expected / SOURCE).write_text(json.dumps(src, indent=1) + "\n")
    for rel in files:
        (expected / rel).parent.mkdir(parents=True, exist_ok=True)
        src_file = results / rel
        if src_file.suffix == ".json":  # drop timings and paths: they differ on every run
            (expected / rel).write_text(json.dumps(_strip(json.loads(src_file.read_text())), indent=1) + "\n")
        else:
            shutil.copyfile(src_file, expected / rel)
    return files


def _strip(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if not any(w in str(k).lower() for w in VOLATILE)}
    return d


HEADLINE = ("target/main/memorisation.json: eval.*", "tables/main*.csv: *: AUC", "blind/metrics.tsv: *: auc")


def report(figs: list[Figure], exact: bool, why: str, headline: tuple[str, ...] = HEADLINE) -> str:
    """The console summary: headline figures, every failure, and the verdict line."""
    shown = [f for f in figs if not f.ok or any(fnmatch.fnmatch(f"{f.file}: {f.name}", h) for h in headline)]
    lines = [f"Tolerance: {why}.", "", f"| {'figure':<58} | {'expected':>10} | {'got':>10} | {'tol':>7} | result |",
             f"|{'-' * 60}|{'-' * 12}|{'-' * 12}|{'-' * 9}|--------|"]
    for f in shown:
        lines.append(f"| {(f.file + ': ' + f.name)[:58]:<58} | {_fmt(f.expected):>10} | {_fmt(f.got):>10} | "
                     f"{_fmt(f.tol):>7} | {'PASS' if f.ok else 'FAIL':<6} |")
    n_fail = sum(not f.ok for f in figs)
    lines += ["", f"{len(figs)} figures in {len({f.file for f in figs})} files: {len(figs) - n_fail} PASS, {n_fail} FAIL"
              + (" (exact)" if exact else " (within tolerance)") + (" -> PASS" if n_fail == 0 else " -> FAIL")]
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    v = _num(x)
    if v is None:
        return str(x)[:10]
    return f"{v:.4g}"


def run_check(experiment: str, results_root: Path = Path("results"), out: Path | None = None,
              target: str = "all") -> tuple[bool, str]:
    """Check `target`'s outputs in `results/{experiment}` against `results/expected/{experiment}`; full table to `out`."""
    from vidsme.numerics import guaranteed

    exact, why = guaranteed(pinned=_run_was_pinned(results_root / experiment))
    results, expected = results_root / experiment, results_root / "expected" / experiment
    if not results.is_dir():
        raise FileNotFoundError(f"no finished run at {results}: run the workflow for experiment {experiment!r} first")
    exact, why = _same_lock(results, expected, exact, why, target)
    figs = check_run(results, expected, exact, target)
    table = pd.DataFrame([f.row() for f in figs])
    out = out or results / ("check.tsv" if target == "all" else f"check_{target}.tsv")
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, sep="\t", index=False)
    text = report(figs, exact, why) + f"\nFull table: {out}"
    return all(f.ok for f in figs), text


def main(argv: list[str] | None = None, prog: str = "vidsme check") -> int:
    """Compare a finished run with the committed expected results (PASS/FAIL per figure)."""
    ap = argparse.ArgumentParser(prog=prog, description="Compare a finished run with results/expected/.")
    ap.add_argument("-e", "--experiment", default=None, help="default: the experiment of --configfile, else embedded")
    ap.add_argument("-c", "--configfile", default=None, help="read the experiment name from this config")
    ap.add_argument("-t", "--target", default="all", choices=list(TARGETS), help="which workflow target's outputs")
    ap.add_argument("--results", default="results", help="the results root (default: results)")
    ap.add_argument("--update", action="store_true", help="copy this run's headline outputs into results/expected/ instead")
    ap.add_argument("--missing-ok", action="store_true",
                    help="an experiment without results/expected/ is not an error: say so and exit 0 (make reproduce)")
    args = ap.parse_args(argv)
    root = Path(args.results)
    if args.experiment is None:
        args.experiment = _experiment_of(args.configfile)
    if args.missing_ok and not args.update and not (root / "expected" / args.experiment).is_dir():
        print(f"check: no expected results for experiment {args.experiment!r} ({root / 'expected' / args.experiment}): nothing compared")
        return 0
    if args.update:
        files = update_expected(root / args.experiment, root / "expected" / args.experiment, args.target)
        print(f"{len(files)} expected files of target {args.target!r} written to {root / 'expected' / args.experiment}")
        return 0
    try:
        ok, text = run_check(args.experiment, root, target=args.target)
    except FileNotFoundError as e:
        print(f"check: {e}", file=sys.stderr)
        return 2
    print(text)
    return 0 if ok else 1


def _same_lock(results: Path, expected: Path, exact: bool, why: str, target: str = "all") -> tuple[bool, str]:
    """Exact only when the run used the lock file the expected results were made with."""
    src, prov = expected / SOURCE, results / "provenance.json"
    if exact and src.is_file() and prov.is_file():
        want = json.loads(src.read_text()).get(target, {}).get("lock_sha256")
        have = json.loads(prov.read_text()).get("lock_sha256")
        if want and have and want != have:
            return False, f"the run used another requirements.lock ({str(have)[:12]}) than the expected results ({str(want)[:12]})"
    return exact, why


def _experiment_of(configfile: str | None) -> str:
    """The `experiment` key of a config (merged over config/config.yaml, like the workflow does)."""
    import yaml

    name = "embedded"
    for f in ("config/config.yaml", configfile):
        if f and Path(f).is_file():
            name = (yaml.safe_load(Path(f).read_text()) or {}).get("experiment", name)
    return name


def _run_was_pinned(results: Path) -> bool:
    prov = results / "provenance.json"
    if not prov.is_file():
        return True  # the default
    cfg = json.loads(prov.read_text()).get("config", {})
    return bool(cfg.get("numerics", {}).get("pin", True))


if __name__ == "__main__":
    sys.exit(main())

"""Numbers in the README come from committed result files, never typed by hand.

A Markdown file marks each generated table and each inline figure with an HTML comment naming its
source under `results/expected/` (invisible when rendered):

    <!-- table file=embedded/tables/main.csv; rows=vid_sme,perplexity; cols=attack,AUC,AUC 95% CI; pct=AUC -->
    | attack | AUC | AUC 95% CI |
    ...
    <!-- /table -->

    Member loss <!-- v file=embedded/target/main/memorisation.json; key=eval.member_loss; fmt=.4f -->0.0018<!-- /v -->

Table options: `rows` (values of the first column, in this order; or `top:N` by the table's order),
`where` (`col=value,...` filters), `pivot` (`index:col,columns:col,values:col`), `cols` (shown, in
order; `a>b` renames a to b), `pct` (columns shown x100 with one decimal), `fmt` (Python format of
other numbers, default `.3g`). Inline options: `key` (JSON path, dot-separated; a number indexes a
list) or `row` (`col:value`, or several `col:value` separated by commas, all of which must hold) with
`col`, `scale` (a factor applied first, e.g. `1e-6` for bytes to MB), and `fmt` (a `,` in it also
groups the thousands of whole numbers) or `pct`. `render` rewrites every block from the files; the doc
test asserts the README equals its rendering, so a README number cannot drift from the expected results.

    python -m vidsme.readme [--check] [FILE ...]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "results" / "expected"
TABLE = re.compile(r"<!-- table (?P<spec>.*?) -->\n(?P<body>.*?)<!-- /table -->", re.S)
VALUE = re.compile(r"<!-- v (?P<spec>.*?) -->(?P<body>.*?)<!-- /v -->", re.S)


class ReadmeError(ValueError):
    """A marker names a file, row, column or key that does not exist."""


def _spec(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        if part.strip():
            k, _, v = part.strip().partition("=")
            out[k.strip()] = v.strip()
    if "file" not in out:
        raise ReadmeError(f"marker without file=: {text!r}")
    return out


def _load(rel: str, source: Path) -> Any:
    path = source / rel
    if not path.is_file():
        raise ReadmeError(f"marker names {rel}, not found under {source}")
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")


def _fmt(x: Any, fmt: str, pct: bool) -> str:
    if isinstance(x, str):
        return format(x, fmt) if fmt.endswith("s") else x  # e.g. fmt=.7s: a commit id's first 7 characters
    if isinstance(x, bool) or type(x).__name__ == "bool_":
        return "yes" if x else "no"
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if pct:
        return f"{100 * float(x):.1f}"
    if isinstance(x, (int, float)) and float(x).is_integer() and "f" not in fmt:
        return f"{int(x):,}" if "," in fmt else str(int(x))
    return format(float(x), fmt)


def render_table(spec: dict[str, str], source: Path = SOURCE) -> str:
    """The Markdown table a `table` marker asks for."""
    df = _load(spec["file"], source)
    if not isinstance(df, pd.DataFrame):
        raise ReadmeError(f"{spec['file']}: a table marker needs a CSV/TSV file")
    for cond in filter(None, spec.get("where", "").split(",")):
        col, _, val = cond.partition("=")
        if col not in df.columns:
            raise ReadmeError(f"{spec['file']}: where= names no column {col!r} (columns: {list(df.columns)})")
        df = df[df[col].astype(str) == val]
    if "pivot" in spec:
        p = dict(x.split(":", 1) for x in spec["pivot"].split(","))
        df = df.pivot_table(index=p["index"], columns=p["columns"], values=p["values"], sort=False).reset_index()
        df.columns = [str(c) for c in df.columns]
    first = df.columns[0]
    rows = spec.get("rows", "")
    if rows.startswith("top:"):
        df = df.head(int(rows[4:]))
    elif rows:
        want = [r.strip() for r in rows.split(",")]
        missing = [r for r in want if r not in set(df[first].astype(str))]
        if missing:
            raise ReadmeError(f"{spec['file']}: rows {missing} not in column {first!r}")
        df = df.set_index(df[first].astype(str)).loc[want].reset_index(drop=True)
    cols = [c.strip() for c in spec["cols"].split(",")] if "cols" in spec else list(df.columns)
    shown = []
    for c in cols:
        src, _, name = c.partition(">")
        if src not in df.columns:
            raise ReadmeError(f"{spec['file']}: cols= names no column {src!r} (columns: {list(df.columns)})")
        shown.append((src, name or src))
    pct = {c.strip() for c in spec.get("pct", "").split(",") if c.strip()}
    fmt = spec.get("fmt", ".3g")
    lines = ["| " + " | ".join(n for _, n in shown) + " |", "|" + "---|" * len(shown)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[s], fmt, s in pct) for s, _ in shown) + " |")
    return "\n".join(lines) + "\n"


def render_value(spec: dict[str, str], source: Path = SOURCE) -> str:
    """The figure a `v` marker asks for."""
    doc = _load(spec["file"], source)
    if "key" in spec:
        x: Any = doc
        for part in spec["key"].split("."):
            if isinstance(x, list) and part.isdigit() and int(part) < len(x):
                x = x[int(part)]
            elif isinstance(x, dict) and part in x:
                x = x[part]
            else:
                raise ReadmeError(f"{spec['file']}: no key {spec['key']!r}")
    else:
        sel = doc
        for cond in spec["row"].split(","):  # col:value[,col:value...]
            col, _, val = cond.partition(":")
            if col not in doc.columns:
                raise ReadmeError(f"{spec['file']}: row= names no column {col!r} (columns: {list(doc.columns)})")
            sel = sel[sel[col].astype(str) == val]
        if len(sel) != 1 or spec.get("col") not in doc.columns:
            raise ReadmeError(f"{spec['file']}: row {spec['row']!r} / col {spec.get('col')!r} does not select one value")
        x = sel.iloc[0][spec["col"]]
    if "scale" in spec:
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            raise ReadmeError(f"{spec['file']}: scale= needs a number, {spec.get('key', spec.get('row'))!r} is {x!r}")
        x = x * float(spec["scale"])
    return _fmt(x, spec.get("fmt", ".3g"), "pct" in spec)


def render(text: str, source: Path = SOURCE) -> str:
    """`text` with every generated block re-rendered from the files under `source`."""
    text = TABLE.sub(lambda m: f"<!-- table {m['spec']} -->\n{render_table(_spec(m['spec']), source)}<!-- /table -->", text)
    return VALUE.sub(lambda m: f"<!-- v {m['spec']} -->{render_value(_spec(m['spec']), source)}<!-- /v -->", text)


def main(argv: list[str] | None = None, prog: str = "vidsme readme") -> int:
    """Re-render the numbers of the README and docs from results/expected/ (--check: only compare)."""
    ap = argparse.ArgumentParser(prog=prog, description="Regenerate the README's numbers from results/expected/.")
    ap.add_argument("files", nargs="*", default=[str(ROOT / "README.md")])
    ap.add_argument("--check", action="store_true", help="exit 1, listing the files, if any differs from its rendering")
    args = ap.parse_args(argv)
    stale = []
    for f in map(Path, args.files):
        old = f.read_text()
        new = render(old)
        if new != old:
            stale.append(f)
            if not args.check:
                f.write_text(new)
    if args.check and stale:
        print("out of date with results/expected/: " + ", ".join(map(str, stale)) + " (run `python -m vidsme.readme`)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command-line tasks outside the workflow: score existing dumps, print a results table.

Both reuse the workflow's own steps (``vidsme.pipeline``, ``vidsme.report``): a dump scored here
gives the per-video scores of the workflow's ``position_series`` and ``aggregate`` rules (bit for
bit under the same numerics: ``vidsme.numerics.pinned_env`` in the environment, as the workflow's
jobs have by default).

    vidsme score DUMP [DUMP ...] --qr qr.tsv --sheet samples.tsv --out scores.tsv
    vidsme table metrics.tsv [--k 0.1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vidsme.attacks import FIXED_Q, FIXED_R, K_GRID

# The workflow's defaults (config/schemas/config.schema.yaml: scoring.main_k, metrics.fprs;
# tests/test_cli.py checks that they agree).
MAIN_K = 0.1
FPRS = (0.05, 0.01, 0.001)


def score_dumps(dumps: Sequence[str | Path], qr_tsv: str | Path, sheet: str | Path, out: str | Path,
                k_grid: Sequence[float] = K_GRID, slice_name: str = "video", fixed_q: float = FIXED_Q,
                fixed_r: float = FIXED_R, num_frames: int | None = None) -> pd.DataFrame:
    """Per-video scores (one row per video, attack and K) of existing dump shards, written to ``out``.

    ``qr_tsv``: the (q, r) table of the run that made the dumps (``stats/F{F}/qr.tsv``); ``sheet``:
    a sample sheet with the videos' labels (validated as the workflow does). ``num_frames``:
    recorded in the table; default: the dumps' frame count.
    """
    from vidsme.dump import read_header
    from vidsme.pipeline import aggregate, position_series, prepare_sheet

    if not dumps:
        raise ValueError("no dump given")
    header = read_header(dumps[0])
    if num_frames is None:
        try:
            num_frames = int(header.get("frame_count", ""))
        except ValueError:
            raise ValueError(f"{dumps[0]}: frame count {header.get('frame_count')!r} is not one number; give --frames") from None
    model = {"id": header.get("model_id") or None, "revision": header.get("revision") or None}
    with tempfile.TemporaryDirectory(prefix="vidsme-score-") as tmp:
        labels = Path(tmp) / "samples.tsv"
        prepare_sheet(str(sheet), str(labels), split=None)
        series = []
        for i, dump in enumerate(dumps):
            series.append(str(Path(tmp) / f"series{i}.safetensors"))
            position_series(str(dump), str(qr_tsv), series[-1], fixed_q, fixed_r, slice_name)
        return aggregate(series, str(qr_tsv), str(labels), list(k_grid), model, num_frames, str(out))


def score_main(argv: Sequence[str] | None = None, prog: str = "vidsme score") -> int:
    """Score existing dump shards: per-video scores of every attack and K (TSV).

    Returns the exit code (0 ok, 2 bad input)."""
    from vidsme.dump import DumpError
    from vidsme.logs import logged
    from vidsme.samples import SheetError

    ap = argparse.ArgumentParser(prog=prog, description="Per-video scores of every attack from existing dump shards "
                                 "(the workflow's position_series and aggregate steps).")
    ap.add_argument("dumps", nargs="+", help="dump shards (results/{exp}/dumps/{model}/F{F}/shard*.safetensors)")
    ap.add_argument("--qr", required=True, help="(q, r) table of the same run (results/{exp}/stats/F{F}/qr.tsv)")
    ap.add_argument("--sheet", required=True, help="sample sheet with the labels (results/{exp}/samples.tsv or your own)")
    ap.add_argument("--out", required=True, help="scores TSV to write")
    ap.add_argument("--k", type=float, nargs="+", default=list(K_GRID), help="Min-K%% grid (default: %(default)s)")
    ap.add_argument("--slice", choices=("video", "answer"), default="video", help="scored positions (default: video)")
    ap.add_argument("--fixed-q", type=float, default=FIXED_Q, help="q of vid_sme_fixed (default: %(default)s)")
    ap.add_argument("--fixed-r", type=float, default=FIXED_R, help="r of vid_sme_fixed (default: %(default)s)")
    ap.add_argument("--frames", type=int, default=None, help="frame count recorded in the table (default: the dumps')")
    a = ap.parse_args(argv)
    for p in [*a.dumps, a.qr, a.sheet]:
        if not Path(p).is_file():
            print(f"{prog}: error: {p}: file not found", file=sys.stderr)
            return 2
    try:
        with logged(None):
            df = score_dumps(a.dumps, a.qr, a.sheet, a.out, a.k, a.slice, a.fixed_q, a.fixed_r, a.frames)
    except (DumpError, SheetError, ValueError, KeyError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"{a.out}: {df.video_id.nunique()} videos, {df.attack.nunique()} attacks, {len(df)} rows")
    return 0


def table_main(argv: Sequence[str] | None = None, prog: str = "vidsme table") -> int:
    """Print the main results table (Markdown) of a metrics TSV.

    Returns the exit code (0 ok, 2 bad input)."""
    from vidsme.blind import DEFAULTS as BLIND
    from vidsme.report import blind_header, coverage, main_table, markdown_table, with_blind

    ap = argparse.ArgumentParser(prog=prog, description="Print the main results table (Markdown) of a metrics TSV "
                                 "(results/{exp}/metrics/{model}/F{F}/metrics.tsv), as tables/main.md.")
    ap.add_argument("metrics", help="metrics TSV")
    ap.add_argument("--k", type=float, default=MAIN_K, help="K shown for K-dependent attacks (default: %(default)s)")
    ap.add_argument("--fprs", type=float, nargs="+", default=list(FPRS), help="FPRs of the metrics (the first two are shown)")
    ap.add_argument("--title", default="", help="bold title before the table")
    ap.add_argument("--sheet", help="with --skipped: the run's samples.tsv, for the header's 'N of M videos scored, K skipped'")
    ap.add_argument("--skipped", help="with --sheet: the run's stats/F{F}/skipped.tsv")
    ap.add_argument("--blind", help="the run's blind/metrics.tsv: the blind baseline's row and verdict line, as in the workflow's table")
    ap.add_argument("--verdict-margin", type=float, default=BLIND["verdict_margin"], help="of the verdict line (default: %(default)s)")
    a = ap.parse_args(argv)
    if bool(a.sheet) != bool(a.skipped):
        ap.error("--sheet and --skipped go together")
    try:
        metrics = pd.read_csv(a.metrics, sep="\t")
        empty = main_table(metrics, a.k, a.fprs).empty
        counts = coverage(a.sheet, a.skipped, a.metrics) if a.sheet else ""
        text = markdown_table(with_blind(metrics, a.blind), a.k, a.fprs, a.title, blind_header(a.blind, a.verdict_margin),
                              coverage=counts)
    except FileNotFoundError as e:
        print(f"{prog}: error: {e.filename or a.metrics}: file not found", file=sys.stderr)
        return 2
    except (KeyError, ValueError, IndexError, pd.errors.ParserError) as e:
        print(f"{prog}: error: {a.metrics}: not a metrics table ({type(e).__name__}: {e})", file=sys.stderr)
        return 2
    if empty:
        print(f"{prog}: error: {a.metrics}: no attack has K = {a.k:g} or a K-free score", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0

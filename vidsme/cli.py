"""``vidsme``: the package's command line, for what a user does outside the workflow.

    vidsme --version              which version runs, and from which folder (checkout)
    vidsme COMMAND --help         one command's options

COMMANDS maps each command to the ``"module:function"`` that implements it; adding a command is
one line here. The function takes the argument list (and ``prog``, the name to show in its
usage, when it has such a parameter) and returns the exit code. A command's one-line help is the
first line of that function's docstring (else of its module's), read without importing the module,
so ``vidsme --help`` stays fast.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path

COMMANDS: dict[str, str] = {
    "inspect": "vidsme.inspect:main",
    "paper-sheet": "vidsme.paper:main",
    "score": "vidsme.commands:score_main",
    "table": "vidsme.commands:table_main",
    "check": "vidsme.check:main",
    "readme": "vidsme.readme:main",
    "convert-longva": "vidsme.longva:main",
}


def summary(target: str) -> str:
    """First line of the docstring of the function behind ``target`` ("module:function"), or of its
    module's when the function has none; read from the source without importing it."""
    module, func = target.split(":", 1)
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func), None)
    doc = ((ast.get_docstring(fn) if fn else None) or ast.get_docstring(tree) or "").strip()
    return doc.splitlines()[0] if doc else ""


def resolve(target: str):
    """The function named by ``"module:function"``."""
    module, func = target.split(":", 1)
    return getattr(importlib.import_module(module), func)


def _parser() -> argparse.ArgumentParser:
    import vidsme
    from vidsme.logs import origin

    width = max(map(len, COMMANDS))
    table = "\n".join(f"  {name:<{width}}  {summary(target)}" for name, target in COMMANDS.items())
    ap = argparse.ArgumentParser(
        prog="vidsme", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"vid-sme {vidsme.__version__}: video membership inference (Vid-SME and baselines).",
        epilog=f"commands:\n{table}\n\nThe workflow itself runs with Snakemake (see the README).")
    ap.add_argument("--version", action="version", version=origin())
    ap.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    ap.add_argument("args", nargs=argparse.REMAINDER, help="the command's arguments (COMMAND --help lists them)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vidsme`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        ap = _parser()
        if not argv:
            ap.error(f"a command is required: {', '.join(COMMANDS)}")
        ap.parse_args(argv)  # --help, --version, or an error naming the known commands (exit 2)
        return 2
    name, rest = argv[0], argv[1:]
    fn = resolve(COMMANDS[name])
    kw = {"prog": f"vidsme {name}"} if "prog" in inspect.signature(fn).parameters else {}
    return int(fn(rest, **kw) or 0)


if __name__ == "__main__":
    sys.exit(main())

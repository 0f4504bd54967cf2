"""Many checkouts, one shared environment: every checkout's commands run its own code.

Two `git clone`s of this repository (with the working tree under test copied over them) differ in
one visible behaviour, the package version (`0.1.0+A`, `0.1.0+B`), which `vidsme --version`,
`vidsme-inspect --version` and every step's log print with the folder the code came from. Both
reuse the dependencies venv of the interpreter running this test (no rebuild): only their small
`.venv/` is built. They run the README's commands (`make env`, `make reproduce` on the committed
test config, `make test`) and the installed commands, alternately, then concurrently (one rebuilding
its `.venv` meanwhile); then one clone is deleted and the other must still work.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a test run must not pass on to the clones' commands: another checkout on the path, make's
# and pytest's own state.
DROP = ("PYTHONPATH", "VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in DROP and not k.startswith("PYTEST_")}


def _deps() -> Path:
    """The shared dependencies venv (tools/venv.sh) behind this interpreter: the one holding snakemake."""
    import snakemake

    root = Path(snakemake.__file__).resolve().parents[4]  # <venv>/lib/pythonX.Y/site-packages/snakemake
    if not (root / ".ready").is_file():
        pytest.skip(f"not run from an environment made by `make env` (no {root}/.ready); run `make test`")
    return root


def _site(venv: Path) -> Path:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True, env=_env())
    return Path(out.stdout.strip())


def _clone(dest: Path, tag: str) -> Path:
    """A clone of this repository at HEAD, with the working tree's files over it, version 0.1.0+tag."""
    git = ["git", "-C", str(ROOT)]
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True, env=_env())
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", head], check=True, env=_env())
    listed = subprocess.run([*git, "ls-files", "-co", "--exclude-standard", "-z"], capture_output=True, text=True, check=True).stdout
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for rel in filter(None, subprocess.run([*git, "ls-files", "-d", "-z"], capture_output=True, text=True, check=True).stdout.split("\0")):
        (dest / rel).unlink(missing_ok=True)
    init = dest / "vidsme" / "__init__.py"
    text, n = re.subn(r'__version__ = "([^"]+)"', rf'__version__ = "\1+{tag}"', init.read_text())
    assert n == 1
    init.write_text(text)
    (dest / "tests" / "test_which_checkout.py").write_text(
        "from pathlib import Path\n\nimport vidsme\n\n\n"
        "def test_this_checkout():\n"
        f"    assert vidsme.__version__.endswith('+{tag}')\n"
        "    assert Path(vidsme.__file__).resolve().parent == Path(__file__).resolve().parents[1] / 'vidsme'\n")
    return dest


def _version(clone: Path) -> str:
    version = re.search(r'__version__ = "([^"]+)"', (clone / "vidsme" / "__init__.py").read_text()).group(1)
    return f"vidsme {version} from {clone / 'vidsme'}"


def _script(deps: Path, rebuild: bool = False) -> str:
    """The README's commands and the installed commands, each printing which code ran."""
    make = f"make --no-print-directory DEPS={deps}"
    return "\n".join([
        "set -euo pipefail",
        "rm -rf .venv" if rebuild else ":",
        f"{make} env",
        'echo "VERSION: $(.venv/bin/vidsme --version)"',
        'echo "INSPECT: $(.venv/bin/vidsme-inspect --version)"',
        '.venv/bin/vidsme-inspect .test/data/v00001.mp4 --frames 4 | grep -q \'"indices": \\[0, 7, 15, 23\\]\'',
        'echo "ACTIVATED: $(source .venv/bin/activate && vidsme --version)"',
        f"{make} reproduce CONFIG=.test/config/config.yaml ARGS='--until samples --forcerun samples --quiet' >reproduce.out 2>&1",
        'echo "LOG: $(head -n1 logs/test/samples.log)"',
        f"{make} test TESTS=tests/test_which_checkout.py >test.out 2>&1",
        'echo "TEST: $(grep -Eo "[0-9]+ passed" test.out)"',
    ])


def _start(clone: Path, deps: Path, rebuild: bool = False) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", _script(deps, rebuild)], cwd=clone, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _check(proc: subprocess.Popen, clone: Path) -> None:
    out, _ = proc.communicate(timeout=900)
    detail = out[-3000:] + "".join(f"\n--- {f}\n" + (clone / f).read_text()[-3000:] for f in ("reproduce.out", "test.out")
                                   if (clone / f).is_file())
    assert proc.returncode == 0, detail
    got = dict(line.split(": ", 1) for line in out.splitlines() if re.match(r"^[A-Z]+: ", line))
    want = _version(clone)
    assert got == {"VERSION": want, "INSPECT": want, "ACTIVATED": want, "LOG": want, "TEST": "1 passed"}, detail


def _fingerprint(venv: Path) -> dict[str, bytes]:
    """Every file of a venv that decides what it runs (stamp, path files, editable finder, scripts)."""
    return {str(p.relative_to(venv)): p.read_bytes() for p in sorted(venv.rglob("*"))
            if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts}


def _package_files(site: Path) -> list[str]:
    return sorted(p.name for p in site.iterdir() if re.match(r"(vid_sme|__editable__.*vid_sme)", p.name))


@pytest.mark.slow
def test_two_clones_run_their_own_code(tmp_path: Path) -> None:
    deps = _deps()
    a, b = _clone(tmp_path / "a", "A"), _clone(tmp_path / "b", "B")
    assert _version(a) != _version(b)
    # alternately: A, B, then A again (after B's `make env`)
    _check(_start(a, deps), a)
    before = _fingerprint(a / ".venv")
    _check(_start(b, deps), b)
    assert _fingerprint(a / ".venv") == before  # B's make env touched nothing of A's
    _check(_start(a, deps), a)
    assert _package_files(_site(deps)) == []  # the shared environment holds no checkout's package
    # concurrently, B rebuilding its .venv from scratch meanwhile
    pa, pb = _start(a, deps), _start(b, deps, rebuild=True)
    _check(pa, a)
    _check(pb, b)
    assert _fingerprint(a / ".venv") == before
    # deleting one clone leaves the other working
    shutil.rmtree(b)
    _check(_start(a, deps), a)
    assert _package_files(_site(deps)) == []


@pytest.mark.slow
def test_make_env_takes_the_package_out_of_an_old_shared_environment(tmp_path: Path) -> None:
    """A shared environment into which an older Makefile installed a checkout (editable): `make env`
    elsewhere removes it, and a checkout's commands run their own code even while it is there."""
    deps = _deps()
    old = tmp_path / "old-deps"  # a stand-in for the shared venv: the real one's packages through a .pth
    subprocess.run([str(deps / "bin" / "python"), "-m", "venv", "--without-pip", str(old)], check=True, env=_env())
    (_site(old) / "zz_deps.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib', vars={'base': str(deps), 'platbase': str(deps)})!r})\n")
    (old / ".ready").touch()
    a, b = _clone(tmp_path / "a", "A"), _clone(tmp_path / "b", "B")

    def install_b_the_old_way() -> None:
        subprocess.run([str(deps / "bin" / "python"), "-m", "pip", "--python", str(old / "bin" / "python"), "install", "-q",
                        "--no-deps", "--no-build-isolation", "-e", str(b)], check=True, env=_env(), capture_output=True)
        assert _package_files(_site(old)) and (old / "bin" / "vidsme").is_file()

    install_b_the_old_way()
    out = subprocess.run(["make", "--no-print-directory", f"DEPS={old}", "env"], cwd=a, env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"Removing vid-sme from the shared environment {old}" in out.stdout
    assert _package_files(_site(old)) == [] and not (old / "bin" / "vidsme").exists()
    install_b_the_old_way()  # an old checkout installs itself again: A still runs A
    for cmd in ("vidsme", "vidsme-inspect"):
        got = subprocess.run([str(a / ".venv" / "bin" / cmd), "--version"], capture_output=True, text=True, env=_env())
        assert got.stdout.strip() == _version(a), got.stderr
    got = subprocess.run([str(a / ".venv" / "bin" / "python"), "-c", "import vidsme, torch; print(vidsme.__file__)"],
                         capture_output=True, text=True, env=_env(), cwd=tmp_path)
    assert got.stdout.strip() == str(a / "vidsme" / "__init__.py"), got.stderr

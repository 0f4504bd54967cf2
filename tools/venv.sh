#!/usr/bin/env bash
# The two virtual environments behind `make env` (README, "Two commands"):
#   DEPS  one venv per lock file, shared by every checkout on the machine: the third-party
#         packages of requirements.lock and nothing else (never this package);
#   VENV  this checkout's own small venv (.venv/): DEPS's packages through a .pth file, plus this
#         checkout installed editable, so `.venv/bin/python`, `.venv/bin/vidsme`, `.venv/bin/snakemake`
#         ... always run the code of the checkout they belong to.
# Building DEPS takes minutes and is done once, under a lock (concurrent checkouts wait for it);
# VENV takes seconds and is rebuilt when DEPS, the checkout's path or pyproject.toml changes.
# usage: tools/venv.sh PYTHON DEPS VENV     (run from the checkout's root, as the Makefile does)
set -euo pipefail
python=$1
deps=$(realpath -m "$2")
venv=$(realpath -m "$3")
root=$(pwd -P)
[[ -f "$root/pyproject.toml" && -f "$root/requirements.lock" ]] || { echo "tools/venv.sh: run it from the checkout's root" >&2; exit 2; }

site_of() { "$1" -c 'import sysconfig; print(sysconfig.get_path("purelib"))'; }

# --- DEPS: build once per lock file; drop this package if an older Makefile installed it there.
mkdir -p "$(dirname "$deps")"
exec 9>"$deps.lock"
flock 9
if [[ ! -f "$deps/.ready" ]]; then
    echo "Building the shared environment $deps (third-party packages only; once per lock file)"
    rm -rf "$deps"
    "$python" -m venv "$deps"
    "$deps/bin/python" -m pip install -q --upgrade pip==25.3
    "$deps/bin/python" -m pip install -q -r requirements.lock
    touch "$deps/.ready"
fi
if compgen -G "$(site_of "$deps/bin/python")/vid_sme-*.dist-info" >/dev/null; then
    echo "Removing vid-sme from the shared environment $deps (an older Makefile installed it there)"
    "$deps/bin/python" -m pip uninstall -q -y vid-sme
fi
exec 9>&-

# --- VENV: this checkout, editable, on top of DEPS.
exec 8>"$venv.lock"
flock 8
want="deps=$deps python=$("$deps/bin/python" -c 'import sys; print(sys.version.split()[0])') checkout=$root pyproject=$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.ready" 2>/dev/null)" != "$want" ]]; then
    rm -rf "$venv"
    "$deps/bin/python" -m venv --without-pip "$venv"
    echo "import site; site.addsitedir('$(site_of "$deps/bin/python")')" >"$(site_of "$venv/bin/python")/zz_vidsme_deps.pth"
    "$deps/bin/python" -m pip --python "$venv/bin/python" install -q --no-deps --no-build-isolation -e "$root"
    # DEPS's commands (snakemake, pytest, dvc, snakefmt, ...) again, run by this venv's Python.
    for f in "$deps"/bin/*; do
        name=$(basename "$f")
        [[ -f "$f" && ! -L "$f" && ! -e "$venv/bin/$name" && "$name" != pip* ]] || continue
        head -n1 "$f" | LC_ALL=C grep -aqxF -- "#!$deps/bin/python" || continue
        { echo "#!$venv/bin/python"; tail -n +2 "$f"; } >"$venv/bin/$name"
        chmod +x "$venv/bin/$name"
    done
    echo "$want" >"$venv/.ready"
fi

# vid-sme: two commands for a new user.
#   make reproduce   set up the pinned environment and run the embedded default end to end
#   make test        set up the same environment and run the test suite
# Environments (tools/venv.sh): DEPS, one venv per lock file shared by every checkout, holds the
# third-party packages only; VENV (.venv/ here) holds this checkout, editable, on top of DEPS.
# Every command below runs $(PY), so it runs this checkout's code, whatever other checkouts do.
SHELL := /bin/bash
PYTHON ?= python3
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-12)
DEPS ?= $(HOME)/.cache/vidsme/venv-$(LOCK_HASH)
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
CORES ?= 2
CONFIG ?= config/config.yaml
ARGS ?=
TESTS ?= tests
export PYTHONHASHSEED := 0

.PHONY: env reproduce check test test-fast lint bench share pull
EXP ?= embedded
SHARE_INPUTS ?=

env:           ## build (once) the shared dependencies, then this checkout's .venv on top of them
	@bash tools/venv.sh $(PYTHON) $(DEPS) $(VENV)

reproduce: env
	@start=$$(date +%s); \
	$(PY) -m snakemake --cores $(CORES) --configfile $(CONFIG) --printshellcmds $(ARGS) && \
	wall=$$(( $$(date +%s) - start )) && \
	echo "Done in $$wall s." && \
	{ $(PY) benchmarks/run_summary.py --configfile $(CONFIG) --wall $$wall || echo "(no run summary: $$?)"; } && \
	$(PY) -m vidsme.check --configfile $(CONFIG) --missing-ok

check: env     ## compare a finished run with results/expected/ (EXP=name or CONFIG=file; TARGET=all|ablations|controls)
	$(PY) -m vidsme.check $(if $(filter command line,$(origin EXP)),-e $(EXP),--configfile $(CONFIG)) -t $(or $(TARGET),all)

test: env
	$(PY) -m pytest -n $(CORES) -q $(TESTS)

test-fast: env
	$(PY) -m pytest -n $(CORES) -q -m "not slow" $(TESTS)

lint: env
	$(PY) tools/lint.py --configfile $(CONFIG)
	$(PY) -m snakefmt --check Snakefile rules/

bench: env
	$(PY) benchmarks/run_all.py

share: env     ## dvc add the inputs and results of EXP, commit the .dvc files, push to the DVC remote
	$(PY) -m vidsme.share add -e $(EXP) $(foreach i,$(SHARE_INPUTS),-i $(i))
	git add '*.dvc' '**/.gitignore' && git commit -m "Shared results of $(EXP)"
	$(PY) -m dvc push

pull: env      ## after git clone: fetch the shared artifacts and Snakemake's records (no model pass reruns)
	$(PY) -m dvc pull && $(PY) -m vidsme.share restore

# vid-sme: two commands for a new user.
#   make reproduce   set up the pinned environment and run the embedded default end to end
#   make test        set up the same environment and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-12)
VENV ?= $(HOME)/.cache/vidsme/venv-$(LOCK_HASH)
BIN := $(VENV)/bin
CORES ?= 2
CONFIG ?= config/config.yaml
export PYTHONHASHSEED := 0

.PHONY: env reproduce check test test-fast lint bench share pull
EXP ?= embedded
SHARE_INPUTS ?=

# One environment per lock file, reused across runs and checkouts.
$(VENV)/.ready: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==25.3
	$(BIN)/python -m pip install -q -r requirements.lock
	touch $@

env: $(VENV)/.ready
	@$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . >/dev/null

reproduce: env
	@start=$$(date +%s); \
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) --printshellcmds && \
	echo "Done in $$(( $$(date +%s) - start )) s. Tables: results/embedded/tables/  Figures: results/embedded/figures/  README of outputs: results/README.md" && \
	$(BIN)/python -m vidsme.check --configfile $(CONFIG)

check: env     ## compare a finished run with results/expected/ (EXP=name or CONFIG=file; TARGET=all|ablations|controls)
	$(BIN)/python -m vidsme.check $(if $(filter command line,$(origin EXP)),-e $(EXP),--configfile $(CONFIG)) -t $(or $(TARGET),all)

test: env
	$(BIN)/python -m pytest -n $(CORES) -q tests

test-fast: env
	$(BIN)/python -m pytest -n $(CORES) -q -m "not slow" tests

lint: env
	$(BIN)/snakemake --lint --configfile $(CONFIG)
	$(BIN)/snakefmt --check Snakefile rules/

bench: env
	$(BIN)/python benchmarks/run_all.py

share: env     ## dvc add the inputs and results of EXP, commit the .dvc files, push to the DVC remote
	$(BIN)/python -m vidsme.share add -e $(EXP) $(foreach i,$(SHARE_INPUTS),-i $(i))
	git add '*.dvc' '**/.gitignore' && git commit -m "Shared results of $(EXP)"
	$(BIN)/dvc push

pull: env      ## after git clone: fetch the shared artifacts and Snakemake's records (no model pass reruns)
	$(BIN)/dvc pull && $(BIN)/python -m vidsme.share restore

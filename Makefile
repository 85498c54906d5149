# The two commands a newcomer needs: `make demo` and `make test`.
# Both set up the environment first (scripts/setup.sh, idempotent).
SHELL := /bin/bash
export OMP_WAIT_POLICY ?= passive
CARGO ?= cargo
DEMO_DIR ?= out/demo

.PHONY: setup demo test fmt lint unit notebooks slurm pack bench quality fixtures measured-data measured-data-ci

setup:
	@bash scripts/setup.sh

# The quickstart demo: simulate the quickstart dataset, train a gridsize-2 PINN
# (quick preset), reconstruct the held-out half with the bundle and with ePIE,
# compare with the truth; figures, metrics.csv and report.md in $(DEMO_DIR).
# (The demo needs no notebook kernel, so its set-up skips that.)
demo:
	@PTYCHO_SKIP_NOTEBOOKS=1 bash scripts/setup.sh
	$(CARGO) run --release --quiet --bin ptycho -- demo --out $(DEMO_DIR)

test: setup fmt lint measured-data-ci unit notebooks slurm pack

fmt:
	$(CARGO) fmt --check

lint:
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test

# Every notebook, executed with the Rust kernel at CI sizes (users get the
# full sizes by running them in Jupyter); executed copies in target/notebooks/.
# The kernel compiles the crate unoptimised here (PTYCHO_NB_OPT=0: minutes on a
# new machine instead of a quarter of an hour; Jupyter keeps evcxr's level 2).
NB_ENV ?= PTYCHO_NB_IMAGES=256 PTYCHO_NB_EPOCHS=1 PTYCHO_NB_GROUPS=32 PTYCHO_NB_ITERATIONS=10 PTYCHO_NB_DOSES=1e3,1e5
NOTEBOOKS ?= notebooks/*.ipynb
notebooks: setup
	$(NB_ENV) .venv/bin/python scripts/run_notebooks.py $(NOTEBOOKS)

# The CI study on a real single-node Slurm started on this machine
# (scripts/slurm_ci.sh installs slurm-wlm and munge when missing).
slurm: setup
	$(CARGO) build --bin ptycho
	bash scripts/slurm_ci.sh target/debug/ptycho

# The packed binary for another machine (scripts/pack_binary.sh) runs with
# every library from its pack, as on a machine that has none of them.
pack:
	$(CARGO) build --bin ptycho
	bash scripts/pack_check.sh target/debug/ptycho

# Every benchmark in one table (ratios against references run in the same
# invocation); the JSON goes to benches/results/.
bench: setup
	$(CARGO) run --release --bin ptycho -- bench all --device cpu

# The quality suite (not part of `make test`): every arm on cases across
# objects, doses and overlap, scored against the truth; about an hour and a half on a
# 2-core CPU (QUALITY_ARGS=--quick: three cases). The table goes to
# benches/results/quality-*.{csv,json}; docs/quality.md summarises it.
QUALITY_ARGS ?=
quality: setup
	$(CARGO) run --release --bin ptycho -- bench quality $(QUALITY_ARGS)

# Two measured APS scans from tike 0.26.0's test data (PyPI sdist, sha256
# pinned) in our format: data/measured/siemens_star.npz and cnm247.npz
# (scripts/fetch_measured_data.sh; nothing to do when both exist).
measured-data: setup
	$(CARGO) build --release --bin ptycho
	bash scripts/fetch_measured_data.sh

# The same for `make test` (its tests and notebook 05 read the scans), imported
# by the debug build the tests build anyway.
measured-data-ci: setup
	@if [[ ! -f data/measured/siemens_star.npz || ! -f data/measured/cnm247.npz ]]; then \
		$(CARGO) build --quiet --bin ptycho && PTYCHO_BIN=target/debug/ptycho bash scripts/fetch_measured_data.sh; \
	else bash scripts/fetch_measured_data.sh; fi

# Regenerate the small test fixtures (numpy/scipy/h5py references).
fixtures: setup
	@for s in tests/fixtures/*/make_*.py; do echo "$$s"; .venv/bin/python "$$s"; done

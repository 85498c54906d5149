# The two commands a newcomer needs: `make demo` and `make test`.
# Both set up the environment first (scripts/setup.sh, idempotent).
SHELL := /bin/bash
export OMP_WAIT_POLICY ?= passive
CARGO ?= cargo
DEMO_DIR ?= out/demo

.PHONY: setup demo test fmt lint unit notebooks slurm pack bench quality fixtures measured-data measured-data-ci ptychopinn-env ptychopinn-fixtures ptychopinn-check

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

# PtychoPINN interop (optional, not part of `make test`; docs/ptychopinn.md).
# `ptycho bundle import-ptychopinn` needs none of this; exporting and the
# fixture generator run PtychoPINN's own code: TensorFlow 2.19 on CPU in
# .venv-ptychopinn, and a PtychoPINN source tree of yours in PTYCHOPINN_SRC
# (a checkout of github.com/hoidn/PtychoPINN, checked at 712c23f), put on
# PYTHONPATH as it is.
PTYCHOPINN_PY := .venv-ptychopinn/bin/python
ptychopinn-env:
	@if [[ ! -x $(PTYCHOPINN_PY) ]]; then python3 -m venv .venv-ptychopinn; fi
	$(PTYCHOPINN_PY) -m pip install --quiet -r scripts/ptychopinn-requirements.txt
	@if [[ -z "$(PTYCHOPINN_SRC)" || ! -f "$(PTYCHOPINN_SRC)/ptycho/model.py" ]]; then \
		echo "set PTYCHOPINN_SRC to a PtychoPINN source tree (its ptycho/ package)"; exit 1; fi
	PYTHONPATH=$(PTYCHOPINN_SRC) TF_CPP_MIN_LOG_LEVEL=3 $(PTYCHOPINN_PY) -c "import ptycho.model_manager, ptycho.workflows.components; print('PtychoPINN imports')"

# The PtychoPINN fixtures of tests/ptychopinn_import.rs: PtychoPINN trains,
# saves and predicts (tests/fixtures/ptychopinn/run_ptychopinn.py), then our
# import of gridsize 2 goes back through PtychoPINN's saver (exported_gs2).
PPINN_WORK := out/ptychopinn-fixtures
ptychopinn-fixtures: ptychopinn-env
	$(CARGO) build --release --bin ptycho
	mkdir -p $(PPINN_WORK)
	target/release/ptycho simulate --out $(PPINN_WORK)/train64.npz --object siemens-star --probe disk \
		--size-px 64 --object-size-px 160 --scan raster --spacing-px 8 --dose 1e6 --seed 11 --device cpu
	for g in 1 2; do PYTHONPATH=$(PTYCHOPINN_SRC) $(PTYCHOPINN_PY) tests/fixtures/ptychopinn/run_ptychopinn.py \
		$(PPINN_WORK)/train64.npz tests/fixtures/ptychopinn $$g; done
	target/release/ptycho bundle import-ptychopinn tests/fixtures/ptychopinn/gs2/wts.h5.zip \
		--probe $(PPINN_WORK)/train64.npz --out $(PPINN_WORK)/ours_gs2.wts.h5.zip
	PTYCHOPINN_SRC=$(PTYCHOPINN_SRC) target/release/ptycho bundle export-ptychopinn $(PPINN_WORK)/ours_gs2.wts.h5.zip \
		--out tests/fixtures/ptychopinn/exported_gs2/wts.h5.zip

# Export round trips through PtychoPINN (import → export → load_inference_bundle
# → import), gridsize 1 and 2, with the figures the export prints.
ptychopinn-check: ptychopinn-env
	$(CARGO) build --release --bin ptycho
	mkdir -p $(PPINN_WORK)
	$(CARGO) run --release --quiet --bin ptycho -- simulate --out $(PPINN_WORK)/probe64.npz --size-px 64 \
		--object-size-px 128 --spacing-px 16 --seed 3 --device cpu > /dev/null
	for g in 1 2; do \
		target/release/ptycho bundle import-ptychopinn tests/fixtures/ptychopinn/gs$$g/wts.h5.zip \
			--probe $(PPINN_WORK)/probe64.npz --out $(PPINN_WORK)/check_gs$$g.wts.h5.zip && \
		PTYCHOPINN_SRC=$(PTYCHOPINN_SRC) target/release/ptycho bundle export-ptychopinn \
			$(PPINN_WORK)/check_gs$$g.wts.h5.zip --out $(PPINN_WORK)/check_gs$$g/wts.h5.zip || exit 1; done

# The two commands a newcomer needs: `make demo` and `make test`.
# Both set up the environment first (scripts/setup.sh, idempotent).
SHELL := /bin/bash
export OMP_WAIT_POLICY ?= passive
CARGO ?= cargo
DEMO_DIR ?= out/demo

.PHONY: setup demo test fmt lint unit notebooks bench fixtures

setup:
	@bash scripts/setup.sh

# Until reconstruction and figures land, the demo simulates a dataset, splits
# it, trains a gridsize-2 PINN (quick preset), saves and inspects its bundle,
# and exports a Ptychodus product.
demo: setup
	@mkdir -p $(DEMO_DIR)
	$(CARGO) run --quiet --bin ptycho -- simulate --out $(DEMO_DIR)/sim.npz --object siemens-star --scan raster --dose 1e5 --seed 1
	$(CARGO) run --quiet --bin ptycho -- dataset split --input $(DEMO_DIR)/sim.npz --train $(DEMO_DIR)/train.npz --test $(DEMO_DIR)/test.npz
	$(CARGO) run --quiet --bin ptycho -- dataset inspect $(DEMO_DIR)/train.npz
	$(CARGO) run --quiet --bin ptycho -- train --train $(DEMO_DIR)/train.npz --test $(DEMO_DIR)/test.npz --gridsize 2 --preset quick --out $(DEMO_DIR)/pinn_gs2
	$(CARGO) run --quiet --bin ptycho -- bundle inspect $(DEMO_DIR)/pinn_gs2/wts.h5.zip
	$(CARGO) run --quiet --bin ptycho -- export product --data $(DEMO_DIR)/test.npz --out $(DEMO_DIR)/test_product.h5

test: setup fmt lint unit notebooks

fmt:
	$(CARGO) fmt --check

lint:
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test

# Every notebook, executed with the Rust kernel at CI sizes (users get the
# full sizes by running them in Jupyter); executed copies in target/notebooks/.
NB_ENV ?= PTYCHO_NB_IMAGES=256 PTYCHO_NB_EPOCHS=1 PTYCHO_NB_GROUPS=32 PTYCHO_NB_ITERATIONS=10 PTYCHO_NB_DOSES=1e3,1e5
notebooks: setup
	$(NB_ENV) .venv/bin/python scripts/run_notebooks.py

bench: setup
	$(CARGO) run --release --bin ptycho -- bench simulate
	$(CARGO) run --release --bin ptycho -- bench group
	$(CARGO) run --release --bin ptycho -- bench train
	$(CARGO) run --release --bin ptycho -- bench infer
	$(CARGO) run --release --bin ptycho -- bench stitch

# Regenerate the small test fixtures (numpy/scipy/h5py references).
fixtures: setup
	@for s in tests/fixtures/*/make_*.py; do echo "$$s"; .venv/bin/python "$$s"; done

#!/usr/bin/env bash
# One-command environment for ptycho-workbench. Idempotent: a second run with
# everything present takes well under a second.
#
#   - libhdf5-dev (Debian) when the HDF5 headers are missing
#   - .venv with torch==2.11.0 (libtorch for tch 0.24 + Python torch for
#     interop tests), numpy, scipy, scikit-image, h5py, safetensors
#   - .venv/libtorch -> the torch package folder (LIBTORCH in .cargo/config.toml)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# --- Rust toolchain -------------------------------------------------------------
if ! command -v cargo >/dev/null; then
    say "cargo not found: install Rust (https://rustup.rs) and rerun"
    exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    say "adding rustfmt and clippy"
    rustup component add rustfmt clippy
fi

# --- HDF5 -------------------------------------------------------------------
if ! [ -f /usr/include/hdf5/serial/hdf5.h ] && ! [ -f /usr/include/hdf5.h ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing libhdf5-dev"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libhdf5-dev pkg-config >/dev/null
    else
        say "HDF5 headers not found. Install them first, e.g.:"
        say "    sudo apt-get install libhdf5-dev pkg-config"
        exit 1
    fi
fi

# --- Python venv ---------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if ! [ -x .venv/bin/python ]; then
    say "creating .venv"
    "$PYTHON" -m venv .venv
fi
want=$(sha256sum scripts/requirements.txt | cut -d' ' -f1)
have=$(cat .venv/.requirements.sha256 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    # torch's wheel and the CUDA libraries it depends on fill about 5 GiB of
    # .venv, and a first build about 4 GiB of target/: before the first
    # install, refuse early, with the figures, rather than let pip stop
    # half-way with "No space left"
    need_gib=${PTYCHO_SETUP_NEED_GIB:-10}
    free_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
    if ! ls -d .venv/lib/python3*/site-packages/torch >/dev/null 2>&1 \
        && [ -n "$free_kib" ] && [ "$free_kib" -lt $((need_gib * 1024 * 1024)) ]; then
        say "only $((free_kib / 1024 / 1024)) GiB free on $(df -P . | awk 'NR == 2 { print $6 }'):"
        say "    .venv (torch with its CUDA libraries) takes about 5 GiB and a first build about 4 GiB;"
        say "    free at least ${need_gib} GiB (or set PTYCHO_SETUP_NEED_GIB) and rerun"
        exit 1
    fi
    say "installing Python packages (torch is a large download the first time)"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/requirements.txt
    echo "$want" > .venv/.requirements.sha256
fi

# --- libtorch at a fixed path -----------------------------------------------------
torch_dir=$(ls -d .venv/lib/python3*/site-packages/torch 2>/dev/null | head -n1)
if [ -z "$torch_dir" ]; then
    say "torch not found in .venv; delete .venv/.requirements.sha256 and rerun"
    exit 1
fi
target="$(cd "$torch_dir" && pwd)"
if [ "$(readlink .venv/libtorch 2>/dev/null)" != "$target" ]; then
    ln -sfn "$target" .venv/libtorch
    say "LIBTORCH -> $target"
fi

# --- Rust Jupyter kernel (evcxr) for the notebooks --------------------------------
# `cargo install` compiles it once; skipped when present. At optimisation
# level 1 (not cargo's release default, 3) the build took 5.3 minutes on a new
# 2-core machine instead of about 12, and the four notebooks 301 s instead of 268 (most of
# their time is compiling the cells); unoptimised, the kernel's own analysis
# made a notebook five times slower. The kernel spec goes into .venv/share/jupyter with
# LIBTORCH in its environment, so the notebooks' `:dep ptycho_workbench = { path = "kernel-lib", … }`
# builds against our libtorch.
if [ "${PTYCHO_SKIP_NOTEBOOKS:-0}" != 1 ]; then
    # cargo install puts it in $CARGO_HOME/bin, which need not be on PATH
    cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
    if ! command -v evcxr_jupyter >/dev/null && ! [ -x "$cargo_bin/evcxr_jupyter" ]; then
        say "installing evcxr_jupyter (the Rust kernel; compiles once)"
        CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install --locked --quiet evcxr_jupyter
    fi
    evcxr=$(command -v evcxr_jupyter || echo "$cargo_bin/evcxr_jupyter")
    # A faster linker: evcxr links every cell with mold when it is on PATH
    # (about 0.2 s less per cell here, docs/notebooks.md). Optional.
    if ! command -v mold >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing mold (the notebook kernel links each cell with it)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mold >/dev/null 2>&1 \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mold >/dev/null; } \
            || say "mold not installed: the cells link with the system linker"
    fi
    spec=.venv/share/jupyter/kernels/rust/kernel.json
    if ! [ -f "$spec" ] || ! grep -q evcxr_kernel.sh "$spec" || ! [ -f "$(dirname "$spec")/version.txt" ]; then
        say "registering the rust kernel in .venv/share/jupyter"
        # --install writes the spec and its version stamp (without the stamp the
        # kernel rewrites its spec at start); then the kernel is started through
        # scripts/evcxr_kernel.sh (a persistent build folder, cells unoptimised,
        # dependencies optimised) with LIBTORCH in its environment
        JUPYTER_PATH="$PWD/.venv/share/jupyter" "$evcxr" --install >/dev/null
        .venv/bin/python - "$spec" "$PWD/.venv/libtorch" "$PWD/scripts/evcxr_kernel.sh" "$evcxr" <<'PY'
import json, sys
path, libtorch, launcher, evcxr = sys.argv[1:5]
spec = json.load(open(path))
spec["argv"] = ["bash", launcher] + spec["argv"][1:]
spec["env"] = {"LIBTORCH": libtorch, "LIBTORCH_CXX11_ABI": "1", "OMP_WAIT_POLICY": "passive",
               "LD_LIBRARY_PATH": libtorch + "/lib", "PTYCHO_EVCXR_JUPYTER": evcxr}
json.dump(spec, open(path, "w"), indent=2)
PY
    fi
fi

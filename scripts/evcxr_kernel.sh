#!/usr/bin/env bash
# The notebooks' Rust kernel as scripts/setup.sh registers it: evcxr_jupyter
# with a persistent build folder, so that a returning user's
# `:dep ptycho_workbench = { path = "kernel-lib", … }` reuses the crate compiled last time
# instead of rebuilding it in a fresh temporary folder.
#
# The cells compile unoptimised (`:opt 0` in the kernel's init file, quick to
# compile) while every dependency, our crate included, is optimised (the
# cargo config written below, beside the build folders): the library runs at full speed, each cell
# compiles in a fraction of the time. docs/notebooks.md has the figures.
#
# One build folder per running kernel: each kernel holds a slot's lock for
# its lifetime (the descriptor survives the exec), so two notebooks open at
# once never write into one folder; the second gets the next slot (slow the
# first time, warm afterwards). With every slot taken, evcxr's own fresh
# temporary folder. The evcxr_jupyter to run: $PTYCHO_EVCXR_JUPYTER; the
# folders' parent: $PTYCHO_EVCXR_KERNEL_DIR (default target/evcxr-kernel).
#
# A caller that sets EVCXR_TMPDIR or EVCXR_CONFIG_DIR itself
# (scripts/run_notebooks.py: CI compiles everything unoptimised, for a quick
# first build) keeps its own.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
kernel=${PTYCHO_EVCXR_JUPYTER:-evcxr_jupyter}
base=${PTYCHO_EVCXR_KERNEL_DIR:-$root/target/evcxr-kernel}
if [ -z "${EVCXR_CONFIG_DIR:-}" ]; then
    export EVCXR_CONFIG_DIR="$base/config"
    mkdir -p "$EVCXR_CONFIG_DIR"
    printf ':opt 0\n' > "$EVCXR_CONFIG_DIR/init.evcxr"
fi
if [ -n "${EVCXR_TMPDIR:-}" ]; then
    exec "$kernel" "$@"
fi
# cargo reads the config of every folder above the build folder; evcxr
# writes its own into the build folder itself, so ours sits one level up
mkdir -p "$base/.cargo"
printf '# written by scripts/evcxr_kernel.sh\n[profile.dev.package."*"]\nopt-level = 2\n' \
    > "$base/.cargo/config.toml"
for slot in 0 1 2 3; do
    dir="$base/$slot"
    mkdir -p "$dir"
    exec {lock}>"$dir.lock"
    if flock -n "$lock"; then
        export EVCXR_TMPDIR="$dir"
        exec "$kernel" "$@"
    fi
    exec {lock}>&-
done
exec "$kernel" "$@"

#!/usr/bin/env bash
# Operators per training step, ours against the plain-PyTorch reference:
# what a step costs the host on a GPU at small batches, where it is bound by
# launching kernels rather than by running them. Counted on the CPU with a
# libtorch callback (benches/tools/op_count.cpp, preloaded), so it needs no
# GPU; cuDNN runs fewer operators inside a convolution than oneDNN does,
# the same on both sides.
#
#   scripts/op_count.sh [PTYCHO_BINARY] [PYTHON]
#
# For each gridsize, two runs of 2 and 6 steps (batch 2) on each side; the
# per-step figures are their difference / 4, so set-up and warm-up drop
# out. "Operators" counts every dispatch, nested ones too (each costs the
# host time); "kernel operators" the innermost ones that compute, leaving out
# allocations, views and metadata: about the kernels a GPU would launch. The reference runs Adam's multi-tensor implementation (`foreach`,
# PyTorch's default on CUDA), each multi-tensor operator counted once.
# Needs g++ and libtorch's headers (.venv/libtorch/include, scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/ptycho}
PY=${2:-.venv/bin/python}
LIBTORCH=$(readlink -f .venv/libtorch)
OUT=target/op_count
mkdir -p "$OUT"
SO=$OUT/op_count.so
if ! [ "$SO" -nt benches/tools/op_count.cpp ]; then
    g++ -O2 -std=c++17 -shared -fPIC -I"$LIBTORCH/include" benches/tools/op_count.cpp \
        -L"$LIBTORCH/lib" -ltorch_cpu -lc10 -Wl,-rpath,"$LIBTORCH/lib" -o "$SO"
fi
SO=$(readlink -f "$SO")
RUNS=$(mktemp -d "${TMPDIR:-/tmp}/op_count.XXXXXX")
trap 'rm -rf "$RUNS"' EXIT

for g in 1 2; do
    for s in 2 6; do
        # ours: the bench's own process (its reference child writes a file too; unused)
        LD_PRELOAD=$SO OP_COUNT_OUT=$RUNS/ours-g$g-s$s "$BIN" bench train --device cpu --threads 2 \
            --batch-size 2 --steps $s --rounds 1 --gridsize $g >/dev/null &
        pid=$!
        wait $pid
        mv "$RUNS/ours-g$g-s$s.$pid" "$RUNS/ours-g$g-s$s"
        LD_PRELOAD=$SO OP_COUNT_OUT=$RUNS/ref-g$g-s$s "$PY" benches/reference_pinn.py --gridsize $g \
            --batch 2 --steps $s --warmup 2 --threads 2 --foreach >/dev/null &
        pid=$!
        wait $pid
        mv "$RUNS/ref-g$g-s$s.$pid" "$RUNS/ref-g$g-s$s"
    done
done

"$PY" - "$RUNS" <<'EOF'
import pathlib, sys
runs = pathlib.Path(sys.argv[1])

def load(name):
    rows = {}
    for line in (runs / name).read_text().splitlines():
        scope, op, calls, leaves = line.split("\t")
        rows[(scope, op)] = (int(calls), int(leaves))
    return rows

# leaves that run no kernel: allocations, views, metadata, and the records
# of backward nodes (their work is counted as the operators inside them)
NO_KERNEL = {
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::resize_", "aten::as_strided",
    "aten::as_strided_", "aten::view", "aten::_reshape_alias", "aten::alias", "aten::detach", "detach",
    "aten::detach_", "detach_", "aten::result_type", "aten::view_as_real", "aten::view_as_complex",
    "aten::real", "aten::imag", "aten::_unsafe_view", "aten::lift_fresh", "aten::unsqueeze",
    "aten::squeeze", "aten::select", "aten::slice", "aten::narrow", "aten::permute", "aten::expand",
    "aten::t", "aten::transpose", "aten::set_", "aten::to", "aten::contiguous", "aten::reshape",
}

def per_step(side, g):
    a, b = load(f"{side}-g{g}-s2"), load(f"{side}-g{g}-s6")
    d = {k: tuple((y - x) / 4 for x, y in zip(a.get(k, (0, 0)), b.get(k, (0, 0)))) for k in set(a) | set(b)}
    ops = sum(v[0] for k, v in d.items() if k[0] == "op")
    kernels = sum(v[1] for k, v in d.items()
                  if k[0] == "op" and k[1] not in NO_KERNEL and not k[1].startswith("autograd::"))
    nodes = sum(v[0] for k, v in d.items() if k[0] == "node")
    return ops, kernels, nodes

print(f"{'per training step (CPU, batch 2)':<36} {'ours':>8} {'reference':>10} {'ratio':>7}")
for g in (1, 2):
    ours, ref = per_step("ours", g), per_step("ref", g)
    for i, what in enumerate(["operators", "kernel operators", "backward nodes"]):
        print(f"{f'gs{g} {what}':<36} {ours[i]:>8.0f} {ref[i]:>10.0f} {ours[i] / ref[i]:>6.2f}x")
EOF

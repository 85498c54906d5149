#!/usr/bin/env bash
# Packs a release `ptycho` to run on another Linux machine that has PyTorch
# (the same version the binary was built against) but not this machine's
# other shared libraries, such as libhdf5 (e.g. a GPU machine with no Rust
# toolchain):
#
#   scripts/pack_binary.sh OUT_DIR [BINARY]
#
# OUT_DIR/bin/ptycho  the binary, stripped
# OUT_DIR/lib/        the system libraries it links (libhdf5 and what that
#                     needs), except glibc's own and libtorch's, which the
#                     other machine's torch provides
# OUT_DIR/ptycho      the launcher: it makes the libraries the other machine
#                     lacks (by `ldconfig -p`) visible, and only those, then
#                     runs the binary. Put the machine's torch library folder
#                     in LD_LIBRARY_PATH first (scripts/gpu_check.sh does).
#
# BINARY defaults to target/release/ptycho (`cargo build --release`).
set -euo pipefail
OUT=${1:?usage: pack_binary.sh OUT_DIR [BINARY]}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${2:-$HERE/target/release/ptycho}
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release --bin ptycho)" >&2; exit 2; }

rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp/bin" "$OUT.tmp/lib"
strip -o "$OUT.tmp/bin/ptycho" "$BIN"
# system libraries only (/lib, /usr/lib): libtorch and CUDA's come from the
# other machine's torch; glibc and the compiler's runtime are there already
ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\/(usr\/)?lib/ {print $1, $3}' | while read -r name path; do
    case $name in
        libc.so.*|libm.so.*|libdl.so.*|librt.so.*|libpthread.so.*|libutil.so.*|libresolv.so.*|ld-linux*|libgcc_s.so.*|libstdc++.so.*) ;;
        *) cp -L "$path" "$OUT.tmp/lib/$name" ;;
    esac
done
cat >"$OUT.tmp/ptycho" <<'LAUNCHER'
#!/usr/bin/env bash
# Runs the packed ptycho with the packed libraries this machine lacks
# (scripts/pack_binary.sh).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
links=${TMPDIR:-/tmp}/ptycho-libs-$(id -u)-$(printf %s "$here" | cksum | cut -d' ' -f1)
if [ ! -d "$links" ]; then
    tmp=$(mktemp -d "$links.XXXXXX")
    known=$(ldconfig -p 2>/dev/null | awk 'NR > 1 {print $1}')
    for f in "$here"/lib/*; do
        [ -e "$f" ] || continue
        name=$(basename "$f")
        grep -qxF "$name" <<<"$known" || ln -s "$f" "$tmp/$name"
    done
    # another launcher may have made it meanwhile: keep theirs
    mv -T "$tmp" "$links" 2>/dev/null || rm -rf "$tmp"
fi
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$links"
exec "$here/bin/ptycho" "$@"
LAUNCHER
chmod +x "$OUT.tmp/ptycho"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
echo "packed $(du -sh "$OUT" | cut -f1) in $OUT: $(ls "$OUT/lib" | wc -l) libraries"

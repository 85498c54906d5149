#!/usr/bin/env bash
# Checks scripts/pack_binary.sh on this machine: packs BINARY, then runs the
# packed launcher as on a machine that has none of the packed libraries (a
# stand-in `ldconfig` that lists nothing), so every one of them must come
# from the pack: the binary must start, and libhdf5 must resolve there.
#
#   scripts/pack_check.sh [BINARY]   (default: target/debug/ptycho)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$HERE/target/debug/ptycho}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$HERE/scripts/pack_binary.sh" "$WORK/pack" "$BIN"
mkdir -p "$WORK/fake-bin"
printf '#!/bin/sh\necho "0 libs found in cache"\n' >"$WORK/fake-bin/ldconfig"
chmod +x "$WORK/fake-bin/ldconfig"
export TMPDIR=$WORK   # the launcher's links go here, removed with it
version=$(PATH="$WORK/fake-bin:$PATH" "$WORK/pack/ptycho" --version)
links=$(ls -d "$WORK"/ptycho-libs-*)
hdf5=$(LD_LIBRARY_PATH="$links" ldd "$WORK/pack/bin/ptycho" | awk '/libhdf5/ {print $3}')
case $hdf5 in
    "$links"/*) ;;
    *) echo "pack_check: libhdf5 resolved to '$hdf5', not to the pack" >&2; exit 1 ;;
esac
[ "$(ls "$links" | wc -l)" -eq "$(ls "$WORK/pack/lib" | wc -l)" ] || {
    echo "pack_check: not every packed library was linked" >&2; exit 1; }
echo "pack_check: ok ($version; $(ls "$WORK/pack/lib" | wc -l) libraries from the pack, libhdf5 among them)"

#!/usr/bin/env bash
# Two measured APS ptychography scans from tike 0.26.0's test data, in our
# dataset format (`make measured-data`):
#
#   data/measured/siemens_star.npz  516 patterns of 128×128, one probe mode
#   data/measured/cnm247.npz        481 patterns of 128×128, three probe modes,
#                                   true positions (tike's position-error-247)
#
# Idempotent: nothing is done when both files exist. Otherwise the pinned
# sdist tike-0.26.0.tar.gz is downloaded from PyPI with pip (hash-checking
# mode: pip refuses a file with another sha256 before building anything)
# into data/measured/cache/ (kept and reused when its sha256 matches),
# checked again here, the two members are extracted (tar), converted to
# raw NPZ in tike's layout by scripts/tike_to_raw.py (which checks each
# member's sha256 before it decompresses or unpickles it), then imported
# by `ptycho import tike` (docs/formats.md).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=data/measured
CACHE=$OUT/cache
SDIST=tike-0.26.0.tar.gz
SDIST_SHA256=e6a89bfb8e62ff77e01ca2cef4384898b1208f541652a5449dc0c61781006a19
SIEMENS=tike-0.26.0/tests/data/siemens-star-small.npz.bz2
CNM247=tike-0.26.0/tests/data/position-error-247.pickle.bz2
PY=.venv/bin/python
# the ptycho binary that imports (CI passes its debug build)
BIN=${PTYCHO_BIN:-target/release/ptycho}

say() { printf 'fetch_measured_data: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f $OUT/siemens_star.npz && -f $OUT/cnm247.npz ]]; then
    say "up to date ($OUT/siemens_star.npz, $OUT/cnm247.npz)"
    exit 0
fi
[[ -x $PY ]] || die "$PY is missing: run scripts/setup.sh"
mkdir -p "$CACHE"

if [[ -f $CACHE/$SDIST && $(sha "$CACHE/$SDIST") != "$SDIST_SHA256" ]]; then
    say "cached $CACHE/$SDIST has another sha256: downloading it again"
    rm -f "$CACHE/$SDIST"
fi
if [[ ! -f $CACHE/$SDIST ]]; then
    say "downloading $SDIST (26 MB) from PyPI"
    req=$(mktemp)
    trap 'rm -f "$req"' EXIT
    echo "tike==0.26.0 --hash=sha256:$SDIST_SHA256" >"$req"
    .venv/bin/pip download --quiet --no-deps --no-binary :all: --require-hashes -r "$req" -d "$CACHE" ||
        die "pip could not download $SDIST with sha256 $SDIST_SHA256"
    rm -f "$req"
    trap - EXIT
fi
got=$(sha "$CACHE/$SDIST")
[[ $got == "$SDIST_SHA256" ]] || die "$CACHE/$SDIST: sha256 $got, expected $SDIST_SHA256"

WORK=$(mktemp -d "$CACHE/work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
tar -xzf "$CACHE/$SDIST" -C "$WORK" "$SIEMENS" "$CNM247" || die "could not extract the two members from $SDIST"

if [[ ! -x $BIN ]]; then
    [[ $BIN == target/release/ptycho ]] || die "$BIN is missing"
    say "building $BIN"
    cargo build --release --quiet --bin ptycho
fi

convert() { # KIND MEMBER NAME
    "$PY" scripts/tike_to_raw.py "$1" "$WORK/$2" "$WORK/$3_raw.npz"
    "$BIN" import tike "$WORK/$3_raw.npz" --out "$OUT/$3.npz"
}
convert siemens-star "$SIEMENS" siemens_star
convert position-error-247 "$CNM247" cnm247

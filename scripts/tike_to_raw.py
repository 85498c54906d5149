#!/usr/bin/env python3
"""Turns one of tike 0.26.0's measured test scans into a plain raw NPZ in
tike's layout, which `ptycho import tike` converts into our dataset format.

    .venv/bin/python scripts/tike_to_raw.py siemens-star SRC.npz.bz2 OUT.npz
    .venv/bin/python scripts/tike_to_raw.py position-error-247 SRC.pickle.bz2 OUT.npz

SRC is the bz2 member extracted from the sha256-checked sdist
(scripts/fetch_measured_data.sh); its own sha256 is pinned here too, and
nothing else is ever decompressed or unpickled. The pickle is read by an
unpickler that resolves only the three numpy globals it references
(`numpy.core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`,
found with `pickletools.genops`) and the result must be a list of four
arrays of the expected shapes and dtypes.

OUT holds numpy arrays only (`np.load(OUT)` needs no pickle):
`data` [n, N, N] counts, `scan` [n, 2] (v, h) top-left corners,
`scan_truth` [n, 2] (position-error-247 only), `probe` [K, N, N] complex,
`source` (0-d string naming tike 0.26.0 and the member).
"""
import bz2
import hashlib
import io
import os
import pickle
import sys

import numpy as np

SDIST = "tike-0.26.0.tar.gz"
SDIST_SHA256 = "e6a89bfb8e62ff77e01ca2cef4384898b1208f541652a5449dc0c61781006a19"

# member path in the sdist, its sha256, and the arrays it must hold
KINDS = {
    "siemens-star": {
        "member": "tike-0.26.0/tests/data/siemens-star-small.npz.bz2",
        "sha256": "dbce7715c1d4a7c28a48f684dacc7d343fbc5d06fe993d6ea31714ffb5c68d3d",
    },
    "position-error-247": {
        "member": "tike-0.26.0/tests/data/position-error-247.pickle.bz2",
        "sha256": "e3f8b607de5e7c712eb50744a0e03f814f9f3aec52aa5f0295b9537d561c84b9",
    },
}


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as r  # numpy ≥ 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct as r
    return r


# the only globals the pickle may name (pickletools: STACK_GLOBAL ×3)
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class NumpyArraysOnly(pickle.Unpickler):
    """Resolves only the globals needed to rebuild plain numpy arrays."""

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def fail(msg):
    sys.exit(f"tike_to_raw: {msg}")


def expect(name, a, shape, dtype):
    if type(a) is not np.ndarray:
        fail(f"`{name}`: expected a numpy array, got {type(a).__name__}")
    if a.shape != shape or a.dtype != np.dtype(dtype):
        fail(f"`{name}`: expected {np.dtype(dtype)} {shape}, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a)


def read_member(kind, src):
    raw = open(src, "rb").read()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != KINDS[kind]["sha256"]:
        fail(f"{src}: sha256 {digest}, expected {KINDS[kind]['sha256']} ({KINDS[kind]['member']})")
    return bz2.decompress(raw)


def siemens_star(payload):
    with np.load(io.BytesIO(payload), allow_pickle=False) as d:
        if sorted(d.files) != ["data", "probe", "scan"]:
            fail(f"siemens-star: expected keys data, probe, scan, got {sorted(d.files)}")
        data = expect("data", d["data"], (1, 516, 128, 128), "float32")[0]
        scan = expect("scan", d["scan"], (1, 516, 2), "float32")[0]
        probe = expect("probe", d["probe"], (1, 1, 1, 1, 128, 128), "complex64")[0, 0, 0]
    return {"data": data, "scan": scan, "probe": probe}


def position_error_247(payload):
    obj = NumpyArraysOnly(io.BytesIO(payload)).load()
    if type(obj) is not list or len(obj) != 4:
        fail(f"position-error-247: expected a list of 4 arrays, got {type(obj).__name__}")
    data = expect("data", obj[0], (481, 128, 128), "uint16")
    scan = expect("scan", obj[1], (481, 2), "float32")
    truth = expect("scan_truth", obj[2], (481, 2), "float32")
    probe = expect("probe", obj[3], (1, 1, 3, 128, 128), "complex128")[0, 0]
    return {"data": data, "scan": scan, "scan_truth": truth, "probe": probe}


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in KINDS:
        fail(f"usage: tike_to_raw.py {{{','.join(KINDS)}}} SRC OUT.npz")
    kind, src, out = sys.argv[1:]
    payload = read_member(kind, src)
    arrays = siemens_star(payload) if kind == "siemens-star" else position_error_247(payload)
    member = KINDS[kind]["member"]
    arrays["source"] = np.array(f"tike 0.26.0 ({SDIST} from PyPI, sha256 {SDIST_SHA256}): {member}")
    tmp = f"{out}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    shapes = ", ".join(f"{k} {v.dtype} {list(v.shape)}" for k, v in arrays.items() if k != "source")
    print(f"wrote {out}: {shapes}")


if __name__ == "__main__":
    main()

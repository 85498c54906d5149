#!/usr/bin/env python3
"""Writes exports.map: every C function of torch-sys's wrapper (the `at*`
functions and `get_and_reset_last_err` its extern blocks declare), named one
by one. The notebook library exports them besides the Rust symbols, so a
cell that calls tch directly finds them when it is loaded. (A glob such as
`at*` in the version script makes mold take over 20 GB on this library;
GNU ld refuses a second anonymous version script altogether; mold and lld,
the linkers the kernel uses, merge this list with rustc's.)

    notebooks/kernel-lib/make_exports.py           # rewrite exports.map
    notebooks/kernel-lib/make_exports.py --check   # exit 1 if it is stale

torch-sys's source: the version Cargo.lock pins, in cargo's registry."""
import os
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def torch_sys_src():
    """The torch-sys version Cargo.lock pins, and its source in cargo's registry."""
    lock = (ROOT / "Cargo.lock").read_text()
    versions = re.findall(r'name = "torch-sys"\nversion = "([^"]+)"', lock)
    if len(versions) != 1:
        sys.exit(f"expected one torch-sys in Cargo.lock, found {versions}")
    home = pathlib.Path(os.environ.get("CARGO_HOME", pathlib.Path.home() / ".cargo"))
    found = sorted(home.glob(f"registry/src/*/torch-sys-{versions[0]}"))
    if not found:
        sys.exit(f"torch-sys {versions[0]}'s source is not in {home}/registry (build the crate first)")
    return found[0], versions[0]


def render() -> str:
    src, version = torch_sys_src()
    names = set()
    for f in sorted((src / "src").rglob("*.rs")):
        names.update(re.findall(r"pub fn ((?:at[a-z0-9_]*)|get_and_reset_last_err)\s*\(", f.read_text()))
    body = "".join(f"    {n};\n" for n in sorted(names))
    return (f"/* torch-sys {version}'s C functions, exported by the notebook library\n"
            f"   (written by make_exports.py; {len(names)} names) */\n"
            "{\n  global:\n" + body + "};\n")


def main() -> None:
    text = render()
    target = HERE / "exports.map"
    if "--check" in sys.argv[1:]:
        if not target.exists() or target.read_text() != text:
            sys.exit("notebooks/kernel-lib/exports.map is stale: run notebooks/kernel-lib/make_exports.py")
        return
    target.write_text(text)


if __name__ == "__main__":
    main()

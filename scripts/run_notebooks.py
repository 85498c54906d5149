#!/usr/bin/env python3
"""Executes every notebook under notebooks/ with the Rust (evcxr) kernel and
fails on any cell error, panic or `Err`. Executed copies (with their images)
are saved under target/notebooks/ so a reader can look at them.

Usage: scripts/run_notebooks.py [NOTEBOOK ...]   (default: notebooks/*.ipynb)

The kernel gets a private evcxr configuration (`init.evcxr` with
`:preserve_vars_on_panic 0`, a compile cache and the optimisation level
PTYCHO_NB_OPT, 0 by default) and a persistent build folder (target/evcxr),
so a second run reuses the compiled crate. evcxr's own default is level 2,
which users keep in Jupyter; here level 0 compiles the library and its
dependencies on a fresh machine in about 4 minutes instead of about 17, for
slower cells at the CI sizes.
Sizes come from environment variables the notebooks read (PTYCHO_NB_*)."""
import os
import pathlib
import re
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "notebooks"
# what evcxr prints when a cell's code panics or a `?` returns an Err
FAILURE = re.compile(r"panicked at|^Error: |^Err\(|Segmentation fault|error\[E\d+\]", re.M)
# A table or figure shown as its Debug text: the kernel could not call its
# `evcxr_display` (e.g. the cell's last expression moved a variable), so the
# reader sees a struct dump instead of the HTML table or the image.
DEBUG_DISPLAY = re.compile(r"^\s*(Table|Figure|History|DatasetSummary) \{")


def kernel_env():
    cfg = ROOT / "target" / "evcxr-config"
    cfg.mkdir(parents=True, exist_ok=True)
    opt = os.environ.get("PTYCHO_NB_OPT", "0")
    if opt not in ("0", "1", "2", "3"):
        sys.exit(f"PTYCHO_NB_OPT={opt!r} is not an optimisation level (0-3)")
    (cfg / "init.evcxr").write_text(f":preserve_vars_on_panic 0\n:cache 2000\n:opt {opt}\n")
    tmp = ROOT / "target" / "evcxr"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["EVCXR_CONFIG_DIR"] = str(cfg)
    os.environ["EVCXR_TMPDIR"] = str(tmp)
    os.environ.setdefault("LIBTORCH", str(ROOT / ".venv" / "libtorch"))
    os.environ.setdefault("LIBTORCH_CXX11_ABI", "1")
    # each cell is a shared library the kernel dlopens: it finds libtorch here
    lib = str(pathlib.Path(os.environ["LIBTORCH"]) / "lib")
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [lib, os.environ.get("LD_LIBRARY_PATH")]))
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    os.environ["JUPYTER_PATH"] = str(ROOT / ".venv" / "share" / "jupyter")


def failures(nb):
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = ""
            if out.get("output_type") == "error":
                text = out.get("ename", "") + ": " + out.get("evalue", "")
            elif out.get("output_type") == "stream":
                text = out.get("text", "")
            elif "data" in out and "text/plain" in out["data"]:
                text = out["data"]["text/plain"]
            if out.get("output_type") == "error" or FAILURE.search(text):
                found.append(f"cell {i}: {text.strip()[:400]}")
            elif out.get("output_type") == "execute_result" and DEBUG_DISPLAY.search(text):
                found.append(f"cell {i}: shown as Debug text, not displayed: {text.strip()[:200]}")
    return found


def run(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="rust",
        timeout=int(os.environ.get("PTYCHO_NB_CELL_TIMEOUT", "1800")),
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.time()
    error = None
    try:
        client.execute()
    except CellExecutionError as e:
        error = str(e).splitlines()[-1] if str(e) else repr(e)
    OUT.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, OUT / path.name)
    problems = failures(nb)
    if error and not problems:
        problems = [error]
    return time.time() - started, problems


def main():
    kernel_env()
    paths = [pathlib.Path(p).resolve() for p in sys.argv[1:]] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    bad = 0
    for p in paths:
        seconds, problems = run(p)
        status = "ok" if not problems else "FAILED"
        print(f"{p.name:<28} {status:<7} {seconds:7.1f} s  (executed copy: target/notebooks/{p.name})", flush=True)
        for line in problems:
            print("    " + line)
        bad += bool(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Per-cell wall time of notebooks run with the Rust (evcxr) kernel, as a user
sees it: from the cell's execute request to its reply (nbclient's timing
records), with the kernel set up as `scripts/run_notebooks.py` sets it up,
in a build folder of its own (target/evcxr-timing-*).

Usage: scripts/time_notebook_cells.py [--opt N] [--deps-opt N] [--runs R]
                                      [--json OUT] [--probe] [NOTEBOOK ...]

--opt       evcxr's optimisation level for the cells (default: PTYCHO_NB_OPT, else 0)
--deps-opt  the dependencies' level (our crate included; a cargo config beside
            the build folder), as scripts/evcxr_kernel.sh sets up the users'
            kernel; default: --opt
--runs      run every notebook R times in fresh kernels; the first run of a
            cold build folder compiles the crate, later runs are a returning
            user's (default 2: the table shows the last run, the JSON all)
--probe     also time a notebook of trivial cells (`let a = 1;`, `a + 1`, ...):
            the fixed cost of any cell

Where the time goes: the kernel runs with the linker wrapped
(scripts/timing/cc_wrapper.sh as CARGO_TARGET_<host>_LINKER), which logs
each call's start and end; a cell's `link` seconds are the linker calls
within it, `rest` = wall - link: evcxr's and cargo's own work (the kernel's
type analysis, fingerprints of every dependency), compiling the cell,
loading its library and the cell's own work. (evcxr's compile cache wraps
rustc itself, so rustc cannot be wrapped the same way.)

Sizes come from the PTYCHO_NB_* variables, as for run_notebooks.py (use the
Makefile's NB_ENV for the CI sizes). Each cell is classified by what it does
(`:dep`, plot, table, train, reconstruct, simulate, other) from its source.
Prints a table per notebook and a summary (median cell, slowest
plot/table/other cell, the `:dep` cell); --json writes every run's figures."""
import argparse
import datetime
import json
import os
import pathlib
import re
import statistics
import sys
import time

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run_notebooks  # noqa: E402  (the kernel's environment, shared)

ROOT = run_notebooks.ROOT


def kind(source):
    """What a cell mostly does, from its source."""
    s = source.strip()
    if s.startswith(":dep"):
        return "dep"
    if re.search(r"\.fit\(|Trainer::new|train_job", s):
        return "train"
    if re.search(r"reconstruct_iterative|\.reconstruct\(|frc_halves", s):
        return "reconstruct"
    if re.search(r"simulate\(|simulate_on\(|read_dataset|import_tike", s):
        return "simulate"
    if re.search(r"plot::|\.plot\(\)|Figure", s):
        return "plot"
    if re.search(r"to_html|display_html|select\(|_table\(", s):
        return "table"
    return "other"


def parse_time(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def cell_seconds(cell):
    ex = cell.get("metadata", {}).get("execution", {})
    start = ex.get("iopub.execute_input") or ex.get("shell.execute_request")
    end = ex.get("shell.execute_reply") or ex.get("iopub.status.idle")
    if not (start and end):
        return None
    return parse_time(end) - parse_time(start)


def cell_window(cell):
    ex = cell.get("metadata", {}).get("execution", {})
    start = ex.get("iopub.execute_input") or ex.get("shell.execute_request")
    end = ex.get("shell.execute_reply") or ex.get("iopub.status.idle")
    return (parse_time(start), parse_time(end)) if start and end else None


def read_log(path):
    """(tool, start, end) of every logged linker call."""
    calls = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                calls.append((parts[0], float(parts[1]), float(parts[2])))
    return calls


def breakdown(window, calls):
    """Link and rest seconds of the linker calls that started in `window`."""
    start, end = window
    link = sum(e - s for t, s, e in calls if t == "link" and start <= s <= end)
    return {"link": link, "rest": (end - start) - link}


def run_once(path, log):
    if log.exists():
        log.unlink()
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="rust",
        timeout=int(os.environ.get("PTYCHO_NB_CELL_TIMEOUT", "1800")),
        record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.time()
    client.execute()
    total = time.time() - started
    calls = read_log(log)
    cells = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        cells.append({
            "index": i,
            "kind": kind(cell.source),
            "first_line": first[:60],
            "seconds": cell_seconds(cell),
            "phases": breakdown(cell_window(cell), calls) if cell_window(cell) else {},
        })
    return {"notebook": path.name, "total_seconds": total, "cells": cells}


def summary(run):
    cells = [c for c in run["cells"] if c["seconds"] is not None]
    after_dep = [c["seconds"] for c in cells if c["kind"] != "dep"]
    inspect = [c for c in cells if c["kind"] in ("plot", "table", "other")]
    dep = [c["seconds"] for c in cells if c["kind"] == "dep"]
    slowest = max(inspect, key=lambda c: c["seconds"]) if inspect else None
    return {
        "dep_seconds": dep[0] if dep else None,
        "median_cell_seconds": statistics.median(after_dep) if after_dep else None,
        "slowest_inspection_cell": slowest and {"index": slowest["index"], "seconds": slowest["seconds"]},
    }


def print_run(run):
    print(f"\n{run['notebook']}  (whole notebook {run['total_seconds']:.1f} s)")
    print(f"{'cell':>4}  {'kind':<11} {'seconds':>8}  first line")
    for c in run["cells"]:
        s = "-" if c["seconds"] is None else f"{c['seconds']:8.2f}"
        extra = ""
        if c["phases"]:
            extra = "  [" + ", ".join(f"{k} {v:.2f}" for k, v in c["phases"].items()) + "]"
        print(f"{c['index']:>4}  {c['kind']:<11} {s:>8}  {c['first_line']}{extra}")
    s = summary(run)
    slow = s["slowest_inspection_cell"]
    print(
        f"  :dep {s['dep_seconds']:.2f} s; median cell after it {s['median_cell_seconds']:.2f} s; "
        f"slowest plot/table/other cell: {slow['seconds']:.2f} s (cell {slow['index']})"
        if slow and s["dep_seconds"] is not None
        else f"  {s}"
    )


PROBE_CELLS = [
    # as the notebooks depend on it: through the one shared library
    ":dep ptycho_workbench = {{ path = \"{root}/notebooks/kernel-lib\", package = \"ptycho_workbench_notebook\" }}",
    "use ptycho_workbench::prelude::*;",
    "let a = 1;",
    "a + 1",
    "let v: Vec<f64> = vec![0.5; 1000];",
    "let total: f64 = v.iter().sum();",
    "let cfg = SimConfig::default();",
    "cfg.size_px",
]


def probe_notebook():
    """A notebook of trivial cells (the fixed cost of a cell), in target/."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c.format(root=ROOT)) for c in PROBE_CELLS]
    nb.metadata["kernelspec"] = {"name": "rust", "display_name": "Rust", "language": "rust"}
    path = ROOT / "target" / "timing_probe.ipynb"
    nbformat.write(nb, path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*")
    ap.add_argument("--opt", default=None, help="evcxr optimisation level 0-3")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--probe", action="store_true", help="also time a notebook of trivial cells")
    ap.add_argument("--deps-opt", default=None,
                    help="optimisation level of the dependencies (our crate included), as scripts/setup.sh "
                         "sets it for the users' kernel; default: the cells' level")
    args = ap.parse_args()
    if args.opt is not None:
        os.environ["PTYCHO_NB_OPT"] = args.opt
    run_notebooks.kernel_env()
    # a build folder of its own: the wrapped linker is part of cargo's
    # fingerprints, so sharing run_notebooks.py's would rebuild it each time
    opt = os.environ.get("PTYCHO_NB_OPT", "0")
    base = ROOT / "target" / (f"evcxr-timing-o{opt}" + (f"-d{args.deps_opt}" if args.deps_opt else ""))
    tmp = base / "kernel"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["EVCXR_TMPDIR"] = str(tmp)
    # evcxr writes its own cargo config into the build folder; cargo also
    # reads the one a level up (as scripts/evcxr_kernel.sh places it)
    config = base / ".cargo" / "config.toml"
    if args.deps_opt:
        # what scripts/evcxr_kernel.sh gives the users' kernel: the cells at
        # --opt, every dependency (our crate included) optimised
        config.parent.mkdir(exist_ok=True)
        config.write_text(f'[profile.dev.package."*"]\nopt-level = {args.deps_opt}\n')
    elif config.exists():
        config.unlink()
    wrappers = ROOT / "scripts" / "timing"
    log = ROOT / "target" / "notebook_timing.log"
    os.environ["PTYCHO_TIMING_LOG"] = str(log)
    host = os.popen("rustc -vV").read().split("host: ")[1].split()[0]
    os.environ[f"CARGO_TARGET_{host.upper().replace('-', '_')}_LINKER"] = str(wrappers / "cc_wrapper.sh")
    results = []
    names = ([str(probe_notebook())] if args.probe else []) + args.notebooks
    for name in names:
        path = pathlib.Path(name).resolve()
        for r in range(args.runs):
            run = run_once(path, log)
            run["run"] = r + 1
            run["summary"] = summary(run)
            results.append(run)
            if r == args.runs - 1:
                print_run(run)
    record = {
        "opt_level": os.environ.get("PTYCHO_NB_OPT", "0"),
        "deps_opt_level": args.deps_opt or os.environ.get("PTYCHO_NB_OPT", "0"),
        "linker": "mold" if os.popen("command -v mold").read().strip() else "system",
        "sizes": {k: v for k, v in os.environ.items() if k.startswith("PTYCHO_NB_")},
        "runs": results,
    }
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

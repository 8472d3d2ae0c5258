"""Run a list of `jaxnas.bench` cases in one process and write one JSON line per case.

    python benchmarks/suite.py --out=bench.jsonl --deadline=480            # the accelerator table
    python benchmarks/suite.py --out=bench.jsonl --deadline=420 --workers=4 # four processes share the GPU
    python benchmarks/suite.py --out=bench.jsonl --tiny                     # a CPU smoke run of the same cases

Why one process: on an accelerator most of a case's wall time outside the compile is Python and
backend start-up, and a lent machine is timed by the second. Cases run in the order listed (most
important first); one that fails is recorded with its error and the rest still run; none starts
after `--deadline` seconds, and each result is written as soon as it is measured, so a run cut
short keeps what it measured.

With `--workers=N` the cases are dealt out in turn to N processes that compile at the same time (a
compile is host work, and an accelerator host has cores to spare) but run their steps one process at
a time (a lock file is held over each case's warm-up and timed steps), so a lease measures N times as
many cases. The workers do not preallocate accelerator memory. Steps of one process can still
overlap another's compile-time autotuning on the accelerator; the median of the timed steps is
robust to a few such overlaps, and `step_seconds_min` is reported beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback

import jax

from jaxnas import bench
from jaxnas.search import config as config_lib

SMALL = dict(dataset="cifar10", channels=8, layers=5, batch_size=32)
PAPER = dict(dataset="cifar10", channels=16, layers=8, batch_size=64)

# (name, config overrides, step, repeats, warmup); warmup None = the bench's default.
CASES = [
    ("small first_order", SMALL, "first_order", 10, 2),
    ("paper first_order", PAPER, "first_order", 10, 2),
    ("paper darts_fd", PAPER, "darts_fd", 10, 2),
    ("paper first_order bf16", {**PAPER, "compute_dtype": "bfloat16"}, "first_order", 10, 2),
    ("paper unrolled", PAPER, "unrolled", 5, 1),
    ("paper gdas", {**PAPER, "strategy": "gdas"}, "first_order", 20, None),
    ("paper first_order grouped", {**PAPER, "impl": "grouped"}, "first_order", 10, 2),
    ("small weight", SMALL, "weight", 10, 2),
    ("small darts_fd", SMALL, "darts_fd", 10, 2),
    ("small unrolled", SMALL, "unrolled", 10, 2),
    ("paper pcdarts", {**PAPER, "strategy": "pcdarts"}, "first_order", 10, 2),
    ("paper random_ws", {**PAPER, "strategy": "random_ws"}, "first_order", 20, None),
    ("paper weight", PAPER, "weight", 10, 2),
    ("paper first_order reference", {**PAPER, "impl": "reference"}, "first_order", 10, 2),
    ("paper implicit", PAPER, "implicit", 5, 1),
    ("paper enas", {**PAPER, "strategy": "enas"}, "first_order", 20, None),
]

TINY = dict(channels=4, layers=2, batch_size=4)


def case_config(overrides: dict, tiny: bool):
    config = config_lib.get_config()
    for key, value in {**overrides, **(TINY if tiny else {})}.items():
        setattr(config, key, value)
    return config


@contextlib.contextmanager
def file_lock(path: str):
    """Hold an exclusive lock on `path` (created if missing), released on exit even on error."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_workers(args: argparse.Namespace, names: list[str]) -> None:
    """Deal `names` out in turn to `args.workers` child processes sharing one timing lock; wait for all."""
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "false")}
    with tempfile.TemporaryDirectory(prefix="jaxnas-suite-") as scratch:
        lock = args.lock or os.path.join(scratch, "timing.lock")
        children = []
        for w in range(args.workers):
            share = names[w::args.workers]
            if not share:
                continue
            cmd = [sys.executable, os.path.abspath(__file__), f"--out={args.out}", f"--deadline={args.deadline}",
                   f"--only={','.join(share)}", f"--lock={lock}", f"--worker-id={w}"]
            children.append(subprocess.Popen(cmd + (["--tiny"] if args.tiny else []), env=env))
        for child in children:
            child.wait()


def print_table(path: str) -> None:
    print(f"{'case':32s} {'compile s':>10s} {'step s':>9s} {'images/s':>9s} {'step MB':>9s}")
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if "case" in r:
                print(f"{r['case']:32s} {r.get('compile_seconds', '-')!s:>10s} {r.get('step_seconds', '-')!s:>9s} "
                      f"{r.get('images_per_second', '-')!s:>9s} {r.get('step_memory_mb', '-')!s:>9s} "
                      f"{r.get('error', '')}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON lines file (appended)")
    parser.add_argument("--deadline", type=float, default=float("inf"), help="start no case after this many seconds")
    parser.add_argument("--tiny", action="store_true", help="every case at C=4, 2 cells, batch 4 (smoke test)")
    parser.add_argument("--only", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="processes that compile in parallel")
    parser.add_argument("--lock", default="", help="lock file held while a case's steps run")
    parser.add_argument("--worker-id", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    start = time.perf_counter()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - {name for name, *_ in CASES}
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; valid cases: {', '.join(name for name, *_ in CASES)}")
    if args.workers > 1:
        run_workers(args, [name for name, *_ in CASES if not only or name in only])
        print_table(args.out)
        return
    environment = {"jax": jax.__version__, "python": platform.python_version(),
                   "devices": [str(d) for d in jax.devices()],
                   "device_kind": jax.devices()[0].device_kind, "worker": args.worker_id}
    print(json.dumps(environment), flush=True)
    with open(args.out, "a") as out:
        out.write(json.dumps({"environment": environment}) + "\n")
        for name, overrides, step, repeats, warmup in CASES:
            if only and name not in only:
                continue
            if time.perf_counter() - start > args.deadline:
                print(f"{name}: skipped (deadline)", flush=True)
                continue
            t0 = time.perf_counter()
            try:
                r = bench.run(case_config(overrides, args.tiny), step, repeats=repeats,
                              warmup=1 if args.tiny else warmup,
                              exclusive=file_lock(args.lock) if args.lock else None)
            except Exception as e:  # noqa: BLE001 - record it and go on with the next case
                traceback.print_exc()
                r = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
            r = {"case": name, "wall_seconds": round(time.perf_counter() - t0, 1), **r}
            out.write(json.dumps(r) + "\n")
            out.flush()
            print(json.dumps(r), flush=True)
    if args.worker_id is None:
        print_table(args.out)


if __name__ == "__main__":
    main()

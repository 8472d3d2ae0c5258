"""Run a list of `jaxnas.bench` cases in one process and write one JSON line per case.

    python benchmarks/suite.py --tiny                                   # a CPU smoke run of the same cases
    python benchmarks/suite.py --deadline=480 --profile                 # an accelerator's table
    python benchmarks/suite.py --deadline=480 --profile --compile-workers=4 --compile-deadline=200 \
        --compile-timeout=330 --cache-dir=/tmp/jaxnas-cache             # as benchmarks/gpu_lease.sh runs it
    python benchmarks/suite.py --list                                   # the cases, most important first

Results go to `benchmarks/results/<YYYY-MM-DD>_<device-kind>.jsonl` (`-tiny` added for `--tiny`;
`--out` or `--results-dir` put them elsewhere), appended: a header line (`{"environment": ...}`: UTC
date, device kind and count, jax, jaxlib, flax, optax and Python versions, the commit and whether
the tree had uncommitted changes, XLA_FLAGS, the arguments), then one line per case. `python
benchmarks/performance_report.py` turns the files into docs/performance.md's tables.

Why one process: on an accelerator most of a case's wall time outside the compile is Python and
backend start-up, and a lent machine is timed by the second. Cases run in the order listed (most
important first: issue 28's list); one that fails is recorded with its error and the rest still run;
none starts after `--deadline` seconds, and each result is written as soon as it is measured, so a
run cut short keeps what it measured; the last line printed says how to run the rest (`--only=...`).

`--profile` traces `jaxnas.bench.PROFILE_STEPS` more steps of the cases marked `profile` (first order
and `darts_fd` at the paper config) with `jax.profiler` and records kernels per step and the top
kernel kinds' share of kernel time. Cases with `xla_flags` (XLA:GPU command buffers) run in a
process of their own: XLA reads XLA_FLAGS once, when jax starts.

`--compile-workers=N` splits a run into two passes: N processes first compile every case at once
(lines with `"phase": "compile"`: compile time, HLO size, FLOPs, step memory) into the persistent
compilation cache, then this process times the cases one after the other with nothing else running
(`"phase": "time"`; its compile is a cache load). A compile is host work and an accelerator host has
cores to spare, while a scanned supernet's step is launched from the host and slows down when other
processes compile (H100, 2026-11-27: 0.90 against 0.59 s a step). Cases whose compile did not finish
by `--compile-timeout` are not timed.

With `--workers=N` the cases are dealt out in turn to N processes that compile at the same time
but run their steps one process at a time (a lock file is held over each case's warm-up and timed
steps). Steps of one process then overlap the others' compiles: it fits more cases into a lease,
but its step times are not clean.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import fcntl
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback

import jax

from jaxnas import bench
from jaxnas.compilation import enable_compilation_cache
from jaxnas.search import config as config_lib

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

SMALL = dict(dataset="cifar10", channels=8, layers=5, batch_size=32)
PAPER = dict(dataset="cifar10", channels=16, layers=8, batch_size=64)
# DARTS's recurrent search on PTB (configs/search_darts_ptb.py): 300 dims, batch 256, BPTT 35, 10,000
# words (known without the data: the steps run on random tokens).
PTB_SEARCH = dict(task={"name": "language_model"}, dataset="ptb", space="darts_rnn", channels=300, layers=8,
                  batch_size=256, eval_batch_size=16, lr=20.0, lr_min=20.0, momentum=0.0, weight_decay=5e-7,
                  clip_norm=0.25, alpha_b1=0.9)

# XLA:GPU command buffers (CUDA graphs): XLA's default set of command types, none, or also the
# loops and conditionals (a scanned supernet runs its edges in a while loop, launched from the host
# once per iteration without them). XLA_FLAGS are read once when a backend starts, so these cases
# run in a process of their own; on a CPU the flags parse and do nothing.
NO_COMMAND_BUFFERS = "--xla_gpu_enable_command_buffer="
LOOP_COMMAND_BUFFERS = "--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL"


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    overrides: dict
    step: str
    repeats: int = 10
    warmup: int | None = 2  # None: the bench's default (50 for the switch cells)
    xla_flags: str = ""  # added to XLA_FLAGS in a process of the case's own
    profile: bool = False  # traced with --profile


# In order of importance for issue 28 (one GPU or TPU chip): what a lease measures first.
CASES = [
    Case("paper first_order", PAPER, "first_order", profile=True),
    Case("paper darts_fd", PAPER, "darts_fd", profile=True),
    # matmul_precision="highest" is the default since issue 35; earlier leases measured the backend's default
    Case("paper first_order default precision", {**PAPER, "matmul_precision": "default"}, "first_order"),
    Case("ptb rnn first_order", PTB_SEARCH, "first_order"),
    Case("ptb rnn darts_fd", PTB_SEARCH, "darts_fd"),
    Case("ptb rnn unrolled", PTB_SEARCH, "unrolled", repeats=5, warmup=1),
    Case("paper first_order grouped", {**PAPER, "impl": "grouped"}, "first_order"),
    Case("paper first_order reference", {**PAPER, "impl": "reference"}, "first_order"),
    Case("paper first_order bf16", {**PAPER, "compute_dtype": "bfloat16"}, "first_order"),
    Case("paper first_order no command buffers", PAPER, "first_order", xla_flags=NO_COMMAND_BUFFERS),
    Case("paper first_order loop command buffers", PAPER, "first_order", xla_flags=LOOP_COMMAND_BUFFERS),
    Case("paper first_order batch 128", {**PAPER, "batch_size": 128}, "first_order"),
    Case("paper first_order batch 256", {**PAPER, "batch_size": 256}, "first_order"),
    Case("paper first_order bf16 batch 256", {**PAPER, "compute_dtype": "bfloat16", "batch_size": 256},
         "first_order"),
    Case("paper pcdarts batch 256", {**PAPER, "strategy": {"name": "pcdarts"}, "batch_size": 256}, "first_order"),
    Case("paper gdas", {**PAPER, "strategy": {"name": "gdas"}}, "first_order", repeats=20, warmup=None),
    Case("paper unrolled", PAPER, "unrolled", repeats=5, warmup=1),
    Case("paper darts_fd grouped", {**PAPER, "impl": "grouped"}, "darts_fd"),
    Case("paper implicit", PAPER, "implicit", repeats=5, warmup=1),
    Case("paper weight", PAPER, "weight"),
    Case("small first_order", SMALL, "first_order"),
    Case("paper pcdarts", {**PAPER, "strategy": {"name": "pcdarts"}}, "first_order"),
    Case("paper random_ws", {**PAPER, "strategy": {"name": "random_ws"}}, "first_order", repeats=20, warmup=None),
    Case("paper enas", {**PAPER, "strategy": {"name": "enas"}}, "first_order", repeats=20, warmup=None),
    Case("small weight", SMALL, "weight"),
    Case("small darts_fd", SMALL, "darts_fd"),
    Case("small unrolled", SMALL, "unrolled"),
]
CASE_NAMES = [c.name for c in CASES]

TINY = dict(channels=4, layers=2, batch_size=4)


def case_config(overrides: dict, tiny: bool):
    config = config_lib.get_config()
    config.update({**overrides, **(TINY if tiny else {})})  # a block ({"name": ...}) merges into the config's
    return config_lib.resolve(config)


@contextlib.contextmanager
def file_lock(path: str):
    """Hold an exclusive lock on `path` (created if missing), released on exit even on error."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _child_cmd(args: argparse.Namespace, names: list[str], *extra: str) -> list[str]:
    cmd = [sys.executable, os.path.abspath(__file__), f"--out={args.out}", f"--only={','.join(names)}", "--child",
           *extra]
    if args.tiny:
        cmd.append("--tiny")
    if args.profile:
        cmd.append("--profile")
    if args.trace_dir:
        cmd.append(f"--trace-dir={args.trace_dir}")
    if args.cache_dir:
        cmd.append(f"--cache-dir={args.cache_dir}")
    return cmd


def run_workers(args: argparse.Namespace, names: list[str], compile_only: bool = False) -> None:
    """Deal `names` out in turn to `args.workers` child processes sharing one timing lock (or, with
    `compile_only`, to `args.compile_workers` processes that only compile); wait for all."""
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "false")}
    workers = args.compile_workers if compile_only else args.workers
    with tempfile.TemporaryDirectory(prefix="jaxnas-suite-") as scratch:
        lock = args.lock or os.path.join(scratch, "timing.lock")
        children = []
        for w in range(workers):
            share = names[w::workers]
            if not share:
                continue
            extra = [f"--deadline={args.deadline}", f"--worker-id={w}"]
            extra += ["--compile-only"] if compile_only else [f"--lock={lock}"]
            children.append(subprocess.Popen(_child_cmd(args, share, *extra), env=env))
        wait(children, args.compile_timeout if compile_only else None)


def wait(children: list[subprocess.Popen], timeout: float | None) -> None:
    """Wait for `children`; end those still running `timeout` seconds from now (what they were
    compiling is then not recorded, and the timed pass skips it)."""
    end = None if timeout is None else time.perf_counter() + timeout
    for child in children:
        try:
            child.wait(None if end is None else max(end - time.perf_counter(), 0.1))
        except subprocess.TimeoutExpired:
            print(f"compile pass: ending process {child.pid} (--compile-timeout)", flush=True)
            child.kill()
            child.wait()


def _flags_env(case: Case) -> dict:
    return {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "false"),
            "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {case.xla_flags}".strip()}


def run_with_xla_flags(args: argparse.Namespace, case: Case, remaining: float) -> None:
    """Run `case` in a process of its own whose XLA_FLAGS end with the case's flags."""
    cmd = _child_cmd(args, [case.name])
    try:
        rc = subprocess.run(cmd, env=_flags_env(case),
                            timeout=None if remaining == float("inf") else max(remaining, 60)).returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
    if rc != 0:  # a crash (an XLA abort) writes nothing: record it
        with open(args.out, "a") as out:
            out.write(json.dumps({"case": case.name, "xla_flags": case.xla_flags,
                                  "error": f"the case's process ended with {rc}"}) + "\n")


def compile_pass(args: argparse.Namespace, cases: list[Case], deadline: float) -> None:
    """Compile `cases` into the compilation cache, `args.compile_workers` processes at once (and one
    more per case with XLA_FLAGS of its own), each starting no compile after `deadline` seconds."""
    args = argparse.Namespace(**{**vars(args), "deadline": deadline})
    t0 = time.perf_counter()
    flagged = [subprocess.Popen(_child_cmd(args, [c.name], f"--deadline={deadline}", "--compile-only"),
                                env=_flags_env(c)) for c in cases if c.xla_flags]
    run_workers(args, [c.name for c in cases if not c.xla_flags], compile_only=True)
    wait(flagged, None if args.compile_timeout is None else args.compile_timeout - (time.perf_counter() - t0))


def compiled_cases(path: str) -> set[str]:
    """The cases of the results file `path` that the compile-only pass compiled."""
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {r["case"] for r in rows if r.get("phase") == "compile" and "error" not in r}


def not_measured(path: str, cases: list[Case]) -> list[str]:
    """`cases` without a timed line free of errors in the results file `path`."""
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    done = {r["case"] for r in rows if r.get("phase") == "time" and "error" not in r}
    return [c.name for c in cases if c.name not in done]


def print_table(path: str) -> None:
    print(f"{'case':42s} {'compile s':>10s} {'step s':>9s} {'images/s':>9s} {'step MB':>9s} {'TFLOP/s':>8s}")
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if "case" in r:
                tflops = r.get("flops_per_second")
                print(f"{r['case'] + (' [compile]' if r.get('phase') == 'compile' else ''):42s} "
                      f"{r.get('compile_seconds', '-')!s:>10s} {r.get('step_seconds', '-')!s:>9s} "
                      f"{r.get('images_per_second', '-')!s:>9s} {r.get('step_memory_mb', '-')!s:>9s} "
                      f"{'-' if not tflops else round(tflops / 1e12, 3)!s:>8s} {r.get('error', '')}")
    sys.stdout.flush()


def _version(module: str) -> str | None:
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*argv: str) -> str | None:
    try:
        return subprocess.run(["git", *argv], capture_output=True, text=True, check=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def environment() -> dict:
    """Where and with what the results were measured: the header line of a results file."""
    commit = _git("rev-parse", "HEAD") or os.environ.get("JAXNAS_COMMIT")
    status = _git("status", "--porcelain", "--untracked-files=no")
    devices = jax.devices()
    return {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "platform": devices[0].platform, "device_kind": devices[0].device_kind, "device_count": len(devices),
            "devices": [str(d) for d in devices],
            "jax": jax.__version__, "jaxlib": _version("jaxlib"), "flax": _version("flax"), "optax": _version("optax"),
            "python": platform.python_version(), "host": platform.machine(), "cpu_count": os.cpu_count(),
            "commit": commit, "dirty": None if status is None else bool(status),
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def default_out(tiny: bool, directory: str = RESULTS) -> str:
    """`<directory>/<YYYY-MM-DD>_<device-kind>[-tiny].jsonl` (UTC date)."""
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    return os.path.join(directory, f"{date}_{slug(jax.devices()[0].device_kind)}{'-tiny' if tiny else ''}.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="", help="JSON lines file, appended (default: "
                        "<results-dir>/<YYYY-MM-DD>_<device-kind>[-tiny].jsonl)")
    parser.add_argument("--results-dir", default=RESULTS, help="where the default --out goes")
    parser.add_argument("--deadline", type=float, default=float("inf"), help="start no case after this many seconds")
    parser.add_argument("--tiny", action="store_true", help="every case at C=4, 2 cells, batch 4 (smoke test)")
    parser.add_argument("--only", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated case names not to run")
    parser.add_argument("--list", action="store_true", help="print the case names in order and exit")
    parser.add_argument("--profile", action="store_true",
                        help=f"trace {bench.PROFILE_STEPS} more steps of the profiled cases "
                             f"({', '.join(c.name for c in CASES if c.profile)}) with jax.profiler and summarise them")
    parser.add_argument("--trace-dir", default="", help="keep the --profile traces here (default: a temporary folder)")
    parser.add_argument("--cache-dir", default="", help="persistent compilation cache (default: none, or a "
                        "temporary one with --compile-workers)")
    parser.add_argument("--compile-workers", type=int, default=0,
                        help="first compile every case in N processes at once (into the compilation cache; "
                             "lines with phase=compile), then time them one after the other in this process")
    parser.add_argument("--compile-deadline", type=float, default=None,
                        help="with --compile-workers: start no compile after this many seconds (default: half "
                             "the deadline)")
    parser.add_argument("--compile-timeout", type=float, default=None,
                        help="with --compile-workers: end the compile pass's processes after this many seconds")
    parser.add_argument("--workers", type=int, default=1, help="processes that compile in parallel")
    parser.add_argument("--lock", default="", help="lock file held while a case's steps run")
    parser.add_argument("--worker-id", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compile-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    start = time.perf_counter()
    if args.list:
        print("\n".join(CASE_NAMES))
        return
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = (only | skip) - set(CASE_NAMES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; valid cases: {', '.join(CASE_NAMES)}")
    cases = [c for c in CASES if (not only or c.name in only) and c.name not in skip]
    args.out = args.out or default_out(args.tiny, args.results_dir)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    scratch = tempfile.TemporaryDirectory(prefix="jaxnas-suite-")
    if args.compile_workers and not args.cache_dir:
        args.cache_dir = os.path.join(scratch.name, "cache")
    if args.cache_dir:
        enable_compilation_cache(args.cache_dir)
    if not args.child:
        env = environment()
        print(json.dumps(env), flush=True)
        with open(args.out, "a") as out:
            out.write(json.dumps({"environment": {**env, "argv": sys.argv[1:]}}) + "\n")
    if args.workers > 1 and not args.child:  # the cases with XLA_FLAGS of their own run afterwards
        run_workers(args, [c.name for c in cases if not c.xla_flags])
        cases = [c for c in cases if c.xla_flags]
    compiled = None
    if args.compile_workers and not args.child:
        compile_pass(args, cases, args.compile_deadline if args.compile_deadline is not None else args.deadline / 2)
        compiled = compiled_cases(args.out)
    with open(args.out, "a") as out:
        for case in cases:
            remaining = args.deadline - (time.perf_counter() - start)
            if remaining < 0:
                print(f"{case.name}: skipped (deadline)", flush=True)
                continue
            if compiled is not None and case.name not in compiled:  # its compile would not fit: the next run's
                print(f"{case.name}: skipped (not compiled in the compile pass)", flush=True)
                continue
            if case.xla_flags and not args.child:
                out.flush()
                run_with_xla_flags(args, case, remaining)
                continue
            t0 = time.perf_counter()
            trace = None
            if args.profile and case.profile and not args.compile_only:
                trace = os.path.join(args.trace_dir or scratch.name, slug(case.name))
            try:
                r = bench.run(case_config(case.overrides, args.tiny), case.step, repeats=case.repeats,
                              warmup=1 if args.tiny else case.warmup,
                              exclusive=file_lock(args.lock) if args.lock else None,
                              profile_dir=trace, compile_only=args.compile_only)
            except Exception as e:  # noqa: BLE001 - record it and go on with the next case
                traceback.print_exc()
                r = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
            r = {"case": case.name, "phase": "compile" if args.compile_only else "time",
                 "wall_seconds": round(time.perf_counter() - t0, 1),
                 **({"xla_flags": case.xla_flags} if case.xla_flags else {}),
                 **({"compilation_cache": True} if args.cache_dir else {}), **r}
            out.write(json.dumps(r) + "\n")
            out.flush()
            print(json.dumps(r), flush=True)
    if args.worker_id is None and not args.child:
        print_table(args.out)
        left = not_measured(args.out, cases)
        if left:
            print(f"not measured ({len(left)}); to run them: --only='{','.join(left)}'", flush=True)


if __name__ == "__main__":
    main()

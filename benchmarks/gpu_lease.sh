#!/usr/bin/env bash
# The one prepared script for a lent GPU (issue 28): measures benchmarks/suite.py's cases, most
# important first, in about 8 minutes, and leaves everything under $OUT.
#
# From a session with a device lease (the command runs in a copy of the working tree):
#
#   run(command="JAXNAS_COMMIT=<git rev-parse HEAD here> bash benchmarks/gpu_lease.sh",
#       carry=[".whl"], timeout_s=590)
#
# Then copy $OUT's `<date>_<device>.jsonl` into benchmarks/results/, run
# `python benchmarks/performance_report.py` and commit both.
#
# Wheels: the device has its own jax (with CUDA); packages it lacks (ml_collections, flax, optax,
# orbax, tfds, ... whatever `python3 -c "import jaxnas.bench"` misses there) travel as wheels in a
# `.whl/` folder at the repository root, carried with the run (`carry=[".whl"]`), built here with
# `pip download --only-binary=:all: --no-deps --platform manylinux2014_x86_64 --python-version 3.12
# -d .whl PKG==VERSION` for the device's Python. They are installed without the network:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#
# Time (one H200; from the H100 leases of 2026-11-27: first order at the paper config compiled in
# 96 s alone, 133 s beside 3 other compiles; darts_fd in 312 s beside them; a timed case takes
# 20-60 s once compiled): about 10 s of installing and starting; the compile pass (4 processes, and
# one more per XLA_FLAGS case) starts no compile after COMPILE_DEADLINE=200 s and is ended at
# COMPILE_TIMEOUT=330 s; the timed pass loads each compiled case from the compilation cache and
# starts none after DEADLINE=470 s; the report takes seconds. About 8-9 minutes in all: use
# timeout_s=590. What was measured is written line by line, so a timeout keeps it.
#
# Rerunning only what failed or did not fit: the suite's last line prints
#   not measured (N); to run them: --only='case a,case b'
# Rerun at once (the machine is still warm and /tmp/jaxnas-cache still holds the compiled steps) with
#   run(command="ONLY='case a,case b' JAXNAS_COMMIT=... bash benchmarks/gpu_lease.sh", carry=[".whl"])
# and shorter DEADLINE / COMPILE_DEADLINE / COMPILE_TIMEOUT if less device time is left. A case that
# crashed the process (an XLA abort) is recorded as an error line; SKIP='case a,...' leaves cases out.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/jaxnas-lease}
mkdir -p "$OUT"
DEADLINE=${DEADLINE:-470}
COMPILE_DEADLINE=${COMPILE_DEADLINE:-200}
COMPILE_TIMEOUT=${COMPILE_TIMEOUT:-330}
WORKERS=${WORKERS:-4}
T0=$(date +%s)

if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl 2>&1 | tail -3
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export JAXNAS_COMMIT=${JAXNAS_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-1}
# Several processes share the GPU (the compile pass; the XLA_FLAGS cases beside the timing process):
# none may take 75 % of its memory up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  python3 -c "import jax, jaxlib; print('jax', jax.__version__, jaxlib.__version__, jax.devices())" 2>&1
} | tee "$OUT/machine.txt"
if ! python3 -c "import jaxnas.bench" 2>"$OUT/import_error.txt"; then
  echo "jaxnas.bench does not import on this machine (missing wheels?):"; tail -3 "$OUT/import_error.txt"
  exit 3
fi

ARGS=(--results-dir="$OUT" --deadline="$DEADLINE" --profile --trace-dir=/tmp/jaxnas-traces
      --compile-workers="$WORKERS" --compile-deadline="$COMPILE_DEADLINE" --compile-timeout="$COMPILE_TIMEOUT"
      --cache-dir=/tmp/jaxnas-cache)
[ -n "${ONLY:-}" ] && ARGS+=(--only="$ONLY")
[ -n "${SKIP:-}" ] && ARGS+=(--skip="$SKIP")
# SUITE_EXTRA: more suite arguments, e.g. a dry run of this script on a CPU:
#   OUT=/tmp/dry SUITE_EXTRA=--tiny ONLY='small weight' bash benchmarks/gpu_lease.sh
# shellcheck disable=SC2206
ARGS+=(${SUITE_EXTRA:-})
python3 benchmarks/suite.py "${ARGS[@]}" 2>"$OUT/suite.stderr" | tee "$OUT/suite.log" | cut -c1-200
tail -20 "$OUT/suite.stderr" | grep -iE "error|abort|check failed" | head -5

# The tables as docs/performance.md would show them (the page itself is regenerated in the repository).
cp docs/performance.md "$OUT/performance.md"
python3 benchmarks/performance_report.py --results="$OUT" --doc="$OUT/performance.md" || true
echo "gpu_lease.sh: $(( $(date +%s) - T0 )) s"

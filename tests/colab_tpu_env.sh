#!/usr/bin/env bash
# "Colab TPU today": Python 3.13, jax/jaxlib 0.7.2, flax 0.11.2, optax 0.2.8, orbax-checkpoint 0.12.4,
# no TensorFlow. Builds that environment in a venv, installs jaxnas into it the way the notebooks do
# (a constraints file made from the running jax, so pip cannot move it), checks that nothing moved
# and that TensorFlow is absent, then runs the fast subset below. Run it before every change to a
# dependency or to jax-version-sensitive code:
#
#     bash tests/colab_tpu_env.sh            # PYTHON=python3.13 and VENV=.venv-colab-tpu by default
#
# The default CI keeps its own environment; this one needs Python 3.13 and the package registry.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.13}
VENV=${VENV:-.venv-colab-tpu}
STACK="jax==0.7.2 jaxlib==0.7.2 flax==0.11.2 optax==0.2.8 orbax-checkpoint==0.12.4"

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check $STACK
"$VENV/bin/python" -m pip freeze | grep -iE '^(jax|jaxlib|libtpu|flax|optax|orbax-checkpoint)==' > "$VENV/runtime.txt"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$VENV/runtime.txt" -e '.[test]'
"$VENV/bin/python" -m pip freeze | grep -iE '^(jax|jaxlib|libtpu|flax|optax|orbax-checkpoint)==' \
  | diff "$VENV/runtime.txt" - || { echo "error: installing jaxnas moved the runtime's packages" >&2; exit 1; }
"$VENV/bin/python" - <<'PY'
import importlib.util, sys
import jax, flax, optax, orbax.checkpoint
assert sys.version_info[:2] == (3, 13), sys.version
assert importlib.util.find_spec("tensorflow") is None, "TensorFlow is installed; Colab TPU has none"
print(f"python {sys.version.split()[0]}, jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}")
PY
# The subset: CIFAR without TensorFlow (a search and a training run step on it), the XLA workarounds
# as this jax spells them, checkpoint save/restore, the search and training steps, the notebooks.
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup \
  tests/test_cifar.py tests/test_xla_workarounds.py tests/test_checkpoint.py tests/test_preflight.py \
  tests/test_search_step.py tests/test_notebooks.py "$@"
echo "colab-tpu environment: passed in $(( $(date +%s) - start )) s"

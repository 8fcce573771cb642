#!/usr/bin/env bash
# The integrations' tests with every real library: a throwaway virtual environment with asynctune,
# MLflow, W&B, XGBoost, LightGBM, then torch (CPU), Lightning, Transformers and Keras on top of
# it; prints the versions, the install times and pytest's counts. CI runs the light ones only.
#
#   bash scripts/integration_check.sh            # leaves nothing behind
#   KEEP_VENV=/tmp/integ bash scripts/integration_check.sh   # keep (and reuse) the environment
#   TORCH_SPEC="torch==2.13.0" ...               # which torch: install it before the libraries
#                                                 # that need it, so they reuse it (a CPU build)
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
VENV=${KEEP_VENV:-$(mktemp -d -t asynctune-integrations-XXXXXX)}
[ -n "${KEEP_VENV:-}" ] || trap 'rm -rf "$VENV"' EXIT

timed() {  # timed LABEL COMMAND...: run it, print how long it took
  local label=$1 start=$SECONDS
  shift
  "$@"
  echo "install $label: $((SECONDS - start)) s"
}

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)
timed "asynctune[test] (CI's: its tools, MLflow, W&B, XGBoost, LightGBM)" "${PIP[@]}" -e ".[test]"
timed "$TORCH_SPEC" "${PIP[@]}" "$TORCH_SPEC"
timed "lightning transformers keras" "${PIP[@]}" -e ".[lightning,transformers,keras]"

# Keras 3 defaults to TensorFlow; the torch just installed is its backend here.
export KERAS_BACKEND=${KERAS_BACKEND:-torch}
"$PY" - <<'EOF'
import importlib.metadata as metadata
import sys

names = ["mlflow", "wandb", "xgboost", "lightgbm", "torch", "lightning", "transformers", "accelerate", "keras",
         "scikit-learn"]
print(f"python {sys.version.split()[0]}; " + ", ".join(f"{n} {metadata.version(n)}" for n in names))
EOF

start=$SECONDS
# -rs lists every skip with its reason: with every library installed there should be none.
PYTHONPATH=$PWD "$PY" -m pytest -q -rs -p no:cacheprovider tests/e2e/test_integrations_*.py
echo "integration tests: $((SECONDS - start)) s"

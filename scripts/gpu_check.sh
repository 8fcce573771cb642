#!/usr/bin/env bash
# Run the GPU tests on a machine with an NVIDIA GPU (driver + nvidia-ml-py; torch for the
# placement test). Every skipped test prints its reason: on a GPU machine none should skip.
#
#   scripts/gpu_check.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu --format=csv || \
    echo "nvidia-smi not found or failed: the GPU tests below will skip and say why"
python -c "import pynvml" 2>/dev/null || echo "nvidia-ml-py is missing: pip install nvidia-ml-py"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>/dev/null || \
    echo "torch is missing: the placement test skips (pip install torch)"
# -o addopts=: the suite's "-n 4" needs pytest-xdist, which a GPU machine's image may lack.
PYTHONPATH=. exec python -m pytest -q -rs -o addopts= tests/unit/core/test_gpu.py "$@"

"""Each integration behind its own extra: nothing imported until asked, and a clear error without it."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = {"xgboost": "xgboost", "lightgbm": "lightgbm", "lightning": "lightning", "transformers": "transformers",
           "keras": "keras", "mlflow": "mlflow", "wandb": "wandb"}
# The trackers' modules import without their library (they only hold driver callbacks); using them needs it.
USE = {"mlflow": "MLflowLoggerCallback()", "wandb": "WandbLoggerCallback()"}


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_asynctune_and_its_integrations_package_import_no_framework():
    frameworks = sorted(set(MODULES.values()) | {"torch", "pytorch_lightning"})
    done = _python(f"import sys, asynctune, asynctune.integrations\nprint(sorted(set({frameworks!r}) & set(sys.modules)))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("module", list(MODULES))
def test_an_integration_without_its_library_names_the_extra_to_install(module):
    library = MODULES[module]
    # sys.modules[name] = None makes `import name` fail as if it were not installed.
    blocked = [library, "pytorch_lightning"] if module == "lightning" else [library]
    done = _python("import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
                   + f"import asynctune.integrations.{module} as m\n"
                   + (f"m.{USE[module]}" if module in USE else ""))
    assert done.returncode != 0
    assert "ImportError" in done.stderr and f"pip install 'asynctune[{module}]'" in done.stderr, done.stderr[-800:]


def test_the_tensorboard_logger_loads_tensorboardx_without_importing_torch(tmp_path):
    # tensorboardX's package imports torch when it can (for its own SummaryWriter): 1.2 s in every
    # driver of a machine with torch installed (scripts/integration_check.sh runs this with the
    # real torch). Here a stand-in `torch` package, first on the path, says whether it was imported.
    pytest.importorskip("tensorboardX")
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("Tensor = object\n")
    code = ("import sys\nsys.path.insert(0, sys.argv[1])\n"
            "import asynctune, asynctune.reporting.tensorboard as tb\n"
            "print(tb.tensorboardx_available(), 'torch' in sys.modules)\n"
            "import torch\nprint(torch.__file__.startswith(sys.argv[1]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "True"]  # loaded, torch untouched, and importable after

"""Which other tuning library's report() a trainable may be calling instead of asynctune's.

A script half-migrated from Ray Tune (or Syne Tune, Optuna) still calls that library's report,
which asynctune never hears of: its trials return without one result. When a trial returns
without reporting, the worker names the libraries of that kind it finds imported.
"""

from __future__ import annotations

import sys

# module -> what the trainable would call
_REPORTS = {
    "ray.train": "ray.train.report",
    "ray.tune": "ray.tune.report",
    "ray.air": "ray.air.session.report",
    "syne_tune": "syne_tune.Reporter",
    "optuna": "optuna.trial.Trial.report",
}


def foreign_reports() -> list[str]:
    """The other libraries' report functions whose modules this process imported."""
    return [name for module, name in _REPORTS.items() if module in sys.modules]

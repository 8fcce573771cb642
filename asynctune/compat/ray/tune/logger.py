"""Ray's `ray.tune.logger.LoggerCallback`: the per-trial logging hooks on top of `tune.Callback`."""

from __future__ import annotations

from typing import Any

from .._unsupported import module_getattr
from .callback import Callback


class LoggerCallback(Callback):
    """Override `log_trial_start(trial)`, `log_trial_result(iteration, trial, result)` and
    `log_trial_end(trial, failed)`, as in Ray.

    Example:
        >>> class PrintResults(LoggerCallback):
        ...     def log_trial_result(self, iteration, trial, result):
        ...         print(trial.trial_id, result)
    """

    def log_trial_start(self, trial: Any) -> None: ...

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None: ...

    def log_trial_end(self, trial: Any, failed: bool = False) -> None: ...

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.log_trial_start(trial)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        self.log_trial_result(iteration, trial, result)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.log_trial_end(trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.log_trial_end(trial, failed=True)


class _WrittenAnyway(LoggerCallback):
    """Accepted so that Ray scripts run: asynctune writes this file for every trial anyway."""


class CSVLoggerCallback(_WrittenAnyway):
    """Ray's CSV logger: every trial's directory has `progress.csv` already."""


class JsonLoggerCallback(_WrittenAnyway):
    """Ray's JSON logger: every trial's directory has its results as JSON lines already, in
    `result.jsonl` (Ray names it result.json), and its config in `params.json`."""


class TBXLoggerCallback(_WrittenAnyway):
    """Ray's TensorBoard logger: asynctune writes TensorBoard files when tensorboardX is
    installed (docs/logging.md)."""


_LOGGERS = ("asynctune writes result.jsonl, progress.csv and TensorBoard files for every trial already; "
            "Ray's CSVLoggerCallback, JsonLoggerCallback and TBXLoggerCallback are accepted (docs/logging.md)")
__getattr__ = module_getattr(__name__, {name: _LOGGERS for name in (
    "CSVLogger", "JsonLogger", "TBXLogger", "Logger", "LegacyLoggerCallback", "UnifiedLogger")})

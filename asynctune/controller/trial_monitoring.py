"""The resource monitor as the controller uses it: which trials run here, where samples go,
and which trial to end when it holds too much memory."""

from __future__ import annotations

from collections.abc import Callable

from .runtime import TrialRuntime
from ..store.names import monitor_file
from .resource_monitor import MemoryLimitExceeded, MonitorSample, ResourceMonitor, append_jsonl, trial_records
from .table import TrialTable


def trial_monitor(table: TrialTable, *, interval_s: float,
                  memory_limit_mb: float | None, kill: Callable[[TrialRuntime], None]) -> ResourceMonitor:
    """Sample the running trials into <trial dir>/monitor.jsonl; over the limit, mark and kill."""

    def local_pids() -> list[tuple[str, int]]:  # psutil sees this machine's processes only
        return [(t.trial_id, r.run.pid) for t, r in table.running_items()
                if r.run is not None and r.run.pid is not None and r.run.host == "localhost"]

    def on_sample(sample: MonitorSample) -> None:
        by_id = {t.trial_id: t for t in table.trials}  # a trial may have ended since it was sampled
        for trial_id, record in trial_records(sample, {i: t.placement for i, t in by_id.items()}).items():
            append_jsonl(monitor_file(by_id[trial_id].path), record)

    def on_exceeded(error: MemoryLimitExceeded) -> None:
        for trial, runtime in table.running_items():
            if trial.trial_id == error.trial_id and runtime.run is not None and runtime.memory_error is None:
                runtime.memory_error = error  # its WorkerLostEvent then ends it with this error
                kill(runtime)

    return ResourceMonitor(local_pids, on_sample, interval_s=interval_s, memory_limit_mb=memory_limit_mb,
                           on_memory_exceeded=on_exceeded if memory_limit_mb else None)

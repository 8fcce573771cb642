"""TensorBoard: each trial's results as scalars, and an HParams summary that compares trials.

The layout is the one TensorBoard's HParams plugin reads (`tensorboard --logdir <experiment_dir>`):

    <experiment_dir>/events.out.tfevents.*             the experiment summary: every hyperparameter
                                                       (with the values seen) and every metric
    <experiment_dir>/<trial_id>/events.out.tfevents.*  the trial's scalars, one event per result,
                                                       and its session start info (hyperparameters)
                                                       and session end info (status)

Each trial directory is one TensorBoard run and one HParams session; the plugin's table and
parallel-coordinates view show each session's last value of every metric. Only tensorboardX is
needed (`pip install 'asynctune[tensorboard]'`), not TensorFlow; it frames the records and names
the files. The per-result path on the event loop only queues the result; on the controller's tick
one I/O thread turns the results into Events and writes them, with no thread per trial.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import numpy as np

from ..store.private_files import PRIVATE_FILE_MODE, make_dir_private
from ..core.space import Space, resolved_items
from ..store.layout import flatten_config
from ..store.names import tensorboard_file
from ..core.trial import Status, Trial
from .callback import Callback


@contextlib.contextmanager
def _without_torch() -> Iterator[None]:
    """tensorboardX's package imports torch when it is installed (for its SummaryWriter, which is
    not used here): 1.2 s and hundreds of MB in every driver. Unless something imported torch
    already, it is hidden while tensorboardX loads (its import of torch is optional)."""
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError
    try:
        yield
    finally:
        if sys.modules.get("torch", False) is None:
            del sys.modules["torch"]


try:  # tensorboardX frames the records (length, data, CRC-32C) and names the files
    with _without_torch():
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboardX.record_writer import RecordWriter
except ImportError:
    RecordWriter = None

# Fields every result carries that are not worth a chart (the step is training_iteration).
DEFAULT_EXCLUDE = frozenset({"trial_id", "training_iteration", "timestamp", "pid", "hostname", "done"})

logger = logging.getLogger(__name__)

_PLUGIN_NAME = "hparams"
_EXPERIMENT_TAG = "_hparams_/experiment"
_SESSION_START_TAG = "_hparams_/session_start_info"
_SESSION_END_TAG = "_hparams_/session_end_info"
# tensorboardX's flush also syncs the file to disk (about 10 ms on a busy disk): at most this often
# per file. Closing does not sync, so a trial shorter than this costs no sync.
_FLUSH_INTERVAL_S = 2.0
_HOSTNAME = socket.gethostname()


def tensorboardx_available() -> bool:
    return RecordWriter is not None


class TensorBoardLogger(Callback):
    """Writes TensorBoard event files: scalars per trial and the HParams comparison of all trials.

    `asynctune.run()` installs it when tensorboardX is installed (pass `tensorboard=False` to
    turn it off); add it yourself to choose its options. Results are queued as they arrive and
    written by one I/O thread on the controller's tick (twice a second) and when a trial ends.

    A trial that reports faster than once every `min_interval_s` is thinned: the results in
    between are skipped (the last one of a burst is always written, and so is every trial's
    final result), which keeps the cost per result and the number of records to write small
    for trials that report thousands of times a second. TensorBoard samples long series down
    to 1,000 points anyway; result.jsonl keeps every result. `min_interval_s=0` writes them all.

    Example:
        >>> asynctune.run(train, config=space, metric="loss", mode="min", tensorboard=False,
        ...               callbacks=[TensorBoardLogger(metric="loss", exclude={"time_this_iter_s"})])
        $ tensorboard --logdir ~/asynctune_results/<experiment>

    Args:
        metric: The metric listed first in the HParams view (the others follow: every numeric
            result key that was written); a list of metrics for a multi-objective run.
        space: The search space; with it the HParams view shows only the sampled hyperparameters,
            without it every value of the config (nested keys joined by "/").
        exclude: Result keys not written as scalars.
        min_interval_s: Per trial, results closer together than this are thinned (0: none).
    """

    def __init__(self, *, metric: str | list[str] | None = None, space: Space | None = None,
                 exclude: Collection[str] = DEFAULT_EXCLUDE, min_interval_s: float = 0.01) -> None:
        if not tensorboardx_available():
            raise ImportError("TensorBoardLogger needs tensorboardX: pip install 'asynctune[tensorboard]'")
        metrics = metric if isinstance(metric, list) else [metric]
        if metric is not None and not all(isinstance(m, str) for m in metrics):
            raise ValueError(f"TensorBoardLogger: metric must be a string or a list of them, got {metric=}")
        if isinstance(exclude, str) or not all(isinstance(k, str) for k in exclude):
            raise ValueError(f"TensorBoardLogger: exclude must be a collection of result keys, got {exclude=}")
        if not (isinstance(min_interval_s, (int, float)) and 0 <= min_interval_s < math.inf):
            raise ValueError(f"TensorBoardLogger: min_interval_s must be a number >= 0, got {min_interval_s=}")
        self.metric, self.space = metric, space
        self.min_interval_s = float(min_interval_s)
        self.exclude = frozenset(exclude)
        self.experiment_dir: str | None = None
        self._start_time = time.time()
        self._files: dict[Trial, str] = {}  # the directory of each trial with an open event file
        self._sessions_started: set[Trial] = set()
        self._sessions_ended: set[Trial] = set()
        self._jobs: list[Callable[[], None]] = []  # for the I/O thread, at the next hand-over
        self._io = _EventFiles(self.exclude)
        self._written_at: dict[Trial, float] = {}
        self._unwritten: dict[Trial, dict[str, Any]] = {}  # the latest result of a burst, per trial

    # Callback ------------------------------------------------------------------------------------

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Trial]) -> None:
        self.experiment_dir = experiment_dir
        self._start_time = time.time()

    def on_trial_start(self, trial: Trial) -> None:
        directory = self._file(trial)
        if trial not in self._sessions_started:
            self._sessions_started.add(trial)
            self._jobs.append(functools.partial(self._io.write_session_start, trial, directory, self._hparams(trial),
                                                trial.start_time or time.time()))

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> None:
        if self.min_interval_s:
            now = time.monotonic()
            if now - self._written_at.get(trial, -math.inf) < self.min_interval_s:
                self._unwritten[trial] = result
                return
            self._written_at[trial] = now
            if self._unwritten:
                self._unwritten.pop(trial, None)
        self._add_result(trial, result)

    def on_tick(self, trials: Sequence[Trial]) -> None:
        self._hand_over()

    def on_trial_decision(self, trial: Trial, decision: str, detail: str = "") -> None:
        if decision == "PAUSE":  # a paused trial may wait long: do not hold its file open
            self._write_unwritten(trial)
            self._close(trial)

    def on_trial_complete(self, trial: Trial) -> None:
        self._end_session(trial, "STATUS_SUCCESS")

    def on_trial_error(self, trial: Trial) -> None:
        self._end_session(trial, "STATUS_FAILURE")

    def on_experiment_end(self, trials: Sequence[Trial]) -> None:
        for trial in trials:
            if trial in self._sessions_started and trial.status.is_finished:
                self._end_session(trial, "STATUS_FAILURE" if trial.status is Status.ERROR else "STATUS_SUCCESS")
        for trial in list(self._unwritten):
            self._write_unwritten(trial)
        for trial in list(self._files):
            self._close(trial)
        if self.experiment_dir is not None and any(t.num_results for t in trials):
            hparams = [self._hparams(t) for t in trials if t.num_results]
            self._jobs.append(functools.partial(self._io.write_experiment, self.experiment_dir, hparams,
                                                self.metric, self._start_time))
        self._hand_over()
        self._io.shutdown()  # every file complete when run() returns

    def flush(self) -> None:
        """Write everything received so far, and wait until it is on disk."""
        self._hand_over()
        self._io.flush()

    def _hand_over(self) -> None:
        """Give the work since the last hand-over to the I/O thread, in one job."""
        for trial in list(self._unwritten):
            self._write_unwritten(trial)
        if self._jobs or self._files:  # with open files, the I/O thread flushes those due
            jobs, self._jobs = self._jobs, []
            self._io.submit(jobs)

    # Files ---------------------------------------------------------------------------------------

    def _file(self, trial: Trial) -> str:
        directory = self._files.get(trial)
        if directory is None:
            directory = self._files[trial] = trial.path or os.path.join(self.experiment_dir or ".", trial.trial_id)
        return directory

    def _add_result(self, trial: Trial, result: dict[str, Any]) -> None:
        # The step and the time are taken now; the I/O thread turns the result into a Summary.
        self._jobs.append(functools.partial(
            self._io.write_result, trial, self._files.get(trial) or self._file(trial), result,
            result.get("training_iteration", trial.num_results), result.get("timestamp") or time.time()))

    def _write_unwritten(self, trial: Trial) -> None:
        result = self._unwritten.pop(trial, None)
        if result is not None:
            self._add_result(trial, result)

    def _close(self, trial: Trial) -> None:
        """Closed by the I/O thread on the next hand-over (the next tick at the latest)."""
        if self._files.pop(trial, None) is not None:
            self._jobs.append(functools.partial(self._io.close, trial))

    def _end_session(self, trial: Trial, status: str) -> None:
        if trial in self._sessions_ended:
            return
        self._sessions_ended.add(trial)
        self._write_unwritten(trial)
        self._jobs.append(functools.partial(self._io.write_session_end, trial, self._file(trial), status,
                                            trial.end_time or time.time()))
        self._close(trial)

    def _hparams(self, trial: Trial) -> dict[str, Any]:
        items = resolved_items(trial.config, self.space) if self.space is not None else flatten_config(trial.config)
        return {k: v for k, v in items.items() if v is not None}


class _EventFiles:
    """The I/O thread's side: one tensorboardX `RecordWriter` (which frames each record and
    computes its CRC) per open file, all written from one thread, so there is no thread per trial.
    Everything but `submit`, `flush` and `shutdown` runs in that thread, in the order submitted.
    """

    _counter = itertools.count()

    def __init__(self, exclude: frozenset[str]) -> None:
        self.exclude = exclude
        self.tags: dict[str, None] = {}  # every scalar tag written, in order of first appearance
        self._writers: dict[Trial | str, RecordWriter] = {}
        self._dirty_since: dict[Trial | str, float] = {}  # writers with data not flushed yet: since when
        self._unwritable: set[str] = set()  # directories that failed, reported once
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None

    def submit(self, jobs: list[Callable[[], None]]) -> None:
        if self._thread is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="asynctune-tensorboard")
        self._thread.submit(self._run_all, jobs)

    def flush(self) -> None:
        if self._thread is not None:
            self._thread.submit(self._flush_due, 0.0).result()

    def shutdown(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    # In the I/O thread.

    def _run_all(self, jobs: Sequence[Callable[[], None]]) -> None:
        for job in jobs:
            try:
                job()
            except Exception:  # one bad file must not keep the others from being written
                logger.exception("TensorBoard: writing failed")
        self._flush_due(_FLUSH_INTERVAL_S)

    def _flush_due(self, interval_s: float) -> None:
        now = time.monotonic()
        for key, since in list(self._dirty_since.items()):
            if now - since >= interval_s:
                self._writers[key].flush()
                del self._dirty_since[key]

    def _add(self, key: Trial | str, directory: str, summary: Summary, step: int = 0,
             wall_time: float | None = None) -> None:
        writer = self._writers.get(key)
        if writer is None:
            if directory in self._unwritable:
                return
            try:
                if isinstance(key, Trial):  # its trial's directory, but never the experiment's again
                    make_dir_private(directory)  # (deleted or moved away under the run, it stays so)
                path = tensorboard_file(directory, int(time.time()), _HOSTNAME, os.getpid(), next(self._counter))
                writer = self._writers[key] = RecordWriter(path)
                os.chmod(path, PRIVATE_FILE_MODE)
                writer.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
            except OSError as exc:
                self._unwritable.add(directory)
                logger.error("TensorBoard: cannot write to %s: %s", directory, exc)
                return
        wall_time = time.time() if wall_time is None else wall_time
        writer.write(Event(summary=summary, step=step, wall_time=wall_time).SerializeToString())
        self._dirty_since.setdefault(key, time.monotonic())

    def close(self, key: Trial | str) -> None:
        writer = self._writers.pop(key, None)
        self._dirty_since.pop(key, None)
        if writer is not None:
            writer.close()

    def write_result(self, trial: Trial, directory: str, result: dict[str, Any], step: int, wall_time: float) -> None:
        values = _scalar_values(result, self.exclude)
        self.tags.update((value.tag, None) for value in values)
        self._add(trial, directory, Summary(value=values), int(step), wall_time)

    def write_session_start(self, trial: Trial, directory: str, hparams: dict[str, Any], start_time: float) -> None:
        self._add(trial, directory, _session_start(hparams, start_time), wall_time=start_time)

    def write_session_end(self, trial: Trial, directory: str, status: str, end_time: float) -> None:
        self._add(trial, directory, _session_end(status, end_time), wall_time=end_time)

    def write_experiment(self, directory: str, hparams: Sequence[dict[str, Any]], metric: str | list[str] | None,
                         start_time: float) -> None:
        metrics = list(self.tags)
        if metric is not None:
            first = metric if isinstance(metric, list) else [metric]
            metrics = first + [m for m in metrics if m not in first]
        self._add(directory, directory, _experiment(hparams, metrics, start_time))
        self.close(directory)


def _scalar_values(result: dict[str, Any], exclude: frozenset[str]) -> list[Summary.Value]:
    """One simple_value per numeric key (nested dicts as a/b); TensorBoard shows values beyond
    float32 as infinite. Built directly rather than with tensorboardX.summary.scalar, which costs
    about 20 us a value (a numpy round trip) and logs a warning for every NaN."""
    values = []
    for key, value in result.items():
        if key in exclude:
            continue
        if _is_number(value):
            values.append(Summary.Value(tag=key, simple_value=float(value)))
        elif isinstance(value, dict):
            values += [Summary.Value(tag=name, simple_value=number) for name, number in _flat_numbers(value, key + "/")]
    return values


# The HParams plugin's summaries (tensorboard/plugins/hparams/summary.py, without TensorFlow) -----


def _experiment(hparams: Sequence[dict[str, Any]], metrics: Sequence[str], start_time: float) -> Any:
    """The experiment-level summary: each hyperparameter's type and the values seen, each metric."""
    from tensorboardX.proto.api_pb2 import DataType, Experiment, HParamInfo, Interval, MetricInfo, MetricName
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    seen: dict[str, list[Any]] = {}
    for values in hparams:
        for name, value in values.items():
            seen.setdefault(name, []).append(_hparam_value(value))
    infos = []
    for name, values in seen.items():
        if all(isinstance(v, bool) for v in values):
            info = HParamInfo(name=name, type=DataType.Value("DATA_TYPE_BOOL"))
            info.domain_discrete.extend(sorted(set(values)))
        elif all(isinstance(v, float) for v in values):
            info = HParamInfo(name=name, type=DataType.Value("DATA_TYPE_FLOAT64"),
                              domain_interval=Interval(min_value=min(values), max_value=max(values)))
        else:
            info = HParamInfo(name=name, type=DataType.Value("DATA_TYPE_STRING"))
            info.domain_discrete.extend(sorted({str(v) for v in values}))
        infos.append(info)
    experiment = Experiment(hparam_infos=infos, metric_infos=[MetricInfo(name=MetricName(tag=m)) for m in metrics],
                            time_created_secs=start_time)
    return _plugin_summary(_EXPERIMENT_TAG, HParamsPluginData(experiment=experiment, version=0))


def _session_start(hparams: dict[str, Any], start_time: float) -> Any:
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionStartInfo

    info = SessionStartInfo(start_time_secs=start_time)
    for name, value in hparams.items():
        value = _hparam_value(value)
        if isinstance(value, bool):
            info.hparams[name].bool_value = value
        elif isinstance(value, float):
            info.hparams[name].number_value = value
        else:
            info.hparams[name].string_value = str(value)
    return _plugin_summary(_SESSION_START_TAG, HParamsPluginData(session_start_info=info, version=0))


def _session_end(status: str, end_time: float) -> Any:
    from tensorboardX.proto.api_pb2 import Status as SessionStatus
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo

    info = SessionEndInfo(status=SessionStatus.Value(status), end_time_secs=end_time)
    return _plugin_summary(_SESSION_END_TAG, HParamsPluginData(session_end_info=info, version=0))


def _plugin_summary(tag: str, content: Any) -> Any:
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name=_PLUGIN_NAME, content=content.SerializeToString()))
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata)])


def _hparam_value(value: Any) -> bool | float | str:
    """Hyperparameters are booleans, numbers or strings in the HParams plugin."""
    if isinstance(value, bool):
        return value
    if _is_number(value):
        return float(value)
    return value if isinstance(value, str) else str(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) <= _FLOAT_MAX  # report(loss=10**400) has no float: not a number here
    return isinstance(value, (float, np.integer, np.floating))


_FLOAT_MAX = float(np.finfo(np.float64).max)


def _flat_numbers(result: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in flatten_config(result, prefix).items() if _is_number(v)]

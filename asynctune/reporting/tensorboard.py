"""TensorBoard: each trial's results as scalars, and an HParams summary that compares trials.

The layout is the one TensorBoard's HParams plugin reads (`tensorboard --logdir <experiment_dir>`):

    <experiment_dir>/events.out.tfevents.*             the experiment summary: every hyperparameter
                                                       (with the values seen) and every metric
    <experiment_dir>/<trial_id>/events.out.tfevents.*  the trial's scalars, one event per result,
                                                       and its session start info (hyperparameters)
                                                       and session end info (status)

Each trial directory is one TensorBoard run and one HParams session; the plugin's table and
parallel-coordinates view show each session's last value of every metric. Only tensorboardX is
needed (`pip install 'asynctune[tensorboard]'`), not TensorFlow. Writing is asynchronous: the
driver builds one small protobuf per result and tensorboardX's writer thread serialises it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from ..space import Space, resolved_items
from ..trial import Status, Trial
from .callback import Callback

# Fields every result carries that are not worth a chart (the step is training_iteration).
DEFAULT_EXCLUDE = frozenset({"trial_id", "training_iteration", "timestamp", "pid", "hostname", "done"})

_PLUGIN_NAME = "hparams"
_EXPERIMENT_TAG = "_hparams_/experiment"
_SESSION_START_TAG = "_hparams_/session_start_info"
_SESSION_END_TAG = "_hparams_/session_end_info"


def tensorboardx_available() -> bool:
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLogger(Callback):
    """Writes TensorBoard event files: scalars per trial and the HParams comparison of all trials.

    `asynctune.run()` installs it when tensorboardX is installed (pass `tensorboard=False` to
    turn it off); add it yourself to choose its options.

    Example:
        >>> asynctune.run(train, config=space, metric="loss", mode="min",
        ...               callbacks=[TensorBoardLogger(exclude={"time_this_iter_s"})])
        $ tensorboard --logdir ~/asynctune_results/<experiment>

    Args:
        metric: The metric listed first in the HParams view (default: every numeric result key).
        space: The search space; with it the HParams view shows only the sampled hyperparameters,
            without it every scalar of the config (nested keys joined by "/").
        exclude: Result keys not written as scalars.
        flush_secs: How often the writer thread flushes to disk.
    """

    def __init__(self, *, metric: str | None = None, space: Space | None = None,
                 exclude: Collection[str] = DEFAULT_EXCLUDE, flush_secs: float = 5.0) -> None:
        if not tensorboardx_available():
            raise ImportError("TensorBoardLogger needs tensorboardX: pip install 'asynctune[tensorboard]'")
        if metric is not None and not isinstance(metric, str):
            raise ValueError(f"TensorBoardLogger: metric must be a string, got {metric=}")
        if not (isinstance(flush_secs, (int, float)) and flush_secs > 0):
            raise ValueError(f"TensorBoardLogger: flush_secs must be a positive number, got {flush_secs=}")
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        self._Event, self._Summary, self._Value = Event, Summary, Summary.Value
        self.metric, self.space = metric, space
        self.exclude = frozenset(exclude)
        self.flush_secs = flush_secs
        self.experiment_dir: str | None = None
        self._start_time = time.time()
        self._writers: dict[Trial, Any] = {}
        self._sessions_started: set[Trial] = set()
        self._sessions_ended: set[Trial] = set()
        self._metrics: dict[str, None] = {}  # every scalar tag seen, in order
        self._counts: dict[Trial, int] = {}

    # Callback ------------------------------------------------------------------------------------

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Trial]) -> None:
        self.experiment_dir = experiment_dir
        self._start_time = time.time()

    def on_trial_start(self, trial: Trial) -> None:
        writer = self._writer(trial)
        if trial not in self._sessions_started:
            self._sessions_started.add(trial)
            writer.add_event(self._event(_session_start(self._hparams(trial), trial.start_time or time.time())))

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> None:
        writer = self._writers.get(trial) or self._writer(trial)
        values = []
        Value = self._Value
        exclude = self.exclude
        for key, value in result.items():
            if key in exclude:
                continue
            if type(value) is float or type(value) is int:  # the common case, checked cheaply
                values.append(Value(tag=key, simple_value=value))
            elif isinstance(value, dict):
                values.extend(Value(tag=k, simple_value=v) for k, v in _flat_numbers(value, key + "/"))
            elif _is_number(value):
                values.append(Value(tag=key, simple_value=float(value)))
        if len(values) != self._counts.get(trial):  # a new set of keys: remember them for the HParams view
            self._counts[trial] = len(values)
            self._metrics.update((v.tag, None) for v in values)
        event = self._Event(wall_time=result.get("timestamp") or time.time(),
                            step=int(result.get("training_iteration", trial.num_results)),
                            summary=self._Summary(value=values))
        writer.add_event(event)

    def on_trial_decision(self, trial: Trial, decision: str, detail: str = "") -> None:
        if decision == "PAUSE":  # a paused trial may wait long: do not hold a file and a thread for it
            self._close_writer(trial)

    def on_trial_complete(self, trial: Trial) -> None:
        self._end_session(trial, "STATUS_SUCCESS")

    def on_trial_error(self, trial: Trial) -> None:
        self._end_session(trial, "STATUS_FAILURE")

    def on_experiment_end(self, trials: Sequence[Trial]) -> None:
        for trial in trials:
            if trial in self._sessions_started and trial.status.is_finished:
                self._end_session(trial, "STATUS_FAILURE" if trial.status is Status.ERROR else "STATUS_SUCCESS")
        for trial in list(self._writers):
            self._close_writer(trial)
        if self.experiment_dir is not None and any(t.num_results for t in trials):
            self._write_experiment(trials)

    # Writing -------------------------------------------------------------------------------------

    def _writer(self, trial: Trial) -> Any:
        writer = self._writers.get(trial)
        if writer is None:
            from tensorboardX.event_file_writer import EventFileWriter

            directory = trial.path or os.path.join(self.experiment_dir or ".", trial.trial_id)
            writer = self._writers[trial] = EventFileWriter(directory, flush_secs=self.flush_secs)
        return writer

    def _close_writer(self, trial: Trial) -> None:
        writer = self._writers.pop(trial, None)
        if writer is not None:
            writer.close()

    def _end_session(self, trial: Trial, status: str) -> None:
        if trial in self._sessions_ended:
            return
        self._sessions_ended.add(trial)
        writer = self._writers.get(trial) or self._writer(trial)
        writer.add_event(self._event(_session_end(status, trial.end_time or time.time())))
        self._close_writer(trial)

    def _write_experiment(self, trials: Sequence[Trial]) -> None:
        from tensorboardX.event_file_writer import EventFileWriter

        hparams = [self._hparams(t) for t in trials if t.num_results]
        metrics = list(self._metrics) or sorted({k for t in trials for k, _ in _flat_numbers(t.last_result or {})})
        if self.metric in metrics:
            metrics.remove(self.metric)
        metrics = ([self.metric] if self.metric else []) + [m for m in metrics if m not in self.exclude]
        writer = EventFileWriter(self.experiment_dir, flush_secs=self.flush_secs)
        try:
            writer.add_event(self._event(_experiment(hparams, metrics, self._start_time)))
        finally:
            writer.close()

    def _event(self, summary: Any) -> Any:
        return self._Event(wall_time=time.time(), step=0, summary=summary)

    def _hparams(self, trial: Trial) -> dict[str, Any]:
        items = resolved_items(trial.config, self.space) if self.space is not None else _flat(trial.config)
        return {k: v for k, v in items.items() if v is not None}


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
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

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
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _flat_numbers(result: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in _flat(result, prefix).items() if _is_number(v)]

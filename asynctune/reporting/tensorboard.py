"""TensorBoard: each trial's results as scalars, and an HParams summary that compares trials.

The layout is the one TensorBoard's HParams plugin reads (`tensorboard --logdir <experiment_dir>`):

    <experiment_dir>/events.out.tfevents.*             the experiment summary: every hyperparameter
                                                       (with the values seen) and every metric
    <experiment_dir>/<trial_id>/events.out.tfevents.*  the trial's scalars, one event per result,
                                                       and its session start info (hyperparameters)
                                                       and session end info (status)

Each trial directory is one TensorBoard run and one HParams session; the plugin's table and
parallel-coordinates view show each session's last value of every metric. Only tensorboardX is
needed (`pip install 'asynctune[tensorboard]'`), not TensorFlow. The per-result path is lean:
each result becomes one hand-encoded Event (a few microseconds), and the buffered records are
written on the controller's tick, with no thread per trial.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import logging
import math
import os
import socket
import struct
import time
from collections.abc import Callable, Collection, Sequence
from typing import IO, Any

import numpy as np

from ..space import Space, resolved_items
from ..storage import flatten_config
from ..trial import Status, Trial
from .callback import Callback

# Fields every result carries that are not worth a chart (the step is training_iteration).
DEFAULT_EXCLUDE = frozenset({"trial_id", "training_iteration", "timestamp", "pid", "hostname", "done"})

logger = logging.getLogger(__name__)

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
    turn it off); add it yourself to choose its options. Results are encoded as they arrive
    and written to disk on the controller's tick (twice a second) and when a trial ends.

    A trial that reports faster than once every `min_interval_s` is thinned: the results in
    between are skipped (the last one of a burst is always written, and so is every trial's
    final result), which keeps the cost per result well under a microsecond for trials that
    report thousands of times a second. TensorBoard samples long series down to 1,000
    points anyway; result.jsonl keeps every result. `min_interval_s=0` writes them all.

    Example:
        >>> asynctune.run(train, config=space, metric="loss", mode="min", tensorboard=False,
        ...               callbacks=[TensorBoardLogger(metric="loss", exclude={"time_this_iter_s"})])
        $ tensorboard --logdir ~/asynctune_results/<experiment>

    Args:
        metric: The metric listed first in the HParams view (the others follow: every numeric
            result key that was written).
        space: The search space; with it the HParams view shows only the sampled hyperparameters,
            without it every value of the config (nested keys joined by "/").
        exclude: Result keys not written as scalars.
        min_interval_s: Per trial, results closer together than this are thinned (0: none).
    """

    def __init__(self, *, metric: str | None = None, space: Space | None = None,
                 exclude: Collection[str] = DEFAULT_EXCLUDE, min_interval_s: float = 0.01) -> None:
        if not tensorboardx_available():
            raise ImportError("TensorBoardLogger needs tensorboardX: pip install 'asynctune[tensorboard]'")
        if metric is not None and not isinstance(metric, str):
            raise ValueError(f"TensorBoardLogger: metric must be a string, got {metric=}")
        if isinstance(exclude, str) or not all(isinstance(k, str) for k in exclude):
            raise ValueError(f"TensorBoardLogger: exclude must be a collection of result keys, got {exclude=}")
        if not (isinstance(min_interval_s, (int, float)) and 0 <= min_interval_s < math.inf):
            raise ValueError(f"TensorBoardLogger: min_interval_s must be a number >= 0, got {min_interval_s=}")
        self.metric, self.space = metric, space
        self.min_interval_s = float(min_interval_s)
        self.exclude = frozenset(exclude)
        self.experiment_dir: str | None = None
        self._start_time = time.time()
        self._files: dict[Trial, EventFile] = {}
        self._sessions_started: set[Trial] = set()
        self._sessions_ended: set[Trial] = set()
        self._encoder = ScalarEncoder(self.exclude)
        self._io: concurrent.futures.ThreadPoolExecutor | None = None
        self._closing: list[EventFile] = []  # files of ended or paused trials, not yet closed
        self._written_at: dict[Trial, float] = {}
        self._unwritten: dict[Trial, dict[str, Any]] = {}  # the latest result of a burst, per trial

    # Callback ------------------------------------------------------------------------------------

    def on_experiment_start(self, experiment_dir: str, trials: Sequence[Trial]) -> None:
        self.experiment_dir = experiment_dir
        self._start_time = time.time()

    def on_trial_start(self, trial: Trial) -> None:
        events = self._file(trial)
        if trial not in self._sessions_started:
            self._sessions_started.add(trial)
            events.add(_summary_event(_session_start(self._hparams(trial), trial.start_time or time.time())))

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> None:
        if self.min_interval_s:
            now = time.monotonic()
            if now - self._written_at.get(trial, -math.inf) < self.min_interval_s:
                self._unwritten[trial] = result
                return
            self._written_at[trial] = now
            if self._unwritten:
                self._unwritten.pop(trial, None)
        (self._files.get(trial) or self._file(trial)).add(self._encoder.encode(result, trial.num_results))

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
            metrics = list(self._encoder.tags)
            if self.metric is not None:
                metrics = [self.metric] + [m for m in metrics if m != self.metric]
            experiment = EventFile(self.experiment_dir)
            experiment.add(_summary_event(_experiment(hparams, metrics, self._start_time)))
            experiment.closing = True
            self._closing.append(experiment)
        self._hand_over()
        if self._io is not None:
            self._io.shutdown(wait=True)  # every file complete when run() returns
            self._io = None

    def flush(self) -> None:
        """Write everything received so far, and wait until it is on disk."""
        self._hand_over()
        if self._io is not None:
            self._io.submit(lambda: None).result()

    def _hand_over(self) -> None:
        """Give every buffered event, and the files to close, to the I/O thread in one job."""
        for trial in list(self._unwritten):
            self._write_unwritten(trial)
        jobs = [job for events in self._closing for job in events.take_jobs()]
        jobs += [job for events in self._files.values() for job in events.take_jobs()]
        self._closing = []
        if jobs:
            self._io_thread().submit(_run_all, jobs)

    def _io_thread(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._io is None:
            self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="asynctune-tensorboard")
        return self._io

    # Files ---------------------------------------------------------------------------------------

    def _file(self, trial: Trial) -> EventFile:
        events = self._files.get(trial)
        if events is None:
            directory = trial.path or os.path.join(self.experiment_dir or ".", trial.trial_id)
            events = self._files[trial] = EventFile(directory)
        return events

    def _write_unwritten(self, trial: Trial) -> None:
        result = self._unwritten.pop(trial, None)
        if result is not None:
            self._file(trial).add(self._encoder.encode(result, trial.num_results))

    def _close(self, trial: Trial) -> None:
        """Closed by the I/O thread on the next hand-over (the next tick at the latest)."""
        events = self._files.pop(trial, None)
        if events is not None:
            events.closing = True
            self._closing.append(events)

    def _end_session(self, trial: Trial, status: str) -> None:
        if trial in self._sessions_ended:
            return
        self._sessions_ended.add(trial)
        self._write_unwritten(trial)
        self._file(trial).add(_summary_event(_session_end(status, trial.end_time or time.time())))
        self._close(trial)

    def _hparams(self, trial: Trial) -> dict[str, Any]:
        items = resolved_items(trial.config, self.space) if self.space is not None else flatten_config(trial.config)
        return {k: v for k, v in items.items() if v is not None}


# The event file format (TFRecord of Event protobufs), written without TensorFlow -----------------


class EventFile:
    """One `events.out.tfevents.*` file. The event loop adds encoded events; `take_jobs()`
    returns the work for the I/O thread (frame and write them, close the file), which runs it
    later: creating a file can take milliseconds on a busy disk.

    Each record is TFRecord framing around a serialized `Event`: the length (uint64), its
    masked CRC-32C, the data, the data's masked CRC-32C (tensorflow/core/lib/io/record_writer.cc).
    """

    _counter = itertools.count()

    def __init__(self, directory: str) -> None:
        # Unique per process and file, so a trial that starts again never overwrites its old file.
        name = (f"events.out.tfevents.{int(time.time()):010d}.{_HOSTNAME}.{os.getpid()}"
                f".{next(self._counter)}.asynctune")
        self.directory = directory
        self.path = os.path.join(directory, name)
        self._pending: list[bytes] = [_encode_event(time.time(), 0, file_version=b"brain.Event:2")]
        self._file: IO[bytes] | None = None  # opened by the I/O thread
        self.closing = False

    def add(self, event: bytes) -> None:
        self._pending.append(event)

    def take_jobs(self) -> list[Callable[[], None]]:
        jobs: list[Callable[[], None]] = []
        if self._pending:
            pending, self._pending = self._pending, []
            jobs.append(functools.partial(self._write, pending))
        if self.closing:
            jobs.append(self._close)
        return jobs

    # In the I/O thread; one thread, so a file's writes stay in order.

    def _write(self, pending: list[bytes]) -> None:
        try:
            if self._file is None:
                os.makedirs(self.directory, exist_ok=True)
                self._file = open(self.path, "ab")
            self._file.write(b"".join(map(_frame, pending)))
            self._file.flush()
        except OSError as exc:
            logger.error("TensorBoard: cannot write %s: %s", self.path, exc)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ScalarEncoder:
    """Encodes a result as one `Event` holding a `Summary` with one simple_value per numeric key.

    Hand-written protobuf encoding: a few microseconds per result, where building protobuf
    objects costs ten times more. The bytes of each tag are computed once."""

    def __init__(self, exclude: frozenset[str]) -> None:
        self.exclude = exclude
        self.tags: dict[str, None] = {}  # every tag written, in order of first appearance
        self._prefixes: dict[str, bytes] = {}
        self._plans: dict[tuple[str, ...], list[tuple[str, bytes]]] = {}

    def encode(self, result: dict[str, Any], default_step: int) -> bytes:
        # Results of a trial have the same keys, so the keys to write are looked up once per
        # set of keys, and the loop below skips the excluded ones without looking.
        keys = tuple(result)
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._plans[keys] = [(k, self._prefix(k)) for k in keys if k not in self.exclude]
            self.tags.update((k, None) for k, _ in plan if type(result[k]) in (float, int))
        parts = []
        pack = _FLOAT.pack
        for key, prefix in plan:
            value = result[key]
            if type(value) is float or type(value) is int:
                try:
                    parts.append(prefix + pack(value))
                except OverflowError:
                    parts.append(prefix + _float32(value))
            elif isinstance(value, dict):
                for name, number in _flat_numbers(value, key + "/"):
                    self.tags[name] = None
                    parts.append(self._prefix(name) + _float32(number))
            elif _is_number(value):
                self.tags[key] = None
                parts.append(prefix + _float32(float(value)))
        summary = b"".join(parts)
        step = result.get("training_iteration", default_step)
        if type(step) is not int:
            step = int(step)
        wall_time = result.get("timestamp") or time.time()
        size = len(summary)
        if 0 <= step < 0x80 and size < 0x80:  # the common case, without calls
            return b"\x09" + _DOUBLE.pack(wall_time) + b"\x10" + _SMALL_VARINTS[step] + b"\x2a" + _SMALL_VARINTS[size] + summary
        return _encode_event(wall_time, step, summary=summary)

    def _prefix(self, key: str) -> bytes:
        """Summary.value (field 1) holding a Value with tag (field 1) and simple_value (field 2) next."""
        prefix = self._prefixes.get(key)
        if prefix is not None:
            return prefix
        tag = key.encode()
        inner = b"\x0a" + _varint(len(tag)) + tag + b"\x15"
        prefix = self._prefixes[key] = b"\x0a" + _varint(len(inner) + 4) + inner
        return prefix


def _run_all(jobs: Sequence[Callable[[], None]]) -> None:
    for job in jobs:
        try:
            job()
        except Exception:  # one bad file must not keep the others from being written
            logger.exception("TensorBoard: writing failed")


def _encode_event(wall_time: float, step: int, *, summary: bytes | None = None,
                  file_version: bytes | None = None) -> bytes:
    """Event: wall_time (1, double), step (2, int64), file_version (3, string), summary (5)."""
    out = b"\x09" + _DOUBLE.pack(wall_time) + b"\x10" + _varint(step)
    if file_version is not None:
        out += b"\x1a" + _varint(len(file_version)) + file_version
    if summary is not None:
        out += b"\x2a" + _varint(len(summary)) + summary
    return out


def _summary_event(summary: Any) -> bytes:
    return _encode_event(time.time(), 0, summary=summary.SerializeToString())


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL_VARINTS[value]
    value &= 0xFFFFFFFFFFFFFFFF  # int64: negative numbers take ten bytes, as in protobuf
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _float32(value: float) -> bytes:
    try:
        return _FLOAT.pack(value)
    except OverflowError:  # beyond float32: TensorBoard shows it as infinite
        return _FLOAT.pack(math.copysign(math.inf, value))


def _frame(data: bytes) -> bytes:
    size = len(data)
    header = _HEADERS.get(size)
    if header is None:  # results of a trial have a few sizes: compute each header's CRC once
        length = _LENGTH.pack(size)
        header = _HEADERS[size] = length + _CRC.pack(_masked_crc(length))
    return header + data + _CRC.pack(_masked_crc(data))


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _load_crc32c() -> Callable[[bytes], int]:
    """A native CRC-32C (the `crc32c` or `google-crc32c` package) if installed: about 1 us a
    record, where tensorboardX's pure-Python one takes about 40 us."""
    try:
        from crc32c import crc32c

        return crc32c  # type: ignore[no-any-return]
    except ImportError:
        pass
    try:
        import google_crc32c

        return google_crc32c.value  # type: ignore[no-any-return]
    except ImportError:
        pass
    from tensorboardX.crc32c import crc32c as slow_crc32c

    return slow_crc32c  # type: ignore[no-any-return]


_crc32c = _load_crc32c()
_HOSTNAME = socket.gethostname()
_DOUBLE, _FLOAT, _LENGTH, _CRC = struct.Struct("<d"), struct.Struct("<f"), struct.Struct("<Q"), struct.Struct("<I")
_SMALL_VARINTS = [bytes([i]) for i in range(0x80)]
_HEADERS: dict[int, bytes] = {}


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


def _flat_numbers(result: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in flatten_config(result, prefix).items() if _is_number(v)]

"""What every integration shares: importing its library, choosing metrics, and a tracker's I/O thread."""

from __future__ import annotations

import concurrent.futures
import importlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..store.layout import flatten_config

logger = logging.getLogger(__name__)

# Fields every result carries that a tracker does not chart (the step is training_iteration).
RESULT_FIELDS_NOT_LOGGED = frozenset({"trial_id", "training_iteration", "timestamp", "pid", "hostname", "done"})
# Tag (MLflow) or config key (W&B) that ties a tracker run to its trial, so a resume finds it.
TRIAL_ID_TAG = "asynctune.trial_id"
STATUS_TAG = "asynctune.status"
EXPERIMENT_DIR_TAG = "asynctune.experiment_dir"


def require(module: str, extra: str, feature: str) -> Any:
    """Import `module`, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{feature} needs {module.split('.')[0]}: pip install 'asynctune[{extra}]'") from exc


def metric_names(metrics: str | Sequence[str] | Mapping[str, str] | None, owner: str) -> dict[str, str] | None:
    """`metrics=` as {name reported to asynctune: name in the framework}; None reports them all.

    A string or a list keeps the framework's names; a dict renames ({"loss": "val_loss"})."""
    if metrics is None:
        return None
    if isinstance(metrics, str):
        return {metrics: metrics}
    if isinstance(metrics, Mapping):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metrics.items()) or not metrics:
            raise ValueError(f"{owner}: metrics must map reported names to the framework's names, got {metrics=}")
        return dict(metrics)
    if isinstance(metrics, Sequence) and metrics and all(isinstance(m, str) for m in metrics):
        return {m: m for m in metrics}
    raise ValueError(f"{owner}: metrics must be a name, a list of names or a dict {{reported: framework's}}, "
                     f"got {metrics=}")


def select_metrics(available: Mapping[str, Any], names: dict[str, str] | None, owner: str) -> dict[str, Any]:
    """The metrics to report, renamed; a name the framework did not log is an error naming those it did."""
    if names is None:
        return dict(available)
    missing = [source for source in names.values() if source not in available]
    if missing:
        raise KeyError(f"{owner}: metric(s) {missing} not logged by the framework at this step; "
                       f"it logged {sorted(available)}")
    return {reported: available[source] for reported, source in names.items()}


def checked_postprocessing_fn(fn: Any, owner: str) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    if fn is not None and not callable(fn):
        raise ValueError(f"{owner}: results_postprocessing_fn must be a function dict -> dict, got {fn!r}")
    return fn


def postprocess(metrics: dict[str, Any], fn: Callable[[dict[str, Any]], dict[str, Any]] | None) -> dict[str, Any]:
    """`fn(metrics)` when given: the dict a user's results_postprocessing_fn makes is what is reported."""
    if fn is None:
        return metrics
    changed = fn(metrics)
    if not isinstance(changed, Mapping):
        raise TypeError(f"results_postprocessing_fn must return a dict of metrics, got {type(changed).__name__}")
    return dict(changed)


def positive_int_or_zero(value: Any, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{owner}: {name} must be an int >= 0, got {name}={value!r}")
    return value


def numeric_metrics(result: Mapping[str, Any], exclude: frozenset[str]) -> dict[str, float]:
    """Every number in a result (nested dicts as a/b), for a tracker's charts."""
    out = {}
    for key, value in flatten_config(dict(result)).items():
        if key in exclude or isinstance(value, bool) or not _is_number(value):
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError, OverflowError):  # an int beyond float's range
            continue
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) or (type(value).__module__ == "numpy" and hasattr(value, "dtype")
                                               and value.dtype.kind in "iuf")


def experiment_name_of(experiment_dir: str) -> str:
    return os.path.basename(os.path.normpath(experiment_dir))


def trial_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as flat parameters ("net/width": 8); values that are not plain become their repr."""
    return {k: v if isinstance(v, (str, int, float, bool)) or v is None else repr(v)
            for k, v in flatten_config(dict(config)).items()}


class TrackerThread:
    """One I/O thread per tracker: the event loop only queues calls, which run in order.

    A call that fails is logged (once per kind of failure) and the others go on, so a tracker
    that is down costs the experiment its charts, never its trials."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._failed: set[str] = set()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"asynctune-{self.name}")
        return self._pool.submit(self._call, fn, *args, **kwargs)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            kind = f"{getattr(fn, '__name__', fn)}:{type(exc).__name__}"
            if kind not in self._failed:
                self._failed.add(kind)
                logger.exception("%s: %s failed (later failures of this kind are not logged)", self.name,
                                 getattr(fn, "__name__", fn))
            return None

    def flush(self) -> None:
        """Wait until every call queued so far has run."""
        if self._pool is not None:
            self._pool.submit(lambda: None).result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def report_with_checkpoint(metrics: dict[str, Any], save: Callable[[str], None] | None) -> None:
    """`asynctune.report(metrics)`, with a checkpoint that `save(directory)` writes when given.

    The framework writes straight into the checkpoint's place in the trial's directory: a scratch
    directory elsewhere would be copied (a large model written twice) and, when the worker is
    killed mid-save, left behind in the temp directory with the model in it."""
    from ..worker.recordable import check_result
    from ..worker.session import _session

    session = _session("report")
    if save is None:
        return session.report(metrics)
    check_result(metrics)  # before the checkpoint is written: a result it cannot belong to is named now
    session.report(metrics, checkpoint_dir=session.save_checkpoint_with(save, ahead=1))


def plain_filename(filename: Any, owner: str) -> str:
    if not isinstance(filename, str) or not filename or os.path.basename(filename) != filename:
        raise ValueError(f"{owner}: filename must be a plain file name, got {filename=}")
    return filename


def load_file(loader: Callable[..., Any], filename: str, checkpoint: Any = None) -> Any:
    """`loader(model_file=<filename in the checkpoint>)`, or None on a fresh start."""
    path = checkpoint_file(filename, checkpoint)
    return None if path is None else loader(model_file=path)


def checkpoint_file(filename: str, checkpoint: Any = None) -> str | None:
    """The file `filename` in the checkpoint to resume from (default: `asynctune.get_checkpoint()`),
    or None on a fresh start."""
    if checkpoint is None:
        from ..worker.session import get_checkpoint

        checkpoint = get_checkpoint()
        if checkpoint is None:
            return None
    if not isinstance(checkpoint, (str, os.PathLike)) or not os.path.isdir(checkpoint):
        raise ValueError(f"expected a checkpoint directory written by an asynctune integration, got {checkpoint!r}")
    path = os.path.join(os.fspath(checkpoint), filename)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {checkpoint} has no {filename} "
                                f"(it holds {sorted(os.listdir(checkpoint))}); was it saved with another filename=?")
    return path

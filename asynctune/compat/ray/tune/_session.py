"""The trial side: Ray's `tune.report`, `tune.get_checkpoint`, `tune.Checkpoint`, `tune.get_context`
on top of asynctune's session (a checkpoint is a directory, copied into the trial's directory)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import asynctune as _at
from ....store.names import CHECKPOINT_PREFIX
from ....worker.session import get_checkpoint_dir, load_checkpoint, write_checkpoint_data
from ._placement import PlacementGroupFactory

METADATA_FILE = ".metadata.json"  # Ray's name for the checkpoint's metadata, kept with its files


class Checkpoint:
    """A directory of files: Ray's `tune.Checkpoint` / `train.Checkpoint`.

    Example:
        >>> with tempfile.TemporaryDirectory() as d:
        ...     torch.save(model.state_dict(), os.path.join(d, "model.pt"))
        ...     tune.report({"loss": loss}, checkpoint=tune.Checkpoint.from_directory(d))
        >>> checkpoint = tune.get_checkpoint()
        >>> with checkpoint.as_directory() as d:
        ...     model.load_state_dict(torch.load(os.path.join(d, "model.pt")))
    """

    def __init__(self, path: str | os.PathLike[str], filesystem: Any = None) -> None:
        if filesystem is not None:
            raise ValueError("Checkpoint: only local directories are supported (filesystem= must be None)")
        self._path: str | None = os.fspath(path)
        self.filesystem = None
        self._temporary = False
        self._data: dict[str, Any] | None = None  # from_dict's, until its directory is needed

    @property
    def path(self) -> str:
        """The checkpoint's directory (a dict checkpoint's is written when first asked for)."""
        if self._path is None:
            assert self._data is not None
            self._path = tempfile.mkdtemp(prefix=CHECKPOINT_PREFIX)
            write_checkpoint_data(self._path, self._data)
            self._temporary = True  # report() copies it into the trial's directory, then removes it
        return self._path

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str]) -> Checkpoint:
        if not os.path.isdir(path):
            raise ValueError(f"Checkpoint.from_directory: {os.fspath(path)!r} is not a directory")
        return cls(os.path.abspath(path))  # a relative one still names it after a change of directory

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Ray 2.0-2.6's dict checkpoint: the dict in a new directory, pickled and signed with
        your key (docs/security.md), read back with `to_dict()`."""
        if not isinstance(data, Mapping):
            raise TypeError(f"Checkpoint.from_dict takes a dict, got {type(data).__name__}")
        checkpoint = cls("")
        # Kept as a dict: report() writes it once, into the trial's directory (a directory first
        # and a copy after wrote a large state dict twice).
        checkpoint._path, checkpoint._data = None, dict(data)
        return checkpoint

    def to_dict(self) -> dict[str, Any]:
        """The dict of a checkpoint made by `from_dict`."""
        if self._data is not None:
            return dict(self._data)
        data = load_checkpoint(self.path)
        if not isinstance(data, dict):
            raise ValueError(f"Checkpoint.to_dict: {self.path} holds files, not a dict; read them with "
                             "as_directory()")
        return data

    def get_metadata(self) -> dict[str, Any]:
        """The JSON metadata stored with the checkpoint (`set_metadata`), {} if none (Ray 2.7+)."""
        path = os.path.join(self._directory("get_metadata"), METADATA_FILE)
        if not os.path.exists(path):
            return {}
        with open(path) as f:
            return json.load(f)

    def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Store a JSON-serializable dict with the checkpoint's files, replacing any earlier one."""
        try:
            text = json.dumps(dict(metadata))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Checkpoint.set_metadata: the metadata must be JSON-serializable ({exc})") from exc
        with open(os.path.join(self._directory("set_metadata"), METADATA_FILE), "w") as f:
            f.write(text)

    def update_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Add these keys to the checkpoint's metadata."""
        self.set_metadata({**self.get_metadata(), **metadata})

    def _directory(self, method: str) -> str:
        if self._data is not None:
            raise ValueError(f"Checkpoint.{method}: a dict checkpoint (Checkpoint.from_dict) has no metadata; keep "
                             "the values in the dict, or use Checkpoint.from_directory")
        return self.path

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """The checkpoint's directory, to read (it is local already: no copy is made)."""
        yield self.path

    def to_directory(self, path: str | os.PathLike[str] | None = None) -> str:
        """Copy the checkpoint's files into `path` (a new temporary directory by default)."""
        target = os.fspath(path) if path is not None else tempfile.mkdtemp(prefix=CHECKPOINT_PREFIX)
        shutil.copytree(self.path, target, dirs_exist_ok=True)
        return target

    # A dict checkpoint is its own object: comparing or printing it must not write its directory.
    def __eq__(self, other: object) -> bool:
        if self._data is not None or not isinstance(other, Checkpoint) or other._data is not None:
            return self is other
        return os.path.realpath(other.path) == os.path.realpath(self.path)

    def __hash__(self) -> int:
        return id(self) if self._data is not None else hash(os.path.realpath(self.path))

    def __repr__(self) -> str:
        if self._data is not None:
            return f"Checkpoint(dict with keys {sorted(map(str, self._data))})"
        return f"Checkpoint(path={self.path!r})"


def report(metrics: Mapping[str, Any] | None = None, *, checkpoint: Checkpoint | None = None,
           checkpoint_dir_name: str | None = None, **keywords: Any) -> None:
    """Ray's `tune.report(metrics, checkpoint=...)`: one result, and optionally a checkpoint whose
    files are copied into the trial's directory before this returns. Ray 1.x's keyword form,
    `tune.report(loss=0.1, accuracy=0.9)`, reports those keywords."""
    if metrics is None and keywords:
        metrics = keywords
    elif keywords:
        raise TypeError(f"tune.report: unexpected keyword arguments {sorted(keywords)}; give every metric in the "
                        "dict: tune.report({'loss': 0.1, ...}, checkpoint=...)")
    if not isinstance(metrics, Mapping):
        raise TypeError(f"tune.report takes a dict of metrics, got {type(metrics).__name__}; e.g. "
                        "tune.report({'loss': 0.1})")
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"tune.report: checkpoint must be a tune.Checkpoint, got {type(checkpoint).__name__}; "
                        "use tune.Checkpoint.from_directory(path)")
    saved: dict[str, Any] | str | None = None
    if checkpoint is not None:
        saved = checkpoint._data if checkpoint._data is not None else checkpoint.path
        if isinstance(saved, str) and _holds_trial_directory(saved):
            raise ValueError(f"tune.report: the checkpoint directory {saved!r} holds the trial's own directory (where "
                             "the trial runs, as in Ray), with its results and earlier checkpoints; save the files "
                             "into a directory of their own, e.g. Checkpoint.from_directory('my_model') or a "
                             "tempfile.TemporaryDirectory()")
    try:
        _at.report(with_flat_keys(metrics), checkpoint=saved)
    finally:  # a decision (stop, pause) arrives as an exception from report
        if checkpoint is not None and checkpoint._temporary:  # a dict checkpoint's directory, made for .path
            shutil.rmtree(checkpoint.path, ignore_errors=True)
            checkpoint._path, checkpoint._temporary = None, False  # made again if asked for


def _holds_trial_directory(path: str) -> bool:
    trial = os.path.realpath(_at.get_trial_dir())
    return os.path.commonpath([os.path.realpath(path), trial]) == os.path.realpath(path)


def with_flat_keys(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The result with each nested value also under its `a/b` name: Ray's schedulers, searchers,
    stoppers and best-result read results flattened, so metric="val/loss" names {"val": {"loss": x}}.
    The nested value stays (Ray's Result.metrics keeps it); a flat key the trial reported wins."""
    result = dict(metrics)
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            for name, leaf in _leaves(value, str(key)):
                result.setdefault(name, leaf)
    return result


def _leaves(mapping: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in mapping.items():
        name = f"{prefix}/{key}"
        if isinstance(value, Mapping):
            yield from _leaves(value, name)
        else:
            yield name, value


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint to resume from (after a pause, a PBT exploit, a retry, a restore), or None."""
    path = get_checkpoint_dir()  # a dict checkpoint's too (Checkpoint.from_dict): to_dict() reads it
    return Checkpoint(path) if path is not None else None


class TuneContext:
    """What `tune.get_context()` returns inside a trial."""

    def get_trial_id(self) -> str:
        return _at.get_trial_id()

    def get_trial_name(self) -> str:
        return _at.get_trial_id()

    def get_trial_dir(self) -> str:
        return _at.get_trial_dir()

    def get_experiment_name(self) -> str:
        return os.path.basename(os.path.dirname(_at.get_trial_dir()))

    def get_trial_resources(self) -> Any:
        """What the trial was given, as Ray says it: a PlacementGroupFactory of one bundle
        ({"CPU": n, "GPU": m}); `asynctune.get_trial_resources()` has the GPU ids and host."""
        placement = _at.get_trial_resources()
        return PlacementGroupFactory([{"CPU": placement.get("cpu", 1), "GPU": placement.get("gpu", 0)}])

    def get_world_size(self) -> int:
        return 1

    def get_world_rank(self) -> int:
        return 0

    def get_local_rank(self) -> int:
        return 0

    def get_local_world_size(self) -> int:
        return 1

    def get_node_rank(self) -> int:
        return 0

    def get_storage(self) -> Any:
        return None


def get_context() -> TuneContext:
    return TuneContext()

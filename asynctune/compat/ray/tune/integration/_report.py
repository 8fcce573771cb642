"""What Ray's framework callbacks share on top of asynctune.integrations: Ray's `metrics=` type and
`get_model(checkpoint)` on a `tune.Checkpoint`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import _session

Metrics = str | Sequence[str] | Mapping[str, str] | None


def load_from(checkpoint: _session.Checkpoint, filename: str, load: Callable[..., Any]) -> Any:
    """`load(directory, filename=)` on a tune.Checkpoint (the model is read before the directory goes)."""
    if not isinstance(checkpoint, _session.Checkpoint):
        raise TypeError(f"get_model takes a tune.Checkpoint (e.g. result.checkpoint), got {checkpoint!r}")
    with checkpoint.as_directory() as directory:
        return load(directory, filename=filename)

"""Ray's `log_to_driver`: what each trial prints appears in the driver's console too, each line
prefixed with its trial, as Ray prefixes its workers' lines. asynctune keeps a trial's output in
its directory's stdout.txt / stderr.txt; this callback follows those files."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TextIO

import asynctune as _at
from asynctune.store.names import stderr_file, stdout_file


class TrialOutputEcho(_at.Callback):
    """Copies the new lines of each trial's stdout.txt / stderr.txt to the driver's stdout /
    stderr, about twice a second and when the trial ends.

    Example:
        >>> TrialOutputEcho()  # the compat Tuner adds it unless ray.init(log_to_driver=False)
    """

    def __init__(self) -> None:
        self._read: dict[str, int] = {}  # bytes of each file already shown

    def on_tick(self, trials: Sequence[_at.Trial]) -> None:
        for trial in trials:
            if trial.status is _at.Status.RUNNING:
                self._echo(trial, whole_lines_only=True)

    def on_trial_complete(self, trial: _at.Trial) -> None:
        self._echo(trial, whole_lines_only=False)

    def on_trial_error(self, trial: _at.Trial) -> None:
        self._echo(trial, whole_lines_only=False)

    def on_experiment_end(self, trials: Sequence[_at.Trial]) -> None:
        for trial in trials:  # what the last tick left, e.g. of paused trials
            self._echo(trial, whole_lines_only=False)

    def _echo(self, trial: _at.Trial, *, whole_lines_only: bool) -> None:
        if not trial.path:
            return
        for path, stream in ((stdout_file(trial.path), sys.stdout), (stderr_file(trial.path), sys.stderr)):
            self._copy_new_lines(trial.trial_id, path, stream, whole_lines_only)

    def _copy_new_lines(self, trial_id: str, path: str, stream: TextIO, whole_lines_only: bool) -> None:
        start = self._read.get(path, 0)
        try:
            if os.path.getsize(path) <= start:
                return
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read()
        except OSError:  # not written yet, or moved on with an idle worker
            return
        if whole_lines_only:  # a line still being written is shown once it ends
            data = data[:data.rfind(b"\n") + 1]
        if not data:
            return
        self._read[path] = start + len(data)
        text = data.decode("utf-8", errors="replace")
        stream.write("".join(f"({trial_id}) {line}\n" for line in text.splitlines()))
        stream.flush()

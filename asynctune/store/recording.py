"""How a run writes its results: the executor's `recording` (see RECORDINGS).

- "files" (every real executor): each result is appended to the trial's result.jsonl and
  flushed as it arrives (progress.csv on the controller's tick); nothing is lost when the driver
  is killed.
- "batched": the same files, with no disk access per result: a trial's results are kept as
  encoded lines and appended by one writer thread at the controller's tick (twice a second)
  and when the trial ends.
- "consolidated" (the simulated executor's default): no directory per trial; every trial's
  results go to one results.jsonl at the top of the experiment (each line names its trial),
  appended by the writer thread twice a second; the configs are in experiment.json, written at
  the end, and there is no journal. A simulation that makes thousands of trials a second makes
  no thousands of directories. Read it with ExperimentAnalysis as any other.

A driver killed in a batched or consolidated run loses what was not written yet: a simulation
is rerun, not resumed (resume() refuses an unfinished consolidated experiment).
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import logging
import os
from collections.abc import Callable
from typing import Any, Union

from .vanished import check_file
from .private_files import create_private, make_dir_private, makedirs_private, open_private
from .layout import (DAMAGED_SUFFIX, ERROR_FILE, PARAMS_FILE, PROGRESS_FILE, RESULT_FILE, RESULTS_REWOUND_FILE, REWOUND_FILE,
                      is_plain_json, is_scalar, read_csv_header, dumps, open_append, open_append_fd, read_jsonl,
                      read_results, write_all, write_params)

logger = logging.getLogger(__name__)

RECORDINGS = ("files", "batched", "consolidated")


class TrialRecorder:
    """Appends a trial's results to result.jsonl, one write(2) per result as it arrives, and
    to progress.csv, whose rows are kept in memory and written on the controller's tick.

    A trial whose directory is made here (a new trial) gets its files with one system call
    each and progress.csv only once it has rows: on a file system where creating a file costs
    as much as a hundred pipe round trips, a trial that reports once costs a handful of calls."""

    _CSV_BUFFER = 1 << 16  # rows kept in memory beyond this are written before the tick

    def __init__(self, trial_dir: str) -> None:
        self.trial_dir = trial_dir
        self._new = make_dir_private(trial_dir)  # made now: nothing is in it yet
        self._csv_new = self._new  # progress.csv is not there yet either
        self._json_path = os.path.join(trial_dir, RESULT_FILE)
        self._csv_path = os.path.join(trial_dir, PROGRESS_FILE)
        # A new trial's result.jsonl is made once it is launched (`open_results`), while its worker
        # starts it: one file less to make before the worker has its trial.
        self._json: int | None = None if self._new else open_append_fd(self._json_path)
        self._json_new = self._new
        self._columns: list[str] | None = None if self._new else _columns_of(self._csv_path)
        self._csv: int | None = None  # opened when the first rows are written
        self._rows = io.StringIO()
        self._csv_writer = csv.writer(self._rows)

    def write_params(self, config: dict[str, Any]) -> None:
        new, self._new = self._new, False  # only the first write finds the directory empty
        write_params(self.trial_dir, config, new=new)

    def open_results(self) -> None:
        """Make (or open) result.jsonl now, if that was not done yet."""
        if self._json is None:
            self._json = open_append_fd(self._json_path, new=self._json_new)
            self._json_new = False

    def record(self, result: dict[str, Any]) -> None:
        if self._json is None:
            self.open_results()
        write_all(self._json, (dumps(result) + "\n").encode())  # type: ignore[arg-type]  # in the page cache now: a killed driver keeps it
        if self._columns is None:
            # The first result fixes the columns; keys that appear later are in result.jsonl.
            self._columns = [k for k, v in result.items() if is_scalar(v)]
            self._csv_writer.writerow(self._columns)
        get = result.get
        self._csv_writer.writerow([get(k, "") for k in self._columns])
        if self._rows.tell() > self._CSV_BUFFER:
            self._write_rows()

    def _write_rows(self) -> None:
        """progress.csv is a convenience copy: its rows go out on the controller's tick (or when
        many collect), not per result; result.jsonl above is the durable record."""
        rows = self._rows.getvalue()
        if not rows:
            return
        if self._csv is None:
            self._csv = open_append_fd(self._csv_path, new=self._csv_new)
            self._csv_new = False
        self._rows.seek(0)
        self._rows.truncate()
        write_all(self._csv, rows.encode())

    def flush(self) -> None:
        self._write_rows()
        if self._json is not None:  # on the controller's tick, not per result: one fstat twice a second
            check_file(self._json, self._json_path)  # deleted meanwhile: the trial's results are gone

    def rewind(self, iteration: int) -> list[dict[str, Any]]:
        """Keep only results up to `iteration` (a restart from that checkpoint reports the rest
        again); the others move to result.rewound.jsonl, so nothing is lost or counted twice."""
        try:
            self._write_rows()
        finally:
            self._close_files()
        results = read_results(self.trial_dir)
        kept = [r for r in results if int(r.get("training_iteration", 0)) <= iteration]
        dropped = [r for r in results if int(r.get("training_iteration", 0)) > iteration]
        try:
            if dropped:
                with open_append(os.path.join(self.trial_dir, REWOUND_FILE)) as f:
                    for result in dropped:
                        f.write(dumps(result) + "\n")
                _rewrite_jsonl(os.path.join(self.trial_dir, RESULT_FILE), kept)
                _rewrite_csv(self._csv_path, self._columns, kept)
        finally:  # also when a write failed: the recorder goes on with a file that is open
            self._csv_new = self._json_new = False
            self._json = open_append_fd(self._json_path)
        return kept

    def write_error(self, attempt: int, error: str, traceback: str) -> None:
        with open_private(os.path.join(self.trial_dir, ERROR_FILE), "a") as f:
            f.write(f"--- attempt {attempt}: {error}\n{traceback}\n")

    def close(self) -> None:
        try:
            self._write_rows()
        finally:
            self._close_files()

    def _close_files(self) -> None:
        for fd in (self._json, self._csv):
            if fd is not None:
                os.close(fd)
        self._json = self._csv = None


class BatchWriter:
    """One thread that writes what batched and consolidated recorders hand it. Jobs collect
    until `hand_over()` (the controller's tick, twice a second) gives them to the thread at
    once: it wakes twice a second rather than per trial, so it seldom competes with the
    controller for the interpreter. `close()` writes what is left and waits.

    With `results_file` (recording="consolidated") it also holds the experiment's ResultsLog,
    whose lines it takes at each hand-over."""

    def __init__(self, results_file: str | None = None) -> None:
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="asynctune-writer")
        self._jobs: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._last: concurrent.futures.Future[None] | None = None
        self.results = ResultsLog(results_file, self) if results_file is not None else None

    def add(self, job: Callable[..., None], *args: Any) -> None:
        self._jobs.append((job, args))

    def hand_over(self) -> None:
        if self.results is not None:
            self.results.flush()
        if self._jobs:
            jobs, self._jobs = self._jobs, []
            self._last = self._thread.submit(_run_jobs, jobs)

    def drain(self) -> None:
        """Until everything added so far is on disk."""
        self.hand_over()
        if self._last is not None:
            self._last.result()

    def close(self) -> None:
        self.hand_over()
        self._thread.shutdown(wait=True)
        if self.results is not None:
            self.results.close()


def _run_jobs(jobs: list[tuple[Callable[..., None], tuple[Any, ...]]]) -> None:
    for job, args in jobs:
        job(*args)


class BatchedTrialRecorder:
    """TrialRecorder's files, written in batches: results are encoded as they arrive (so the
    result dicts are not kept) and handed to `writer` by `flush()` (the controller's tick) and
    `close()`; the trial's directory and params.json are made by its first write. A write that
    failed is logged and raised by the next flush()."""

    def __init__(self, trial_dir: str, *, writer: BatchWriter | None = None, max_buffered: int = 1000) -> None:
        self.trial_dir = trial_dir
        self._writer, self._max_buffered = writer, max_buffered
        self._params: dict[str, Any] | None = None
        self._lines: list[str] = []
        self._rows = io.StringIO()
        self._csv_writer = csv.writer(self._rows)
        self._columns: list[str] | None = None  # of the first result; the header is written with the first rows
        self._header = ""
        self._failure: OSError | None = None
        self._made = False  # its directory exists (made by an earlier write, or found there)

    def write_params(self, config: dict[str, Any]) -> None:
        self._params = config

    def open_results(self) -> None:
        pass  # its files are made by its first write

    def record(self, result: dict[str, Any]) -> None:
        self._lines.append(dumps(result))
        if self._columns is None:
            self._columns = [k for k, v in result.items() if is_scalar(v)]
            self._csv_writer.writerow(self._columns)
            self._header = self._rows.getvalue()
            self._rows.seek(0)
            self._rows.truncate()
        get = result.get
        self._csv_writer.writerow([get(k, "") for k in self._columns])
        if len(self._lines) >= self._max_buffered:
            self.flush()

    def flush(self) -> None:
        """Hand what is buffered to the writer (or write it, without one)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        if self._params is None and not self._lines:
            return
        params, self._params = self._params, None
        lines = "\n".join(self._lines) + "\n" if self._lines else ""
        rows = self._rows.getvalue()
        self._lines.clear()
        self._rows.seek(0)
        self._rows.truncate()
        if self._writer is None:
            self._write(params, lines, rows)
        else:
            self._writer.add(self.write_or_keep_failure, params, lines, rows)

    def wait(self) -> None:
        """Until everything buffered is on disk; raises a write's failure."""
        self.flush()
        if self._writer is not None:
            self._writer.drain()
        self.flush()

    def write_or_keep_failure(self, params: dict[str, Any] | None, lines: str, rows: str) -> None:
        try:
            self._write(params, lines, rows)
        except OSError as exc:
            logger.error("could not write the results of %s: %s", self.trial_dir, exc)
            self._failure = exc

    def _write(self, params: dict[str, Any] | None, lines: str, rows: str) -> None:
        if not self._made and make_dir_private(self.trial_dir):
            # The directory is new (a simulation makes thousands a second): its files are too, so
            # they are written whole with one system call each, with no check for a torn tail.
            if params is not None and is_plain_json(params):
                _write_new(os.path.join(self.trial_dir, PARAMS_FILE), dumps(params).encode())
            elif params is not None:
                write_params(self.trial_dir, params, indent=None)  # with params.pkl, which keeps the types
            if lines:
                _write_new(os.path.join(self.trial_dir, RESULT_FILE), lines.encode())
                _write_new(os.path.join(self.trial_dir, PROGRESS_FILE), (self._header + rows).encode())
            self._made = True
            return
        self._made = True
        if params is not None:
            write_params(self.trial_dir, params, indent=None)
        if lines:
            with open_append(os.path.join(self.trial_dir, RESULT_FILE)) as f:
                f.write(lines)
            with open_append(os.path.join(self.trial_dir, PROGRESS_FILE), newline="") as f:
                # A new file gets the header (a resumed trial's file has one: its columns stay).
                f.write(self._header + rows if f.tell() == 0 else rows)

    def rewind(self, iteration: int) -> list[dict[str, Any]]:
        """As TrialRecorder.rewind, on the files once everything buffered is written."""
        self.wait()
        recorder = TrialRecorder(self.trial_dir)
        try:
            return recorder.rewind(iteration)
        finally:
            recorder.close()

    def write_error(self, attempt: int, error: str, traceback: str) -> None:
        self.wait()
        makedirs_private(self.trial_dir)
        with open_private(os.path.join(self.trial_dir, ERROR_FILE), "a") as f:
            f.write(f"--- attempt {attempt}: {error}\n{traceback}\n")

    def close(self) -> None:
        self.flush()


class ResultsLog:
    """results.jsonl at the top of a consolidated experiment: every trial's results, a line
    each (the result names its trial_id). Lines collect here and the writer thread appends them
    at each hand-over. A write that failed is logged and kept in `failure`: the controller then
    ends the experiment (every trial's results go here, so no one trial is at fault)."""

    def __init__(self, path: str, writer: BatchWriter) -> None:
        self.path, self._writer = path, writer
        self._lines: list[str] = []
        self._file: Any = None  # opened by the writer thread's first append
        self.failure: OSError | None = None

    def add(self, line: str) -> None:
        self._lines.append(line)

    def flush(self) -> None:
        if self._lines:
            text = "\n".join(self._lines) + "\n"
            self._lines = []
            self._writer.add(self._append, text)

    def _append(self, text: str) -> None:
        if self.failure is not None:
            return  # the experiment is ending; a later line must not follow a gap
        try:
            if self._file is None:
                self._file = open_append(self.path)
            self._file.write(text)
            self._file.flush()
        except OSError as exc:
            logger.error("could not write results to %s: %s", self.path, exc)
            self.failure = exc
            self._drop_file()  # a torn last line is cut when the file is next opened

    def _drop_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass  # what its buffer held is lost with the failure already kept

    def rewind(self, trial_id: str, iteration: int) -> list[dict[str, Any]]:
        """Keep `trial_id`'s results up to `iteration` (see TrialRecorder.rewind): the others move
        to results.rewound.jsonl beside the file. Rare (a restarted trial), so the file is rewritten."""
        self._writer.drain()
        if self.failure is not None:
            raise self.failure
        self.close()
        kept, moved, others = [], [], []
        for result in read_jsonl(self.path):
            if result.get("trial_id") != trial_id:
                others.append(result)
            elif int(result.get("training_iteration", 0)) <= iteration:
                kept.append(result)
            else:
                moved.append(result)
        if moved:
            with open_append(os.path.join(os.path.dirname(self.path), RESULTS_REWOUND_FILE)) as f:
                f.write("".join(dumps(r) + "\n" for r in moved))
            _rewrite_jsonl(self.path, others + kept)
        return kept

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()


class ConsolidatedTrialRecorder:
    """A trial's recorder in a consolidated run: its results go to the experiment's ResultsLog;
    its config is in experiment.json; it has a directory only for checkpoints or an error."""

    def __init__(self, trial_dir: str, results: ResultsLog) -> None:
        self.trial_dir, self._results = trial_dir, results
        self.trial_id = os.path.basename(trial_dir)

    def write_params(self, config: dict[str, Any]) -> None:
        pass  # experiment.json holds it

    def open_results(self) -> None:
        pass  # its results go to the experiment's results.jsonl

    def record(self, result: dict[str, Any]) -> None:
        self._results.add(dumps(result))

    def flush(self) -> None:
        pass  # the writer takes the log's lines at its hand-over; the controller watches its failure

    def rewind(self, iteration: int) -> list[dict[str, Any]]:
        self._results.flush()
        return self._results.rewind(self.trial_id, iteration)

    def write_error(self, attempt: int, error: str, traceback: str) -> None:
        makedirs_private(self.trial_dir)
        with open_private(os.path.join(self.trial_dir, ERROR_FILE), "a") as f:
            f.write(f"--- attempt {attempt}: {error}\n{traceback}\n")

    def close(self) -> None:
        pass


Recorder = Union[TrialRecorder, BatchedTrialRecorder, ConsolidatedTrialRecorder]


def make_recorder(trial_dir: str, recording: str = "files", *, writer: BatchWriter | None = None) -> Recorder:
    """The recorder of one trial's results for the executor's `recording` (see RECORDINGS)."""
    if recording == "batched":
        return BatchedTrialRecorder(trial_dir, writer=writer)
    if recording == "consolidated":
        if writer is None or writer.results is None:
            raise ValueError("recording='consolidated' needs a BatchWriter with a results file")
        return ConsolidatedTrialRecorder(trial_dir, writer.results)
    if recording != "files":
        raise ValueError(f"recording must be one of {RECORDINGS}, got {recording=}")
    return TrialRecorder(trial_dir)


def _write_new(path: str, data: bytes) -> None:
    """A new private file holding `data` (it must not exist)."""
    fd = create_private(path)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _rewrite_jsonl(path: str, results: list[dict[str, Any]]) -> None:
    tmp = path + ".tmp"
    with open_private(tmp, "w") as f:
        for result in results:
            f.write(dumps(result) + "\n")
    os.replace(tmp, path)


def _columns_of(csv_path: str) -> list[str] | None:
    """progress.csv's columns. A file whose header is not text (damaged) moves to
    progress.csv.damaged: it is a convenience copy, started again by the next result."""
    try:
        return read_csv_header(csv_path)
    except UnicodeDecodeError as exc:
        os.replace(csv_path, csv_path + DAMAGED_SUFFIX)
        logger.warning("%s is not text (%s); moved it to %s, and the next result starts it again", csv_path,
                       exc.reason, csv_path + DAMAGED_SUFFIX)
        return None


def _rewrite_csv(path: str, columns: list[str] | None, results: list[dict[str, Any]]) -> None:
    columns = columns or read_csv_header(path)
    tmp = path + ".tmp"
    with open_private(tmp, "w", newline="") as f:
        if columns:
            writer = csv.writer(f)
            writer.writerow(columns)
            for result in results:
                writer.writerow([result.get(k, "") for k in columns])
    os.replace(tmp, path)



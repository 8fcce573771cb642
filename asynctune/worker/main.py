"""The worker process: the same main loop on this machine and on SSH hosts.

Started as `python -m asynctune.worker`; it speaks the framed protocol on the stdin/stdout it
was given, and points its own fds 1 and 2 at each trial's stdout.txt / stderr.txt, so a trial's
prints land in its directory and never corrupt the protocol stream.

On Linux the worker is a child subreaper: a process its trial started stays its descendant even
after a double fork or a new session, and every one is ended when the trial ends, before the
driver hears of the end, so none outlives its trial though the worker runs the next one.
"""

from __future__ import annotations

import os
import platform
import select
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

import cloudpickle

from . import session as session_module
from ..store.names import stderr_file, stdout_file
from .foreign import foreign_reports
from .process_state import changed_state, process_state
from .trainable import Trainable, run_class, run_function
from .watchdog import start_watchdog
from .protocol import EXIT_CHANNEL_CLOSED, PROTOCOL_VERSION, BlockingChannel, TrialRequest


def main() -> None:
    os.umask(0o077)  # this process is asynctune's: what its trials write is private to the user
    # Keep private copies of the protocol pipes (not inherited by the trial's children), then
    # free fds 0-2 for the trials: stdin reads nothing, stray prints go to the worker's stderr.
    read_fd, write_fd = os.dup(0), os.dup(1)  # os.dup's copies are not inheritable
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    close_inherited(keep=(read_fd, write_fd))
    channel = BlockingChannel(read_fd, write_fd)
    start_watchdog(read_fd)  # ends this worker when the driver goes, also while a C call holds the GIL
    _become_subreaper()
    _exit_when_driver_goes(channel)
    from .. import __version__
    channel.send(("ready", {
        "pid": os.getpid(), "hostname": socket.gethostname(), "asynctune": __version__,
        "python": platform.python_version(), "protocol": PROTOCOL_VERSION, "executable": sys.executable,
        "started": _start_time(),  # with the pid, names this process and no later one with its pid
    }))
    trainables: dict[str, Any] = {}
    while True:
        try:
            message = channel.receive()
        except EOFError:
            return
        if not isinstance(message, tuple) or message[0] == "MUTATE":
            continue  # an answer to a pipelined trial's result, sent before the driver saw it end
        if message[0] == "exit":
            return
        if message[0] == "run":
            _run_trial(channel, message[1], trainables)


def close_inherited(keep: tuple[int, ...]) -> None:
    """Close every descriptor above 2 but `keep`: a worker may be started with copies of its
    driver's pipe ends (uvloop leaves them inheritable), and a process the trial starts would
    inherit them and hold the driver's pipes open after this worker died."""
    try:
        fds = sorted(int(name) for name in os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))
    except OSError:
        fds = list(range(3, 256))
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own descriptor, already closed
    for fd in keep:
        os.set_inheritable(fd, False)


def _run_trial(channel: BlockingChannel, request: TrialRequest, trainables: dict[str, Any]) -> None:
    try:
        _make_trial_dir(request.trial_dir, parents=not request.in_driver_dir)
        saved = _redirect_output(request.trial_dir)
    except OSError as exc:  # the trial's directory cannot be written: that trial's failure, not the worker's
        # "unwritable" tells an SSH driver that the host's disk, not the trial, is at fault.
        channel.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc(), {"unwritable": True}))
        return
    session = session_module.TrialSession(channel, request)
    session_module._current = session
    try:  # loaded first: what importing its module sets (os.environ, as sklearn does) is no trial's doing
        _trainable(request, trainables)
    except BaseException:  # SystemExit too (argparse at its module's top): reported as before, as the trial's
        pass  # failure, when _run_trainable meets it again
    before = process_state()
    try:
        message = execute_trial(session, request, trainables)
    finally:
        session_module._current = None
        end_descendants()
        if not channel.intact():  # the trial closed them: the copies of fds 1 and 2 went with them
            _channel_closed_by_trial()
        _restore_output(saved, request.trial_dir, hand_on=request.hand_on_empty_output)
    changed = changed_state(before, process_state())
    if session.stray_reports:  # a thread an earlier trial left reports: it ends with this worker
        changed.append("threads (one an earlier trial left running reported)")
    if changed:  # the driver retires this worker
        message = (*message[:3], {**(message[3] if len(message) > 3 else {}), "changed": changed})
    channel.send(message)


def _start_time() -> float | None:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001  only a kill of a worker lost with its connection needs it
        return None


def _end_forked_child(message: tuple) -> None:
    """A process the trial made with os.fork() came back out of the trainable (it returned, or
    raised, sys.exit() included, where os._exit() was meant): it must not speak for the trial
    nor serve as a worker. It ends here, its status 0 if the trainable returned, else 1."""
    _write_quietly(sys.stdout)
    _write_quietly(sys.stderr)
    os._exit(0 if message[0] == "done" else 1)


def execute_trial(session: session_module.TrialSession, request: TrialRequest,
                  trainables: dict[str, Any]) -> tuple:
    """Run a trial to its end and return the driver's last message about it (done or error).

    Shared by every worker kind: a process worker here, a Dask task in executors/dask/worker.py.
    A process the trial forked that comes back out of the trainable ends here, saying nothing."""
    message = _run_trainable(session, request, trainables)
    if os.getpid() != session.worker_pid:
        _end_forked_child(message)
    return message


def _run_trainable(session: session_module.TrialSession, request: TrialRequest,
                   trainables: dict[str, Any]) -> tuple:
    try:
        trainable = _trainable(request, trainables)
        if isinstance(trainable, type) and issubclass(trainable, Trainable):
            how, checkpoint = run_class(trainable, session)
        else:
            how, checkpoint = run_function(trainable, session), None
        if how == "finished" and not session.reports:  # the driver warns, naming what it called instead
            return ("done", how, checkpoint, {"reported": False, "foreign_reports": foreign_reports(),
                                              "returned": session.returned})
        return ("done", how, checkpoint)
    except session_module.StopTrial:
        return ("done", "stopped", None)
    except session_module.PauseTrial:
        return ("done", "paused", None)
    except BaseException as exc:  # the trial's own failure: report it, keep the worker
        text = traceback.format_exc()
        _write_quietly(sys.stderr, text)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return ("error", f"{type(exc).__name__} raised in the trial", _shortened(text))
        return ("error", _shortened(f"{type(exc).__name__}: {exc}"), _shortened(text))


def _trainable(request: TrialRequest, trainables: dict[str, Any]) -> Any:
    """The request's trainable, unpickled (importing its module) once per worker."""
    trainable = trainables.get(request.trainable_key)
    if trainable is None:
        trainable = trainables[request.trainable_key] = cloudpickle.loads(request.trainable_blob)
    return trainable


_ERROR_TEXT_CHARS = 1 << 20  # an exception's message or traceback, sent to the driver (stderr.txt has it whole)


def _shortened(text: str) -> str:
    """`text`, or its beginning and end when it is longer than the driver may be sent (an
    exception that holds a whole data set in its message)."""
    if len(text) <= _ERROR_TEXT_CHARS:
        return text
    half = _ERROR_TEXT_CHARS // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters left out ...]\n{text[-half:]}"


def _write_quietly(stream: Any, text: str = "") -> None:
    """Write (and flush) the trial's output file; on a full disk that fails, and the worker must
    go on: the driver hears of the trial's end over the pipe (an ENOSPC error then stops the
    experiment resumably instead of failing the trial). What did not fit stays buffered."""
    try:
        if text:
            stream.write(text)
        stream.flush()
    except OSError:
        pass


def _make_trial_dir(trial_dir: str, *, parents: bool) -> None:
    """The trial's directory, which the driver has usually made already: one system call then
    (os.makedirs would stat it, try to make it and stat it again). `parents`: the directories
    above it may be new here (a host the experiment has not run on); else one missing is an
    experiment deleted or moved away, which must not be made again (FileNotFoundError)."""
    try:
        os.mkdir(trial_dir)
    except FileExistsError:
        pass
    except FileNotFoundError:
        if not parents:
            raise
        os.makedirs(trial_dir, exist_ok=True)


# The output files the previous trial on this worker left empty, by fd: the next trial's are
# these, moved (a link and an unlink), not new ones. Creating a file can cost a millisecond on
# a slow file system, more than the rest of a short trial; a trial that printed nothing keeps
# no stdout.txt / stderr.txt then.
_empty: dict[int, str] = {}


def _redirect_output(trial_dir: str) -> tuple[int, int]:
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    for fd, path in ((1, stdout_file(trial_dir)), (2, stderr_file(trial_dir))):
        _take_empty_file(fd, path)
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(target, fd)
        os.close(target)
    return saved


def _take_empty_file(fd: int, path: str) -> None:
    """Move the empty file an earlier trial left for `fd` to `path`, unless `path` exists (a
    trial that runs again appends to its own) or the move fails (then `path` is created)."""
    empty = _empty.pop(fd, None)
    if empty is None:
        return
    try:
        os.link(empty, path)
    except FileExistsError:
        _empty[fd] = empty  # for a later trial
        return
    except OSError:
        return  # gone with its directory, or another file system
    try:
        os.unlink(empty)
    except OSError:
        pass


def _restore_output(saved: tuple[int, int], trial_dir: str, *, hand_on: bool) -> None:
    """Point fds 1 and 2 back at the worker's own; `hand_on` (TrialRequest.hand_on_empty_output):
    keep the trial's empty output files for the next trial."""
    _write_quietly(sys.stdout)
    _write_quietly(sys.stderr)
    for fd, copy, path in zip((1, 2), saved, (stdout_file(trial_dir), stderr_file(trial_dir))):
        try:
            if hand_on and os.fstat(fd).st_size == 0:  # the trial printed nothing there (its descendants are ended)
                _empty[fd] = path
        except OSError:
            pass
        os.dup2(copy, fd)
        os.close(copy)


_CHANNEL_CHECK_MS = 2000  # how often the driver watch also checks the channel's descriptors
_PR_SET_CHILD_SUBREAPER = 36
_END_GRACE_S = 2.0


def _become_subreaper() -> None:
    """Adopt this worker's orphaned descendants (Linux), so a process the trial started in a
    new session or behind a double fork stays visible and can be ended. A no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _has_children() -> bool:
    """Cheap check (no scan of every process) whether this process has any child now."""
    try:
        tasks = os.listdir("/proc/self/task")
        return any(open(f"/proc/self/task/{tid}/children").read().strip() for tid in tasks)
    except OSError:
        return True  # cannot tell: let psutil look


def end_descendants(grace_s: float = _END_GRACE_S) -> None:
    """End every process this worker's trial started: SIGTERM, up to grace_s, then SIGKILL; and
    reap them. Repeated while new ones appear (a process may fork while it is being ended)."""
    if not _has_children():
        return
    import psutil

    me = psutil.Process()
    for _ in range(5):
        try:
            procs = me.children(recursive=True)
        except psutil.Error:
            return
        if not procs:
            break
        for signum, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 1.0)):
            for proc in procs:
                try:
                    proc.send_signal(signum)
                except psutil.Error:
                    pass
            procs = _wait_gone(procs, wait_s)
            if not procs:
                break
    _reap()


def _wait_gone(procs: list[Any], timeout: float) -> list[Any]:
    """The processes still alive (not zombies) after up to `timeout` seconds; reaps our own."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        _reap()
        alive = []
        for proc in procs:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.Error:
                pass
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.01)
        procs = alive


def _reap() -> None:
    """Collect exited children (our own and adopted orphans), so no zombie is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _channel_closed_by_trial() -> None:
    """The trial closed this worker's descriptors to the driver: nothing can reach the driver
    any more, so say why where the driver looks (stderr) and exit with the status that names it."""
    _write_quietly(sys.stderr, f"\nasynctune worker {os.getpid()}: the trial closed the worker's descriptors to "
                               f"the driver (os.closerange(3, ...), or a library that closes every descriptor it did "
                               f"not open); the worker ends with status {EXIT_CHANNEL_CLOSED}\n")
    end_descendants(grace_s=0.0)
    os._exit(EXIT_CHANNEL_CLOSED)


def _exit_when_driver_goes(channel: BlockingChannel) -> None:
    """End this worker and its children when the driver's end of the pipe closes.

    The main thread may be deep in a training step and only read the pipe at the next
    report(); without this a killed driver would leave busy workers behind.
    """
    read_fd = channel.read_fd

    def watch() -> None:
        poller = select.poll()
        poller.register(read_fd, 0)  # only POLLHUP/POLLERR, which poll always reports
        while True:
            # Woken every few seconds too: a trial that put another file on a descriptor's number
            # (dup2 of /dev/null) would otherwise wait in report() for an answer that never comes.
            events = poller.poll(_CHANNEL_CHECK_MS)
            if any(mask & select.POLLNVAL for _, mask in events) or not channel.intact():
                _channel_closed_by_trial()  # not the driver: the descriptor is gone in this process
            if any(mask & (select.POLLHUP | select.POLLERR) for _, mask in events):
                break
        end_descendants(grace_s=0.0)  # those in other sessions or process groups too
        if os.getpgid(0) == os.getpid():  # we lead our own process group: take the children too
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="asynctune-driver-watch", daemon=True).start()


if __name__ == "__main__":
    main()

"""An executor in one file: every trial in a worker process of its own, on a fixed set of hosts.

    python examples/subprocess_executor.py     # a small experiment on two "hosts" of this machine

The guide that walks through it is docs/executors.md ("Write your own executor"). The worker is
asynctune's own (`python -m asynctune.worker`): it speaks the framed protocol of
asynctune/worker/protocol.py on its stdin and stdout, so this file only starts processes, wires
their pipes to a `TrialRun`, and ends them. Here every host is this machine: `command` says how
a worker starts on a host, and the default ignores the host's name.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable

import asynctune as at
from asynctune.core.resources import HostInventory
from asynctune.executors.base import DoneEvent, ErrorEvent, EventQueue, ResultEvent, TrialEvent, WorkerLostEvent
# The process helpers of the LocalExecutor, reused: the exit described in words, the last lines
# of a trial's stderr, and the end of a whole process tree (SIGTERM, a grace period, SIGKILL).
from asynctune.executors.pipe_worker import describe_exit, stderr_tail
from asynctune.executors.processes import driver_import_paths, kill_process_tree
from asynctune.executors.tasks import OwnedTasks
from asynctune.worker.protocol import EXIT_FRAME, TrialRequest, WorkerMessages, encode_decision, run_frame


def this_python(host: str) -> list[str]:
    """Start a worker with this interpreter on this machine, whatever the host's name."""
    return [sys.executable, "-m", "asynctune.worker"]


class SubprocessExecutor(at.Executor):
    """Runs each trial in a new `python -m asynctune.worker` process on one of a fixed set of hosts.

    The controller places every trial on a host with a free CPU slot (`inventories()`); the
    executor starts a worker for it there, sends it the trial, and ends it when the trial ends.

    Example:
        >>> at.run(train, config={"lr": at.loguniform(1e-4, 1e-1)}, num_samples=8,
        ...        executor=SubprocessExecutor({"node-a": 2, "node-b": 2}))

    Args:
        hosts: {host name: CPU slots}: at most that many one-CPU trials run on a host at once.
        command: The command line that starts a worker on a host (default: this interpreter,
            on this machine).
        ready_timeout_s: How long a new worker may take to say it is ready.
        kill_grace_s: Time between SIGTERM and SIGKILL when a trial's process tree is ended.
    """

    def __init__(self, hosts: dict[str, float], *, command: Callable[[str], list[str]] = this_python,
                 ready_timeout_s: float = 30.0, kill_grace_s: float = 3.0) -> None:
        if not isinstance(hosts, dict) or not hosts:
            raise ValueError(f"SubprocessExecutor: hosts must map host names to CPU slots, got {hosts=}")
        bad = {name: cpus for name, cpus in hosts.items() if not isinstance(name, str) or not name
               or isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not cpus > 0}
        if bad:
            raise ValueError(f"SubprocessExecutor: each host needs a name and CPU slots > 0, got {bad}")
        if not ready_timeout_s > 0:
            raise ValueError(f"SubprocessExecutor: ready_timeout_s must be > 0, got {ready_timeout_s=}")
        if not kill_grace_s >= 0:
            raise ValueError(f"SubprocessExecutor: kill_grace_s must be >= 0, got {kill_grace_s=}")
        self.hosts = dict(hosts)
        self.command = command
        self.ready_timeout_s = ready_timeout_s
        self.kill_grace_s = kill_grace_s
        self._runs: set[SubprocessRun] = set()  # those whose process has not exited
        self._tasks = OwnedTasks("SubprocessExecutor")  # one reader task per worker's stdout

    async def start(self) -> None:
        await self._tasks.open()

    def inventories(self) -> list[HostInventory]:
        return [HostInventory(name=name, cpus=float(cpus)) for name, cpus in self.hosts.items()]

    async def launch(self, request: TrialRequest, placement: at.Placement) -> SubprocessRun:
        if not self._tasks.is_open:
            raise at.ExecutorError("SubprocessExecutor: call start() first (or use `async with`); or it was closed")
        os.makedirs(request.trial_dir, mode=0o700, exist_ok=True)
        # The worker's own stderr goes to the file its trial's stderr will go to: one file
        # holds the evidence of a worker that dies, whether before or during the trial.
        stderr = os.open(os.path.join(request.trial_dir, "stderr.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command(placement.host), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=stderr, env=self._worker_env(placement),
                start_new_session=True)  # Ctrl-C reaches the driver only; the driver ends the trials
        finally:
            os.close(stderr)
        run = SubprocessRun(self, process, request, placement.host)
        self._runs.add(run)
        self._tasks.spawn(run.read_messages(), f"read-{request.trial_id}")
        try:  # return only once the worker is up: a worker that cannot start fails this launch
            await asyncio.wait_for(run.messages.ready, self.ready_timeout_s)
        except BaseException as exc:
            await run.kill()
            if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
                raise at.ExecutorError(f"the worker of {request.trial_id} on {placement.host} was not ready "
                                       f"within {self.ready_timeout_s}s") from exc
            raise
        run.send(run_frame(request))
        return run

    async def close(self) -> None:
        try:
            await asyncio.gather(*(run.kill() for run in list(self._runs)))
        finally:
            await self._tasks.close(grace_s=5.0)  # the readers see their workers' pipes close

    def _worker_env(self, placement: at.Placement) -> dict[str, str]:
        env = {**os.environ, **placement.env(), "PYTHONUNBUFFERED": "1"}  # placement.env(): CUDA_VISIBLE_DEVICES
        # The trainable may refer to the driver's own modules by name: the worker imports what it does.
        env["PYTHONPATH"] = os.pathsep.join(driver_import_paths() + [os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        return env


class SubprocessRun(at.TrialRun):
    """One trial in its worker process: the worker's messages in, decisions out."""

    def __init__(self, executor: SubprocessExecutor, process: asyncio.subprocess.Process, request: TrialRequest,
                 host: str) -> None:
        self.executor, self.process, self.request = executor, process, request
        self.trial_id, self.pid, self.host = request.trial_id, process.pid, host
        self.queue = EventQueue()
        # Turns the worker's frames into events, and tracks the decision it waits for.
        self.messages = WorkerMessages(f"the worker of {self.trial_id} on {host}",
                                       on_result=self.queue.put, on_end=self._trial_ended)
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._trial_over = False  # the worker said how the trial ended

    async def read_messages(self) -> None:
        """Feed the worker's stdout to `messages` until it closes; a worker that goes before
        its trial ended is lost (the controller retries the trial under max_failures)."""
        while data := await self.process.stdout.read(1 << 16):
            self.messages.feed(data)
        code = await self.process.wait()
        self.exited.set_result(code)
        self.executor._runs.discard(self)
        evidence = stderr_tail(self.request.trial_dir)
        if not self.messages.ready.done():
            self.messages.ready.set_exception(at.ExecutorError(
                f"the worker of {self.trial_id} on {self.host} failed to start: {describe_exit(code)}\n{evidence}"))
        elif not self._trial_over:
            self.queue.put(WorkerLostEvent(f"{describe_exit(code)} on {self.host}", code, evidence))

    def _trial_ended(self, event: DoneEvent | ErrorEvent) -> None:
        self._trial_over = True
        self.send(EXIT_FRAME)  # one trial per worker: it may go now
        self.queue.put(event)

    async def events(self) -> AsyncIterator[TrialEvent]:
        while True:
            event = await self.queue.get()
            yield event
            if not isinstance(event, ResultEvent):
                return  # exactly one DoneEvent, ErrorEvent or WorkerLostEvent ends a trial

    def decide(self, decision: at.Decision | at.Mutate) -> None:
        if self.messages.answering():  # False, and logged, when the worker awaits no decision
            self.send(encode_decision(decision))

    async def kill(self) -> None:
        # The worker's exit is seen by read_messages(), which reports the loss to events().
        if not self.exited.done():
            await kill_process_tree(self.pid, grace_s=self.executor.kill_grace_s, exited=self.exited)

    def send(self, frame: bytes) -> None:
        if not self.process.stdin.is_closing():
            self.process.stdin.write(frame)


# A small experiment: python examples/subprocess_executor.py ------------------------------------

def _quadratic(config: dict) -> None:
    for step in range(1, 6):
        at.report(loss=(config["x"] - 1.0) ** 2 / step, host=at.get_trial_resources()["host"])


if __name__ == "__main__":
    analysis = at.run(_quadratic, config={"x": at.uniform(-3, 3)}, num_samples=6, metric="loss", mode="min",
                      scheduler=at.ASHAScheduler(max_t=5, grace_period=1), seed=0, verbose=1,
                      executor=SubprocessExecutor({"node-a": 1, "node-b": 1}))
    for trial in analysis.trials:
        print(trial.trial_id, trial.status.value, trial.last_result["host"], trial.last_result["loss"])

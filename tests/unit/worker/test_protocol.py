"""The wire protocol (executors/protocol.py): decisions both ways, and the one reading of a
worker's messages that the local, SSH and Dask executors share."""

from __future__ import annotations

import asyncio
import logging
import pickle

import pytest

from asynctune.errors import AsynctuneError, ExecutorError
from asynctune.worker.protocol import (
    HEADER_SIZE, PROTOCOL_VERSION, DoneEvent, ErrorEvent, FrameDecoder, ResultEvent, WorkerMessages,
    decision_message, encode, encode_decision, read_decision,
)
from asynctune.core.trial import Decision, Mutate

DECISIONS = {"continue": Decision.CONTINUE, "stop": Decision.STOP, "pause": Decision.PAUSE,
             "mutate": Mutate({"lr": 0.1}, "/ckpt/checkpoint_000003"), "mutate-fresh": Mutate({"lr": 0.2})}


@pytest.mark.parametrize("decision", DECISIONS.values(), ids=DECISIONS.keys())
def test_a_decision_reads_back_as_it_was_sent(decision):
    frame = encode_decision(decision)
    (message,) = FrameDecoder().feed(frame)
    assert pickle.loads(frame[HEADER_SIZE:]) == message
    assert read_decision(message) == decision
    assert read_decision(pickle.loads(pickle.dumps(decision_message(decision)))) == decision  # Dask's queues


def test_an_unknown_decision_is_an_error():
    with pytest.raises(AsynctuneError, match="unexpected decision from the driver: 'JUMP'"):
        read_decision("JUMP")


def collect() -> tuple[list, list, WorkerMessages]:
    results: list = []
    ends: list = []
    return results, ends, WorkerMessages("worker on h1", results.append, ends.append)


async def test_worker_messages_become_events_and_each_result_awaits_one_decision(caplog):
    results, ends, messages = collect()
    stream = b"".join(encode(m) for m in [
        ("ready", {"pid": 7, "protocol": PROTOCOL_VERSION}),
        ("result", {"loss": 1.0}, None),
    ])
    messages.feed(stream[:5])  # frames split anywhere still decode
    messages.feed(stream[5:])
    assert (await messages.ready)["pid"] == 7
    assert results == [ResultEvent({"loss": 1.0}, None)]
    assert messages.awaiting_decision
    assert messages.answering()
    with caplog.at_level(logging.ERROR, logger="asynctune.worker.protocol"):
        assert not messages.answering()  # a second answer would be read as the next result's
    assert "worker on h1: a decision was sent while the trial awaited none" in caplog.text

    messages.feed(encode(("result", {"loss": 0.5}, "/c/3")) + encode(("done", "stopped", "/c/3")))
    messages.feed(encode(("error", "ValueError: x", "Traceback ...")))
    assert results[-1] == ResultEvent({"loss": 0.5}, "/c/3")
    assert ends == [DoneEvent("stopped", "/c/3"), ErrorEvent("ValueError: x", "Traceback ...")]
    assert not messages.awaiting_decision  # the trial ended: nothing to answer


async def test_a_worker_of_another_protocol_is_refused_by_name():
    _, _, messages = collect()
    messages.feed(encode(("ready", {"protocol": PROTOCOL_VERSION + 1})))
    with pytest.raises(ExecutorError, match=r"worker on h1 speaks protocol 2, the driver 1"):
        await asyncio.wait_for(messages.ready, 1)


@pytest.mark.parametrize("garbage, named", [
    (b"\x00\x00\x00\x10" + b"not a pickle at all", "a corrupt frame"),
    (b"\xff\xff\xff\xff", "over the limit"),
    (encode(7), "no message of the protocol: 7"),
], ids=["corrupt", "oversized", "not-a-message"])
async def test_the_results_read_whole_before_a_damaged_frame_are_delivered_then_the_worker_is_ended(garbage, named):
    # A pipelined trial does not wait for answers: its results and what damaged its stream may
    # come in one read. Those results reached the driver and are the trial's.
    broken: list[str] = []
    results, _, messages = collect()
    messages.on_broken = broken.append
    messages.feed(encode(("result", {"step": 1}, None)) + encode(("result", {"step": 2}, None)) + garbage
                  + encode(("result", {"step": 3}, None)))
    messages.feed(encode(("result", {"step": 4}, None)))  # nothing after the damage is trusted
    assert results == [ResultEvent({"step": 1}, None), ResultEvent({"step": 2}, None)]
    assert len(broken) == 1 and named in broken[0]

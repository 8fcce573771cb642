"""Issue 27: one JSONL reader in the store, shared by the analysis, resume's repair and the dashboard's tails."""

from __future__ import annotations

import os

import pytest

from asynctune.store.jsonl import JsonlTail
from asynctune.store.layout import check_jsonl
from asynctune.store.paths import LinkOutside


def test_the_tail_and_the_whole_read_agree_on_torn_and_damaged_lines(tmp_path):
    path = tmp_path / "result.jsonl"
    path.write_bytes(b'{"i": 1}\n[2]\nnot json\n{"i": 3}\n{"i": 4')  # a damaged line, then a torn last one
    tail = JsonlTail(str(path), str(tmp_path))
    assert tail.read() == [{"i": 1}, {"i": 3}]  # the torn line may still be being written: not yet
    with open(path, "ab") as f:
        f.write(b"}\n")
    assert tail.read() == [{"i": 1}, {"i": 3}, {"i": 4}]
    records, bad = check_jsonl(str(path))
    assert records == tail.read() and [number for number, _ in bad] == [2, 3]


def test_the_tail_refuses_a_link_out_of_the_experiment(tmp_path):
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text('{"secret": 1}\n')
    experiment = tmp_path / "exp"
    experiment.mkdir()
    os.symlink(outside, experiment / "decisions.jsonl")
    with pytest.raises(LinkOutside, match="outside"):
        JsonlTail(str(experiment / "decisions.jsonl"), str(experiment)).read()

"""Reads the records of a W&B offline run (`run-<id>.wandb`), as `wandb sync` would send them.

The file is a LevelDB-style log (W&B's own header, then 32 KiB blocks of checksummed chunks),
each record a `wandb_internal_pb2.Record`. wandb ships no Python reader for it, so tests use this."""

from __future__ import annotations

import glob
import json
import os
import struct
from typing import Any

_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version 0
_CHUNK = struct.Struct("<IHB")  # crc32, length, type
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: str) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    with open(path, "rb") as f:
        data = f.read()
    ident, magic, version = _HEADER.unpack_from(data)
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path} is not a W&B run file"
    out, pending, pos = [], b"", _HEADER.size
    while pos + _CHUNK.size <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _CHUNK.size:  # the block's tail is padding
            pos += left_in_block
            continue
        _, length, kind = _CHUNK.unpack_from(data, pos)
        if kind == 0 and length == 0:
            break
        chunk = data[pos + _CHUNK.size:pos + _CHUNK.size + length]
        pos += _CHUNK.size + length
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def read_run(run_dir: str) -> dict[str, Any]:
    """A run's id, name, group, project, config, history (one dict per step), summary and exit code."""
    (path,) = glob.glob(os.path.join(run_dir, "run-*.wandb"))
    run: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "exit_code": None}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(id=r.run_id, name=r.display_name, group=r.run_group, project=r.project)
            run["config"].update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "config":
            run["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            run["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            run["summary"].update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    return run


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)

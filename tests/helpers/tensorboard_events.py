"""TensorBoard event files read back record by record, without TensorFlow.

TFRecord framing (length, masked CRC of the length, data, masked CRC of the data;
tensorflow/core/lib/io/record_reader.cc), each record an Event protobuf."""

from __future__ import annotations

import glob
import os
import struct

from tensorboardX.proto import event_pb2, plugin_hparams_pb2
from tensorboardX.record_writer import masked_crc32c


def read_events(path: str) -> list:
    events = []
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset < len(data):
        header = data[offset:offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
        assert header_crc == masked_crc32c(header), f"bad length CRC at byte {offset} of {path}"
        record = data[offset + 12:offset + 12 + length]
        (record_crc,) = struct.unpack("<I", data[offset + 12 + length:offset + 16 + length])
        assert record_crc == masked_crc32c(record), f"bad data CRC at byte {offset} of {path}"
        events.append(event_pb2.Event.FromString(record))
        offset += 16 + length
    return events


def run_events(directory: str) -> list:
    """Every event of a TensorBoard run (all event files of one directory), in file order."""
    paths = sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*")))
    assert paths, f"no event file in {directory}"
    first = read_events(paths[0])[0]
    assert first.file_version == "brain.Event:2"
    return [e for p in paths for e in read_events(p)]


def scalars(events: list, tag: str) -> list[tuple[int, float]]:
    return [(e.step, v.simple_value) for e in events for v in e.summary.value if v.tag == tag and not v.metadata.plugin_data.plugin_name]


def plugin_data(events: list, tag: str) -> list:
    out = []
    for event in events:
        for value in event.summary.value:
            if value.tag == tag:
                assert value.metadata.plugin_data.plugin_name == "hparams"
                out.append(plugin_hparams_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content))
    return out

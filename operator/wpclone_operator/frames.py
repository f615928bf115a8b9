"""The framed stream the migrator plugin speaks (wordpress/migrator/wpclone-migrator-stream.php).

A stream is a sequence of frames: one byte of kind, a 4-byte big-endian payload length, the payload.

    H  import chunk header, JSON {job, seq}      T  table begins, JSON {name, create, columns, key}
    R  rows of the open table (records)          E  table ends, JSON {name, rows}
    F  file begins: record [path, size, mtime, mode]
    D  data of the open file                     Z  export stream ends, JSON totals
    X  the exporter failed mid-stream, JSON {message}
    P  a piece of a file, for imports: record [path, offset, size, mtime, mode, data]

A record is the 4-byte big-endian lengths of its values (0xFFFFFFFF for NULL), then the values.
Values are raw bytes: the migrator reads and writes the database with `SET NAMES binary`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

HEADER = b"H"
TABLE = b"T"
ROWS = b"R"
TABLE_END = b"E"
FILE = b"F"
DATA = b"D"
PIECE = b"P"
END = b"Z"
ERROR = b"X"

NULL_LENGTH = 0xFFFFFFFF
_FRAME_HEAD = struct.Struct(">cI")
# A frame is at most one slice of rows or file data; a longer one is not from a migrator.
MAX_FRAME_BYTES = 64 * 1024 * 1024

Value = bytes | None
Record = list[Value]


class StreamError(Exception):
    """The stream is not what a migrator sends: truncated, oversized, malformed or reporting failure."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: bytes
    payload: bytes

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.payload)
        except ValueError as error:
            raise StreamError(f"frame {self.kind!r} does not hold JSON: {error}") from None
        if not isinstance(data, dict):
            raise StreamError(f"frame {self.kind!r} does not hold a JSON object")
        return data

    def encode(self) -> bytes:
        return encode_frame(self.kind, self.payload)


def encode_frame(kind: bytes, payload: bytes) -> bytes:
    return _FRAME_HEAD.pack(kind, len(payload)) + payload


def encode_json(kind: bytes, data: dict[str, Any]) -> bytes:
    return encode_frame(kind, json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def encode_record(values: Sequence[Value]) -> bytes:
    lengths = [NULL_LENGTH if value is None else len(value) for value in values]
    return struct.pack(f">{len(lengths)}I", *lengths) + b"".join(value for value in values if value)


def record_spans(payload: bytes, width: int) -> Iterator[tuple[int, int, tuple[int, ...]]]:
    """Where each record of a payload of `width`-value records begins and ends, and its value lengths."""
    head = struct.Struct(f">{width}I")
    size, at = len(payload), 0
    while at < size:
        if size - at < head.size:
            raise StreamError("a record's lengths run past the end of its frame")
        lengths = head.unpack_from(payload, at)
        nulls = lengths.count(NULL_LENGTH)
        end = at + head.size + sum(lengths) - nulls * NULL_LENGTH
        if end > size:
            raise StreamError("a value is longer than what is left of its frame")
        yield at, end, lengths
        at = end


def record_values(payload: bytes, start: int, lengths: tuple[int, ...]) -> Record:
    """The values of the record at `start` whose lengths record_spans() read."""
    at = start + 4 * len(lengths)
    values: Record = []
    for length in lengths:
        if length == NULL_LENGTH:
            values.append(None)
        else:
            values.append(payload[at:at + length])
            at += length
    return values


def decode_records(payload: bytes, width: int) -> Iterator[Record]:
    """The records in a payload, each of exactly `width` values."""
    for start, _, lengths in record_spans(payload, width):
        yield record_values(payload, start, lengths)


def decode_single_record(payload: bytes, width: int) -> Record:
    records = list(decode_records(payload, width))
    if len(records) != 1:
        raise StreamError(f"expected one record, found {len(records)}")
    return records[0]


def split_records(payload: bytes, width: int, max_bytes: int) -> Iterator[bytes]:
    """The payload cut at record boundaries into pieces of at most `max_bytes` (a larger record alone)."""
    if len(payload) <= max_bytes:
        yield payload
        return
    start = 0
    for at, end, _ in record_spans(payload, width):
        if end - start > max_bytes and at > start:
            yield payload[start:at]
            start = at
    yield payload[start:]


class FrameReader:
    """Cuts a byte stream, fed in pieces of any size, into frames; holds at most one frame's bytes."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        at = 0
        while len(self._buffer) - at >= _FRAME_HEAD.size:
            kind, length = _FRAME_HEAD.unpack_from(self._buffer, at)
            if length > self._max:
                raise StreamError(f"frame {kind!r} announces {length} bytes, more than {self._max}")
            end = at + _FRAME_HEAD.size + length
            if end > len(self._buffer):
                break
            frames.append(Frame(kind, bytes(self._buffer[at + _FRAME_HEAD.size:end])))
            at = end
        del self._buffer[:at]
        return frames

    def close(self) -> None:
        if self._buffer:
            raise StreamError(f"the stream ended in the middle of a frame ({len(self._buffer)} bytes left over): "
                              "connection lost or exporter killed")


async def read_frames(chunks: AsyncIterator[bytes], max_frame_bytes: int = MAX_FRAME_BYTES,
                      ) -> AsyncIterator[Frame]:
    """Frames of an export stream, up to and including its Z frame; X and a missing Z are errors."""
    reader = FrameReader(max_frame_bytes)
    async for chunk in chunks:
        for frame in reader.feed(chunk):
            if frame.kind == ERROR:
                raise StreamError(f"the exporter failed: {frame.json().get('message', 'no reason given')}")
            yield frame
            if frame.kind == END:
                return
    reader.close()
    raise StreamError("the stream ended before its end frame (connection lost or exporter killed)")

"""The framed stream the migrator plugin speaks (migrator_plugin/wpclone-migrator-stream.php).

A stream is a sequence of frames: one byte of kind, a 4-byte big-endian payload length, the payload.

    H  import chunk header, JSON {job, seq}      T  table begins, JSON {name, create, columns, key}
    R  rows of the open table (records)          E  table ends, JSON {name, rows}
    F  file begins: record [path, size, mtime, mode]
    D  data of the open file                     Z  export stream ends, JSON totals
    X  the exporter failed mid-stream, JSON {message}
    P  a piece of a file, for imports: record [path, offset, size, mtime, mode, data]

A record is the 4-byte big-endian lengths of its values (0xFFFFFFFF for NULL), then the values.
Values are raw bytes: the migrator reads and writes the database with `SET NAMES binary`.

A stream comes from a site the operator does not trust (a source, or a clone's admin during a restore):
anything that is not exactly the above is refused with a StreamError, in time and memory bounded by
the frame limit, before it reaches a database.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import struct
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from wpclone_engine import reasons

HEADER = b"H"
TABLE = b"T"
ROWS = b"R"
TABLE_END = b"E"
FILE = b"F"
DATA = b"D"
PIECE = b"P"
END = b"Z"
ERROR = b"X"
KINDS = frozenset({HEADER, TABLE, ROWS, TABLE_END, FILE, DATA, PIECE, END, ERROR})

NULL_LENGTH = 0xFFFFFFFF
_FRAME_HEAD = struct.Struct(">cI")
# A frame is at most one slice of rows or file data; a longer one is not from a migrator.
MAX_FRAME_BYTES = 64 * 1024 * 1024
# MySQL's own limits: columns in a table (the width of a record), characters in a table's or column's name.
MAX_COLUMNS = 4096
MAX_NAME_CHARS = 64
# A file's path in wp-content (PATH_MAX; the migrator refuses longer ones too).
MAX_PATH_BYTES = 4096
# Row counts, sizes, offsets, times and modes: 18 digits are below 2**63 (PHP_INT_MAX), so both ends
# read them as the same integer; more would be a number no site has.
MAX_NUMBER_DIGITS = 18
_NUMBER = re.compile(rb"[0-9]{1,%d}" % MAX_NUMBER_DIGITS)
# How much of an exporter's failure message a condition carries.
MAX_MESSAGE_CHARS = 500

Value = bytes | None
Record = list[Value]


class StreamError(Exception):
    """The stream is not what a migrator sends (`reason` MalformedStream or BadTableDefinition), or it
    broke off or reported a failure (BadStream)."""

    def __init__(self, message: str, reason: str = reasons.MALFORMED_STREAM) -> None:
        super().__init__(message)
        self.reason = reason


class StreamCut(StreamError):
    """The stream broke off: what arrived is whole frames, and an exporter may be asked to go on."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: bytes
    payload: bytes

    def json(self) -> dict[str, Any]:
        """The frame's JSON object; a T or E frame's has the fields it must have, of the right types."""
        try:
            data = json.loads(self.payload)
        except ValueError as error:  # also integers of more digits than Python converts
            raise StreamError(f"frame {self.kind!r} does not hold JSON: {error}") from None
        except RecursionError:
            raise StreamError(f"frame {self.kind!r} holds JSON nested too deeply") from None
        if not isinstance(data, dict):
            raise StreamError(f"frame {self.kind!r} does not hold a JSON object")
        if self.kind == TABLE and not _is_table(data):
            raise StreamError(f"a table frame needs a name, a definition and 1 to {MAX_COLUMNS} distinct "
                              f"column names (names of 1 to {MAX_NAME_CHARS} characters)")
        if self.kind == TABLE_END and not (_is_name(data.get("name")) and _is_count(data.get("rows"))):
            raise StreamError("a table's end frame needs its name and its row count")
        return data

    def encode(self) -> bytes:
        return encode_frame(self.kind, self.payload)


def _is_table(data: dict[str, Any]) -> bool:
    columns = data.get("columns")
    return (_is_name(data.get("name")) and _is_text(data.get("create"))
            and isinstance(columns, list) and 0 < len(columns) <= MAX_COLUMNS
            and all(_is_name(column) for column in columns) and len(set(columns)) == len(columns))


def _is_name(value: object) -> bool:
    return _is_text(value) and 0 < len(str(value)) <= MAX_NAME_CHARS


def _is_text(value: object) -> bool:
    """A JSON string that is text: JSON can escape half a surrogate pair, which UTF-8 cannot hold."""
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_count(value: object) -> bool:
    return type(value) is int and 0 <= value < 10 ** MAX_NUMBER_DIGITS


def number(value: Value) -> int:
    """A record's value that must be a non-negative integer (a size, an offset, a time, a mode)."""
    if value is None or _NUMBER.fullmatch(value) is None:
        raise StreamError(f"{value if value is None else value[:40]!r} is not a number of at most "
                          f"{MAX_NUMBER_DIGITS} digits")
    return int(value)


def encode_frame(kind: bytes, payload: bytes) -> bytes:
    return _FRAME_HEAD.pack(kind, len(payload)) + payload


def encode_json(kind: bytes, data: dict[str, Any]) -> bytes:
    return encode_frame(kind, json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def encode_record(values: Sequence[Value]) -> bytes:
    lengths = [NULL_LENGTH if value is None else len(value) for value in values]
    return struct.pack(f">{len(lengths)}I", *lengths) + b"".join(value for value in values if value)


def frame_parts(kind: bytes, *payload: bytes) -> list[bytes]:
    """A frame as parts of its bytes (its head, then the pieces of its payload) for a writer that takes
    parts: a payload of megabytes is not copied into one more string (each fresh copy faults its pages
    in: 0.2 s of a copy's CPU for 200 MiB of files framed twice)."""
    return [_FRAME_HEAD.pack(kind, sum(map(len, payload))), *payload]


def record_parts(values: Sequence[bytes]) -> list[bytes]:
    """encode_record(values) as two parts: the lengths and every value but the last, then the last as it is."""
    return [struct.pack(f">{len(values)}I", *map(len, values)) + b"".join(values[:-1]), values[-1]]


def record_spans(payload: bytes, width: int) -> Iterator[tuple[int, int, tuple[int, ...]]]:
    """Where each record of a payload of `width`-value records begins and ends, and its value lengths."""
    if not 0 < width <= MAX_COLUMNS:  # a record of no values takes no bytes: reading them would never end
        raise StreamError(f"records of {width} values (a table has 1 to {MAX_COLUMNS} columns)")
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


def value_bounds(start: int, lengths: tuple[int, ...]) -> list[int]:
    """Where the values of the record at `start` lie (lengths as record_spans() read them): value i is
    payload[bounds[i]:bounds[i + 1]] (empty when it is NULL)."""
    if NULL_LENGTH in lengths:
        lengths = tuple(0 if length == NULL_LENGTH else length for length in lengths)
    return list(itertools.accumulate(lengths, initial=start + 4 * len(lengths)))


def record_value(payload: bytes, start: int, lengths: tuple[int, ...], index: int) -> Value:
    """One value of the record at `start` whose lengths record_spans() read."""
    if lengths[index] == NULL_LENGTH:
        return None
    at = start + 4 * len(lengths) + sum(length for length in lengths[:index] if length != NULL_LENGTH)
    return payload[at:at + lengths[index]]


def decode_records(payload: bytes, width: int) -> Iterator[Record]:
    """The records in a payload, each of exactly `width` values."""
    for start, _, lengths in record_spans(payload, width):
        yield record_values(payload, start, lengths)


def decode_single_record(payload: bytes, width: int) -> Record:
    records = list(decode_records(payload, width))
    if len(records) != 1:
        raise StreamError(f"expected one record, found {len(records)}")
    return records[0]


def split_records(payload: bytes, width: int, max_bytes: int) -> Iterator[tuple[bytes, int]]:
    """The payload cut at record boundaries into pieces of at most `max_bytes` (a larger record alone),
    each with its number of records; every record is read, so a malformed one is found here."""
    start, count = 0, 0
    for at, end, _ in record_spans(payload, width):
        if end - start > max_bytes and at > start:
            yield payload[start:at], count
            start, count = at, 0
        count += 1
    if count:
        yield payload[start:], count


class TableOrder:
    """The order a database stream keeps (T, then R frames, then E, table after table) and the truth of
    the row count each E frame announces."""

    def __init__(self) -> None:
        self.table: str | None = None
        self.columns: list[str] = []
        self.rows = 0

    def begin(self, table: str, columns: list[str]) -> None:
        if self.table is not None:
            raise StreamError(f"table {self.table} was not ended")
        self.table, self.columns, self.rows = table, columns, 0

    def open_table(self) -> str:
        if self.table is None:
            raise StreamError("rows outside a table")
        return self.table

    def end(self, table: str, rows: int) -> None:
        if self.table != table:
            raise StreamError(f"end of {table}, which is not the open table")
        if rows != self.rows:
            raise StreamError(f"table {table}: the stream announced {rows} rows, {self.rows} arrived")
        self.table = None


class ResumePoint:
    """Where a database stream stands, by the frames its reader has taken (whole ones: a stream that breaks
    off loses only the frame in the making): what to ask the exporter to go on from (`resume`), and the
    next stream's frames joined to what was taken (`join`: the open table's T frame, which it repeats,
    taken out; its E frame counting the rows taken before too)."""

    def __init__(self) -> None:
        self._table: dict[str, Any] | None = None  # the open table's T frame
        self._key: tuple[int, ...] = ()  # its key's positions in its records
        self._rows = 0  # its rows taken
        self._earlier = 0  # ...of which by streams before this one
        self._last: tuple[bytes, int, tuple[int, ...]] | None = None  # its last record taken (payload, start, lengths)
        self._ended: str | None = None  # the last table ended
        self._repeat = False  # this stream repeats the open table's T frame first

    @property
    def resumable(self) -> bool:
        """Whether an exporter can go on from here: not in the middle of a table without a key."""
        return self._table is None or bool(self._key) or self._rows == 0

    def taken(self, frame: Frame) -> None:
        """Notes a frame (as `join` gave it) its reader has taken whole."""
        if frame.kind == TABLE:
            self._table = frame.json()
            columns, key = self._table["columns"], self._table.get("key")
            self._key = (tuple(columns.index(name) for name in key)
                         if isinstance(key, list) and key and all(name in columns for name in key) else ())
            self._rows = self._earlier = 0
            self._last = None
        elif frame.kind == ROWS and self._table is not None:
            for start, _, lengths in record_spans(frame.payload, len(self._table["columns"])):
                self._rows += 1
                self._last = (frame.payload, start, lengths)
        elif frame.kind == TABLE_END:
            self._ended, self._table = frame.json()["name"], None

    def resume(self) -> dict[str, Any]:
        """The export's parameters to go on from here (resumable); the next stream is then to be joined."""
        self._repeat = self._table is not None
        if self._table is None:
            return {"resume_past": self._ended} if self._ended is not None else {}
        self._earlier = self._rows
        if self._last is None:
            return {"resume_from": self._table["name"]}
        values = record_values(*self._last)
        return {"resume_from": self._table["name"],
                "resume_after": [base64.b64encode(values[at] or b"").decode() for at in self._key]}

    def join(self, frame: Frame) -> Frame | None:
        """The frame as the stream it goes on with has it, or None for the repeated T frame."""
        if self._repeat:
            self._repeat = False
            assert self._table is not None
            again = frame.json() if frame.kind == TABLE else None
            if again is None or {name: again.get(name) for name in ("name", "columns", "key")} != {
                    name: self._table.get(name) for name in ("name", "columns", "key")}:
                raise StreamError(f"the export went on without table {self._table['name']} as it began it")
            return None
        if frame.kind == TABLE_END and self._earlier:
            end = frame.json()
            if isinstance(end.get("rows"), int):
                return Frame(TABLE_END, json.dumps({**end, "rows": self._earlier + end["rows"]}).encode())
        return frame


class FilesResumePoint:
    """Where a files stream stands, by the frames its reader has taken: the file in the making and how many
    of its bytes arrived. An export asked to go on from there (`resume`) sends that file's F frame again
    and its bytes from there on; `join` takes the repeated F frame out, and refuses a file that changed."""

    def __init__(self) -> None:
        self._header: bytes | None = None  # the F frame of the last file begun
        self._path = b""
        self._taken = 0  # its bytes taken
        self._repeat = False

    @property
    def resumable(self) -> bool:
        """Whether a file was begun whose path the export can be named in JSON (UTF-8)."""
        if self._header is None:
            return False
        try:
            self._path.decode()
        except UnicodeDecodeError:
            return False
        return True

    def taken(self, frame: Frame) -> None:
        if frame.kind == FILE:
            self._header, self._taken = frame.payload, 0
            self._path = decode_single_record(frame.payload, 4)[0] or b""
        elif frame.kind == DATA:
            self._taken += len(frame.payload)

    def resume(self) -> dict[str, Any]:
        self._repeat = True
        return {"resume_file": self._path.decode(), "resume_offset": self._taken}

    def join(self, frame: Frame) -> Frame | None:
        if self._repeat:
            self._repeat = False
            if frame.kind != FILE or frame.payload != self._header:
                raise StreamError(f"the export went on without {self._path[:200]!r} as it began it (the file "
                                  "changed, or the exporter does not go on)")
            return None
        return frame


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
            if kind not in KINDS:
                raise StreamError(f"unknown frame kind {kind!r}")
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
            raise StreamCut(f"the stream ended in the middle of a frame ({len(self._buffer)} bytes left over): "
                            "connection lost or exporter killed", reasons.BAD_STREAM)


async def read_frames(chunks: AsyncIterator[bytes], max_frame_bytes: int = MAX_FRAME_BYTES,
                      ) -> AsyncIterator[Frame]:
    """Frames of an export stream, up to and including its Z frame; X and a missing Z are errors."""
    reader = FrameReader(max_frame_bytes)
    async for chunk in chunks:
        for frame in reader.feed(chunk):
            if frame.kind == ERROR:
                message = str(frame.json().get("message", "no reason given"))[:MAX_MESSAGE_CHARS]
                raise StreamError(f"the exporter failed: {message}", reasons.BAD_STREAM)
            yield frame
            if frame.kind == END:
                return
    reader.close()
    raise StreamCut("the stream ended before its end frame (connection lost or exporter killed)", reasons.BAD_STREAM)

"""Pushing a copy into a destination's migrator: frames cut into numbered import chunks.

Tables go as T, R and E frames in chunks applied one after the other. Files go as P frames, pieces
that each say where they belong ([path, offset, size, mtime, mode, data]), in chunks the migrator may
apply in any order and several at a time. Chunks start small, so the destination starts working at
once, and double up to the limit, so there are few of them (each request boots WordPress).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from wpclone_engine import frames, migrator, reasons
from wpclone_engine.pipeline import Pipeline
from wpclone_engine.wordpress import ImportJob, Migrator, WordPressError

FIRST_CHUNK_BYTES = 1024 * 1024
# The largest request body (and never more than the destination's max_request_bytes, which keeps it
# under its post_max_size and an eighth of its memory_limit).
MAX_CHUNK_BYTES = 16 * 1024 * 1024
# A database chunk is applied about as fast as the engine fills the next, so the last one's apply is the
# copy's tail: they stay smaller than files' though each request boots WordPress (bench_transfer's tables
# alone: 2.1-2.5 s in chunks of up to 4 MiB, 2.3-2.9 s in chunks of up to 16).
DATABASE_CHUNK_BYTES = 4 * 1024 * 1024
FILE_CHUNKS_IN_FLIGHT = 2
# The migrator reads database chunks one after the other and puts the rows of each in while it reads the
# next (WPClone_Import::database, whose DATABASE_CHUNKS_IN_FLIGHT is this): so two chunks' rows go in while
# a third uploads. One that overtook the one before it is refused as not yet and sent again once that one
# is answered.
DATABASE_CHUNKS_IN_FLIGHT = 3
_HEADER_ROOM = 1024


class ChunkedImport:
    """One kind of frames ("database" or "files") of an import job, cut into numbered request bodies
    that are sent in the background while the next one fills."""

    def __init__(self, destination: Migrator, job: ImportJob, kind: str, *, parallel: int = 1,
                 max_bytes: int = MAX_CHUNK_BYTES) -> None:
        self.kind = kind
        self.sent = 0
        self.max_frame_bytes = min(max_bytes, job.max_request_bytes) - _HEADER_ROOM
        self._destination = destination
        self._job = job
        self._limit = min(FIRST_CHUNK_BYTES, self.max_frame_bytes)
        self._parts: list[bytes] = []
        self._size = 0
        self._answered: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)  # by chunk number
        self._sender: Pipeline[tuple[int, list[bytes]]] = Pipeline(self._send, parallel)

    async def add(self, *frame: bytes) -> None:
        """Adds a frame, whole or in parts (frames.frame_parts)."""
        size = sum(map(len, frame))
        if self._parts and self._size + size > self._limit:
            await self._cut()
        self._parts += frame
        self._size += size

    async def close(self) -> int:
        """Sends what is left, waits until every chunk was accepted; returns how many were sent."""
        if self._parts:
            await self._cut()
        await self._sender.close()
        return self.sent

    async def cancel(self) -> None:
        await self._sender.cancel()

    async def _cut(self) -> None:
        self.sent += 1
        header = frames.encode_json(frames.HEADER, {"job": self._job.id, "seq": self.sent})
        body = [header, *self._parts]
        self._parts, self._size = [], 0
        self._limit = min(2 * self._limit, self.max_frame_bytes)
        await self._sender.put((self.sent, body))

    async def _send(self, chunk: tuple[int, list[bytes]]) -> None:
        seq, body = chunk
        try:
            await self._destination.send_chunk(self.kind, body)
        except WordPressError as error:
            if error.reason != reasons.CHUNK_EARLY:
                raise
            # (Should the one before fail, the pipeline raises its error and cancels this wait.)
            await self._answered[seq - 1].wait()
            await self._destination.send_chunk(self.kind, body)
        self._answered.pop(seq - 1, None)
        self._answered[seq].set()


def database_chunks(destination: Migrator, job: ImportJob) -> ChunkedImport:
    """An import's database chunks: side by side into a migrator of this release, one at a time into a
    must-use copy of another (which refuses a chunk that came early as out of order, or makes it wait
    for its turn inside the request)."""
    parallel = DATABASE_CHUNKS_IN_FLIGHT if destination.build == migrator.build() else 1
    return ChunkedImport(destination, job, "database", parallel=parallel, max_bytes=DATABASE_CHUNK_BYTES)


class TablesImport:
    """Tables into a migrator's import (a DatabaseSink). The order of the frames and the row counts are
    checked here already, so a stream that lies is refused before anything is sent."""

    def __init__(self, chunks: ChunkedImport) -> None:
        self.chunks = chunks
        self._order = frames.TableOrder()

    async def begin_table(self, table: str, create: str, columns: list[str], foreign_keys: Sequence[str] = ()) -> None:
        """`create` without its foreign keys; the migrator adds those (checked again there) when it commits."""
        self._order.begin(table, columns)
        meta: dict[str, object] = {"name": table, "create": create, "columns": columns}
        if foreign_keys:
            meta["foreign_keys"] = list(foreign_keys)
        await self.chunks.add(frames.encode_json(frames.TABLE, meta))

    async def rows(self, payload: bytes) -> None:
        self._order.open_table()
        for part, count in frames.split_records(payload, len(self._order.columns), self.chunks.max_frame_bytes - 5):
            self._order.rows += count
            await self.chunks.add(*frames.frame_parts(frames.ROWS, part))

    async def end_table(self, table: str, rows: int) -> None:
        self._order.end(table, rows)
        await self.chunks.add(frames.encode_json(frames.TABLE_END, {"name": table, "rows": rows}))


class FilesImport:
    """An export's files (F and D frames) into a migrator's import, as pieces."""

    def __init__(self, chunks: ChunkedImport) -> None:
        self.chunks = chunks
        self._file: list[bytes] | None = None  # path, size, mtime, mode of the open file
        self._offset = 0

    async def begin_file(self, header: bytes) -> None:
        self._require_complete()
        path, size, mtime, mode = frames.decode_single_record(header, 4)
        if path is None or not 0 < len(path) <= frames.MAX_PATH_BYTES:
            raise frames.StreamError(f"a file header without a path of 1 to {frames.MAX_PATH_BYTES} bytes")
        numbers = [str(frames.number(value)).encode() for value in (size, mtime, mode)]
        self._file, self._offset = [path, *numbers], 0
        if numbers[0] == b"0":
            await self._piece(b"")

    async def data(self, data: bytes) -> None:
        if self._file is None:
            raise frames.StreamError("file data outside a file")
        if self._offset + len(data) > int(self._file[1]):
            raise frames.StreamError(f"{self._file[0]!r}: more data than the {int(self._file[1])} bytes announced")
        for start in range(0, len(data), self.chunks.max_frame_bytes // 2):
            await self._piece(data[start:start + self.chunks.max_frame_bytes // 2])

    async def close(self) -> int:
        self._require_complete()
        return await self.chunks.close()

    async def _piece(self, data: bytes) -> None:
        assert self._file is not None
        path, size, mtime, mode = self._file
        await self.chunks.add(*frames.frame_parts(frames.PIECE, *frames.record_parts(
            [path, str(self._offset).encode(), size, mtime, mode, data])))
        self._offset += len(data)

    def _require_complete(self) -> None:
        if self._file is not None and self._offset != int(self._file[1]):
            raise frames.StreamError(f"{self._file[0]!r}: {self._offset} of {int(self._file[1])} bytes arrived")

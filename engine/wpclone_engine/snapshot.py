"""A source snapshot: one export of a site kept in a folder, so that more clones of it never read it again.

The first copy of a source records what it read, as it read it: the migrator's info report and its two
export streams (the tables, the files), byte for byte. A later copy reads those streams back through
the same copy (transfer.copy_site), the URL rewritten to its own host as if it read the site itself,
so a clone from a snapshot is the clone a fresh read would have made at the snapshot's time. Nothing
of the site's is parsed on the way in; the streams are checked on the way out like any source's
(frames.py), after the digests the recording ended with.

    folder/incoming-<random>/   being recorded (removed by the next recording)
    folder/site/                published: manifest.json, database.stream, files.stream
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import TypeAdapter, ValidationError

from wpclone_engine import reasons
from wpclone_engine.wordpress import Migrator, SiteInfo, WordPressError

FORMAT = 1
PUBLISHED = "site"
MANIFEST = "manifest.json"
DATABASE = "database.stream"
FILES = "files.stream"
READ_BYTES = 1024 * 1024
SITE_INFO = TypeAdapter(SiteInfo)


class SnapshotError(WordPressError):
    """A snapshot that cannot serve a copy: missing, damaged, or made for other parts of the site."""

    def __init__(self, message: str) -> None:
        super().__init__(reasons.SNAPSHOT_UNUSABLE, message)


@dataclass(frozen=True)
class FilesAsked:
    """What a files export was asked for: a snapshot serves exactly what it recorded."""

    include: tuple[str, ...]
    dropins: bool
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    source: str
    recorded_at: float  # when the site's info (its tables' checksums) was read: the snapshot's time
    info: dict[str, Any]
    streams: dict[str, dict[str, Any]]  # DATABASE / FILES -> {"sha256", "bytes"}
    files: FilesAsked

    @property
    def bytes(self) -> int:
        return sum(int(stream["bytes"]) for stream in self.streams.values())

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "source": self.source, "recorded_at": self.recorded_at,
                           "info": self.info, "streams": self.streams,
                           "files": {"include": list(self.files.include), "dropins": self.files.dropins,
                                     "exclude": list(self.files.exclude)}}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            files = data["files"]
            manifest = cls(str(data["source"]), float(data["recorded_at"]), dict(data["info"]),
                           {name: {"sha256": str(data["streams"][name]["sha256"]),
                                   "bytes": int(data["streams"][name]["bytes"])} for name in (DATABASE, FILES)},
                           FilesAsked(tuple(files["include"]), bool(files["dropins"]), tuple(files["exclude"])))
            SITE_INFO.validate_python(manifest.info)
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as error:
            raise SnapshotError(f"the snapshot's manifest cannot be read ({type(error).__name__})") from None
        return manifest


class _Stream:
    """One export stream written to a file as it passes, with its digest and length."""

    def __init__(self, path: Path) -> None:
        self.file: BinaryIO = path.open("xb")
        self.digest = hashlib.sha256()
        self.bytes = 0

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.digest.update(chunk)
        self.bytes += len(chunk)

    def close(self) -> dict[str, Any]:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return {"sha256": self.digest.hexdigest(), "bytes": self.bytes}


class Recording:
    """A source migrator that keeps what a whole-site copy reads from it in `folder`; `publish` after
    the copy succeeded makes it a snapshot. A copy that reads less than the whole site (some tables, an
    export resumed after a break, some files) cannot be recorded: `publish` then refuses."""

    def __init__(self, source: Migrator, folder: Path) -> None:
        self.source = source
        self.url = source.url
        self.folder = folder
        for stale in folder.glob("incoming-*"):  # an earlier attempt's, cut short
            shutil.rmtree(stale, ignore_errors=True)
        self.incoming = folder / f"incoming-{secrets.token_hex(6)}"
        self.incoming.mkdir(parents=True)
        self.recorded_at: float | None = None
        self.info_report: dict[str, Any] | None = None
        self.streams: dict[str, _Stream] = {}
        self.files: FilesAsked | None = None
        self.partial = False

    async def info(self, *, checksums: bool = False, content: bool = False, collations: bool = False) -> SiteInfo:
        self.recorded_at = time.time()
        info = await self.source.info(checksums=checksums, content=content, collations=collations)
        if checksums:  # a restore's conflict check compares with these
            self.info_report = SITE_INFO.dump_python(info, mode="json")
        return info

    @asynccontextmanager
    async def export_database(self, tables: list[str] | None, slice_bytes: int, resume: dict[str, Any] | None = None,
                              ) -> AsyncIterator[AsyncIterator[bytes]]:
        whole = tables is None and resume is None and DATABASE not in self.streams
        self.partial |= not whole
        async with self.source.export_database(tables, slice_bytes, resume) as chunks:
            yield self._kept(chunks, DATABASE) if whole else chunks

    @asynccontextmanager
    async def export_files(self, include: list[str], slice_bytes: int, *, dropins: bool = False,
                           exclude: tuple[str, ...] = (), paths: list[str] | None = None,
                           ) -> AsyncIterator[AsyncIterator[bytes]]:
        whole = paths is None and FILES not in self.streams
        self.partial |= not whole
        if whole:
            self.files = FilesAsked(tuple(include), dropins, tuple(exclude))
        async with self.source.export_files(include, slice_bytes, dropins=dropins, exclude=exclude,
                                            paths=paths) as chunks:
            yield self._kept(chunks, FILES) if whole else chunks

    async def _kept(self, chunks: AsyncIterator[bytes], name: str) -> AsyncIterator[bytes]:
        # What the copy read, as far as it read (to the stream's END frame, which a copy that succeeded reached).
        stream = self.streams[name] = _Stream(self.incoming / name)
        async for chunk in chunks:
            stream.write(chunk)
            yield chunk

    def publish(self) -> Manifest:
        """The recording, once the copy succeeded, as the folder's snapshot, replacing one published before
        (by an attempt whose outcome was lost): one rename makes it whole at once."""
        missing = [name for name in (DATABASE, FILES) if name not in self.streams]
        if self.partial or missing or self.info_report is None or self.files is None or self.recorded_at is None:
            self.discard()
            raise SnapshotError("the copy did not read the whole site in one pass; no snapshot was kept")
        manifest = Manifest(self.url, self.recorded_at, self.info_report,
                            {name: stream.close() for name, stream in self.streams.items()}, self.files)
        (self.incoming / MANIFEST).write_text(manifest.to_json())
        published = self.folder / PUBLISHED
        if published.exists():
            aside = self.folder / f"incoming-{secrets.token_hex(6)}"
            published.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        self.incoming.rename(published)
        return manifest

    def discard(self) -> None:
        for stream in self.streams.values():
            with contextlib.suppress(OSError, ValueError):
                stream.file.close()
        shutil.rmtree(self.incoming, ignore_errors=True)


class RecordedSite:
    """A snapshot read back as a copy's source: the recorded info report and export streams, each
    stream checked against the manifest's digest before its first byte is handed on (a damaged one fails
    the copy before anything is swapped in)."""

    def __init__(self, folder: Path, manifest: Manifest) -> None:
        self.folder = folder
        self.manifest = manifest
        self.url = manifest.source.rstrip("/")

    @classmethod
    def open(cls, folder: Path) -> RecordedSite:
        site = folder / PUBLISHED
        try:
            text = (site / MANIFEST).read_text()
        except OSError:
            raise SnapshotError(f"no snapshot is published in {folder}") from None
        return cls(site, Manifest.from_json(text))

    async def info(self, *, checksums: bool = False, content: bool = False, collations: bool = False) -> SiteInfo:
        return SITE_INFO.validate_python(self.manifest.info)

    @asynccontextmanager
    async def export_database(self, tables: list[str] | None, slice_bytes: int, resume: dict[str, Any] | None = None,
                              ) -> AsyncIterator[AsyncIterator[bytes]]:
        if tables is not None or resume is not None:
            raise SnapshotError("a snapshot holds the whole database: some tables, or the rest of a broken "
                                "export, are read from the site")
        yield self._read(DATABASE)

    @asynccontextmanager
    async def export_files(self, include: list[str], slice_bytes: int, *, dropins: bool = False,
                           exclude: tuple[str, ...] = (), paths: list[str] | None = None,
                           ) -> AsyncIterator[AsyncIterator[bytes]]:
        asked = FilesAsked(tuple(include), dropins, tuple(exclude))
        if paths is not None or asked != self.manifest.files:
            raise SnapshotError(f"the snapshot holds the files of {self.manifest.files}, not of {asked}")
        yield self._read(FILES)

    async def _read(self, name: str) -> AsyncIterator[bytes]:
        # The whole file checked first: a changed byte must fail as a damaged snapshot (the operator then
        # copies from the site), not as a hostile stream (which fails the clone for good).
        await asyncio.to_thread(self._check, name)
        try:
            with (self.folder / name).open("rb") as stream:
                while block := stream.read(READ_BYTES):
                    yield block
        except OSError as error:
            raise SnapshotError(f"the snapshot's {name} cannot be read ({error.strerror})") from None

    def _check(self, name: str) -> None:
        expected = self.manifest.streams[name]
        digest, length = hashlib.sha256(), 0
        try:
            with (self.folder / name).open("rb") as stream:
                while block := stream.read(READ_BYTES):
                    digest.update(block)
                    length += len(block)
        except OSError as error:
            raise SnapshotError(f"the snapshot's {name} cannot be read ({error.strerror})") from None
        if length != expected["bytes"] or digest.hexdigest() != expected["sha256"]:
            raise SnapshotError(f"the snapshot's {name} is not what was recorded")

"""A source snapshot: one export of a site kept in a folder, so that more clones of it never read it again.

The first copy of a source records what it read, as it read it: the migrator's info report and its two
export streams (the tables, the files), byte for byte. A later copy reads those streams back through
the same copy (transfer.copy_site), the URL rewritten to its own host as if it read the site itself,
so a clone from a snapshot is the clone a fresh read would have made at the snapshot's time. Nothing
of the site's is parsed on the way in; the streams are checked on the way out like any source's
(frames.py), after the digests the recording ended with.

    folder/incoming-<random>/   being recorded (removed by the next recording): info.json, the streams
                                as they grow, files.json; followed by live readers (LiveSite)
    folder/site/                published: the same renamed, with manifest.json
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
from typing import Any, BinaryIO, cast

from pydantic import TypeAdapter, ValidationError

from wpclone_engine import reasons
from wpclone_engine.wordpress import Migrator, SiteInfo, WordPressError

FORMAT = 1
PUBLISHED = "site"
MANIFEST = "manifest.json"
INFO = "info.json"  # written as soon as the site's info is read: a live reader starts from it
FILES_ASKED = "files.json"  # what the files export was asked for, written before its stream
DONE = ".done"  # beside a stream read whole: its length and digest
POLL_SECONDS = 0.2
STALL_SECONDS = 600.0  # a recording that does not grow for this long is given up by its live readers
DATABASE = "database.stream"
FILES = "files.stream"
READ_BYTES = 1024 * 1024
SITE_INFO = TypeAdapter(SiteInfo)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Whole or not at all, for a reader in another process: written aside, then renamed."""
    aside = path.with_suffix(".part")
    aside.write_text(json.dumps(data, separators=(",", ":")))
    aside.rename(path)


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
    attempt: str = ""  # the recording's folder before it was published (what live readers follow)

    @property
    def bytes(self) -> int:
        return sum(int(stream["bytes"]) for stream in self.streams.values())

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "source": self.source, "recorded_at": self.recorded_at,
                           "info": self.info, "streams": self.streams, "files": _files_json(self.files),
                           "attempt": self.attempt}, separators=(",", ":"))

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
                           _files_asked(files), str(data.get("attempt", "")))
            SITE_INFO.validate_python(manifest.info)
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as error:
            raise SnapshotError(f"the snapshot's manifest cannot be read ({type(error).__name__})") from None
        return manifest


def _files_json(files: FilesAsked) -> dict[str, Any]:
    return {"include": list(files.include), "dropins": files.dropins, "exclude": list(files.exclude)}


def _files_asked(data: dict[str, Any]) -> FilesAsked:
    return FilesAsked(tuple(data["include"]), bool(data["dropins"]), tuple(data["exclude"]))


class _Stream:
    """One export stream written to a file as it passes, with its digest and length."""

    def __init__(self, path: Path) -> None:
        self.file: BinaryIO = path.open("xb")
        self.digest = hashlib.sha256()
        self.bytes = 0

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.file.flush()  # live readers (other copies' Jobs) follow the file as it grows
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
            _write_json(self.incoming / INFO, {"source": self.url, "recorded_at": self.recorded_at,
                                               "info": self.info_report})
        return info

    @asynccontextmanager
    async def export_database(self, tables: list[str] | None, slice_bytes: int, resume: dict[str, Any] | None = None,
                              ) -> AsyncIterator[AsyncIterator[bytes]]:
        whole = tables is None and resume is None and DATABASE not in self.streams
        self.partial |= not whole
        async with self.source.export_database(tables, slice_bytes, resume) as chunks:
            yield self._kept(chunks, DATABASE) if whole else chunks
        if whole:  # read to its end without a failure
            self._ended(DATABASE)

    @asynccontextmanager
    async def export_files(self, include: list[str], slice_bytes: int, *, dropins: bool = False,
                           exclude: tuple[str, ...] = (), paths: list[str] | None = None,
                           resume: dict[str, Any] | None = None) -> AsyncIterator[AsyncIterator[bytes]]:
        whole = paths is None and resume is None and FILES not in self.streams
        self.partial |= not whole
        if whole:
            self.files = FilesAsked(tuple(include), dropins, tuple(exclude))
            _write_json(self.incoming / FILES_ASKED, _files_json(self.files))
        async with self.source.export_files(include, slice_bytes, dropins=dropins, exclude=exclude,
                                            paths=paths, resume=resume) as chunks:
            yield self._kept(chunks, FILES) if whole else chunks
        if whole:
            self._ended(FILES)

    async def _kept(self, chunks: AsyncIterator[bytes], name: str) -> AsyncIterator[bytes]:
        # What the copy read, as far as it read (to the stream's END frame, which a copy that succeeded reached).
        stream = self.streams[name] = _Stream(self.incoming / name)
        async for chunk in chunks:
            stream.write(chunk)
            yield chunk

    def _ended(self, name: str) -> None:
        """A stream read whole: its length and digest for its live readers, who may finish it now."""
        stream = self.streams.get(name)
        if stream is not None:
            _write_json(self.incoming / (name + DONE), {"sha256": stream.digest.hexdigest(), "bytes": stream.bytes})

    def publish(self) -> Manifest:
        """The recording, once the copy succeeded, as the folder's snapshot, replacing one published before
        (by an attempt whose outcome was lost): one rename makes it whole at once."""
        missing = [name for name in (DATABASE, FILES) if name not in self.streams]
        if self.partial or missing or self.info_report is None or self.files is None or self.recorded_at is None:
            self.discard()
            raise SnapshotError("the copy did not read the whole site in one pass; no snapshot was kept")
        manifest = Manifest(self.url, self.recorded_at, self.info_report,
                            {name: stream.close() for name, stream in self.streams.items()}, self.files,
                            self.incoming.name)
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


class _SnapshotSource:
    """A snapshot as a copy's source (transfer.Source): the site's info as it was read, and the whole
    database and the files as they were asked for, nothing else."""

    url: str
    info_report: dict[str, Any]

    async def info(self, *, checksums: bool = False, content: bool = False, collations: bool = False) -> SiteInfo:
        try:
            return SITE_INFO.validate_python(self.info_report)
        except ValidationError:
            raise SnapshotError("the snapshot's record of the site's info cannot be read") from None

    @asynccontextmanager
    async def export_database(self, tables: list[str] | None, slice_bytes: int, resume: dict[str, Any] | None = None,
                              ) -> AsyncIterator[AsyncIterator[bytes]]:
        if tables is not None or resume is not None:
            raise SnapshotError("a snapshot holds the whole database: some tables, or the rest of a broken "
                                "export, are read from the site")
        yield self._stream(DATABASE)

    @asynccontextmanager
    async def export_files(self, include: list[str], slice_bytes: int, *, dropins: bool = False,
                           exclude: tuple[str, ...] = (), paths: list[str] | None = None,
                           resume: dict[str, Any] | None = None) -> AsyncIterator[AsyncIterator[bytes]]:
        asked = FilesAsked(tuple(include), dropins, tuple(exclude))
        recorded = await self._files_recorded()
        if paths is not None or resume is not None or asked != recorded:
            raise SnapshotError(f"the snapshot holds the files of {recorded}, not of {asked} (nor the rest of "
                                "a broken export)")
        yield self._stream(FILES)

    async def _files_recorded(self) -> FilesAsked:
        raise NotImplementedError

    def _stream(self, name: str) -> AsyncIterator[bytes]:
        raise NotImplementedError


class RecordedSite(_SnapshotSource):
    """A snapshot read back as a copy's source: the recorded info report and export streams, each
    stream checked against the manifest's digest before its first byte is handed on (a damaged one fails
    the copy before anything is swapped in)."""

    def __init__(self, folder: Path, manifest: Manifest) -> None:
        self.folder = folder
        self.manifest = manifest
        self.url = manifest.source.rstrip("/")
        self.info_report = manifest.info

    @classmethod
    def open(cls, folder: Path) -> RecordedSite:
        site = folder / PUBLISHED
        try:
            text = (site / MANIFEST).read_text()
        except OSError:
            raise SnapshotError(f"no snapshot is published in {folder}") from None
        return cls(site, Manifest.from_json(text))

    async def _files_recorded(self) -> FilesAsked:
        return self.manifest.files

    def _stream(self, name: str) -> AsyncIterator[bytes]:
        return self._read(name)

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


async def open_snapshot(folder: Path) -> RecordedSite | LiveSite:
    """The snapshot published in `folder`, or else the recording in progress there (waited for until the
    site's info is written, at most STALL_SECONDS)."""
    waited = 0.0
    while True:
        if (folder / PUBLISHED / MANIFEST).exists():
            return RecordedSite.open(folder)
        with contextlib.suppress(OSError, ValueError, KeyError):  # an attempt being removed, or half-seen
            begun = sorted(folder.glob(f"incoming-*/{INFO}"), key=lambda path: path.stat().st_mtime)
            if begun:
                return LiveSite(folder, begun[-1].parent, json.loads(begun[-1].read_text()))
        if waited > STALL_SECONDS:
            raise SnapshotError("no recording of the snapshot began")
        await asyncio.sleep(POLL_SECONDS)
        waited += POLL_SECONDS


class LiveSite(_SnapshotSource):
    """A snapshot still being recorded, read as it grows (by the clones asked for while another clone's copy
    records it): each stream is followed to its end, and its last block handed on only once the recording
    read that stream whole and its digest matches what was followed, so a copy from it succeeds only with
    a whole export of the site. A recording abandoned, replaced by a later attempt, or still for
    STALL_SECONDS fails the copy (SnapshotUnusable) before anything is swapped in."""

    def __init__(self, folder: Path, attempt: Path, begun: dict[str, Any]) -> None:
        self.folder = folder
        self.attempt = attempt
        self.url = str(begun["source"]).rstrip("/")
        self.info_report = dict(begun["info"])

    def _stream(self, name: str) -> AsyncIterator[bytes]:
        return self._follow(name)

    def _published(self) -> Manifest | None:
        """The manifest of the recording followed, once published; None before."""
        try:
            manifest = Manifest.from_json((self.folder / PUBLISHED / MANIFEST).read_text())
        except (OSError, SnapshotError):
            return None
        if manifest.attempt != self.attempt.name:
            raise SnapshotError("the recording this copy followed was replaced by another attempt")
        return manifest

    def _ended(self, name: str) -> dict[str, Any] | None:
        """The length and digest of a stream the recording read whole; None while it is still read."""
        manifest = self._published()
        if manifest is not None:
            return manifest.streams[name]
        with contextlib.suppress(OSError, ValueError):
            ended = json.loads((self.attempt / (name + DONE)).read_text())
            return {"sha256": str(ended["sha256"]), "bytes": int(ended["bytes"])}
        return None

    async def _until(self, found: Any, what: str) -> Any:
        """Polls `found()` until it gives something; fails when the recording is abandoned or stalls."""
        waited = 0.0
        while (result := found()) is None:
            if not self.attempt.exists() and self._published() is None:
                raise SnapshotError(f"the recording of the snapshot was abandoned before its {what}")
            if waited > STALL_SECONDS:
                raise SnapshotError(f"the recording of the snapshot stalled before its {what}")
            await asyncio.sleep(POLL_SECONDS)
            waited += POLL_SECONDS
        return result

    async def _files_recorded(self) -> FilesAsked:
        def found() -> FilesAsked | None:
            manifest = self._published()
            if manifest is not None:
                return manifest.files
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                return _files_asked(json.loads((self.attempt / FILES_ASKED).read_text()))
            return None
        return cast(FilesAsked, await self._until(found, "files"))

    def _open(self, name: str) -> BinaryIO | None:
        for folder in (self.attempt, self.folder / PUBLISHED if self._published() else None):
            if folder is not None:
                with contextlib.suppress(FileNotFoundError):  # (renamed as it was published: the next)
                    return (folder / name).open("rb")
        return None

    async def _follow(self, name: str) -> AsyncIterator[bytes]:
        stream = cast(BinaryIO, await self._until(lambda: self._open(name), name))
        digest, length, held, idle = hashlib.sha256(), 0, b"", 0.0
        with stream:
            while True:
                block = stream.read(READ_BYTES)
                if block:
                    if held:
                        yield held
                    digest.update(block)
                    length += len(block)
                    held, idle = block, 0.0
                    continue
                expected = self._ended(name)
                if expected is not None:  # every byte was written before it: read to the end, then check
                    while block := stream.read(READ_BYTES):
                        if held:
                            yield held
                        digest.update(block)
                        length += len(block)
                        held = block
                    if length != expected["bytes"] or digest.hexdigest() != expected["sha256"]:
                        raise SnapshotError(f"the snapshot's {name} is not what was recorded")
                    if held:
                        yield held
                    return
                if not self.attempt.exists() and self._published() is None:
                    raise SnapshotError(f"the recording of the snapshot's {name} was abandoned")
                if idle > STALL_SECONDS:
                    raise SnapshotError(f"the recording of the snapshot's {name} stalled")
                await asyncio.sleep(POLL_SECONDS)
                idle += POLL_SECONDS

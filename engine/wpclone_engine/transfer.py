"""Copying a WordPress site into another: the operator is the pump between two migrators.

    source migrator --export stream--> rewrite (site_move) --import chunks--> destination migrator
                                                           \\--SQL--> a clone's bare database

The source's tables and wp-content folders are streamed a slice at a time, side by side, their URL
rewritten on the way, and pushed into the destination's staging area while the next slice is read
(import_chunks.py, pipeline.py): memory stays bounded whatever the size of the site. Only a complete
import is swapped in, atomically (the migrator's commit, or DatabaseImport.swap); any failure before
that leaves the destination as it was and removes what was staged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import sqlite3
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import pymysql

from wpclone_engine import frames, merge, reasons
from wpclone_engine.database_import import DatabaseImport, DatabaseTarget
from wpclone_engine.import_chunks import (
    FILE_CHUNKS_IN_FLIGHT,
    ChunkedImport,
    FilesImport,
    TablesImport,
    database_chunks,
)
from wpclone_engine.passwords import wordpress_hash
from wpclone_engine.rewrite import UrlRewrite
from wpclone_engine.site_move import (
    AdminPassword,
    DatabaseObject,
    RowCounts,
    SiteMove,
    collations_to_restore,
    database_objects,
)
from wpclone_engine.sqlite_import import SqliteImport, SqliteTarget
from wpclone_engine.wordpress import ImportJob, Migrator, SiteInfo, WordPressError

SLICE_BYTES = 1024 * 1024
# How many times an export that broke off is asked to go on (resumed_frames).
EXPORT_RESUMES = 3
_PROGRESS_EVERY_SECONDS = 0.5
Result = TypeVar("Result")

logger = logging.getLogger(__name__)


class TransferError(WordPressError):
    """A copy failed; `reason` is machine-readable (for a CR condition). Never holds a secret."""


class Source(Protocol):
    """What a copy reads: a site's migrator, or a snapshot of a site (snapshot.py)."""

    url: str

    async def info(self, *, checksums: bool = False, content: bool = False, collations: bool = False) -> SiteInfo: ...

    def export_database(self, tables: list[str] | None, slice_bytes: int, resume: dict[str, Any] | None = None,
                        ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]: ...

    def export_files(self, include: list[str], slice_bytes: int, *, dropins: bool = False,
                     exclude: tuple[str, ...] = (), paths: list[str] | None = None,
                     resume: dict[str, Any] | None = None) -> AbstractAsyncContextManager[AsyncIterator[bytes]]: ...


@dataclass(frozen=True)
class Include:
    """What a copy carries. `tables` are source table names; None means every table of the site,
    and then the destination's tables the source lacks are removed (kept in the backup if any).
    `mu_plugins` (wp-content/mu-plugins) is for clones: a restore leaves production's must-use plugins be.
    `content` is the rest of wp-content (languages, fonts, plugins' own folders; never caches, backups or
    server configuration), `dropins` adds wp-content's drop-ins to it, and `exclude` leaves out the
    top-level entries of folders that match its shell patterns ("uploads/2019", "content/languages"):
    the destination keeps its own of both, so rules that match the copy's leave nothing half-replaced."""

    database: bool = True
    tables: tuple[str, ...] | None = None
    uploads: bool = True
    themes: bool = True
    plugins: bool = True
    mu_plugins: bool = False
    content: bool = False
    dropins: bool = False
    exclude: tuple[str, ...] = ()

    @property
    def folders(self) -> list[str]:
        """The folders' names in the migrator's streams."""
        wanted = {"uploads": self.uploads, "themes": self.themes, "plugins": self.plugins,
                  "mu-plugins": self.mu_plugins, "content": self.content}
        return [name for name, included in wanted.items() if included]


@dataclass(frozen=True)
class Progress:
    phase: str  # "database", "files", "commit"
    bytes: int
    rows: int
    files: int
    table: str | None = None


ProgressCallback = Callable[[Progress], Awaitable[None] | None]


@dataclass(frozen=True)
class DatabaseDestination:
    """A clone reached through its own database (it has no tables, so no WordPress to talk to yet),
    and, once the tables are in, through its migrator (a must-use plugin, token auth) for the files."""

    database: DatabaseTarget | SqliteTarget
    url: str
    files: Migrator | None = None
    # A merge restore's baseline (merge.py), recorded in the clone's database as the rows arrive, and how
    # far above the source's the clone's auto-increment counters start (0: where the source's are).
    baseline: bool = False
    id_offset: int = 0


@dataclass(frozen=True)
class CopyResult:
    source_url: str
    destination_url: str
    tables: int
    rows: int
    files: int
    bytes: int
    rewritten_values: int
    unparseable_values: int  # values holding the old URL that PHP cannot unserialize: rewritten as text
    # The source's tables as the copy began: what a later restore compares with to detect conflicts.
    source_checksums: dict[str, str | None] = field(default_factory=dict)
    backup: str | None = None  # the destination's backup of what the copy replaced, if one was asked for
    # Cells of the destination's database still holding the old URL in a form the rewrite replaces
    # (expected 0), counted after the copy; None when not counted (the new URL holds the old one).
    old_urls_left: int | None = None
    # wp-content's drop-ins the source has and the copy left behind (Include.dropins carries them).
    dropins_left: tuple[str, ...] = ()
    # The source database's views, triggers, stored routines and events: not copied (named, at most 100).
    not_copied: tuple[str, ...] = ()


# The migrator's own error codes (WPClone_Error reasons, "wpclone_" + reason in a REST error) that get
# a reason of their own; any other refusal stays a MigratorError.
async def copy_site(source: Source, destination: Migrator | DatabaseDestination, *,
                    include: Include = Include(), rewrite_to: str | None = None,
                    admin_password: AdminPassword | None = None, backup: bool = False,
                    progress: ProgressCallback | None = None) -> CopyResult:
    """Copies `source` into `destination`, the source's URL rewritten to `rewrite_to` (by default the
    destination's own URL). The destination keeps its siteurl, home and blog_public; `admin_password`
    sets one administrator's password there; `backup` keeps what the copy replaced, for a rollback."""
    with transfer_errors():
        return await _copy_site(source, destination, include, rewrite_to, admin_password, backup, progress)


@contextlib.contextmanager
def transfer_errors() -> Iterator[None]:
    """A copy's failures as TransferErrors, each with its reason."""
    try:
        yield
    except WordPressError as error:
        raise TransferError(error.reason, str(error)) from error
    except frames.StreamError as error:
        raise TransferError(error.reason, str(error)) from error
    except (pymysql.MySQLError, sqlite3.Error) as error:
        raise TransferError("DatabaseError", f"the clone's database failed: {error}") from error


async def _copy_site(source: Source, destination: Migrator | DatabaseDestination, include: Include,
                     rewrite_to: str | None, admin_password: AdminPassword | None, backup: bool,
                     progress: ProgressCallback | None) -> CopyResult:
    # The source's checksums, which its tables' export waits for (_copy_database); the files need none:
    # they set off once their import has begun, while the source computes them.
    checksummed = asyncio.ensure_future(source.info(checksums=True))
    try:
        if isinstance(destination, DatabaseDestination):
            return await _copy_into_database(source, checksummed, destination, include, rewrite_to,
                                             admin_password, Tally(progress))
        return await _copy_into_site(source, checksummed, destination, include, rewrite_to, admin_password,
                                     backup, Tally(progress))
    finally:
        checksummed.cancel()  # (after a failure: done with otherwise)
        await asyncio.gather(checksummed, return_exceptions=True)


async def _copy_into_site(source: Source, checksummed: Awaitable[SiteInfo], destination: Migrator,
                          include: Include, rewrite_to: str | None, admin_password: AdminPassword | None,
                          backup: bool, tally: Tally) -> CopyResult:
    # A site is asked about itself while the source says what it holds.
    source_info, destination_info = await _together(source.info(), destination.info(collations=True))
    tables = chosen_tables(source_info, include)
    if destination_info.home.rstrip("/") == source_info.home.rstrip("/"):
        raise TransferError("SameSite", f"{source.url} and {destination.url} are the same site")
    move = site_move(source_info, destination_info.table_prefix, rewrite_to or destination_info.home,
                      {name: value.encode() for name, value in destination_info.options.items() if value is not None},
                      admin_password)
    # A table the site has with MySQL 8's collations gets them back where the copy has their stand-ins
    # (a clone on a server without them made them so).
    move = replace(move, restored_collations={
        name: restored for name, table in destination_info.tables.items()
        if (restored := collations_to_restore(table.collations))})
    job = await destination.begin_import(
        database=include.database, files=include.folders,
        tables=None if include.tables is None else [move.table_name(table) for table in tables],
        dropins=include.dropins, exclude=include.exclude)
    tables_import = TablesImport(database_chunks(destination, job))
    files_import = FilesImport(ChunkedImport(destination, job, "files", parallel=FILE_CHUNKS_IN_FLIGHT))
    try:
        # The database and the files travel side by side: one keeps the CPU busy while the other waits.
        streams = []
        if include.database:
            streams.append(_copy_database(source, checksummed, tables_import, move, tables, include,
                                          admin_password, tally))
        if include.folders:
            streams.append(copy_files(source, files_import, include, tally))
        await _together(*streams)
        chunks = {"database": await tables_import.chunks.close(), "files": await files_import.close()}
        source_info = await checksummed  # (a copy of files only has not waited for them yet)
        await tally.report("commit", force=True)
        committed = await destination.commit_import(job.id, chunks=chunks, backup=backup)
    except BaseException:
        await tables_import.chunks.cancel()
        await files_import.chunks.cancel()
        await quietly(destination.abort_import(job.id))
        raise
    # Into a site (a restore): its own views, triggers and routines stay; the source's are not made there.
    tally.left_out(f"{item.kind} {item.name} (a copy into a site leaves the site's own)" for item in tally.objects)
    return tally.result(source_info, str(move.rewrite.new), committed.get("backup"))


async def _copy_into_database(source: Source, checksummed: Awaitable[SiteInfo], destination: DatabaseDestination,
                              include: Include, rewrite_to: str | None, admin_password: AdminPassword | None,
                              tally: Tally) -> CopyResult:
    """Clone from nothing: the tables go straight into the clone's database and the files to the clone's
    migrator, side by side when its WordPress can boot meanwhile (see DatabaseImport.bootable), else once
    it has the tables. A failure puts the old tables back."""
    if include.folders and destination.files is None:
        raise TransferError("NoFilesDestination", "copying files into a database destination needs its migrator")
    source_info = await source.info()
    tables = chosen_tables(source_info, include)
    database: DatabaseImport | SqliteImport
    if isinstance(destination.database, SqliteTarget):
        if destination.baseline or destination.id_offset:
            raise TransferError(reasons.NOT_SUPPORTED, "a merge restore's baseline needs a MySQL clone, not a "
                                "SQLite one")
        database = await SqliteImport.open(destination.database)
        # Its wp-content/db.php is its own (the drop-in's loader), whatever the source's drop-ins are.
        include = replace(include, exclude=(*include.exclude, "content/db.php"))
    else:
        database = await DatabaseImport.open(destination.database)
    baseline = database if destination.baseline and isinstance(database, DatabaseImport) else None
    try:
        # A clone is served at its own URL whatever the source's options say (its pod does not name it).
        own_url = (rewrite_to or destination.url).encode()
        move = site_move(source_info, destination.database.table_prefix, rewrite_to or destination.url,
                         {"home": own_url, "siteurl": own_url, **await database.preserved_options()}, admin_password)
        files = None if not include.folders or destination.files is None else _CloneFiles(
            destination.files, include, tally, baseline if include.database else None)
        try:
            if include.database:
                if baseline is not None:
                    await baseline.begin_baseline()
                # The files go to the clone's migrator while its tables are copied, if its WordPress boots
                # meanwhile. Their import begins first: beginning one sweeps away what looks staged.
                beside = files if files is not None and isinstance(database, DatabaseImport) and (
                    await database.bootable(own_url, replaced=include.tables is None)) else None
                if beside is not None:
                    await beside.begin()
                copying = _copy_database(source, checksummed, database, move, tables, include, admin_password,
                                         tally, baseline=baseline)
                await (copying if beside is None else _together(copying, beside.send(source)))
                await database.swap(replace_all=include.tables is None)
                await database.raise_counters(destination.id_offset)
                if move.rewrite.leaves_old_url_checkable:
                    tally.old_urls_left = await database.count_occurrences(move.rewrite.occurrences,
                                                                           move.rewrite.needle)
            source_info = await checksummed  # (a copy of files only has not waited for them yet)
            if files is not None:
                try:
                    if not files.begun:  # after the tables: WordPress did not boot without them
                        await files.begin()
                        await files.send(source)
                    await files.commit()
                except BaseException:
                    await quietly(database.revert())
                    raise
        except BaseException:
            if files is not None:
                await files.abort()
            raise
        await database.finish()
        # Once the tables they refer to are all there, and the replaced ones (with the same names of
        # constraints) are gone; the rows are the source's own, so they are not checked again.
        await database.add_foreign_keys()
        if isinstance(database, SqliteImport):
            tally.left_out(database.loosened)
            tally.left_out(f"{item.kind} {item.name} (a SQLite clone has none)" for item in tally.objects)
        elif include.database and include.tables is None:  # the whole database: its views, triggers, routines
            tally.left_out(await _make_objects(database, move, tally.objects))
    except BaseException:
        await quietly(database.abort())
        raise
    finally:
        database.close()
    return tally.result(source_info, str(move.rewrite.new), None)


class _CloneFiles:
    """A clone's files through its migrator: begun, sent, and committed once the clone has its tables (its
    WordPress, with them, serves the commit), or aborted."""

    def __init__(self, migrator: Migrator, include: Include, tally: Tally, baseline: DatabaseImport | None) -> None:
        """`baseline`: the clone's database, whose merge baseline gets the files' digests."""
        self._migrator, self._include, self._tally, self._baseline = migrator, include, tally, baseline
        self._job: ImportJob | None = None
        self._import: FilesImport | None = None
        self._digests: list[merge.BaselineRow] | None = None if baseline is None else []

    @property
    def begun(self) -> bool:
        return self._import is not None

    async def begin(self) -> None:
        self._job = await self._migrator.begin_import(database=False, tables=None, files=self._include.folders,
                                                      dropins=self._include.dropins, exclude=self._include.exclude)
        self._import = FilesImport(ChunkedImport(self._migrator, self._job, "files", parallel=FILE_CHUNKS_IN_FLIGHT))

    async def send(self, source: Source) -> None:
        assert self._import is not None
        await copy_files(source, self._import, self._include, self._tally, digests=self._digests)

    async def commit(self) -> None:
        """Swaps the files in; their digests join the clone's baseline."""
        assert self._job is not None and self._import is not None
        chunks = {"database": 0, "files": await self._import.close()}
        await self._migrator.commit_import(self._job.id, chunks=chunks, backup=False)
        self._job = None
        if self._baseline is not None and self._digests:
            await self._baseline.add_baseline(merge.FILES, self._digests)

    async def abort(self) -> None:
        if self._job is None or self._import is None:
            return
        await self._import.chunks.cancel()
        await quietly(self._migrator.abort_import(self._job.id))
        self._job = None


async def _together(*streams: Awaitable[Result]) -> list[Result]:
    """Runs the streams concurrently and returns what each returned; the first failure cancels the others
    and is raised."""
    tasks = [asyncio.ensure_future(stream) for stream in streams]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def site_move(source: SiteInfo, destination_prefix: str, destination_url: str, preserved: dict[str, bytes],
               admin_password: AdminPassword | None) -> SiteMove:
    return SiteMove(
        rewrite=UrlRewrite(source.home, destination_url), source_prefix=source.table_prefix,
        destination_prefix=destination_prefix, preserved_options=preserved,
        admin_login=admin_password.login if admin_password else None,
        admin_hash=wordpress_hash(admin_password.password) if admin_password else None)


def chosen_tables(source: SiteInfo, include: Include) -> list[str]:
    if include.tables is None:
        return sorted(source.tables)
    unknown = sorted(set(include.tables) - set(source.tables))
    if unknown:
        raise TransferError("UnknownTable", f"the source {source.home} has no table {', '.join(unknown)}")
    return sorted(set(include.tables))


# --- the streams ----------------------------------------------------------------------------------

# wp-content's drop-ins, as the migrator names them (WPClone_Site::DROPINS).
DROPINS = frozenset({"advanced-cache.php", "object-cache.php", "db.php", "db-error.php", "install.php",
                     "maintenance.php", "php-error.php", "fatal-error-handler.php", "sunrise.php", "blog-deleted.php",
                     "blog-inactive.php", "blog-suspended.php"})

class DatabaseSink(Protocol):
    """What receives tables: a migrator (TablesImport) or a bare database (DatabaseImport)."""

    async def begin_table(self, table: str, create: str, columns: list[str],
                          foreign_keys: Sequence[str] = ()) -> None: ...
    async def rows(self, payload: bytes) -> None: ...
    async def end_table(self, table: str, rows: int) -> None: ...


async def _copy_database(source: Source, checksummed: Awaitable[SiteInfo], sink: DatabaseSink, move: SiteMove,
                         tables: list[str], include: Include, admin_password: AdminPassword | None,
                         tally: Tally, baseline: DatabaseImport | None = None) -> None:
    """Streams the tables into `sink`, each with its foreign keys (under the destination's names) for the
    sink to add once every table is there; each row's baseline entry into `baseline`'s baseline table,
    when given."""
    # The source's checksums strictly before its export: a change made after them either travels with the
    # copy or shows up as a conflict when the copy is restored; it can never go unnoticed.
    await checksummed
    table_rows = None
    recorder: _BaselineRecorder | None = None
    # Closed as soon as the loop ends, whichever way: its export's connection with it.
    async with contextlib.aclosing(database_frames(source, None if include.tables is None else tables)) as stream:
        async for frame in stream:
            tally.bytes += len(frame.payload) + 5
            if frame.kind == frames.TABLE:
                meta = frame.json()
                table_rows = move.table_rows(meta["name"], meta["columns"])
                if baseline is not None:
                    unprefixed = move.table_name(meta["name"])[len(move.destination_prefix):]
                    recorder = _BaselineRecorder(baseline, merge.TableBaseline.of(
                        meta["name"], meta["columns"], meta.get("key"), unprefixed))
                await sink.begin_table(move.table_name(meta["name"]),
                                       move.create_statement(meta["create"], meta["name"]), meta["columns"],
                                       move.foreign_keys(meta["create"], meta["name"]))
            elif frame.kind == frames.ROWS and table_rows is not None:
                payload, counts = table_rows.apply(frame.payload)
                tally.counts.add(counts)
                await sink.rows(payload)
                if recorder is not None:
                    recorder.rows(frame.payload, payload)
                    await recorder.flush(full_only=True)
            elif frame.kind == frames.TABLE_END:
                end = frame.json()
                await sink.end_table(move.table_name(end["name"]), int(end["rows"]))
                if recorder is not None:
                    await recorder.finish()
                    recorder = None
                tally.tables += 1
                tally.rows += int(end["rows"])
                table_rows = None
                await tally.report("database", end["name"], force=True)
            elif frame.kind == frames.END:
                end = frame.json()
                tally.not_copied = _not_copied(end.get("not_copied"))
                tally.objects = database_objects(end.get("objects"))
            else:
                raise frames.StreamError(f"unexpected frame {frame.kind!r} in a database export")
            await tally.report("database")
    if admin_password is not None and tally.counts.admin_passwords == 0:
        raise TransferError("AdminNotFound", f"the source {source.url} has no user {admin_password.login!r} "
                            "whose password could be set")


async def database_frames(source: Source, tables: list[str] | None) -> AsyncGenerator[frames.Frame, None]:
    """The frames of the tables' export, going on where a break left it (resumed_frames): after the last
    row taken, but not in the middle of a table without a key."""
    async for frame in resumed_frames(source.url, lambda resume: source.export_database(tables, SLICE_BYTES, resume),
                                      frames.ResumePoint()):
        yield frame


class _StreamPosition(Protocol):
    """Where an export stands by the frames taken (frames.ResumePoint, frames.FilesResumePoint)."""

    @property
    def resumable(self) -> bool: ...
    def taken(self, frame: frames.Frame) -> None: ...
    def resume(self) -> dict[str, Any]: ...
    def join(self, frame: frames.Frame) -> frames.Frame | None: ...


async def resumed_frames(url: str, export: Callable[[dict[str, Any] | None],
                                                    AbstractAsyncContextManager[AsyncIterator[bytes]]],
                         point: _StreamPosition) -> AsyncGenerator[frames.Frame, None]:
    """The frames of an export (`export(resume)` opens it, from the start with None). One that breaks off
    (a lost connection, a killed exporter) is asked to go on where its reader stopped, so it costs what
    was in flight, not what was sent: at most EXPORT_RESUMES times, each after some progress."""
    resume: dict[str, Any] | None = None
    for attempt in range(EXPORT_RESUMES + 1):
        taken = 0
        try:
            async with export(resume) as chunks:
                async for frame in frames.read_frames(chunks):
                    joined = point.join(frame)
                    if joined is not None:
                        yield joined
                        point.taken(joined)
                        taken += 1
            return
        except (frames.StreamCut, WordPressError) as broken:
            lost = isinstance(broken, frames.StreamCut) or broken.reason == "Unreachable"
            if not lost or not taken or attempt == EXPORT_RESUMES or not point.resumable:
                raise
            resume = point.resume()
            logger.info("the export of %s broke off (%s); going on from %s", url, broken, resume)


async def copy_files(source: Source, sink: FilesImport, include: Include, tally: Tally, *,
                     paths: list[str] | None = None, digests: list[merge.BaselineRow] | None = None) -> None:
    """Streams the files of the included folders (only `paths`, when given) into `sink`; each file's
    baseline entry (its stream path and md5) into `digests`, when given."""
    digest: Any = None

    def export(resume: dict[str, Any] | None) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        return source.export_files(include.folders, SLICE_BYTES, dropins=include.dropins, exclude=include.exclude,
                                   paths=paths, resume=resume)
    async with contextlib.aclosing(resumed_frames(source.url, export, frames.FilesResumePoint())) as stream:
        async for frame in stream:
            if frame.kind in (frames.FILE, frames.END) and digest is not None and digests is not None:
                digests.append((frames.encode_record([digest[0]]), digest[1].digest(), digest[1].digest(), None))
                digest = None
            if frame.kind == frames.FILE:
                tally.files += 1
                await sink.begin_file(frame.payload)
                if digests is not None:  # md5 of every byte: as much CPU as the files' own import
                    digest = (frames.decode_single_record(frame.payload, 4)[0], hashlib.md5())
            elif frame.kind == frames.DATA:
                tally.bytes += len(frame.payload)
                if digest is None:
                    await sink.data(frame.payload)
                else:  # hashlib lets go of the GIL: the md5 goes on in a thread, on another core
                    await asyncio.gather(sink.data(frame.payload), asyncio.to_thread(digest[1].update, frame.payload))
            elif frame.kind == frames.END:
                tally.dropins_left = _dropins(frame.json().get("dropins_left"))
            else:
                raise frames.StreamError(f"unexpected frame {frame.kind!r} in a files export")
            await tally.report("files", force=frame.kind == frames.END)


async def _make_objects(database: DatabaseImport, move: SiteMove, objects: tuple[DatabaseObject, ...]) -> list[str]:
    """The source's views, triggers and routines made in the destination's database; what was not, in words."""
    ready, refused = [], []
    for item in objects:
        try:
            ready.append(move.database_object(item))
        except frames.StreamError as refusal:
            refused.append(f"{item.kind} {item.name} ({refusal})")
    return refused + await database.create_objects(ready)


def _not_copied(names: object) -> tuple[str, ...]:
    """The views, triggers, routines and events a source reported: words of ours and names, shortened."""
    if not isinstance(names, list):
        return ()
    kinds = ("view ", "trigger ", "procedure ", "function ", "package ", "event ")
    return tuple(name[:200] for name in names[:100] if isinstance(name, str) and name.startswith(kinds))


def _dropins(names: object) -> tuple[str, ...]:
    """The drop-ins a source reported leaving behind: names it knows, nothing else (the source is hostile)."""
    if not isinstance(names, list):
        return ()
    return tuple(sorted({name for name in names if isinstance(name, str) and name in DROPINS}))


class _BaselineRecorder:
    """One table's baseline entries (merge.TableBaseline) into the clone's baseline table, a batch at a time."""

    BATCH = 5000

    def __init__(self, database: DatabaseImport, table: merge.TableBaseline) -> None:
        self._database = database
        self._table = table
        self._entries: list[merge.BaselineRow] = []

    def rows(self, sent: bytes, arrived: bytes) -> None:
        """Takes the entries of a payload. (Not in a thread: it is Python holding the GIL, and a thread
        only made it contend with the copy's own loop: the same CPU, and more wall time.)"""
        self._entries += self._table.rows(sent, arrived)

    async def finish(self) -> None:
        self._entries += self._table.summary()
        await self.flush()

    async def flush(self, *, full_only: bool = False) -> None:
        if self._entries and (not full_only or len(self._entries) >= self.BATCH):
            await self._database.add_baseline(self._table.name, self._entries)
            self._entries = []


class Tally:
    """Counts what went through and reports progress, at most every half second unless forced."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._last = 0.0
        self.tables = self.rows = self.files = self.bytes = 0
        self.counts = RowCounts()
        self.old_urls_left: int | None = None
        self.dropins_left: tuple[str, ...] = ()
        self.not_copied: tuple[str, ...] = ()
        self.objects: tuple[DatabaseObject, ...] = ()  # the source's views, triggers and routines

    def left_out(self, entries: Iterable[str]) -> None:
        """Adds to what the copy did not carry, in words (at most 100 named)."""
        self.not_copied = (*self.not_copied, *entries)[:100]

    async def report(self, phase: str, table: str | None = None, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._callback is None or (not force and now - self._last < _PROGRESS_EVERY_SECONDS):
            return
        self._last = now
        outcome = self._callback(Progress(phase, self.bytes, self.rows, self.files, table))
        if inspect.isawaitable(outcome):
            await outcome

    def result(self, source: SiteInfo, destination_url: str, backup: str | None) -> CopyResult:
        return CopyResult(source.home, destination_url, self.tables, self.rows, self.files, self.bytes,
                          self.counts.rewritten, self.counts.unparseable, source.checksums(), backup,
                          self.old_urls_left, self.dropins_left, self.not_copied)


async def quietly(cleanup: Awaitable[None]) -> None:
    """Best-effort cleanup after a failure: the original error is the one to report."""
    with contextlib.suppress(Exception):
        await cleanup

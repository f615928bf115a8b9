"""A merge restore: a clone's changes since its baseline written into production row by row, production's
own changes kept (merge.py says how each row is judged).

The clone's tables stream from its migrator and are rewritten to production's URL, as a restore's are;
each row is judged against the baseline (read from the clone's database) and production's fingerprints
(streamed from production's migrator first). The rows to write are staged in an import job on
production, whose migrator applies them and the deletions in one transaction (import/merge), after
checking that production still holds what the plan saw. A dry run stages nothing; under the policy
Fail, a conflict stages nothing either.
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass
from typing import Any

from wpclone_engine import frames, merge, reasons
from wpclone_engine.database_import import CloneBaseline
from wpclone_engine.import_chunks import (
    FILE_CHUNKS_IN_FLIGHT,
    ChunkedImport,
    FilesImport,
    TablesImport,
    database_chunks,
)
from wpclone_engine.site_move import AdminPassword, SiteMove, TableRows
from wpclone_engine.transfer import (
    CopyResult,
    Include,
    ProgressCallback,
    Tally,
    TransferError,
    chosen_tables,
    copy_files,
    database_frames,
    quietly,
    site_move,
    transfer_errors,
)
from wpclone_engine.wordpress import ImportJob, Migrator, SiteInfo


@dataclass(frozen=True)
class MergeOutcome:
    changes: list[str]
    conflicts: list[str]
    conflict_count: int
    result: CopyResult | None  # None when nothing was written (a dry run, conflicts under Fail, nothing to merge)


async def merge_clone(clone: Migrator, baseline: CloneBaseline, target: Migrator, *, include: Include,
                      policy: merge.Policy, dry_run: bool, backup: bool, recorded_checksums: dict[str, str],
                      admin_password: AdminPassword | None, progress: ProgressCallback | None = None) -> MergeOutcome:
    """Merges the clone's database changes into `target` (the site the clone was taken from)."""
    with transfer_errors():
        return await _merge(clone, baseline, target, include, policy, dry_run, backup, recorded_checksums,
                            admin_password, progress)


@dataclass
class _Merge:
    """Everything one merge has gathered before it streams the clone."""

    target: SiteInfo
    move: SiteMove
    covered: set[str]  # the tables the baseline has
    production: dict[str, tuple[tuple[str, ...], dict[bytes, bytes]]]
    recorded_checksums: dict[str, str]
    policy: merge.Policy
    plugins: bool
    report: merge.MergeReport
    sink: TablesImport | None
    plan: list[dict[str, Any]]


async def _merge(clone: Migrator, baseline: CloneBaseline, target: Migrator, include: Include, policy: merge.Policy,
                 dry_run: bool, backup: bool, recorded_checksums: dict[str, str],
                 admin_password: AdminPassword | None, progress: ProgressCallback | None) -> MergeOutcome:
    covered = await baseline.tables()
    if covered is None:
        raise TransferError(reasons.NO_BASELINE, f"the clone {clone.url} has no baseline to merge against (it was "
                            "made without one, WPCLONE_MERGE_BASELINE=false, or before merge restores existed); "
                            "restore it with onConflict Fail or Overwrite")
    clone_info = await clone.info()
    target_info = await target.info(checksums=True)
    tables = chosen_tables(clone_info, include)
    move = site_move(clone_info, target_info.table_prefix, target_info.home,
                     {name: value.encode() for name, value in target_info.options.items() if value is not None},
                     admin_password)
    in_production = sorted(name for name in map(move.table_name, tables) if name in target_info.tables)
    async with target.export_fingerprints(in_production) as chunks:
        production = await merge.read_fingerprints(chunks)
    tally = Tally(progress)
    job = None if dry_run else await target.begin_import(database=True, tables=None, files=include.folders,
                                                         dropins=include.dropins, exclude=include.exclude)
    sink = None if job is None else TablesImport(database_chunks(target, job))
    # A merge writes no plugin files, so production keeps its active plugins (activating one it does not
    # have, or deactivating a migrator that runs as a plugin, would break it).
    state = _Merge(target_info, move, covered, production, recorded_checksums, policy, False,
                   merge.MergeReport(), sink, [])
    try:
        table: _Table | None = None
        async with contextlib.aclosing(database_frames(clone, None if include.tables is None else tables)) as stream:
            async for frame in stream:
                tally.bytes += len(frame.payload) + 5
                if frame.kind == frames.TABLE:
                    table = await _Table.begin(state, baseline, frame.json())
                elif frame.kind == frames.ROWS and table is not None:
                    tally.counts.add(await table.rows(frame.payload))
                elif frame.kind == frames.TABLE_END and table is not None:
                    end = frame.json()
                    tally.tables += 1
                    tally.rows += int(end["rows"])
                    await table.end()
                    table = None
                    await tally.report("database", end["name"], force=True)
                elif frame.kind != frames.END:
                    raise frames.StreamError(f"unexpected frame {frame.kind!r} in a database export")
                await tally.report("database")
        files = await _judge_files(clone, target, baseline, include, state) if include.folders else None
        report = state.report
        nothing = not state.plan and (files is None or not files.written)
        if job is None or sink is None or nothing or (report.conflict_count and policy == "Fail"):
            if job is not None and sink is not None:
                await sink.chunks.cancel()
                await target.abort_import(job.id)
            return MergeOutcome(report.lines(), report.conflicts, report.conflict_count, None)
        file_chunks = 0
        if files is not None and files.written:
            file_chunks = await _stage_files(clone, target, job, include, files, tally)
        sent = await sink.chunks.close()
        await tally.report("commit", force=True)
        answer = await target.commit_merge(
            job.id, chunks={"database": sent, "files": file_chunks}, plan=state.plan, backup=backup,
            files=None if files is None or not files.written else {
                "delete": [_path(key) for key, _ in files.deletes], "expect": files.digest()})
    except BaseException:
        if job is not None and sink is not None:
            await sink.chunks.cancel()
            await quietly(target.abort_import(job.id))
        raise
    result = CopyResult(clone_info.home, target_info.home, int(answer.get("tables") or 0),
                        int(answer.get("rows") or 0), int(answer.get("files") or 0), tally.bytes,
                        tally.counts.rewritten, tally.counts.unparseable, backup=answer.get("backup"))
    return MergeOutcome(report.lines(), report.conflicts, report.conflict_count, result)


async def _judge_files(clone: Migrator, target: Migrator, baseline: CloneBaseline, include: Include,
                       state: _Merge) -> merge.TableMerge:
    """wp-content's files, judged as rows are: each file by its stream path and md5 (copied as they are)."""
    async with clone.export_file_fingerprints(include.folders, dropins=include.dropins,
                                              exclude=include.exclude) as chunks:
        on_clone = await merge.read_file_fingerprints(chunks)
    async with target.export_file_fingerprints(include.folders, dropins=include.dropins,
                                               exclude=include.exclude) as chunks:
        in_production = await merge.read_file_fingerprints(chunks)
    files = merge.TableMerge("wp-content", merge.FILES, ("path",), await baseline.entries(merge.FILES),
                             in_production, state.policy, plugins=False)
    for key, digest in on_clone.items():
        files.clone_row(key, digest, digest, None)
    files.deletions()
    state.report.table(files, "files")
    return files


async def _stage_files(clone: Migrator, target: Migrator, job: ImportJob, include: Include,
                       files: merge.TableMerge, tally: Tally) -> int:
    """Stages the files a merge writes (from the clone) in production's import job; the chunks sent."""
    sink = FilesImport(ChunkedImport(target, job, "files", parallel=FILE_CHUNKS_IN_FLIGHT))
    try:
        await copy_files(clone, sink, include, tally, paths=[_path(key) for key, _ in files.inserts + files.updates])
        return await sink.close()
    except BaseException:
        await sink.chunks.cancel()
        raise


def _path(key: bytes) -> str:
    return (frames.decode_single_record(key, 1)[0] or b"").decode(errors="surrogateescape")


class _Table:
    """One table of the clone's stream: its rows judged one by one (a table with a key), or as a whole (a
    table without), or all of them new (a table production does not have); what is written is staged."""

    def __init__(self, state: _Merge, name: str, mode: str, create: str, columns: list[str], rows: TableRows,
                 judge: merge.TableMerge | None, key: tuple[int, ...], before: bytes | None) -> None:
        self._state = state
        self.name = name
        self.mode = mode  # "rows", "whole", "create" or "skip"
        self._create = create
        self._foreign_keys: list[str] = []  # a table production does not have brings its own; the others keep theirs
        self._columns = columns
        self._rows = rows
        self._judge = judge
        self._key = key
        self._label = merge.label_position(name[len(state.target.table_prefix):], columns)
        self._before = before  # a table without a key: the sum of its clone rows' fingerprints then
        self._total = 0
        self._staged: int | None = None  # rows staged, once the table is begun in the import

    @classmethod
    async def begin(cls, state: _Merge, baseline: CloneBaseline, meta: dict[str, Any]) -> _Table:
        name, columns = state.move.table_name(meta["name"]), meta["columns"]
        rows = state.move.table_rows(meta["name"], columns)
        create = state.move.create_statement(meta["create"], meta["name"])
        key = merge.key_positions(columns, meta.get("key"))
        if name not in state.target.tables:
            mode = "skip" if name in state.covered else "create"
            if mode == "skip":
                state.report.changes.append(f"table {name}: left out (production dropped it since the clone was taken)")
            table = cls(state, name, mode, create, columns, rows, None, key, None)
            if mode == "create":
                table._foreign_keys = state.move.foreign_keys(meta["create"], meta["name"])
        elif key:
            production_key, production = state.production.get(name, ((), {}))
            if production_key != tuple(columns[at] for at in key):
                state.report.conflict(f"{name}: its key is not the same on the clone and in production; left out")
                return cls(state, name, "skip", create, columns, rows, None, key, None)
            judge = merge.TableMerge(name, name[len(state.target.table_prefix):], production_key,
                                     await baseline.entries(name), production, state.policy, state.plugins)
            table = cls(state, name, "rows", create, columns, rows, judge, key, None)
        else:
            entry = (await baseline.entries(name)).get(b"")
            table = cls(state, name, "whole", create, columns, rows, None, key, entry.clone if entry else None)
        if table.mode in ("whole", "create"):
            await table._stage()
        return table

    async def rows(self, payload: bytes) -> Any:
        pushed, counts = self._rows.apply(payload)
        if self.mode == "skip":
            return counts
        if self.mode in ("whole", "create"):
            for start, end, _ in frames.record_spans(payload, len(self._columns)):
                self._total += int.from_bytes(merge.fingerprint(payload[start:end]))
            await self._send(pushed)
            return counts
        assert self._judge is not None
        written = []
        pairs = zip(frames.record_spans(payload, len(self._columns)),
                    frames.record_spans(pushed, len(self._columns)), strict=True)
        for (start, end, _), (out_start, out_end, lengths) in pairs:
            record = pushed[out_start:out_end]
            values = frames.record_values(pushed, out_start, lengths)
            key = frames.encode_record([values[at] for at in self._key])
            label = values[self._label] if self._label is not None else None
            if self._judge.clone_row(key, merge.fingerprint(payload[start:end]), merge.fingerprint(record), label):
                written.append(record)
        if written:
            if self._staged is None:
                await self._stage()
            await self._send(b"".join(written))
        return counts

    async def end(self) -> None:
        state = self._state
        if self._staged is not None and state.sink is not None:
            await state.sink.end_table(self.name, self._staged)
        if self.mode == "rows":
            assert self._judge is not None
            deleted = self._judge.deletions()
            state.report.table(self._judge)
            if self._judge.written:
                state.plan.append({"name": self.name, "mode": "rows", "key": list(self._judge.key_columns),
                                   "delete": [base64.b64encode(key).decode() for key in deleted],
                                   "expect": self._judge.digest()})
        elif self.mode == "create":
            state.report.whole_table(self.name, "create (a table production does not have)", self._count)
            state.plan.append({"name": self.name, "mode": "create"})
        elif self.mode == "whole":
            self._whole()

    def _whole(self) -> None:
        """A table without a key: replaced whole when the clone changed it; a conflict when production did too."""
        state = self._state
        changed_on_clone = self._before is None or merge.table_sum(self._total) != self._before
        recorded = state.recorded_checksums.get(self.name)
        now = state.target.tables[self.name].checksum
        changed_in_production = not recorded or now != recorded
        if not changed_on_clone:
            return
        if changed_in_production:
            state.report.conflict(f"{self.name} (no key, compared whole): changed on the clone and in production")
            if state.policy != "PreferClone":
                return
        state.report.whole_table(self.name, "replace whole (no key)", self._count)
        state.plan.append({"name": self.name, "mode": "replace"})

    @property
    def _count(self) -> int:
        return self._staged or 0

    async def _stage(self) -> None:
        self._staged = 0
        if self._state.sink is not None:
            await self._state.sink.begin_table(self.name, self._create, self._columns, self._foreign_keys)

    async def _send(self, payload: bytes) -> None:
        if not payload:
            return
        assert self._staged is not None
        self._staged += sum(1 for _ in frames.record_spans(payload, len(self._columns)))
        if self._state.sink is not None:
            await self._state.sink.rows(payload)

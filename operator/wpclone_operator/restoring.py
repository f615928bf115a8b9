"""Push a clone (or any site) back into production: conflict check, dry run, copy with a backup kept on
the target (the replaced tables and files, swapped aside atomically), and rollback to a backup."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from wpclone_common import constants, kube
from wpclone_common.resources import CloneRestoreSpec, ContentRules, RestoreInclude, WordPressClone
from wpclone_engine import outbound, reasons
from wpclone_engine.database_import import CloneBaseline
from wpclone_engine.merge_restore import merge_clone
from wpclone_engine.site_move import AdminPassword
from wpclone_engine.sqlite_export import SqliteSite
from wpclone_engine.transfer import CopyResult, Include, TransferError, copy_site
from wpclone_engine.wordpress import Migrator, SiteInfo, WordPressError, site_session
from wpclone_operator import children
from wpclone_operator.cloning import PERMANENT_REASONS, ProgressReport, content_rules, until_answering
from wpclone_operator.inputs import Inputs
from wpclone_operator.settings import CopySettings

RESTORE_PERMANENT_REASONS = PERMANENT_REASONS | {reasons.CONFLICT, "CloneNotFound", "UnknownBackup",
                                                  constants.FORBIDDEN_FILE, reasons.NO_BASELINE, "MergeNeedsSource"}
log = logging.getLogger(__name__)


@dataclass
class RestoreSource:
    migrator: Migrator
    recorded_checksums: dict[str, str] = field(default_factory=dict)  # production's, when the clone was made


@dataclass
class Outcome:
    result: CopyResult | None = None
    changes: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    merged: bool = False  # a Merge restore (its conflicts are rows; nothing to write is no failure)


async def _site(jobs: AsyncExitStack, http: httpx.AsyncClient, settings: CopySettings, inputs: Inputs, url: str,
                secret: str, role: str) -> Migrator:
    """The site's migrator in a session that ends (and the plugin leaves, unless kept) with `jobs`."""
    login = await asyncio.to_thread(inputs.login, secret)
    return await jobs.enter_async_context(site_session(
        http, url, login["username"], login["password"], policy=outbound.Policy.of(settings), role=role,
        keep_migrator=settings.keep_migrator))


async def ready_clone(namespace: str, name: str) -> WordPressClone:
    """A restore's cloneRef, read by the operator before the restore starts (a copy Job gets it in its plan)."""
    body = await asyncio.to_thread(kube.get, constants.API_VERSION, constants.CLONE_KIND, namespace, name)
    if body is None:
        raise TransferError("CloneNotFound", f"WordPressClone {name} does not exist")
    clone = WordPressClone.from_body(body)
    if clone.status.phase != constants.PHASE_READY:
        raise TransferError("CloneNotReady", f"WordPressClone {name} is {clone.status.phase or 'Pending'}, not Ready")
    return clone


async def _clone_source(http: httpx.AsyncClient, clone: WordPressClone, settings: CopySettings,
                        inputs: Inputs) -> RestoreSource:
    admin = await asyncio.to_thread(inputs.secret, children.admin_secret_name(clone))
    checksums = await asyncio.to_thread(inputs.config_map, children.source_checksums_name(clone))
    if admin is None:
        raise TransferError("CloneNotReady", f"WordPressClone {clone.name} has no admin Secret")
    endpoint, token = children.endpoint(clone, settings), admin["migrator-token"]
    # A copy Job's pod starts a moment before the node's policy lets it reach the clone: wait, as a clone's
    # copy does, rather than fail and wait out the Job's back-off (it took 2.5 min once, four pods failing).
    await until_answering(http, endpoint)
    if not children.is_sqlite(clone):
        return RestoreSource(Migrator(http, endpoint, token=token, role="clone"), checksums)
    database = inputs.sqlite()
    if database is None:
        raise TransferError(constants.NOT_SUPPORTED, f"WordPressClone {clone.name} keeps its tables in SQLite, on a "
                            "volume only a copy Job reaches: it is restored by a Job (WPCLONE_COPY_IN=job)")
    return RestoreSource(SqliteSite(http, endpoint, token=token, role="clone", database=database), checksums)


def include_for(spec: RestoreInclude, source_prefix: str, rules: ContentRules | None = None) -> Include:
    """What a restore writes; the rest of wp-content by the rules the clone was copied by (what it left
    behind, production keeps), and never must-use plugins."""
    tables = tuple(source_prefix + table for table in spec.tables) if spec.tables else None
    return Include(database=spec.database, tables=tables, uploads=spec.uploads, themes=spec.themes,
                   plugins=spec.plugins, content=spec.content, **content_rules(rules))


def conflicts(recorded: dict[str, str], target: SiteInfo, tables: list[str] | None) -> list[str]:
    """Production tables that changed since the clone was taken (by checksum), among those restored."""
    found = []
    for table, checksum in sorted(recorded.items()):
        if tables is not None and table not in tables:
            continue
        now = target.tables.get(table)
        if now is None:
            found.append(f"{table}: removed from production since the clone was taken")
        elif checksum and now.checksum != checksum:
            found.append(f"{table}: changed in production since the clone was taken ({now.rows} rows now)")
    return found


def planned_changes(source: SiteInfo, target: SiteInfo, include: Include) -> list[str]:
    """What a restore would write, in words: tables with row counts, folders with file counts."""
    changes = []
    if include.database:
        for table in include.tables or tuple(sorted(source.tables)):
            production = target.table_prefix + table.removeprefix(source.table_prefix)
            before = target.tables.get(production)
            rows = source.tables[table].rows if table in source.tables else 0
            changes.append(f"table {production}: {before.rows if before else 'no'} rows -> {rows} rows")
        if include.tables is None:
            mapped = {target.table_prefix + name.removeprefix(source.table_prefix) for name in source.tables}
            changes += [f"table {name}: removed (not in the source)" for name in sorted(set(target.tables) - mapped)]
    for folder in include.folders:
        now = (target.content or {}).get(folder, {})
        then = (source.content or {}).get(folder, {})
        changes.append(f"{folder}: {now.get('files', 0)} files -> {then.get('files', 0)} files "
                       f"({then.get('bytes', 0)} bytes)")
    return changes


def backups_to_delete(backups: list[dict[str, Any]], keep: int, *, made: str | None = None) -> list[str]:
    """The ids of the backups (a target's info report: {id, created, ...}) beyond the newest `keep`,
    oldest last; none when `keep` is 0 (keep all). The backup just `made` is never among them."""
    if keep <= 0:
        return []
    listed = [backup for backup in backups if isinstance(backup, dict) and isinstance(backup.get("id"), str)]

    def created(backup: dict[str, Any]) -> float:
        value = backup.get("created")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0

    newest_first = sorted(listed, key=lambda backup: (backup["id"] == made, created(backup)), reverse=True)
    return [backup["id"] for backup in newest_first[keep:] if backup["id"] != made]


async def prune_backups(target: Migrator, keep: int, made: str | None) -> list[str]:
    """Deletes the target's backups beyond the newest `keep`; a failure is logged, never raised (the
    restore itself succeeded). Returns the ids deleted."""
    if keep <= 0:
        return []
    deleted = []
    try:
        for backup in backups_to_delete((await target.info()).backups, keep, made=made):
            await target.delete_backup(backup)
            deleted.append(backup)
    except WordPressError as error:
        log.warning("pruning the backups of %s failed: %s", target.url, error)
    return deleted


@asynccontextmanager
async def _http(policy: outbound.Policy) -> AsyncIterator[httpx.AsyncClient]:
    async with outbound.client(policy, timeout=httpx.Timeout(300.0, connect=15.0)) as http:
        yield http


async def restore(spec: CloneRestoreSpec, clone: WordPressClone | None, settings: CopySettings, inputs: Inputs,
                  progress: ProgressReport) -> Outcome:
    """`clone`: the Ready clone of spec.source.cloneRef (ready_clone), if it names one."""
    # Target and source URLs are the user's and pass the outbound policy; a cloneRef's endpoint is the
    # operator's own, allowed as well.
    policy = outbound.Policy.of(settings)
    async with (_http(policy if clone is None else policy.allowing(children.endpoint(clone, settings))) as http,
                AsyncExitStack() as jobs):
        target = await _site(jobs, http, settings, inputs, spec.target.url, spec.target.credentialsSecretRef.name,
                             "target")
        if spec.rollbackTo:
            target_info = await target.info()
            if not any(backup.get("id") == spec.rollbackTo for backup in target_info.backups):
                raise TransferError("UnknownBackup", f"the target {spec.target.url} has no backup {spec.rollbackTo}")
            await target.rollback(spec.rollbackTo)
            return Outcome(changes=[f"rolled back to backup {spec.rollbackTo}"])
        assert spec.source is not None  # the CRD requires source or rollbackTo
        if clone is not None:
            source = await _clone_source(http, clone, settings, inputs)
        else:
            assert spec.source.url is not None and spec.source.credentialsSecretRef is not None
            source = RestoreSource(await _site(jobs, http, settings, inputs, spec.source.url,
                                               spec.source.credentialsSecretRef.name, "source"))
        source_info = await source.migrator.info(content=True)
        include = include_for(spec.include, source_info.table_prefix, clone.spec.content if clone else None)
        if spec.onConflict == "Merge":
            assert clone is not None  # the CRD requires a cloneRef for a Merge
            return await _merge(clone, source, target, spec, include, settings, inputs, progress)
        target_info = await target.info(checksums=bool(source.recorded_checksums), content=True)
        restored = None if include.tables is None else [
            target_info.table_prefix + table.removeprefix(source_info.table_prefix) for table in include.tables]
        found = conflicts(source.recorded_checksums, target_info, restored) if include.database else []
        if found and spec.onConflict == "Fail":
            return Outcome(conflicts=found)
        changes = planned_changes(source_info, target_info, include)
        if spec.dryRun:
            return Outcome(changes=changes, conflicts=found)
        # The clone's users table carries the clone's generated admin password: production keeps its own.
        assert target.login is not None and target.password is not None
        users_restored = include.database and (include.tables is None
                                               or f"{source_info.table_prefix}users" in include.tables)
        keep_login = AdminPassword(target.login, target.password) if users_restored else None
        result = await copy_site(source.migrator, target, include=include, backup=spec.backup,
                                 admin_password=keep_login, progress=progress)
        if result.backup is not None:
            await prune_backups(target, settings.backup_retention, result.backup)
        return Outcome(result=result, changes=changes, conflicts=found)


async def _merge(clone: WordPressClone, source: RestoreSource, target: Migrator, spec: CloneRestoreSpec,
                 include: Include, settings: CopySettings, inputs: Inputs, progress: ProgressReport) -> Outcome:
    """A Merge restore of a clone into the site it was taken from: its rows and files, one by one (merge.py)."""
    if children.is_sqlite(clone):
        raise TransferError(constants.NOT_SUPPORTED, f"WordPressClone {clone.name} keeps its tables in SQLite: it "
                            "has no baseline to merge with (restore it with onConflict Fail or Overwrite)")
    if clone.spec.site.url.rstrip("/") != spec.target.url.rstrip("/"):
        raise TransferError("MergeNeedsSource", f"a Merge writes into the site the clone {clone.name} was taken "
                            f"from ({clone.spec.site.url}), not into {spec.target.url}")
    database = await asyncio.to_thread(inputs.database, children.db_secret_name(clone))
    if database is None:
        raise TransferError("CloneNotReady", f"WordPressClone {clone.name} has no database Secret")
    baseline = await CloneBaseline.open(database)
    assert target.login is not None and target.password is not None
    try:
        merged = await merge_clone(source.migrator, baseline, target, include=include, policy=spec.mergeConflicts,
                                   dry_run=spec.dryRun, backup=spec.backup,
                                   recorded_checksums=source.recorded_checksums,
                                   admin_password=AdminPassword(target.login, target.password), progress=progress)
    finally:
        baseline.close()
    if merged.result is not None and merged.result.backup is not None:
        await prune_backups(target, settings.backup_retention, merged.result.backup)
    return Outcome(result=merged.result, changes=merged.changes, conflicts=merged.conflicts, merged=True)

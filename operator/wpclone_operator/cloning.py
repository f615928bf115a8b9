"""Copy the source site into a provisioned clone: the migrator made present on the source, the
database streamed straight into the clone's own database, files through the clone's migrator."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from wpclone_common import constants, kube
from wpclone_common.resources import ContentRules, WordPressClone
from wpclone_engine import outbound
from wpclone_engine.site_move import AdminPassword
from wpclone_engine.snapshot import Manifest, Recording, SnapshotError, open_snapshot
from wpclone_engine.transfer import CopyResult, DatabaseDestination, Include, Progress, TransferError, copy_site
from wpclone_engine.wordpress import Migrator, WordPressError, site_session
from wpclone_operator import children
from wpclone_operator.inputs import Inputs
from wpclone_operator.settings import CopySettings

# A copy failing for these reasons will not succeed by trying again: the user must act.
PERMANENT_REASONS = {"LoginFailed", constants.LOGIN_THROTTLED, "Forbidden", "CannotInstall", "SameSite",
                     "AdminNotFound", "UnknownTable",
                     constants.CREDENTIALS_MISSING, constants.CREDENTIALS_NOT_OPTED_IN, constants.CREDENTIALS_INVALID,
                     constants.DESTINATION_NOT_ALLOWED, constants.MALFORMED_STREAM, constants.BAD_TABLE_DEFINITION,
                     constants.GAVE_UP, constants.NOT_SUPPORTED}
ProgressReport = Callable[[Progress], Awaitable[None]]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotFolder:
    """A source snapshot's folder (its volume, in a copy Job) and what the copy does with it."""

    folder: Path
    use: Literal["record", "replay"]


@dataclass(frozen=True)
class Copied:
    result: CopyResult
    # The snapshot the copy recorded and published (None: it recorded none, or could not keep it).
    snapshot: Manifest | None = None


async def copy_into_clone(clone: WordPressClone, settings: CopySettings, inputs: Inputs, progress: ProgressReport,
                          timeout: httpx.Timeout | None = None, snapshot: SnapshotFolder | None = None,
                          endpoint: str | None = None) -> Copied:
    """Copies the clone's source into it: from the site, from a snapshot of it (`snapshot` replay: the
    site's login is not even read), or from the site with a snapshot kept as it is read (record). The
    clone is reached at `endpoint` (children.pod_endpoint), or else at children.endpoint."""
    sqlite = children.is_sqlite(clone)
    database = inputs.sqlite() if sqlite else await asyncio.to_thread(inputs.database, children.db_secret_name(clone))
    admin = await asyncio.to_thread(inputs.secret, children.admin_secret_name(clone))
    if sqlite and database is None:
        raise TransferError(constants.NOT_SUPPORTED, f"the clone {clone.name} keeps its tables in SQLite, on a "
                            "volume only its copy Job reaches: it is copied by a Job (WPCLONE_COPY_IN=job)")
    if database is None or admin is None:
        raise TransferError(constants.CREDENTIALS_MISSING, f"the clone {clone.name}'s database or admin Secret "
                            "does not exist")
    # The source is the user's URL and passes the outbound policy; the clone's endpoint is the operator's own.
    endpoint = endpoint or children.endpoint(clone, settings)
    log.info("clone %s/%s: copying into %s", clone.namespace, clone.name, endpoint)
    policy = outbound.Policy.of(settings)
    timeout = timeout or httpx.Timeout(120.0, connect=15.0)
    async with outbound.client(policy.allowing(endpoint), timeout=timeout) as http:
        clone_site = Migrator(http, endpoint, token=admin["migrator-token"], role="clone")
        await until_answering(http, endpoint)  # before production is read at all
        # A merge restore's baseline, and room above the source's ids for the clone's own rows (MySQL only).
        destination = DatabaseDestination(database=database, url=children.url(clone, settings),
                                          files=clone_site, baseline=settings.merge_baseline and not sqlite,
                                          id_offset=0 if sqlite else settings.merge_id_offset)
        admin_password = AdminPassword(admin["username"], admin["password"])
        if snapshot is not None and snapshot.use == "replay":
            recorded = await open_snapshot(snapshot.folder)  # published, or still being recorded
            return Copied(await copy_site(recorded, destination, include=include_for(clone),
                                          admin_password=admin_password, progress=progress))
        source_login = await asyncio.to_thread(inputs.login, clone.spec.site.credentialsSecretRef.name)
        async with site_session(http, clone.spec.site.url, source_login["username"], source_login["password"],
                                policy=policy, role="source", keep_migrator=settings.keep_migrator) as source:
            if snapshot is None:
                return Copied(await copy_site(source, destination, include=include_for(clone),
                                              admin_password=admin_password, progress=progress))
            recording = Recording(source, snapshot.folder)
            try:
                result = await copy_site(recording, destination, include=include_for(clone),
                                         admin_password=admin_password, progress=progress)
            except BaseException:
                recording.discard()
                raise
        try:
            return Copied(result, await asyncio.to_thread(recording.publish))
        except (SnapshotError, OSError) as error:  # the clone is whole: only the snapshot is lost
            log.warning("clone %s/%s: no snapshot kept: %s", clone.namespace, clone.name, error)
            return Copied(result)


def include_for(clone: WordPressClone) -> Include:
    """A clone is the whole site: its must-use plugins too (its own stay outside wp-content), and all of
    wp-content by its rules."""
    return Include(mu_plugins=True, content=True, **content_rules(clone.spec.content))


def content_rules(rules: ContentRules | None) -> dict[str, Any]:
    """A clone's spec.content as the engine's Include takes it (a restore of the clone follows it too)."""
    return {"dropins": rules is not None and rules.dropIns, "exclude": tuple(rules.exclude) if rules else ()}


# Short at first: the Service routes to a pod that just turned Ready 0-0.8 s later (its proxy's rules being
# written; an attempt meanwhile is refused at once), and a first wait of 0.5 s made 0.53-0.56 s of a
# 3.8-4.1 s clone copy (bench_clone_pod). Then longer: about 15 s in all.
ANSWER_DELAYS = (0.1, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 8.0)


async def until_answering(http: httpx.AsyncClient, url: str, delays: tuple[float, ...] = ANSWER_DELAYS) -> None:
    """Waits for a new clone's web server to answer at all. A pod turns Ready a moment before its Service
    routes to it; copying then would read production only to fail (and count a failure that is none).
    It is asked for the static file its readiness probe reads: with 50 clones starting at once, a page
    (a WordPress boot each, answered with a redirect to its installer) was CPU the cores lacked."""
    for delay in (*delays, None):
        try:
            await http.get(url + children.READINESS_PATH, timeout=httpx.Timeout(30.0, connect=5.0))
            return
        except httpx.TransportError as error:
            if delay is None:
                raise WordPressError("Unreachable", f"clone {url} does not answer: {type(error).__name__}") from None
        await asyncio.sleep(delay)


def progress_reporter(kind: str, namespace: str, name: str, status: dict[str, Any] | None = None,
                      every_seconds: float = 1.0) -> ProgressReport:
    """Writes status.progress (with `status`) of a clone or restore while it copies, at most once a second."""
    last = 0.0

    async def report(progress: Progress) -> None:
        nonlocal last
        if time.monotonic() - last < every_seconds:
            return
        last = time.monotonic()
        await asyncio.to_thread(kube.patch_status, constants.API_VERSION, kind, namespace, name,
                                {**(status or {}), "progress": progress_status(progress)})

    return report


def progress_status(progress: Progress) -> dict[str, Any]:
    return {"phase": progress.phase, "bytes": progress.bytes, "rows": progress.rows, "files": progress.files}


def done_status(result: CopyResult) -> dict[str, Any]:
    """status.progress of a finished copy: what moved, and what the URL rewrite did."""
    return {"phase": "done", "bytes": result.bytes, "rows": result.rows, "files": result.files,
            "rewrittenValues": result.rewritten_values, "unparseableValues": result.unparseable_values,
            "sourceUrlsLeft": result.old_urls_left, "dropInsLeft": list(result.dropins_left),
            "notCopied": list(result.not_copied)}

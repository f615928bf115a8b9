"""What the CloneRestore handler does, between kopf's objects and the restore module."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf

from wpclone_common import constants, kube
from wpclone_common.resources import CloneRestoreSpec
from wpclone_engine.wordpress import WordPressError
from wpclone_operator import cloning, metrics, restoring, status
from wpclone_operator.settings import Settings


async def run_restore(body: kopf.Body, patch: kopf.Patch, settings: Settings, retry: int,
                      work_slots: asyncio.Semaphore) -> None:
    current = body.get("status") or {}
    if current.get("phase") in constants.RESTORE_ENDED:
        return
    metadata = body["metadata"]
    namespace, name, generation = metadata["namespace"], metadata["name"], metadata["generation"]
    spec = CloneRestoreSpec.model_validate(dict(body["spec"]))
    started = time.monotonic()
    await asyncio.to_thread(kube.patch_status, constants.API_VERSION, constants.RESTORE_KIND, namespace, name, {
        "phase": constants.CHECKING, "startedAt": current.get("startedAt") or status.format_time(status.now()),
        "observedGeneration": generation})
    try:
        async with work_slots:
            outcome = await restoring.restore(namespace, spec, settings, cloning.progress_reporter(
                constants.RESTORE_KIND, namespace, name, {"phase": constants.RESTORING}))
    except WordPressError as error:
        permanent = error.reason in restoring.RESTORE_PERMANENT_REASONS
        metrics.FAILURES.labels(error.reason).inc()
        patch.status.update({
            "phase": constants.FAILED if permanent else constants.CHECKING, "message": str(error),
            "conditions": [status.condition(constants.READY, False, error.reason, str(error), generation,
                                            status.now())]})
        kopf.warn(body, reason=error.reason, message=str(error))
        if permanent:
            raise kopf.PermanentError(str(error)) from None
        raise kopf.TemporaryError(str(error), delay=status.retry_delay(retry, settings.retry_delay_seconds)) from None
    patch.status.update(restore_status(spec, outcome, generation))
    if outcome.result is not None:
        metrics.COPY_SECONDS.labels("restore").observe(time.monotonic() - started)
        metrics.COPY_BYTES.labels("restore").inc(outcome.result.bytes)
    kopf.event(body, type="Warning" if patch.status["phase"] == constants.FAILED else "Normal",
               reason=patch.status["conditions"][0]["reason"], message=patch.status["message"])


def restore_status(spec: CloneRestoreSpec, outcome: restoring.Outcome, generation: int) -> dict[str, Any]:
    """The final status of a restore, from what it did (pure)."""
    at = status.now()
    if outcome.result is None and outcome.conflicts and not spec.dryRun:
        message = (f"rows changed on the clone and in production (mergeConflicts: Fail); nothing was written "
                   f"({len(outcome.conflicts)})" if outcome.merged else
                   f"production changed since the clone was taken; nothing was written ({len(outcome.conflicts)})")
        return {"phase": constants.FAILED, "conflicts": outcome.conflicts, "message": message,
                "completedAt": status.format_time(at),
                "conditions": [status.condition(constants.READY, False, "Conflict", message, generation, at)]}
    if spec.rollbackTo:
        message = f"the target is back to backup {spec.rollbackTo}"
        return {"phase": constants.ROLLED_BACK, "changes": outcome.changes, "message": message,
                "completedAt": status.format_time(at),
                "conditions": [status.condition(constants.READY, True, "RolledBack", message, generation, at)]}
    if spec.dryRun:
        message = f"dry run: {len(outcome.changes)} changes would be made; nothing was written"
        return {"phase": constants.COMPLETED, "changes": outcome.changes, "conflicts": outcome.conflicts,
                "message": message, "completedAt": status.format_time(at),
                "conditions": [status.condition(constants.READY, True, "DryRun", message, generation, at)]}
    if outcome.result is None:  # a Merge with nothing to write
        message = "nothing to merge: production has every change of the clone"
        return {"phase": constants.COMPLETED, "changes": outcome.changes, "conflicts": outcome.conflicts,
                "message": message, "completedAt": status.format_time(at),
                "conditions": [status.condition(constants.READY, True, "Restored", message, generation, at)]}
    result = outcome.result
    message = (f"merged {result.rows} rows of {result.tables} tables and {result.files} files into "
               f"{result.destination_url}" if outcome.merged
               else f"restored {result.tables} tables ({result.rows} rows) and {result.files} files into "
               f"{result.destination_url}") + (f"; backup {result.backup} kept on the target" if result.backup else "")
    return {"phase": constants.COMPLETED, "backupId": result.backup, "changes": outcome.changes,
            "conflicts": outcome.conflicts, "message": message, "completedAt": status.format_time(at),
            "counts": {"tables": result.tables, "rows": result.rows, "files": result.files, "bytes": result.bytes},
            "progress": {"phase": "done", "bytes": result.bytes, "rows": result.rows, "files": result.files},
            "conditions": [status.condition(constants.READY, True, "Restored", message, generation, at)]}

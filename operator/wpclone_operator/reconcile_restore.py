"""What the CloneRestore handler does, between kopf's objects and the restore module."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import kopf

from wpclone_common import constants, kube
from wpclone_common.resources import CloneRestoreSpec, WordPressClone
from wpclone_engine.wordpress import WordPressError
from wpclone_operator import (
    children,
    cloning,
    copy_job_control,
    copy_jobs,
    copy_runner,
    credentials,
    inputs,
    metrics,
    restoring,
    status,
    work_slots,
    workloads,
)
from wpclone_operator.settings import Settings


async def run_restore(body: kopf.Body, patch: kopf.Patch, settings: Settings, retry: int,
                      slots: work_slots.WorkSlots) -> None:
    current = body.get("status") or {}
    if current.get("phase") in constants.RESTORE_ENDED:
        return
    if settings.copy_in == "job" and current.get("phase") in (constants.CHECKING, constants.RESTORING):
        return  # its copy Job runs (or waits for a slot); advance_job follows it
    metadata = body["metadata"]
    namespace, name, generation = metadata["namespace"], metadata["name"], metadata["generation"]
    spec = CloneRestoreSpec.model_validate(dict(body["spec"]))
    started = time.monotonic()
    await asyncio.to_thread(kube.patch_status, constants.API_VERSION, constants.RESTORE_KIND, namespace, name, {
        "phase": constants.CHECKING, "startedAt": current.get("startedAt") or status.format_time(status.now()),
        "observedGeneration": generation})
    if settings.copy_in == "job":
        return
    try:
        clone = await _clone_of(namespace, spec)
        async with slots.held(work_slots.FINISHING):
            outcome = await restoring.restore(spec, clone, settings, inputs.FromApi(namespace, settings.mysql_address),
                                              cloning.progress_reporter(constants.RESTORE_KIND, namespace, name,
                                                                        {"phase": constants.RESTORING}))
    except WordPressError as error:
        _failed(body, patch, error.reason, str(error), generation)
        if error.reason in restoring.RESTORE_PERMANENT_REASONS:
            raise kopf.PermanentError(str(error)) from None
        raise kopf.TemporaryError(str(error), delay=status.retry_delay(retry, settings.retry_delay_seconds)) from None
    _ended(body, patch, spec, outcome, generation, time.monotonic() - started)


def _clone_ref(spec: CloneRestoreSpec) -> str | None:
    """The clone a restore reads (a rollback reads none)."""
    if spec.rollbackTo or spec.source is None or spec.source.cloneRef is None:
        return None
    return spec.source.cloneRef.name


async def _clone_of(namespace: str, spec: CloneRestoreSpec) -> WordPressClone | None:
    """The restore's cloneRef, which must be Ready."""
    name = _clone_ref(spec)
    return None if name is None else await restoring.ready_clone(namespace, name)


def _failed(body: kopf.Body, patch: kopf.Patch, reason: str, message: str, generation: int,
            permanent: bool | None = None) -> None:
    """A failed attempt: the restore Failed (a permanent reason), or Checking until it is tried again."""
    permanent = reason in restoring.RESTORE_PERMANENT_REASONS if permanent is None else permanent
    metrics.FAILURES.labels(reason).inc()
    patch.status.update({
        "phase": constants.FAILED if permanent else constants.CHECKING, "message": message,
        "conditions": [status.condition(constants.READY, False, reason, message, generation, status.now())]})
    if permanent:
        patch.status["completedAt"] = status.format_time(status.now())
    kopf.warn(body, reason=reason, message=message)


def _ended(body: kopf.Body, patch: kopf.Patch, spec: CloneRestoreSpec, outcome: restoring.Outcome, generation: int,
           seconds: float) -> None:
    patch.status.update(restore_status(spec, outcome, generation))
    if outcome.result is not None:
        metrics.COPY_SECONDS.labels("restore").observe(seconds)
        metrics.COPY_BYTES.labels("restore").inc(outcome.result.bytes)
    kopf.event(body, type="Warning" if patch.status["phase"] == constants.FAILED else "Normal",
               reason=patch.status["conditions"][0]["reason"], message=patch.status["message"])


async def advance_job(body: kopf.Body, patch: kopf.Patch, settings: Settings,
                      watching: workloads.Workloads | None) -> None:
    """A restore's copy Job: started when a slot is free (its clone Ready, its logins opted in), followed,
    and its outcome made the restore's final status."""
    generation = body["metadata"]["generation"]
    spec = CloneRestoreSpec.model_validate(dict(body["spec"]))
    owner = copy_jobs.Owner.of(body, _clone_ref(spec))
    job, outcome = await copy_job_control.state_once_written(owner, watching, settings.observe_seconds)
    if job is None:
        try:
            await _start_job(body, patch, owner, spec, settings)
        except WordPressError as error:
            _failed(body, patch, error.reason, str(error), generation)
        return
    verdict = copy_jobs.job_verdict(job, outcome)
    restored = copy_runner.restored(verdict.outcome) if verdict.state == "succeeded" else None
    if verdict.state != "running" and copy_jobs.holds_a_clone_volume(job):
        await asyncio.to_thread(copy_job_control.release_volumes, owner)
    if restored is not None:
        _ended(body, patch, spec, restored, generation, copy_jobs.seconds(job, verdict.outcome))
        return
    if verdict.state == "succeeded":
        verdict = copy_jobs.unreadable(job)
    if verdict.state == "failed":
        _failed(body, patch, verdict.reason, verdict.message, generation, permanent=True)
    elif (body.get("status") or {}).get("message") != verdict.message and verdict.reason != constants.COPYING:
        patch.status["message"] = verdict.message  # an attempt failed; Kubernetes tries again


async def _start_job(body: kopf.Body, patch: kopf.Patch, owner: copy_jobs.Owner, spec: CloneRestoreSpec,
                     settings: Settings) -> None:
    clone = await _clone_of(owner.namespace, spec)
    if clone is not None:  # its pods go by the name of the pool slot it took, if it took one
        owner = dataclasses.replace(owner, clone=children.workload_name(clone))
    logins = [spec.target.credentialsSecretRef.name]
    if clone is None and spec.source is not None and spec.source.credentialsSecretRef is not None:
        logins.append(spec.source.credentialsSecretRef.name)
    for login in logins:  # only a login Secret that opted in is ever mounted into a Job
        await asyncio.to_thread(credentials.read_login, owner.namespace, login)
    secrets, config_maps = list(logins), []
    if clone is not None:
        secrets += [children.admin_secret_name(clone), *([] if children.is_sqlite(clone) else
                                                         [children.db_secret_name(clone)])]
        config_maps.append(children.source_checksums_name(clone))
    clone_body = await asyncio.to_thread(kube.get, constants.API_VERSION, constants.CLONE_KIND, owner.namespace,
                                         clone.name) if clone is not None else None
    plan = copy_jobs.Plan(kind=constants.RESTORE_KIND, namespace=owner.namespace, name=owner.name,
                          outcome=copy_jobs.job_name(owner), restore=spec.model_dump(mode="json", exclude_none=True),
                          clone=copy_jobs.plan_body(clone_body) if clone_body is not None else None)
    place = await asyncio.to_thread(copy_job_control.start, owner, plan, settings,
                                    body["metadata"]["creationTimestamp"], secrets, config_maps)
    if place:
        patch.status["message"] = f"waiting for one of {settings.max_copy_jobs} copy slots ({place} in line)"
        return
    patch.status["message"] = f"copy Job {copy_jobs.job_name(owner)} started"
    kopf.info(body, reason="Restoring", message=f"copy Job {copy_jobs.job_name(owner)} started")


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

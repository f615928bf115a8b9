"""What a caller can do, whichever door they came in by (the REST routes or the dashboard): each action
takes the request (the app's namespace and settings) and the authenticated caller, and refuses with an
HTTPException whose message both doors show as it is."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, Request

from wpclone_api import clones, jobs, login_links, quotas, restores, tenants
from wpclone_api.schemas import Backup, CloneRequest, JobStatus, LoginLink, RestoreRequest, RollbackRequest
from wpclone_api.settings import ApiSettings
from wpclone_api.watch_cache import Namespace
from wpclone_common import constants, times

JOB_ID = re.compile(r"[0-9a-f]{32}")


def invalid(errors: Any) -> str:
    """A request's validation errors as one message: each field's path and what is wrong with it."""
    problems = [f"{'.'.join(str(part) for part in item['loc'] if part != 'body')}: {item['msg']}"
                for item in errors]
    return "invalid request: " + "; ".join(problems)


def namespace_of(request: Request) -> Namespace:
    namespace: Namespace = request.app.state.namespace
    return namespace


def settings_of(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def job_status(request: Request, caller: tenants.Caller, job_id: str) -> JobStatus:
    """From the watch, else (a job made a moment ago) consistently. Another tenant's job
    answers exactly like a missing one, after the same calls."""
    if not JOB_ID.fullmatch(job_id):
        raise HTTPException(404, f"no job {job_id}")  # no such id was ever handed out
    namespace = namespace_of(request)
    for cached in (True, False):
        clone = _visible(caller, await clones.find_clone_by_job(namespace, job_id, cached=cached))
        if clone is not None:
            return await clones.clone_status(namespace, clone)
        restore = _visible(caller, await restores.find_restore_by_job(namespace, job_id, cached=cached))
        if restore is not None:
            return jobs.restore_job_status(restore)
    raise HTTPException(404, f"no job {job_id}")


async def own_restore(request: Request, caller: tenants.Caller, job_id: str) -> dict[str, Any]:
    """The caller's CloneRestore of that job (404 for another tenant's, as for a missing one)."""
    restore = None
    if JOB_ID.fullmatch(job_id):
        restore = _visible(caller, await restores.find_restore_by_job(namespace_of(request), job_id))
    if restore is None:
        raise HTTPException(404, f"no restore job {job_id}")
    return restore


def _visible(caller: tenants.Caller, found: dict[str, Any] | None) -> dict[str, Any] | None:
    return found if found is not None and tenants.can_see(caller, found) else None


async def own_clone(request: Request, caller: tenants.Caller, clone_id: str) -> dict[str, Any]:
    """The caller's clone by name or else by job id (a name may look like another's job id): 404 for
    another tenant's, after the same calls as for a missing one."""
    namespace = namespace_of(request)
    clone = _visible(caller, await clones.find_clone(namespace, clone_id)) if _is_name(clone_id) else None
    if clone is None and JOB_ID.fullmatch(clone_id):
        clone = _visible(caller, await clones.find_clone_by_job(namespace, clone_id))
    if clone is None:
        raise HTTPException(404, f"no clone {clone_id}")
    return clone


def _is_name(value: str) -> bool:
    return 0 < len(value) <= 40 and value.replace("-", "").isalnum() and value.islower()


async def visible_clones(request: Request, caller: tenants.Caller) -> list[dict[str, Any]]:
    """The caller's clones by name (an admin's: every tenant's)."""
    namespace = namespace_of(request)
    found = (await clones.all_clones(namespace) if caller.admin
             else await clones.tenant_clones(namespace, caller.tenant, cached=True))
    return sorted(found, key=lambda clone: clone["metadata"]["name"])


async def visible_restores(request: Request, caller: tenants.Caller) -> list[dict[str, Any]]:
    """The caller's restores and rollbacks, newest first (an admin's: those of the admin's tenant)."""
    found = await restores.tenant_restores(namespace_of(request), caller.tenant, cached=True)
    return sorted(found, key=lambda restore: restore["metadata"].get("creationTimestamp") or "", reverse=True)


async def delete_clone(request: Request, caller: tenants.Caller, clone_id: str) -> JobStatus:
    namespace = namespace_of(request)
    clone = await own_clone(request, caller, clone_id)
    await clones.delete_clone(namespace, clone)
    return (await clones.clone_status(namespace, clone)).model_copy(update={"password": None})


async def login_link(request: Request, caller: tenants.Caller, clone_id: str) -> LoginLink:
    namespace = namespace_of(request)
    clone = await own_clone(request, caller, clone_id)
    status, admin = clone.get("status") or {}, await clones.admin_login(namespace, clone)
    if status.get("phase") != constants.PHASE_READY or not status.get("url") or not admin:
        raise HTTPException(409, f"the clone {clone_id} is not ready ({status.get('phase') or 'Pending'})")
    expires = int(time.time()) + settings_of(request).login_link_seconds
    return LoginLink(url=login_links.link(status["url"], admin["migrator-token"], admin["username"], expires),
                     expires_at=times.format_time(datetime.fromtimestamp(expires, UTC)))


async def set_ttl(request: Request, caller: tenants.Caller, clone_id: str, ttl_minutes: int) -> JobStatus:
    too_long = quotas.ttl_refusal(settings_of(request).limits(), ttl_minutes)
    if too_long:
        raise HTTPException(422, too_long)
    clone = await own_clone(request, caller, clone_id)
    if (clone.get("status") or {}).get("phase") in (constants.EXPIRING, constants.EXPIRED):
        raise HTTPException(409, f"the clone {clone_id} has expired: request a new one")
    updated = await clones.set_ttl(namespace_of(request), clone, ttl_minutes)
    # As the operator is about to write it (the TTL counts from the clone's creation).
    expires = times.expires_at(updated["metadata"]["creationTimestamp"], ttl_minutes)
    return jobs.clone_job_status(updated, None).model_copy(update={"expires_at": expires})


async def wait_for_job(request: Request, caller: tenants.Caller, job_id: str) -> JobStatus:
    """The legacy v1 calls: answer when the job ends, or 504 with the job to poll. A waiting call is a
    suspended coroutine woken by the watch's changes (at the latest every poll_seconds): no thread."""
    settings, namespace = settings_of(request), namespace_of(request)
    deadline = time.monotonic() + settings.v1_timeout_seconds
    while True:
        try:
            current: JobStatus | None = await job_status(request, caller, job_id)
        except HTTPException:
            current = None  # not visible yet
        if current is not None and current.status in ("completed", "failed", "expired"):
            return current
        if time.monotonic() > deadline:
            raise HTTPException(504, {"message": "the job is not done yet; poll its status", "job_id": job_id})
        await namespace.next_change(settings.poll_seconds)


async def _usage(namespace: Namespace, tenant: str, limits: quotas.Limits) -> quotas.Usage:
    """From the watch, unless it is near a limit: then consistently (a tenant's clone made a
    moment ago counts; requests at the same moment may still both pass: quotas are soft). A tenant with
    too few objects to come near a limit is answered by their numbers, an upper bound no limit refuses."""
    counts = namespace.tenant_counts(tenant)
    if counts is not None and not quotas.near(limits, bound := quotas.at_most(*counts)):
        return bound
    for cached in (True, False):
        used = quotas.usage(await clones.tenant_clones(namespace, tenant, cached=cached),
                            await restores.tenant_restores(namespace, tenant, cached=cached))
        if not quotas.near(limits, used):
            break
    return used


async def create_clone(request: Request, caller: tenants.Caller, body: CloneRequest) -> str:
    namespace, limits = namespace_of(request), settings_of(request).limits()
    too_long = quotas.ttl_refusal(limits, body.ttl_minutes)
    if too_long:
        raise HTTPException(422, too_long)
    try:
        clones.refuse_taken_name(namespace, body.customer_id)  # first: a retried request learns its job
        over_quota = quotas.clone_refusal(limits, await _usage(namespace, caller.tenant, limits))
        if over_quota:
            raise HTTPException(429, over_quota)
        await _webhook_secret(request, caller, body.callback_url)
        if body.database is None:  # the installation's default, written down: the clone keeps it for good
            body = body.model_copy(update={"database": settings_of(request).default_database_engine})
        return await clones.create_clone(namespace, body, caller.tenant)
    except clones.NameTaken as taken:
        raise _name_taken(caller, body.customer_id, taken.clone) from None


def _name_taken(caller: tenants.Caller, customer_id: str, clone: dict[str, Any] | None) -> HTTPException:
    if clone is not None and tenants.can_see(caller, clone):
        return HTTPException(409, {"message": f"a clone named {customer_id} already exists",
                                   "job_id": clones.existing_job_id(clone)})
    # Clone names are unique per namespace, not per tenant: that the name is taken cannot be hidden,
    # whose clone holds it and its job can.
    return HTTPException(409, f"the customer_id {customer_id} is not available; choose another")


async def _webhook_secret(request: Request, caller: tenants.Caller, callback_url: str | None) -> None:
    """A job with a callback_url: its tenant's signing key, where the operator reads it (422 without one)."""
    if callback_url is None:
        return
    key = settings_of(request).webhook_secret(caller.tenant)
    if key is None:
        raise HTTPException(422, "callback_url needs a webhook signing secret for your tenant, and this API has "
                                 "none (WPCLONE_API_WEBHOOK_SECRETS): ask its operator")
    secret = jobs.webhook_secret(caller.tenant, key)
    namespace = namespace_of(request)
    secret["metadata"]["namespace"] = namespace.name
    await namespace.server.apply(secret)


async def create_restore(request: Request, caller: tenants.Caller, body: RestoreRequest) -> str:
    namespace = await _within_job_quota(request, caller, body.callback_url)
    try:
        return await restores.create_restore(namespace, caller, body)
    except restores.SourceRefused as refused:
        raise HTTPException(refused.status_code, refused.message) from None


async def create_rollback(request: Request, caller: tenants.Caller, body: RollbackRequest) -> str:
    return await restores.create_rollback(await _within_job_quota(request, caller, body.callback_url), caller, body)


async def _within_job_quota(request: Request, caller: tenants.Caller, callback_url: str | None) -> Namespace:
    """Where a restore or rollback job goes, once the tenant's running jobs leave room for it (429 if not)
    and its callback_url's signing key is in place."""
    namespace, limits = namespace_of(request), settings_of(request).limits()
    over_quota = quotas.job_refusal(limits, await _usage(namespace, caller.tenant, limits))
    if over_quota:
        raise HTTPException(429, over_quota)
    await _webhook_secret(request, caller, callback_url)
    return namespace


async def backups(request: Request, caller: tenants.Caller, target: str) -> list[Backup]:
    return restores.backups(await restores.tenant_restores(namespace_of(request), caller.tenant, cached=True), target)

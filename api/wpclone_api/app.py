"""The REST facade: v2 (asynchronous jobs) and the deprecated v1 (blocking) over the custom resources."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from wpclone_api import clones, jobs, login_links, metrics, quotas, restores, tenants
from wpclone_api.auth import AuthenticatedCaller
from wpclone_api.rate_limit import RateLimiter
from wpclone_api.schemas import (
    Backup,
    CloneRequest,
    CloneUpdate,
    ErrorBody,
    JobAccepted,
    JobStatus,
    LoginLink,
    RestoreRequest,
    RollbackRequest,
)
from wpclone_api.settings import ApiSettings
from wpclone_api.watch_cache import Namespace
from wpclone_common import constants, times
from wpclone_common.apiserver import ApiError, ApiServer
from wpclone_common.resources import SITE_URL

logger = logging.getLogger("wpclone.api")
JOB_ID = re.compile(r"[0-9a-f]{32}")
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody},
    429: {"model": ErrorBody, "description": "Rate limit (with Retry-After) or tenant quota exceeded"}}
RESTORE_ERRORS = {**ERRORS, 403: {"model": ErrorBody, "description": "The source login is not the clone's"}}


def create_app(settings: ApiSettings | None = None, server: ApiServer | None = None) -> FastAPI:
    """The app; `server` is the apiserver's client (default: connect as the kubernetes client would)."""
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def watching(app: FastAPI) -> AsyncIterator[None]:
        own = server or ApiServer.connect()
        app.state.namespace = Namespace(own, settings.namespace)
        if settings.watch_cache:
            app.state.namespace.watch()
        yield
        await app.state.namespace.stop()
        if server is None:
            await own.close()

    app = FastAPI(title="wpclone", version="2", lifespan=watching, description=(
        "Temporary clones of production WordPress sites. Every route but /healthz needs "
        "`Authorization: Bearer <token>`; a token sees only its tenant's jobs and clones."))
    settings.token_table()  # a malformed tokens setting stops the start, rather than failing every request
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    _install_error_handlers(app)
    metrics.instrument(app)
    _routes(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        body = error.detail if isinstance(error.detail, dict) else {"message": str(error.detail)}
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(part) for part in item['loc'] if part != 'body')}: {item['msg']}"
                    for item in error.errors()]
        return JSONResponse({"message": "invalid request: " + "; ".join(problems)}, status_code=422)

    @app.exception_handler(ApiError)
    async def kubernetes_error(_: Request, error: ApiError) -> JSONResponse:
        if error.status in (400, 422):  # the apiserver's own validation refused what the client sent
            return JSONResponse({"message": f"invalid request: {error.message}"}, status_code=422)
        logger.warning("Kubernetes API error: %s %s", error.status, error.reason)
        return JSONResponse({"message": f"the Kubernetes API refused the request: {error.status} {error.reason}"},
                            status_code=502)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        logger.error("unexpected error: %s", type(error).__name__)
        return JSONResponse({"message": "internal error"}, status_code=500)


def _status_url(request: Request, job_id: str) -> str:
    base = request.app.state.settings.public_url.rstrip("/")
    return f"{base}/api/v2/job-status/{job_id}"


def _namespace(request: Request) -> Namespace:
    namespace: Namespace = request.app.state.namespace
    return namespace


def _routes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v2/clone", status_code=202, response_model=JobAccepted, responses=ERRORS, tags=["v2"],
              summary="Start cloning a site")
    async def clone_v2(body: CloneRequest, request: Request, caller: AuthenticatedCaller) -> JobAccepted:
        job_id = await _create_clone(request, caller, body)
        return JobAccepted(job_id=job_id, status="pending", status_url=_status_url(request, job_id))

    @app.get("/api/v2/job-status/{job_id}", response_model=JobStatus, responses=ERRORS, tags=["v2"],
             summary="A clone or restore job's state")
    async def job_status(job_id: str, request: Request, caller: AuthenticatedCaller) -> JobStatus:
        return await _job_status(_namespace(request), caller, job_id)

    @app.delete("/api/v2/delete/{clone_id}", status_code=202, response_model=JobStatus, responses=ERRORS,
                tags=["v2"], summary="Delete a clone before its TTL")
    async def delete_v2(clone_id: str, request: Request, caller: AuthenticatedCaller) -> JobStatus:
        namespace = _namespace(request)
        clone = await _visible_clone(namespace, caller, clone_id)
        if clone is None:
            raise HTTPException(404, f"no clone {clone_id}")
        await clones.delete_clone(namespace, clone)
        return (await clones.clone_status(namespace, clone)).model_copy(update={"password": None})

    @app.get("/api/v2/clones", response_model=list[JobStatus], responses=ERRORS, tags=["v2"],
             summary="Your clones (without their logins: a clone's job status has its own)")
    async def list_clones(request: Request, caller: AuthenticatedCaller) -> list[JobStatus]:
        namespace = _namespace(request)
        found = (await clones.all_clones(namespace) if caller.admin
                 else await clones.tenant_clones(namespace, caller.tenant, cached=True))
        return [jobs.clone_job_status(clone, None) for clone in sorted(found, key=lambda c: c["metadata"]["name"])]

    @app.post("/api/v2/clones/{clone_id}/login-link", response_model=LoginLink, responses=ERRORS, tags=["v2"],
              summary="A one-click, single-use link into the clone's wp-admin")
    async def login_link(clone_id: str, request: Request, caller: AuthenticatedCaller) -> LoginLink:
        namespace = _namespace(request)
        clone = await _visible_clone(namespace, caller, clone_id)
        if clone is None:
            raise HTTPException(404, f"no clone {clone_id}")
        status = clone.get("status") or {}
        admin_ref = (status.get("adminSecretRef") or {}).get("name")
        admin = await namespace.server.read_secret(namespace.name, admin_ref) if admin_ref else None
        if status.get("phase") != constants.PHASE_READY or not status.get("url") or not admin:
            raise HTTPException(409, f"the clone {clone_id} is not ready ({status.get('phase') or 'Pending'})")
        expires = int(time.time()) + request.app.state.settings.login_link_seconds
        return LoginLink(url=login_links.link(status["url"], admin["migrator-token"], admin["username"], expires),
                         expires_at=times.format_time(datetime.fromtimestamp(expires, UTC)))

    @app.patch("/api/v2/clones/{clone_id}", response_model=JobStatus, responses=ERRORS, tags=["v2"],
               summary="Extend a clone's life (or shorten it)")
    async def update_clone(clone_id: str, body: CloneUpdate, request: Request,
                           caller: AuthenticatedCaller) -> JobStatus:
        namespace = _namespace(request)
        too_long = quotas.ttl_refusal(request.app.state.settings.limits(), body.ttl_minutes)
        if too_long:
            raise HTTPException(422, too_long)
        clone = await _visible_clone(namespace, caller, clone_id)
        if clone is None:
            raise HTTPException(404, f"no clone {clone_id}")
        if (clone.get("status") or {}).get("phase") in (constants.EXPIRING, constants.EXPIRED):
            raise HTTPException(409, f"the clone {clone_id} has expired: request a new one")
        updated = await clones.set_ttl(namespace, clone, body.ttl_minutes)
        # As the operator is about to write it (the TTL counts from the clone's creation).
        expires = times.expires_at(updated["metadata"]["creationTimestamp"], body.ttl_minutes)
        return jobs.clone_job_status(updated, None).model_copy(update={"expires_at": expires})

    @app.post("/clone", response_model=JobStatus, deprecated=True, responses={**ERRORS, 504: {"model": ErrorBody}},
              tags=["v1 (deprecated)"], summary="Clone a site and wait until it is ready (use /api/v2/clone)")
    async def clone_v1(body: CloneRequest, request: Request, caller: AuthenticatedCaller) -> JobStatus:
        return await _wait_for_job(request, caller, await _create_clone(request, caller, body))

    @app.post("/api/v2/restore", status_code=202, response_model=JobAccepted, responses=RESTORE_ERRORS,
              tags=["v2"], summary="Push a clone's content to production (backup first)")
    async def restore_v2(body: RestoreRequest, request: Request, caller: AuthenticatedCaller) -> JobAccepted:
        job_id = await _create_restore(request, caller, body)
        return JobAccepted(job_id=job_id, status="pending", status_url=_status_url(request, job_id))

    @app.post("/api/v2/rollback", status_code=202, response_model=JobAccepted, responses=ERRORS, tags=["v2"],
              summary="Put a restore's backup back on production")
    async def rollback_v2(body: RollbackRequest, request: Request, caller: AuthenticatedCaller) -> JobAccepted:
        namespace, limits = _namespace(request), request.app.state.settings.limits()
        over_quota = quotas.job_refusal(limits, await _usage(namespace, caller.tenant, limits))
        if over_quota:
            raise HTTPException(429, over_quota)
        await _webhook_secret(request, caller, body.callback_url)
        job_id = await restores.create_rollback(namespace, caller, body)
        return JobAccepted(job_id=job_id, status="pending", status_url=_status_url(request, job_id))

    @app.get("/api/v2/backups", response_model=list[Backup], responses=ERRORS, tags=["v2"],
             summary="The backups your restores kept on a production site, newest first")
    async def list_backups(request: Request, caller: AuthenticatedCaller,
                           target: Annotated[str, Query(pattern=SITE_URL, max_length=2048)]) -> list[Backup]:
        restore_list = await restores.tenant_restores(_namespace(request), caller.tenant, cached=True)
        return restores.backups(restore_list, target)

    @app.post("/restore", response_model=JobStatus, deprecated=True,
              responses={**RESTORE_ERRORS, 504: {"model": ErrorBody}}, tags=["v1 (deprecated)"],
              summary="Restore and wait until done (use /api/v2/restore)")
    async def restore_v1(body: RestoreRequest, request: Request, caller: AuthenticatedCaller) -> JobStatus:
        return await _wait_for_job(request, caller, await _create_restore(request, caller, body))


async def _job_status(namespace: Namespace, caller: tenants.Caller, job_id: str) -> JobStatus:
    """From the watch, else (a job made a moment ago) consistently. Another tenant's job
    answers exactly like a missing one, after the same calls."""
    if not JOB_ID.fullmatch(job_id):
        raise HTTPException(404, f"no job {job_id}")  # no such id was ever handed out
    for cached in (True, False):
        clone = _visible(caller, await clones.find_clone_by_job(namespace, job_id, cached=cached))
        if clone is not None:
            return await clones.clone_status(namespace, clone)
        restore = _visible(caller, await restores.find_restore_by_job(namespace, job_id, cached=cached))
        if restore is not None:
            return jobs.restore_job_status(restore)
    raise HTTPException(404, f"no job {job_id}")


def _visible(caller: tenants.Caller, found: dict[str, Any] | None) -> dict[str, Any] | None:
    return found if found is not None and tenants.can_see(caller, found) else None


async def _visible_clone(namespace: Namespace, caller: tenants.Caller, clone_id: str) -> dict[str, Any] | None:
    """The caller's clone by name or else by job id (a name may look like another's job id): another
    tenant's is None, after the same calls."""
    clone = _visible(caller, await clones.find_clone(namespace, clone_id)) if _is_name(clone_id) else None
    if clone is None and JOB_ID.fullmatch(clone_id):
        clone = _visible(caller, await clones.find_clone_by_job(namespace, clone_id))
    return clone


async def _wait_for_job(request: Request, caller: tenants.Caller, job_id: str) -> JobStatus:
    """The legacy v1 calls: answer when the job ends, or 504 with the job to poll. A waiting call is a
    suspended coroutine woken by the watch's changes (at the latest every poll_seconds): no thread."""
    settings, namespace = request.app.state.settings, _namespace(request)
    deadline = time.monotonic() + settings.v1_timeout_seconds
    while True:
        try:
            current: JobStatus | None = await _job_status(namespace, caller, job_id)
        except HTTPException:
            current = None  # not visible yet
        if current is not None and current.status in ("completed", "failed", "expired"):
            return current
        if time.monotonic() > deadline:
            raise HTTPException(504, {"message": "the job is not done yet; poll its status", "job_id": job_id})
        await namespace.next_change(settings.poll_seconds)


def _is_name(value: str) -> bool:
    return 0 < len(value) <= 40 and value.replace("-", "").isalnum() and value.islower()


async def _usage(namespace: Namespace, tenant: str, limits: quotas.Limits) -> quotas.Usage:
    """From the watch, unless it is near a limit: then consistently (a tenant's clone made a
    moment ago counts; requests at the same moment may still both pass: quotas are soft)."""
    for cached in (True, False):
        used = quotas.usage(await clones.tenant_clones(namespace, tenant, cached=cached),
                            await restores.tenant_restores(namespace, tenant, cached=cached))
        if not quotas.near(limits, used):
            break
    return used


async def _create_clone(request: Request, caller: tenants.Caller, body: CloneRequest) -> str:
    namespace, limits = _namespace(request), request.app.state.settings.limits()
    too_long = quotas.ttl_refusal(limits, body.ttl_minutes)
    if too_long:
        raise HTTPException(422, too_long)
    try:
        clones.refuse_taken_name(namespace, body.customer_id)  # first: a retried request learns its job
        over_quota = quotas.clone_refusal(limits, await _usage(namespace, caller.tenant, limits))
        if over_quota:
            raise HTTPException(429, over_quota)
        await _webhook_secret(request, caller, body.callback_url)
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
    key = request.app.state.settings.webhook_secret(caller.tenant)
    if key is None:
        raise HTTPException(422, "callback_url needs a webhook signing secret for your tenant, and this API has "
                                 "none (WPCLONE_API_WEBHOOK_SECRETS): ask its operator")
    secret = jobs.webhook_secret(caller.tenant, key)
    namespace = _namespace(request)
    secret["metadata"]["namespace"] = namespace.name
    await namespace.server.apply(secret)


async def _create_restore(request: Request, caller: tenants.Caller, body: RestoreRequest) -> str:
    namespace, limits = _namespace(request), request.app.state.settings.limits()
    over_quota = quotas.job_refusal(limits, await _usage(namespace, caller.tenant, limits))
    if over_quota:
        raise HTTPException(429, over_quota)
    await _webhook_secret(request, caller, body.callback_url)
    try:
        return await restores.create_restore(namespace, caller, body)
    except restores.SourceRefused as refused:
        raise HTTPException(refused.status_code, refused.message) from None

"""The REST facade: v2 (asynchronous jobs) and the deprecated v1 (blocking) over the custom resources."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from wpclone_api import actions, dashboard, jobs, metrics
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
from wpclone_common.apiserver import ApiError, ApiServer
from wpclone_common.resources import SITE_URL

logger = logging.getLogger("wpclone.api")
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
        # What is loaded by now (FastAPI's, pydantic's and the kubernetes client's modules) lives as long as
        # the process: out of the collector's sight. Each full collection walked it all: 60-100 ms in which
        # no request moved (bench.bench_api's p99), now 10-30 ms over the watched objects.
        gc.collect()
        gc.freeze()
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
    app.include_router(dashboard.router)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        body = error.detail if isinstance(error.detail, dict) else {"message": str(error.detail)}
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"message": actions.invalid(error.errors())}, status_code=422)

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


def _routes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v2/clone", status_code=202, response_model=JobAccepted, responses=ERRORS, tags=["v2"],
              summary="Start cloning a site")
    async def clone_v2(body: CloneRequest, request: Request, caller: AuthenticatedCaller) -> JobAccepted:
        return _accepted(request, await actions.create_clone(request, caller, body))

    @app.get("/api/v2/job-status/{job_id}", response_model=JobStatus, responses=ERRORS, tags=["v2"],
             summary="A clone or restore job's state")
    async def job_status(job_id: str, request: Request, caller: AuthenticatedCaller) -> JobStatus:
        return await actions.job_status(request, caller, job_id)

    @app.delete("/api/v2/delete/{clone_id}", status_code=202, response_model=JobStatus, responses=ERRORS,
                tags=["v2"], summary="Delete a clone before its TTL")
    async def delete_v2(clone_id: str, request: Request, caller: AuthenticatedCaller) -> JobStatus:
        return await actions.delete_clone(request, caller, clone_id)

    @app.get("/api/v2/clones", response_model=list[JobStatus], responses=ERRORS, tags=["v2"],
             summary="Your clones (without their logins: a clone's job status has its own)")
    async def list_clones(request: Request, caller: AuthenticatedCaller) -> list[JobStatus]:
        return [jobs.clone_job_status(clone, None) for clone in await actions.visible_clones(request, caller)]

    @app.post("/api/v2/clones/{clone_id}/login-link", response_model=LoginLink, responses=ERRORS, tags=["v2"],
              summary="A one-click, single-use link into the clone's wp-admin")
    async def login_link(clone_id: str, request: Request, caller: AuthenticatedCaller) -> LoginLink:
        return await actions.login_link(request, caller, clone_id)

    @app.patch("/api/v2/clones/{clone_id}", response_model=JobStatus, responses=ERRORS, tags=["v2"],
               summary="Extend a clone's life (or shorten it)")
    async def update_clone(clone_id: str, body: CloneUpdate, request: Request,
                           caller: AuthenticatedCaller) -> JobStatus:
        return await actions.set_ttl(request, caller, clone_id, body.ttl_minutes)

    @app.post("/clone", response_model=JobStatus, deprecated=True, responses={**ERRORS, 504: {"model": ErrorBody}},
              tags=["v1 (deprecated)"], summary="Clone a site and wait until it is ready (use /api/v2/clone)")
    async def clone_v1(body: CloneRequest, request: Request, caller: AuthenticatedCaller) -> JobStatus:
        return await actions.wait_for_job(request, caller, await actions.create_clone(request, caller, body))

    @app.post("/api/v2/restore", status_code=202, response_model=JobAccepted, responses=RESTORE_ERRORS,
              tags=["v2"], summary="Push a clone's content to production (backup first)")
    async def restore_v2(body: RestoreRequest, request: Request, caller: AuthenticatedCaller) -> JobAccepted:
        return _accepted(request, await actions.create_restore(request, caller, body))

    @app.post("/api/v2/rollback", status_code=202, response_model=JobAccepted, responses=ERRORS, tags=["v2"],
              summary="Put a restore's backup back on production")
    async def rollback_v2(body: RollbackRequest, request: Request, caller: AuthenticatedCaller) -> JobAccepted:
        return _accepted(request, await actions.create_rollback(request, caller, body))

    @app.get("/api/v2/backups", response_model=list[Backup], responses=ERRORS, tags=["v2"],
             summary="The backups your restores kept on a production site, newest first")
    async def list_backups(request: Request, caller: AuthenticatedCaller,
                           target: Annotated[str, Query(pattern=SITE_URL, max_length=2048)]) -> list[Backup]:
        return await actions.backups(request, caller, target)

    @app.post("/restore", response_model=JobStatus, deprecated=True,
              responses={**RESTORE_ERRORS, 504: {"model": ErrorBody}}, tags=["v1 (deprecated)"],
              summary="Restore and wait until done (use /api/v2/restore)")
    async def restore_v1(body: RestoreRequest, request: Request, caller: AuthenticatedCaller) -> JobStatus:
        return await actions.wait_for_job(request, caller, await actions.create_restore(request, caller, body))


def _accepted(request: Request, job_id: str) -> JobAccepted:
    return JobAccepted(job_id=job_id, status="pending", status_url=_status_url(request, job_id))

"""The REST facade: v2 (asynchronous jobs) and the deprecated v1 (blocking) over the custom resources."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kubernetes.client.exceptions import ApiException

from wpclone_api import clones, jobs, metrics, restores
from wpclone_api.auth import require_token
from wpclone_api.schemas import CloneRequest, ErrorBody, JobAccepted, JobStatus, RestoreRequest
from wpclone_api.settings import ApiSettings

logger = logging.getLogger("wpclone.api")
JOB_ID = re.compile(r"[0-9a-f]{32}")
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}}


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    app = FastAPI(title="wpclone", version="2", description=(
        "Temporary clones of production WordPress sites. Every route but /healthz needs "
        "`Authorization: Bearer <token>`."))
    app.state.settings = settings or ApiSettings()
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

    @app.exception_handler(ApiException)
    async def kubernetes_error(_: Request, error: ApiException) -> JSONResponse:
        if error.status in (400, 422):  # the apiserver's own validation refused what the client sent
            return JSONResponse({"message": f"invalid request: {_apiserver_message(error)}"}, status_code=422)
        logger.warning("Kubernetes API error: %s %s", error.status, error.reason)
        return JSONResponse({"message": f"the Kubernetes API refused the request: {error.status} {error.reason}"},
                            status_code=502)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        logger.error("unexpected error: %s", type(error).__name__)
        return JSONResponse({"message": "internal error"}, status_code=500)


def _apiserver_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(error.reason)


def _status_url(request: Request, job_id: str) -> str:
    base = request.app.state.settings.public_url.rstrip("/")
    return f"{base}/api/v2/job-status/{job_id}"


def _namespace(request: Request) -> str:
    return str(request.app.state.settings.namespace)


def _routes(app: FastAPI) -> None:
    authenticated = [Depends(require_token)]

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v2/clone", status_code=202, response_model=JobAccepted, dependencies=authenticated,
              responses=ERRORS, tags=["v2"], summary="Start cloning a site")
    def clone_v2(body: CloneRequest, request: Request) -> JobAccepted:
        job_id = _create_clone(request, body)
        return JobAccepted(job_id=job_id, status="pending", status_url=_status_url(request, job_id))

    @app.get("/api/v2/job-status/{job_id}", response_model=JobStatus, dependencies=authenticated,
             responses=ERRORS, tags=["v2"], summary="A clone or restore job's state")
    def job_status(job_id: str, request: Request) -> JobStatus:
        return _job_status(_namespace(request), job_id)

    @app.delete("/api/v2/delete/{clone_id}", status_code=202, response_model=JobStatus, dependencies=authenticated,
                responses=ERRORS, tags=["v2"], summary="Delete a clone before its TTL")
    def delete_v2(clone_id: str, request: Request) -> JobStatus:
        namespace = _namespace(request)
        clone = clones.find_clone(namespace, clone_id) if _is_name(clone_id) else None
        if clone is None and JOB_ID.fullmatch(clone_id):
            clone = clones.find_clone_by_job(namespace, clone_id)
        if clone is None:
            raise HTTPException(404, f"no clone {clone_id}")
        clones.delete_clone(namespace, clone)
        return clones.clone_status(namespace, clone).model_copy(update={"password": None})

    @app.post("/clone", response_model=JobStatus, dependencies=authenticated, deprecated=True,
              responses={**ERRORS, 504: {"model": ErrorBody}}, tags=["v1 (deprecated)"],
              summary="Clone a site and wait until it is ready (use /api/v2/clone)")
    def clone_v1(body: CloneRequest, request: Request) -> JobStatus:
        return _wait_for_job(request.app.state.settings, _create_clone(request, body))

    @app.post("/api/v2/restore", status_code=202, response_model=JobAccepted, dependencies=authenticated,
              responses=ERRORS, tags=["v2"], summary="Push a clone's content to production (backup first)")
    def restore_v2(body: RestoreRequest, request: Request) -> JobAccepted:
        job_id = restores.create_restore(_namespace(request), body)
        return JobAccepted(job_id=job_id, status="pending", status_url=_status_url(request, job_id))

    @app.post("/restore", response_model=JobStatus, dependencies=authenticated, deprecated=True,
              responses={**ERRORS, 504: {"model": ErrorBody}}, tags=["v1 (deprecated)"],
              summary="Restore and wait until done (use /api/v2/restore)")
    def restore_v1(body: RestoreRequest, request: Request) -> JobStatus:
        return _wait_for_job(request.app.state.settings, restores.create_restore(_namespace(request), body))


def _job_status(namespace: str, job_id: str) -> JobStatus:
    if not JOB_ID.fullmatch(job_id):
        raise HTTPException(404, f"no job {job_id}")  # no such id was ever handed out
    clone = clones.find_clone_by_job(namespace, job_id)
    if clone is not None:
        return clones.clone_status(namespace, clone)
    restore = restores.find_restore_by_job(namespace, job_id)
    if restore is not None:
        return jobs.restore_job_status(restore)
    raise HTTPException(404, f"no job {job_id}")


def _wait_for_job(settings: ApiSettings, job_id: str) -> JobStatus:
    """The legacy v1 calls: block until the job ends, or answer 504 with the job to poll."""
    deadline = time.monotonic() + settings.v1_timeout_seconds
    while True:
        try:
            current: JobStatus | None = _job_status(settings.namespace, job_id)
        except HTTPException:
            current = None  # not visible yet
        if current is not None and current.status in ("completed", "failed", "expired"):
            return current
        if time.monotonic() > deadline:
            raise HTTPException(504, {"message": "the job is not done yet; poll its status", "job_id": job_id})
        time.sleep(settings.poll_seconds)


def _is_name(value: str) -> bool:
    return 0 < len(value) <= 40 and value.replace("-", "").isalnum() and value.islower()


def _create_clone(request: Request, body: CloneRequest) -> str:
    try:
        return clones.create_clone(_namespace(request), body)
    except clones.JobConflict as conflict:
        raise HTTPException(409, {"message": f"a clone named {body.customer_id} already exists",
                                  "job_id": conflict.job_id}) from None



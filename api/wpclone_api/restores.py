"""Creating and finding restore jobs: CloneRestores whose logins are in Secrets they own."""

from __future__ import annotations

import uuid
from typing import Any

from wpclone_api import jobs
from wpclone_api.schemas import RestoreRequest
from wpclone_operator import constants, kube


def find_restore_by_job(namespace: str, job_id: str) -> dict[str, Any] | None:
    found = kube.list_objects(constants.API_VERSION, constants.RESTORE_KIND, namespace,
                              f"{constants.LABEL_JOB_ID}={job_id}")
    return found[0] if found else None


def clone_serving(namespace: str, url: str) -> str | None:
    """The name of our Ready clone at `url`, if the restore's source is one."""
    for clone in kube.list_objects(constants.API_VERSION, constants.CLONE_KIND, namespace,
                                   f"{constants.LABEL_MANAGED_BY}=wpclone-api"):
        status = clone.get("status") or {}
        if status.get("phase") == constants.PHASE_READY and (status.get("url") or "").rstrip("/") == url.rstrip("/"):
            return str(clone["metadata"]["name"])
    return None


def create_restore(namespace: str, request: RestoreRequest) -> str:
    job_id = uuid.uuid4().hex
    clone_name = clone_serving(namespace, request.source.url)
    resource = jobs.restore_resource(request, job_id, clone_name)
    resource["metadata"]["namespace"] = namespace
    name = resource["metadata"]["name"]
    logins = [(f"{name}-target-login", request.target)]
    if clone_name is None:
        logins.append((f"{name}-source-login", request.source))
    for secret_name, login in logins:
        secret = jobs.login_secret(secret_name, login, job_id)
        secret["metadata"]["namespace"] = namespace
        kube.apply(secret)
    try:
        created = kube.create(resource)
    except Exception:
        for secret_name, _ in logins:
            kube.delete("v1", "Secret", namespace, secret_name)
        raise
    for secret_name, _ in logins:
        kube.patch_metadata("v1", "Secret", namespace, secret_name, jobs.owned_by(created))
    return job_id

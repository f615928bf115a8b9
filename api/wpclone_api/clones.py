"""Creating, finding and deleting clone jobs: the API's only I/O is the Kubernetes API."""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes.client.exceptions import ApiException

from wpclone_api import jobs
from wpclone_api.schemas import CloneRequest, JobStatus
from wpclone_operator import constants, kube


class JobConflict(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


def find_clone(namespace: str, clone_id: str) -> dict[str, Any] | None:
    return kube.get(constants.API_VERSION, constants.CLONE_KIND, namespace, clone_id)


def find_clone_by_job(namespace: str, job_id: str) -> dict[str, Any] | None:
    found = kube.list_objects(constants.API_VERSION, constants.CLONE_KIND, namespace,
                              f"{constants.LABEL_JOB_ID}={job_id}")
    return found[0] if found else None


def existing_job_id(clone: dict[str, Any]) -> str:
    return str((clone["metadata"].get("labels") or {}).get(constants.LABEL_JOB_ID, clone["metadata"]["name"]))


def create_clone(namespace: str, request: CloneRequest) -> str:
    """Record the job as a WordPressClone whose source login is in a Secret (the operator makes the
    clone own it): two calls to the Kubernetes API, the Secret first so the operator finds it."""
    job_id = uuid.uuid4().hex
    secret = jobs.source_secret(request, job_id)
    secret["metadata"]["namespace"] = namespace
    try:
        kube.create(secret)
    except ApiException as error:
        if error.status != 409:
            raise
        existing = find_clone(namespace, request.customer_id)
        if existing is not None:
            raise JobConflict(existing_job_id(existing)) from None
        kube.apply(secret)  # left by an earlier attempt that died before creating its clone
    resource = jobs.clone_resource(request, job_id)
    resource["metadata"]["namespace"] = namespace
    try:
        kube.create(resource)
    except ApiException as error:
        if error.status == 409:  # a concurrent request for the same customer won
            clone = find_clone(namespace, request.customer_id)
            raise JobConflict(existing_job_id(clone) if clone else "") from None
        kube.delete("v1", "Secret", namespace, secret["metadata"]["name"])
        raise
    return job_id


def clone_status(namespace: str, clone: dict[str, Any]) -> JobStatus:
    admin_ref = ((clone.get("status") or {}).get("adminSecretRef") or {}).get("name")
    admin_login = kube.read_secret(namespace, admin_ref) if admin_ref else None
    return jobs.clone_job_status(clone, admin_login)


def delete_clone(namespace: str, clone: dict[str, Any]) -> None:
    kube.delete(constants.API_VERSION, constants.CLONE_KIND, namespace, clone["metadata"]["name"])

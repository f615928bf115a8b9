"""Creating, finding and deleting clone jobs: the API's only I/O is the Kubernetes API."""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes.client.exceptions import ApiException

from wpclone_api import jobs, watch_cache
from wpclone_api.schemas import CloneRequest, JobStatus
from wpclone_common import constants, kube


class NameTaken(Exception):
    """customer_id names a clone that exists (maybe another tenant's, maybe gone again: None)."""

    def __init__(self, clone: dict[str, Any] | None) -> None:
        super().__init__("name taken")
        self.clone = clone


def find_clone(namespace: str, clone_id: str) -> dict[str, Any] | None:
    return kube.get(constants.API_VERSION, constants.CLONE_KIND, namespace, clone_id)


def find_clone_by_job(namespace: str, job_id: str, *, cached: bool = False) -> dict[str, Any] | None:
    found = watch_cache.labelled(watch_cache.CLONES, constants.CLONE_KIND, namespace, constants.LABEL_JOB_ID,
                                 job_id, cached=cached)
    return found[0] if found else None


def tenant_clones(namespace: str, tenant: str, *, cached: bool = False) -> list[dict[str, Any]]:
    return watch_cache.labelled(watch_cache.CLONES, constants.CLONE_KIND, namespace, constants.LABEL_TENANT,
                                tenant, cached=cached)


def all_clones(namespace: str) -> list[dict[str, Any]]:
    return kube.list_objects(constants.API_VERSION, constants.CLONE_KIND, namespace, "")


def existing_job_id(clone: dict[str, Any]) -> str:
    return str((clone["metadata"].get("labels") or {}).get(constants.LABEL_JOB_ID, clone["metadata"]["name"]))


def refuse_taken_name(namespace: str, customer_id: str) -> None:
    clone = find_clone(namespace, customer_id)
    if clone is not None:
        raise NameTaken(clone)


def create_clone(namespace: str, request: CloneRequest, tenant: str) -> str:
    """Record the job as a WordPressClone whose source login is in a Secret of its own (the operator
    makes the clone own it): the Secret first, so that the operator finds it."""
    job_id = uuid.uuid4().hex
    secret = jobs.source_secret(request, job_id, tenant)
    secret["metadata"]["namespace"] = namespace
    kube.create(secret)
    resource = jobs.clone_resource(request, job_id, tenant)
    resource["metadata"]["namespace"] = namespace
    try:
        kube.create(resource)
    except ApiException as error:
        kube.delete("v1", "Secret", namespace, secret["metadata"]["name"])
        if error.status == 409:  # a concurrent request for the same name won
            raise NameTaken(find_clone(namespace, request.customer_id)) from None
        raise
    return job_id


def clone_status(namespace: str, clone: dict[str, Any]) -> JobStatus:
    admin_ref = ((clone.get("status") or {}).get("adminSecretRef") or {}).get("name")
    admin_login = kube.read_secret(namespace, admin_ref) if admin_ref else None
    return jobs.clone_job_status(clone, admin_login)


def delete_clone(namespace: str, clone: dict[str, Any]) -> None:
    kube.delete(constants.API_VERSION, constants.CLONE_KIND, namespace, clone["metadata"]["name"])

"""Creating, finding and deleting clone jobs: the API's only I/O is the Kubernetes API."""

from __future__ import annotations

import uuid
from typing import Any

from wpclone_api import jobs
from wpclone_api.schemas import CloneRequest, JobStatus
from wpclone_api.watch_cache import Namespace
from wpclone_common import constants
from wpclone_common.apiserver import ApiError


class NameTaken(Exception):
    """customer_id names a clone that exists (maybe another tenant's, maybe gone again: None)."""

    def __init__(self, clone: dict[str, Any] | None) -> None:
        super().__init__("name taken")
        self.clone = clone


async def find_clone(namespace: Namespace, clone_id: str) -> dict[str, Any] | None:
    return await namespace.server.get(constants.API_VERSION, constants.CLONE_KIND, namespace.name, clone_id)


async def find_clone_by_job(namespace: Namespace, job_id: str, *, cached: bool = False) -> dict[str, Any] | None:
    found = await namespace.labelled(constants.CLONE_KIND, constants.LABEL_JOB_ID, job_id, cached=cached)
    return found[0] if found else None


async def tenant_clones(namespace: Namespace, tenant: str, *, cached: bool = False) -> list[dict[str, Any]]:
    return await namespace.labelled(constants.CLONE_KIND, constants.LABEL_TENANT, tenant, cached=cached)


async def all_clones(namespace: Namespace) -> list[dict[str, Any]]:
    return await namespace.server.list_objects(constants.API_VERSION, constants.CLONE_KIND, namespace.name, "")


def existing_job_id(clone: dict[str, Any]) -> str:
    return str((clone["metadata"].get("labels") or {}).get(constants.LABEL_JOB_ID, clone["metadata"]["name"]))


def refuse_taken_name(namespace: Namespace, customer_id: str) -> None:
    """A clone the watch shows under that name: a retried request learns its job before anything is
    written. One the watch has not shown yet is refused by its create (409)."""
    clone = namespace.clones.named(customer_id)
    if clone is not None:
        raise NameTaken(clone)


async def create_clone(namespace: Namespace, request: CloneRequest, tenant: str) -> str:
    """Record the job as a WordPressClone whose source login is in a Secret of its own (the operator
    makes the clone own it): the Secret first, so that the operator finds it."""
    job_id = uuid.uuid4().hex
    secret = jobs.source_secret(request, job_id, tenant)
    secret["metadata"]["namespace"] = namespace.name
    await namespace.server.create(secret, read=False)
    resource = jobs.clone_resource(request, job_id, tenant)
    resource["metadata"]["namespace"] = namespace.name
    try:
        await namespace.server.create(resource, read=False)
    except ApiError as error:
        await namespace.server.delete("v1", "Secret", namespace.name, secret["metadata"]["name"])
        if error.status == 409:  # the name is taken: by a concurrent request, or before the watch showed it
            raise NameTaken(await find_clone(namespace, request.customer_id)) from None
        raise
    return job_id


async def admin_login(namespace: Namespace, clone: dict[str, Any]) -> dict[str, str] | None:
    """The clone's admin Secret (username, password, migrator-token), once the operator has made it."""
    admin_ref = ((clone.get("status") or {}).get("adminSecretRef") or {}).get("name")
    return await namespace.server.read_secret(namespace.name, admin_ref) if admin_ref else None


async def clone_status(namespace: Namespace, clone: dict[str, Any]) -> JobStatus:
    return jobs.clone_job_status(clone, await admin_login(namespace, clone))


async def set_ttl(namespace: Namespace, clone: dict[str, Any], ttl_minutes: int) -> dict[str, Any]:
    """The clone with its new TTL (the operator moves status.expiresAt to match)."""
    return await namespace.server.merge_patch(constants.API_VERSION, constants.CLONE_KIND, namespace.name,
                                              clone["metadata"]["name"], {"spec": {"ttlMinutes": ttl_minutes}})


async def delete_clone(namespace: Namespace, clone: dict[str, Any]) -> None:
    await namespace.server.delete(constants.API_VERSION, constants.CLONE_KIND, namespace.name,
                                  clone["metadata"]["name"])

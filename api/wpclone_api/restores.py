"""Creating and finding restore jobs: CloneRestores whose logins are in Secrets they own."""

from __future__ import annotations

import hmac
import uuid
from typing import Any

from wpclone_api import clones, jobs, tenants
from wpclone_api.schemas import Backup, RestoreRequest, RollbackRequest, SiteLogin
from wpclone_api.watch_cache import Namespace
from wpclone_common import constants


class SourceRefused(Exception):
    """The restore's source is a clone the caller may not restore from."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code, self.message = status_code, message


async def find_restore_by_job(namespace: Namespace, job_id: str, *, cached: bool = False) -> dict[str, Any] | None:
    found = await namespace.labelled(constants.RESTORE_KIND, constants.LABEL_JOB_ID, job_id, cached=cached)
    return found[0] if found else None


async def tenant_restores(namespace: Namespace, tenant: str, *, cached: bool = False) -> list[dict[str, Any]]:
    return await namespace.labelled(constants.RESTORE_KIND, constants.LABEL_TENANT, tenant, cached=cached)


def same_site(url: str, other: str) -> bool:
    return url.rstrip("/").lower() == other.rstrip("/").lower()


def serving(clone_list: list[dict[str, Any]], url: str) -> list[dict[str, Any]]:
    """The clones that serve at `url` (their status.url, set once they were Ready)."""
    return [clone for clone in clone_list if same_site((clone.get("status") or {}).get("url") or "", url)]


def rolled_back(restore_list: list[dict[str, Any]]) -> set[str]:
    """The backups a rollback among these put back."""
    return {spec["rollbackTo"] for restore in restore_list
            if (spec := restore.get("spec") or {}).get("rollbackTo")
            and (restore.get("status") or {}).get("phase") == constants.ROLLED_BACK}


def backups(restore_list: list[dict[str, Any]], target_url: str) -> list[Backup]:
    """The backups the restores kept on `target_url`, newest first, from the restores' own records (the
    target keeps only its newest few: a rollback to an older one fails and says so)."""
    put_back = rolled_back(restore_list)
    kept = [Backup(backup_id=status["backupId"], target_url=restore["spec"]["target"]["url"],
                   job_id=restore["metadata"]["labels"][constants.LABEL_JOB_ID], created_at=status.get("completedAt"),
                   rolled_back=status["backupId"] in put_back)
            for restore in restore_list
            if (status := restore.get("status") or {}).get("backupId") and not restore["spec"].get("rollbackTo")
            and same_site(restore["spec"]["target"]["url"], target_url)]
    return sorted(kept, key=lambda backup: backup.created_at or "", reverse=True)


def is_admin_login(login: SiteLogin, admin: dict[str, str] | None) -> bool:
    """Whether `login` is the clone's own admin login, compared in constant time (both fields, always)."""
    if admin is None:
        return False
    username = hmac.compare_digest(login.username.encode(), admin.get("username", "").encode())
    password = hmac.compare_digest(login.password.get_secret_value().encode(), admin.get("password", "").encode())
    return username and password


async def clone_source(namespace: Namespace, caller: tenants.Caller, source: SiteLogin) -> dict[str, Any] | None:
    """The caller's clone the restore reads from, once the given login proved to be that clone's admin
    login; None when the source is no clone (a site whose login the operator checks)."""
    at_url = serving(await clones.all_clones(namespace), source.url)
    if not at_url:
        return None
    clone = next((clone for clone in at_url if tenants.can_see(caller, clone)), None)
    if clone is None:  # another tenant's clone is never a source, by ref or by URL
        raise SourceRefused(404, f"no clone of yours serves {source.url}")
    name = str(clone["metadata"]["name"])
    if not is_admin_login(source, await clones.admin_login(namespace, clone)):
        raise SourceRefused(403, f"the source login is not the admin login of the clone {name} "
                                 "(the username and password its clone job returned)")
    return clone


async def create_restore(namespace: Namespace, caller: tenants.Caller, request: RestoreRequest) -> str:
    job_id = uuid.uuid4().hex
    clone = await clone_source(namespace, caller, request.source)
    clone_name = None if clone is None else str(clone["metadata"]["name"])
    taken_from = "" if clone is None else str(((clone.get("spec") or {}).get("source") or {}).get("url") or "")
    sqlite = clone is not None and (((clone.get("spec") or {}).get("database") or {}).get("engine") == "sqlite")
    merges = clone is not None and taken_from.rstrip("/") == request.target.url.rstrip("/") and not sqlite
    if request.on_conflict == "merge" and not merges:
        raise SourceRefused(422, "on_conflict merge needs the source to be one of your MySQL clones and the target "
                                 "the site it was taken from (its baseline is what the merge compares with; a SQLite "
                                 "clone keeps none)")
    resource = jobs.restore_resource(request, job_id, caller.tenant, clone_name, merges=merges)
    logins = [(_login_secret(resource, "target"), request.target)]
    if clone_name is None:
        logins.append((_login_secret(resource, "source"), request.source))
    await _create_with_logins(namespace, caller.tenant, job_id, resource, logins)
    return job_id


async def create_rollback(namespace: Namespace, caller: tenants.Caller, request: RollbackRequest) -> str:
    job_id = uuid.uuid4().hex
    resource = jobs.rollback_resource(request, job_id, caller.tenant)
    await _create_with_logins(namespace, caller.tenant, job_id, resource,
                              [(_login_secret(resource, "target"), request.target)])
    return job_id


def _login_secret(resource: dict[str, Any], side: str) -> str:
    """The name of the Secret the CloneRestore reads its `side`'s login from."""
    return str(resource["spec"][side]["credentialsSecretRef"]["name"])


async def _create_with_logins(namespace: Namespace, tenant: str, job_id: str, resource: dict[str, Any],
                              logins: list[tuple[str, SiteLogin]]) -> None:
    """The CloneRestore and the Secrets of the logins it names, which it then owns (gone with it)."""
    resource["metadata"]["namespace"] = namespace.name
    for secret_name, login in logins:
        secret = jobs.login_secret(secret_name, login, job_id, tenant)
        secret["metadata"]["namespace"] = namespace.name
        await namespace.server.apply(secret)
    try:
        created = await namespace.server.create(resource)
    except Exception:
        for secret_name, _ in logins:
            await namespace.server.delete("v1", "Secret", namespace.name, secret_name)
        raise
    for secret_name, _ in logins:
        await namespace.server.patch_metadata("v1", "Secret", namespace.name, secret_name, jobs.owned_by(created))

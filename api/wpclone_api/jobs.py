"""Pure mapping between REST jobs and the custom resources that are their record."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from wpclone_api import tenants
from wpclone_api.schemas import CloneRequest, JobState, JobStatus, Progress, RestoreRequest, RollbackRequest, SiteLogin
from wpclone_common import constants, resources
from wpclone_common.resources import (
    CloneReference,
    CloneRestoreSpec,
    ContentRules,
    DatabaseSpec,
    Notify,
    RestoreInclude,
    RestoreSource,
    SecretReference,
    SiteReference,
    SnapshotUse,
    WordPressCloneSpec,
)

PHASE_TO_STATE: dict[str | None, JobState] = {
    None: "pending", constants.PENDING: "pending",
    constants.PROVISIONING: "running", constants.CLONING: "running",
    constants.PHASE_READY: "completed", constants.FAILED: "failed",
    constants.EXPIRING: "expired", constants.EXPIRED: "expired",
}


def source_secret_name(customer_id: str, job_id: str) -> str:
    """One per job: a request never touches a Secret of another job (maybe another tenant's) that
    names the same customer_id."""
    return f"{customer_id}-source-login-{job_id[:8]}"


def source_secret(request: CloneRequest, job_id: str, tenant: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": source_secret_name(request.customer_id, job_id),
                         "labels": tenants.credentials_labels(tenant, job_id)},
            "stringData": {"username": request.source_username,
                           "password": request.source_password.get_secret_value()}}


def clone_resource(request: CloneRequest, job_id: str, tenant: str) -> dict[str, Any]:
    login = SecretReference(name=source_secret_name(request.customer_id, job_id))
    content = None if request.content is None else ContentRules(dropIns=request.content.drop_ins,
                                                                 exclude=request.content.exclude)
    spec = WordPressCloneSpec(source=SiteReference(url=request.source_url, credentialsSecretRef=login),
                              ttlMinutes=request.ttl_minutes, content=content,
                              database=None if request.database is None else DatabaseSpec(engine=request.database),
                              snapshot=None if request.snapshot_max_age_minutes is None
                              else SnapshotUse(maxAgeMinutes=request.snapshot_max_age_minutes),
                              pool=request.pool, notify=notify_of(request.callback_url, tenant))
    labels = {**tenants.labels(tenant, job_id), constants.LABEL_CUSTOMER: request.customer_id}
    return resources.body(constants.CLONE_KIND, request.customer_id, labels, spec)


def webhook_secret_name(tenant: str) -> str:
    """The Secret holding a tenant's webhook signing key (tenant names need not be DNS labels)."""
    return "wpclone-webhook-" + hashlib.sha256(tenant.encode()).hexdigest()[:16]


def webhook_secret(tenant: str, key: str) -> dict[str, Any]:
    """A tenant's webhook signing key, readable by the operator (it opts in as a login Secret does)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": webhook_secret_name(tenant),
                         "labels": {constants.LABEL_MANAGED_BY: tenants.MANAGED_BY_API, constants.LABEL_TENANT: tenant,
                                    constants.LABEL_CREDENTIALS: "true"}},
            "stringData": {"secret": key}}


def notify_of(callback_url: str | None, tenant: str) -> Notify | None:
    return None if callback_url is None else Notify(
        url=callback_url, secretRef=SecretReference(name=webhook_secret_name(tenant)))


def owned_by(resource: dict[str, Any]) -> dict[str, Any]:
    """Metadata that makes an object garbage-collected with the given custom resource."""
    metadata = resource["metadata"]
    return {"ownerReferences": [{"apiVersion": resource["apiVersion"], "kind": resource["kind"],
                                 "name": metadata["name"], "uid": metadata["uid"]}]}


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == constants.READY), {})


def _error(status: dict[str, Any], state: JobState) -> str | None:
    """Why a job failed, or why a running one is being retried (the operator's safe message)."""
    if status.get("message"):
        return str(status["message"])
    if state == "failed" and _ready(status).get("message"):
        return str(_ready(status)["message"])
    return None


def clone_job_status(clone: dict[str, Any], admin_login: dict[str, str] | None) -> JobStatus:
    status = clone.get("status") or {}
    state = PHASE_TO_STATE.get(status.get("phase"), "running")
    completed = state == "completed"
    progress = status.get("progress")
    return JobStatus(
        job_id=clone["metadata"]["labels"][constants.LABEL_JOB_ID], kind="clone", status=state,
        clone_id=clone["metadata"]["name"],
        clone_url=status.get("url") if completed else None,
        username=(admin_login or {}).get("username") if completed else None,
        password=(admin_login or {}).get("password") if completed else None,
        expires_at=status.get("expiresAt"),
        progress=Progress(**progress) if progress else None,
        message=_ready(status).get("message") if state in ("running", "pending") else None,
        error=_error(status, state) if state in ("failed", "running", "pending") else None,
        notifications=status.get("notifications"),
    )


RESTORE_PHASE_TO_STATE: dict[str | None, JobState] = {
    None: "pending", constants.PENDING: "pending", constants.CHECKING: "running", constants.BACKING_UP: "running",
    constants.RESTORING: "running", constants.COMPLETED: "completed", constants.ROLLED_BACK: "completed",
    constants.FAILED: "failed",
}


def login_secret(name: str, login: SiteLogin, job_id: str, tenant: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "labels": tenants.credentials_labels(tenant, job_id)},
            "stringData": {"username": login.username, "password": login.password.get_secret_value()}}


ON_CONFLICT: dict[str, Literal["Fail", "Overwrite", "Merge"]] = {
    "fail": "Fail", "overwrite": "Overwrite", "merge": "Merge"}
MERGE_CONFLICTS: dict[str, Literal["Fail", "PreferClone", "PreferProduction"]] = {
    "fail": "Fail", "prefer_clone": "PreferClone", "prefer_production": "PreferProduction"}


def restore_name(job_id: str) -> str:
    return f"restore-{job_id[:16]}"


def restore_resource(request: RestoreRequest, job_id: str, tenant: str, clone_name: str | None, *,
                     merges: bool = False) -> dict[str, Any]:
    """A CloneRestore; a source that is the caller's clone is named by cloneRef (conflict checks). With no
    on_conflict, a clone restored into the site it was taken from (`merges`) is merged, anything else fails
    on a conflict."""
    name = restore_name(job_id)
    source = RestoreSource(cloneRef=CloneReference(name=clone_name)) if clone_name else RestoreSource(
        url=request.source.url, credentialsSecretRef=_login_ref(name, "source"))
    spec = CloneRestoreSpec(
        source=source,
        target=SiteReference(url=request.target.url, credentialsSecretRef=_login_ref(name, "target")),
        include=RestoreInclude.model_validate(request.include.model_dump()), dryRun=request.dry_run,
        backup=request.backup, onConflict=ON_CONFLICT[request.on_conflict or ("merge" if merges else "fail")],
        mergeConflicts=MERGE_CONFLICTS[request.merge_conflicts], notify=notify_of(request.callback_url, tenant))
    return resources.body(constants.RESTORE_KIND, name, tenants.labels(tenant, job_id), spec)


def _login_ref(restore: str, side: str) -> SecretReference:
    """The Secret holding a restore's source or target login (made by the API, owned by the restore)."""
    return SecretReference(name=f"{restore}-{side}-login")


def rollback_resource(request: RollbackRequest, job_id: str, tenant: str) -> dict[str, Any]:
    """A CloneRestore that puts a backup back on its target (the operator checks the target's login)."""
    name = restore_name(job_id)
    spec = CloneRestoreSpec(
        target=SiteReference(url=request.target.url, credentialsSecretRef=_login_ref(name, "target")),
        rollbackTo=request.backup_id, notify=notify_of(request.callback_url, tenant))
    return resources.body(constants.RESTORE_KIND, name, tenants.labels(tenant, job_id), spec)


def restore_job_status(restore: dict[str, Any]) -> JobStatus:
    status = restore.get("status") or {}
    state = RESTORE_PHASE_TO_STATE.get(status.get("phase"), "running")
    progress = status.get("progress")
    return JobStatus(
        job_id=restore["metadata"]["labels"][constants.LABEL_JOB_ID], kind="restore", status=state,
        progress=Progress(**progress) if progress else None,
        error=status.get("message") if state in ("failed", "running", "pending") else None,
        backup_id=status.get("backupId"), changes=status.get("changes"), conflicts=status.get("conflicts"),
        notifications=status.get("notifications"))

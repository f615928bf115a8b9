"""Bring a clone's database, Secrets and Kubernetes objects to their desired state (idempotent)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from wpclone_common import constants, kube
from wpclone_common.resources import WordPressClone
from wpclone_engine import sqlite_dropin
from wpclone_engine.migrator import mu_plugins
from wpclone_engine.transfer import TransferError
from wpclone_operator import admission, children, copy_jobs, credentials, mysql, status
from wpclone_operator.settings import Settings


@dataclass
class ProvisionFailure(Exception):
    """A step failed; `condition` and `reason` tell the user which and why (never a secret)."""

    condition: str
    reason: str
    message: str
    permanent: bool = False

    def __str__(self) -> str:
        return self.message


SLOT_ADMIN = "admin"


def generate_password() -> str:
    return secrets.token_urlsafe(24)


def adopt_api_login(clone: WordPressClone) -> None:
    """The REST API writes a clone's source login just before the clone: the clone owns it from now
    on, so it goes away with the clone. Logins a user made stay theirs."""
    name = clone.spec.site.credentialsSecretRef.name
    secret = kube.get("v1", "Secret", clone.namespace, name)
    metadata = (secret or {}).get("metadata") or {}
    if (metadata.get("labels") or {}).get(constants.LABEL_MANAGED_BY) == "wpclone-api" \
            and not metadata.get("ownerReferences"):
        kube.patch_metadata("v1", "Secret", clone.namespace, name,
                            {"ownerReferences": [{**children.owner_reference(clone), "controller": False}]})


def source_username(clone: WordPressClone) -> str:
    try:
        return credentials.read_login(clone.namespace, clone.spec.site.credentialsSecretRef.name)["username"]
    except TransferError as error:
        # A missing or unlabelled Secret may come later (GitOps applies in any order): retried.
        raise ProvisionFailure(constants.READY, error.reason, str(error),
                               permanent=error.reason == constants.CREDENTIALS_INVALID) from None


def refuse_foreign(manifest: dict[str, Any], clone: WordPressClone) -> None:
    """The operator never takes over an object it did not make: a Secret, Service or Ingress of the
    same name that someone else owns stays theirs, and the clone says why it cannot go on."""
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    existing = kube.get(manifest["apiVersion"], kind, clone.namespace, name)
    if existing is not None and not children.owned_by(existing, clone):
        raise ProvisionFailure(constants.OBJECTS_READY, constants.NAME_CONFLICT,
                               f"{kind} {name} already exists and does not belong to this clone: "
                               "remove it or give the clone another name", permanent=True)


def made_anything(clone: WordPressClone) -> bool:
    """Whether the clone's provisioning has begun (its Secrets come first, its database after them): a clone
    takes a pool's slot only before, or it would leave its own objects and database behind."""
    return any(kube.get("v1", "Secret", clone.namespace, name) is not None
               for name in (children.db_secret_name(clone), children.admin_secret_name(clone)))


def ensure_secrets(clone: WordPressClone, settings: Settings) -> str:
    """Create the clone's Secrets once; later runs reuse them. Returns the database password."""
    if children.is_slot(clone):  # named as its source's admin once a clone takes it (pools.take_over)
        admin_username = SLOT_ADMIN
    else:
        admin_username = source_username(clone)
        adopt_api_login(clone)
    made = [children.admin_secret(clone, admin_username, generate_password(), generate_password())]
    if not children.is_sqlite(clone):  # a SQLite clone has no database server, so no database login
        made.insert(0, children.db_secret(clone, settings, generate_password()))
    for secret in made:
        refuse_foreign(secret, clone)
        kube.create_if_missing(secret)
    if children.is_sqlite(clone):
        return ""
    # Read back: if another run created the Secret first, its password is the one that counts.
    database = kube.read_secret(clone.namespace, children.db_secret_name(clone))
    if database is None or not database.get("password"):
        raise ProvisionFailure(constants.DATABASE_READY, "SecretUnreadable",
                               f"Secret {children.db_secret_name(clone)} has no password")
    return database["password"]


async def ensure_database(clone: WordPressClone, settings: Settings, password: str) -> dict[str, Any]:
    """The clone's database and user on the shared server (a SQLite clone's file is its copy's to make);
    the DatabaseReady condition it earns."""
    at, generation = status.now(), clone.generation
    if children.is_sqlite(clone):
        return status.condition(constants.DATABASE_READY, True, "SqliteFile", "the tables live in one SQLite "
                                f"file on volume {children.database_claim_name(clone)}", generation, at)
    try:
        await mysql.ensure_database(settings.mysql_admin, children.database_name(clone),
                                    children.database_user(clone), password)
    except mysql.DatabaseError as error:
        raise ProvisionFailure(constants.DATABASE_READY, "DatabaseUnavailable", str(error)) from None
    return status.condition(constants.DATABASE_READY, True, "DatabaseCreated",
                            f"database {children.database_name(clone)} is ready", generation, at)


def apply_objects(clone: WordPressClone, settings: Settings) -> None:
    claims = children.claims(clone, settings)
    workload = children.workload_objects(clone, settings, mu_plugins(),
                                         sqlite_dropin.files() if children.is_sqlite(clone) else None)
    for manifest in (*claims, *workload):
        refuse_foreign(manifest, clone)
    # Created once: applying it again would try to change a claim's (immutable) spec.
    for claim in claims:
        kube.create_if_missing(claim)
    for manifest in workload:
        kube.apply(manifest)


async def provision(clone: WordPressClone, settings: Settings) -> list[dict[str, Any]]:
    """Run every step; return the conditions they earned. Raises ProvisionFailure."""
    at, generation = status.now(), clone.generation
    refused = admission.refusal(clone, settings)
    if refused is not None:
        raise ProvisionFailure(constants.READY, *refused, permanent=True)
    try:
        password = await asyncio.to_thread(ensure_secrets, clone, settings)
        database_ready = await ensure_database(clone, settings, password)
        await asyncio.to_thread(apply_objects, clone, settings)
    except ApiException as error:
        raise ProvisionFailure(constants.OBJECTS_READY, "KubernetesApiError",
                               f"the Kubernetes API refused a child object: {error.status} {error.reason}",
                               permanent=error.status in (400, 403, 422)) from None
    objects_ready = status.condition(constants.OBJECTS_READY, True, "ObjectsApplied",
                                     "Secrets, wp-content claim, NetworkPolicy, ConfigMap, Deployment, "
                                     "Service and Ingress are applied", generation, at)
    return [database_ready, objects_ready]


def delete_children(clone: WordPressClone) -> None:
    """Delete what the clone owns (an object of the same name that it does not own stays)."""
    for api_version, kind, name in (
        *children.object_keys(clone),
        *copy_jobs.object_keys(copy_jobs.Owner.of_clone(clone)),  # its copy Job, if it had one
    ):
        existing = kube.get(api_version, kind, clone.namespace, name)
        if existing is not None and children.owned_by(existing, clone):
            kube.delete(api_version, kind, clone.namespace, name)


async def drop_database(clone: WordPressClone, settings: Settings) -> None:
    if children.is_sqlite(clone):  # its file goes with its volume
        return
    await mysql.drop_database(settings.mysql_admin, children.database_name(clone), children.database_user(clone))

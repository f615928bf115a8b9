"""Request and response bodies of the REST API: the OpenAPI schema is the contract."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from wpclone_common.resources import (
    BACKUP_ID,
    CONTENT_EXCLUDE,
    DNS_SUBDOMAIN,
    MAX_TTL_MINUTES,
    SITE_URL,
    DatabaseEngine,
    Delivery,
)
from wpclone_common.resources import CopyProgress as Progress

CUSTOMER_ID = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
JobState = Literal["pending", "running", "completed", "failed", "expired"]


class ContentOptions(BaseModel):
    """What of the source's wp-content the clone leaves out (its spec.content; a restore follows it)."""

    model_config = ConfigDict(extra="forbid")

    drop_ins: bool = Field(default=False, description="Copy wp-content's drop-ins too (object-cache.php, ...)")
    exclude: list[Annotated[str, Field(max_length=256, pattern=CONTENT_EXCLUDE)]] = Field(
        default_factory=list, max_length=100,
        description="Top-level entries to leave out: uploads/2019, plugins/big-*, content/languages")


class CloneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_url: str = Field(pattern=SITE_URL, max_length=2048, examples=["https://shop.example.com"])
    source_username: str = Field(min_length=1, max_length=255, examples=["admin"])
    source_password: SecretStr = Field(min_length=1, max_length=4096, examples=["the-admin-password"])
    customer_id: str = Field(pattern=CUSTOMER_ID, max_length=40, examples=["acme-shop"],
                             description="DNS label; becomes the clone's name and host name label")
    ttl_minutes: int | None = Field(default=None, ge=1, le=MAX_TTL_MINUTES, examples=[30])
    content: ContentOptions | None = None
    database: DatabaseEngine | None = Field(default=None, examples=["sqlite"], description=(
        "Where the clone keeps its tables: mysql (a database of its own on the shared server) or sqlite (one file "
        "beside the clone, no MySQL; a restore from it cannot merge). Default: the installation's setting"))
    snapshot_max_age_minutes: int | None = Field(default=None, ge=0, le=MAX_TTL_MINUTES, examples=[15], description=(
        "Build the clone from a snapshot of the source taken at most this many minutes ago with the same login, "
        "recording one when there is none: many clones of one site then read it once. 0: read the site itself. "
        "Default: the installation's setting"))
    pool: str | None = Field(default=None, min_length=1, max_length=63, pattern=DNS_SUBDOMAIN, examples=["warm"],
                             description=(
        "Take a ready blank clone of this warm pool (a WordPressClonePool of the installation: its database and "
        "pod are made already, only the copy is left); with none ready, the clone is made the usual way. "
        "Default: the installation's default pool, if it has one"))
    callback_url: str | None = Field(default=None, pattern=SITE_URL, max_length=2048,
                                     examples=["https://hooks.example.com/wpclone"], description=(
        "A webhook: the job's end (completed, failed, expired) is POSTed there as JSON, signed with your tenant's "
        "webhook secret (X-WPClone-Signature: sha256=<HMAC-SHA256 of the body>)"))


class SiteLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=SITE_URL, max_length=2048, examples=["https://shop.example.com"])
    username: str = Field(min_length=1, max_length=255, examples=["admin"])
    password: SecretStr = Field(min_length=1, max_length=4096, examples=["the-admin-password"])


class RestoreParts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database: bool = True
    uploads: bool = True
    themes: bool = True
    plugins: bool = True
    content: bool = Field(default=True, description="The rest of wp-content (languages, fonts, ...), by the "
                                                    "rules the clone was copied by")
    tables: list[Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_]+$")]] = Field(
        default_factory=list, max_length=500, description="Only these tables, without the table prefix (e.g. posts)")


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: SiteLogin = Field(description="The clone (or any site) whose content goes to production")
    target: SiteLogin = Field(description="The production site")
    include: RestoreParts = Field(default_factory=RestoreParts)
    dry_run: bool = False
    backup: bool = True
    on_conflict: Literal["merge", "fail", "overwrite"] | None = Field(default=None, description=(
        "When production changed since the clone was taken: merge (the clone's changed rows only, production's "
        "own changes kept), fail (write nothing) or overwrite (the clone's tables replace production's). "
        "Default: merge for one of your clones restored into the site it was taken from, else fail"))
    merge_conflicts: Literal["fail", "prefer_clone", "prefer_production"] = Field(default="fail", description=(
        "In a merge, rows changed both on the clone and in production: write nothing (fail), or take the "
        "clone's or keep production's"))
    callback_url: str | None = Field(default=None, pattern=SITE_URL, max_length=2048,
                                     examples=["https://hooks.example.com/wpclone"], description=(
        "A webhook: the job's end (completed, failed) is POSTed there as JSON, signed with your tenant's "
        "webhook secret (X-WPClone-Signature: sha256=<HMAC-SHA256 of the body>)"))


class CloneUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_minutes: int = Field(ge=1, le=MAX_TTL_MINUTES, examples=[90], description=(
        "The clone's whole life in minutes, counted from its creation: raise it to extend the clone "
        "(a value already past ends it now)"))


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: SiteLogin = Field(description="The production site a restore wrote to")
    backup_id: str = Field(pattern=BACKUP_ID, max_length=128, examples=["k3x9q2"],
                           description="The restore's backup_id")
    callback_url: str | None = Field(default=None, pattern=SITE_URL, max_length=2048,
                                     examples=["https://hooks.example.com/wpclone"], description=(
        "A webhook: the job's end (completed, failed) is POSTed there as JSON, signed with your tenant's "
        "webhook secret (X-WPClone-Signature: sha256=<HMAC-SHA256 of the body>)"))


class LoginLink(BaseModel):
    url: str = Field(description="Opens the clone's wp-admin as its administrator, once, until expires_at")
    expires_at: str


class Backup(BaseModel):
    backup_id: str = Field(description="What POST /api/v2/rollback takes")
    target_url: str
    job_id: str = Field(description="The restore that kept it")
    created_at: str | None = Field(description="When that restore ended")
    rolled_back: bool = Field(description="A rollback of yours put it back already")


class JobAccepted(BaseModel):
    job_id: str
    status: JobState
    status_url: str


class JobStatus(BaseModel):
    job_id: str
    kind: Literal["clone", "restore"]
    status: JobState
    clone_id: str | None = None
    clone_url: str | None = None
    username: str | None = None
    password: str | None = None
    expires_at: str | None = None
    progress: Progress | None = None
    message: str | None = Field(default=None, description=(
        "While a clone job is pending or running: what it is doing or waiting for (say, a free copy slot)"))
    error: str | None = None
    backup_id: str | None = None
    changes: list[str] | None = None
    conflicts: list[str] | None = None
    notifications: dict[str, Delivery] | None = Field(default=None, description=(
        "The callback_url's deliveries by event: state Retrying, Delivered or Failed, attempts, lastError"))


class ErrorBody(BaseModel):
    message: str
    job_id: str | None = None

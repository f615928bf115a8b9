"""The custom resources' spec and status as pydantic models: the single source of truth.

The CRD schemas in crds/ are generated from these models (see crd.py), and the operator parses
every object it reconciles through them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wpclone_common import constants

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SITE_URL = r"^https?://[^\s/?#]+(:[0-9]+)?(/[^\s?#]*)?$"
MAX_TTL_MINUTES = 7 * 24 * 60
BACKUP_ID = r"^[A-Za-z0-9._-]+$"  # as the migrator names a backup
# A volume size: a whole number of Mi, Gi or Ti (at least 1Mi, at most 999999Ti).
STORAGE_SIZE = r"^[1-9][0-9]{0,5}(Mi|Gi|Ti)$"


def rules(*pairs: tuple[str, str]) -> dict[str, Any]:
    """CEL validations for what a JSON schema alone cannot say."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in pairs]}


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SecretReference(Model):
    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
                      description="Name of a Secret in the same namespace")


class SiteReference(Model):
    """A WordPress site and the Secret holding its admin login (keys `username`, `password`)."""

    url: str = Field(max_length=2048, pattern=SITE_URL,
                     description="The site's URL, e.g. https://shop.example.com")
    credentialsSecretRef: SecretReference = Field(
        description="Secret with keys `username` and `password` of a site administrator")

    model_config = ConfigDict(json_schema_extra=rules(
        ("!self.url.matches('^https?://[^/]*@')",
         "url must not contain credentials: put them in the Secret named by credentialsSecretRef"),
    ))


class ComputeResources(Model):
    """CPU and memory of the clone's WordPress container."""

    requests: dict[str, str] = Field(default_factory=dict, description="e.g. {cpu: 100m, memory: 128Mi}")
    limits: dict[str, str] = Field(default_factory=dict, description="e.g. {cpu: '1', memory: 512Mi}")


class Storage(Model):
    """The clone's own volume for wp-content (uploads, themes, plugins, mu-plugins)."""

    size: str | None = Field(default=None, max_length=8, pattern=STORAGE_SIZE,
                             description="Requested size, e.g. 5Gi (Mi, Gi or Ti); default from the operator")
    storageClassName: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
        description="StorageClass of the volume; default from the operator, else the cluster's default class")


# A shell pattern of one top-level entry of a content folder: uploads/2019, content/languages, plugins/big-*.
CONTENT_EXCLUDE = r"^(uploads|themes|plugins|mu-plugins|content)/[^/\x00]{1,200}$"


class ContentRules(Model):
    """What of the source's wp-content the clone leaves out (a restore of the clone follows the same rules)."""

    dropIns: bool = Field(default=False, description=(
        "Copy wp-content's drop-ins too (object-cache.php, advanced-cache.php, db.php, sunrise.php, ...); "
        "by default they stay behind, as they belong to production's servers, and status.progress.dropInsLeft "
        "names them"))
    exclude: list[Annotated[str, Field(max_length=256, pattern=CONTENT_EXCLUDE)]] = Field(
        default_factory=list, max_length=100, description=(
            "Shell patterns of top-level entries of wp-content's folders to leave out: uploads/2019, "
            "plugins/big-*, or content/languages for the rest of wp-content"))


DatabaseEngine = Literal["mysql", "sqlite"]


class DatabaseSpec(Model):
    """Where the clone's WordPress keeps its tables."""

    engine: DatabaseEngine = Field(default="mysql", description=(
        "mysql: a database and user of its own on the shared MySQL server (faithful, for heavy plugins); sqlite: "
        "one file on a volume of its own, read through WordPress's SQLite Database Integration drop-in (no MySQL "
        "server; cheaper and disposable; a restore from it cannot merge). Immutable"))


class SnapshotUse(Model):
    """Whether the clone may be built from a snapshot of its source (a SourceSnapshot) instead of the site."""

    maxAgeMinutes: int = Field(ge=0, le=MAX_TTL_MINUTES, description=(
        "Build the clone from a snapshot of its source taken at most this many minutes ago, recording one "
        "when there is none (later clones of the same source then read no production at all); 0 reads the site "
        "itself. Default from the operator"))


class Notify(Model):
    """Where to POST an event when the job completes, fails or expires, signed with the Secret's key."""

    url: str = Field(max_length=2048, pattern=SITE_URL, description=(
        "The receiver's URL (http or https; it passes the operator's outbound policy like any site)"))
    secretRef: SecretReference = Field(description=(
        "Secret (labelled wpclone.dev/credentials: \"true\") whose key `secret` signs each event: header "
        "X-WPClone-Signature: sha256=<HMAC-SHA256 of the body, hex>"))

    model_config = ConfigDict(json_schema_extra=rules(
        ("!self.url.matches('^https?://[^/]*@')", "url must not contain credentials"),
    ))


class Delivery(Model):
    """How the event of one kind reached the receiver."""

    state: Literal["Retrying", "Delivered", "Failed"] = Field(description="Delivered, or Failed once retries end")
    attempts: int = Field(default=0, description="POSTs made")
    lastAttemptAt: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    lastError: str | None = Field(default=None, description="Why the last attempt failed (never a secret)")


class WordPressCloneSpec(Model):
    source: SiteReference | None = Field(default=None, description=(
        "The production site to clone; immutable. Required, but on a pool's own blank slots"))
    pool: str | None = Field(default=None, min_length=1, max_length=63, pattern=DNS_SUBDOMAIN, description=(
        "The WordPressClonePool (same namespace) whose ready slot the clone takes when one matches its image, "
        "resources, storage and database (only the copy is left to do); with none ready it is made the usual "
        "way. Default from the operator. On a blank slot (no source): the pool it belongs to"))
    ttlMinutes: int | None = Field(
        default=None, ge=1, le=MAX_TTL_MINUTES,
        description="Minutes from creation until the clone expires (operator default when unset; "
                    "capped by the operator's maximum)")
    host: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN,
                             description="Host name of the clone; default {name}.{base domain}")
    image: str | None = Field(default=None, min_length=1, max_length=512,
                              description="WordPress container image; default from the operator")
    resources: ComputeResources | None = Field(default=None, description="The WordPress container's")
    storage: Storage | None = Field(default=None, description="The wp-content volume; immutable")
    content: ContentRules | None = Field(default=None, description=(
        "What of wp-content to leave out; by default all of it but caches, backups, server "
        "configuration and drop-ins. Immutable"))
    database: DatabaseSpec | None = Field(default=None, description="Where the tables live; MySQL by default. "
                                          "Immutable")
    expiryPolicy: Literal["Delete", "Retain"] = Field(
        default="Delete",
        description="On expiry, Delete the resource, or Retain it as Expired with every child and the "
                    "database gone (the choice for GitOps-managed clones)")
    notify: Notify | None = Field(default=None, description=(
        "A webhook: events completed (Ready), failed and expired, each POSTed once delivered"))
    snapshot: SnapshotUse | None = Field(default=None, description=(
        "Copy from a recent snapshot of the source (copies by Job only); default from the operator"))

    model_config = ConfigDict(json_schema_extra=rules(
        ("has(self.source) || has(self.pool)", "spec.source is required"),
        ("has(self.source) == has(oldSelf.source) && (!has(self.source) || self.source == oldSelf.source)",
         "spec.source is immutable: create a new clone to copy another site"),
        # The volume is created once: a changed size or class would never reach it.
        ("has(self.storage) == has(oldSelf.storage) && (!has(self.storage) || self.storage == oldSelf.storage)",
         "spec.storage is immutable: create a new clone for another volume size or class"),
        ("has(self.content) == has(oldSelf.content) && (!has(self.content) || self.content == oldSelf.content)",
         "spec.content is immutable: the clone was copied by its rules"),
        ("has(self.database) == has(oldSelf.database) && (!has(self.database) || self.database == oldSelf.database)",
         "spec.database is immutable: create a new clone for another database engine"),
    ))

    @property
    def engine(self) -> DatabaseEngine:
        return self.database.engine if self.database is not None else "mysql"

    @property
    def site(self) -> SiteReference:
        """The source, for what only a clone of a site does (a pool's blank slot copies nothing)."""
        if self.source is None:
            raise ValueError("a pool's blank slot has no source")
        return self.source

    def slot_shape(self) -> dict[str, Any]:
        """What a pool's slot fixes for good (its pod and volume): a clone takes a slot of the same shape."""
        return {"image": self.image, "engine": self.engine,
                "resources": self.resources.model_dump() if self.resources else None,
                "storage": self.storage.model_dump() if self.storage else None}


class Condition(Model):
    """One aspect of the resource's state, in the Kubernetes convention."""

    type: str = Field(description="Ready, DatabaseReady, ObjectsReady, WorkloadReady or ContentCloned")
    status: Literal["True", "False", "Unknown"] = Field(description="Whether the aspect holds")
    reason: str = Field(default="", description="Why, as one machine-readable CamelCase word")
    message: str = Field(default="", description="Why, in words (never holds a secret)")
    lastTransitionTime: str = Field(default="", description="When status last changed")
    observedGeneration: int = Field(default=0, description="The metadata.generation this was computed from")


class CopyProgress(Model):
    """How far a copy has come."""

    phase: str = Field(default="", description="database, files, commit, or done")
    bytes: int = Field(default=0, description="Bytes streamed so far")
    rows: int = Field(default=0, description="Table rows copied so far")
    files: int = Field(default=0, description="Files copied so far")
    rewrittenValues: int | None = Field(default=None, description="Once done: database values whose URL was rewritten")
    unparseableValues: int | None = Field(
        default=None, description="Once done: of those, values that look serialized but that PHP cannot read "
                                  "(rewritten as text)")
    notCopied: list[str] | None = Field(
        default=None, description="Once done: what of the source database's views, triggers, stored routines and "
                                  "events the copy did not make, each with the reason (at most 100 named)")
    dropInsLeft: list[str] | None = Field(
        default=None, description="Once done: the source's wp-content drop-ins the copy left behind")
    sourceUrlsLeft: int | None = Field(
        default=None, description="Once done: cells of the clone's database still holding the source's URL "
                                  "(expected 0; unset when not counted)")


class WordPressCloneStatus(Model):
    """What the operator has made of the clone."""

    phase: Literal["Pending", "Provisioning", "Cloning", "Ready", "Failed", "Expiring", "Expired"] | None = Field(
        default=None, description="Where the clone is in its life")
    url: str | None = Field(default=None, description="Where the clone serves, once Ready")
    adminSecretRef: SecretReference | None = Field(
        default=None, description="Secret with the clone's own admin login (keys username, password)")
    expiresAt: str | None = Field(default=None, json_schema_extra={"format": "date-time"},
                                  description="When the clone expires: creation time plus its TTL")
    message: str | None = Field(default=None, description="Why the clone failed or is being retried")
    progress: CopyProgress | None = Field(default=None, description="The copy of the source's content")
    conditions: list[Condition] = Field(default_factory=list, description="Ready and the steps that lead to it")
    observedGeneration: int | None = Field(default=None, description="The metadata.generation last acted on")
    notifications: dict[str, Delivery] | None = Field(
        default=None, description="spec.notify's deliveries, by event (completed, failed, expired)")
    slot: SlotReference | None = Field(default=None, description=(
        "The pool slot the clone took: its database, Secrets, volume, pod and Service are the slot's, named after "
        "it, and now the clone's own"))


class SlotReference(Model):
    name: str = Field(description="The slot's name (a WordPressClone of its pool, deleted once taken)")
    uid: str = Field(description="The slot's uid, which named its database and user")


class CloneReference(Model):
    name: str = Field(min_length=1, max_length=40, pattern=DNS_SUBDOMAIN,
                      description="A WordPressClone in the same namespace")


class RestoreSource(Model):
    """Where the content comes from: a clone, or any site with a credentials Secret."""

    cloneRef: CloneReference | None = Field(default=None, description="A Ready WordPressClone")
    url: str | None = Field(default=None, max_length=2048, pattern=SITE_URL,
                            description="Any WordPress site, when the source is not a clone")
    credentialsSecretRef: SecretReference | None = Field(
        default=None, description="Secret with keys username and password of the url's administrator")

    model_config = ConfigDict(json_schema_extra=rules(
        ("has(self.cloneRef) != (has(self.url) && has(self.credentialsSecretRef))",
         "set either cloneRef, or both url and credentialsSecretRef"),
        ("has(self.url) == has(self.credentialsSecretRef)", "url and credentialsSecretRef go together"),
    ))


class RestoreInclude(Model):
    """The parts of the site a restore writes."""

    database: bool = Field(default=True, description="Database tables (all, or only `tables`)")
    uploads: bool = Field(default=True, description="wp-content/uploads")
    themes: bool = Field(default=True, description="wp-content/themes")
    plugins: bool = Field(default=True, description="wp-content/plugins")
    content: bool = Field(default=True, description=(
        "The rest of wp-content (languages, fonts, plugins' own folders), by the clone's spec.content rules"))
    tables: list[Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_]+$")]] = Field(
        default_factory=list, max_length=500,
        description="Only these tables, named without the table prefix (e.g. posts)")

    model_config = ConfigDict(json_schema_extra=rules(
        ("self.database || self.uploads || self.themes || self.plugins || self.content", "include at least one part"),
        ("!has(self.tables) || size(self.tables) == 0 || self.database", "tables needs database: true"),
    ))


class CloneRestoreSpec(Model):
    source: RestoreSource | None = Field(default=None, description="Omit when rolling back to a backup")
    target: SiteReference = Field(description="The production site to write to")
    include: RestoreInclude = Field(default_factory=RestoreInclude, description="What to restore; all by default")
    backup: bool = Field(default=True, description="Back up the target first (kept on the target)")
    dryRun: bool = Field(default=False, description="Report what would change and write nothing")
    onConflict: Literal["Fail", "Overwrite", "Merge"] = Field(default="Fail", description=(
        "When production changed since the clone was taken: Fail (write nothing), Overwrite (the clone's tables "
        "replace production's), or Merge (the clone's changed rows only, production's own changes kept; a "
        "cloneRef source restored into the site it was taken from)"))
    mergeConflicts: Literal["Fail", "PreferClone", "PreferProduction"] = Field(default="Fail", description=(
        "In a Merge, rows changed both on the clone and in production: write nothing at all (Fail), or take "
        "the clone's (PreferClone) or keep production's (PreferProduction)"))
    rollbackTo: str | None = Field(default=None, max_length=128, pattern=BACKUP_ID,
                                   description="A backup id on the target to restore instead of copying")
    notify: Notify | None = Field(default=None, description=(
        "A webhook: events completed and failed, each POSTed once delivered"))

    model_config = ConfigDict(json_schema_extra=rules(
        ("self == oldSelf", "a CloneRestore is a one-off job: create a new one instead of editing it"),
        ("has(self.source) != has(self.rollbackTo)", "set either source or rollbackTo"),
        ("!has(self.onConflict) || self.onConflict != 'Merge' || (has(self.source) && has(self.source.cloneRef))",
         "onConflict Merge needs a cloneRef source (a clone's baseline is what it merges against)"),
    ))


class RestoreCounts(Model):
    """What a restore wrote."""

    tables: int = Field(default=0, description="Tables written")
    rows: int = Field(default=0, description="Rows written")
    files: int = Field(default=0, description="Files written")
    bytes: int = Field(default=0, description="Bytes streamed")


class CloneRestoreStatus(Model):
    """What the restore did, or why it did not."""

    phase: Literal["Pending", "Checking", "BackingUp", "Restoring", "Completed", "Failed", "RolledBack"] | None = \
        Field(default=None, description="Where the restore is")
    backupId: str | None = Field(default=None, description="The backup kept on the target; rollbackTo takes it")
    progress: CopyProgress | None = Field(default=None, description="The copy into the target")
    counts: RestoreCounts | None = Field(default=None, description="What was written")
    changes: list[str] = Field(default_factory=list, description="What changed, or would change (dryRun)")
    conflicts: list[str] = Field(default_factory=list, description="What production changed since the clone")
    message: str | None = Field(default=None, description="The outcome, in words")
    startedAt: str | None = Field(default=None, json_schema_extra={"format": "date-time"},
                                  description="When the operator started the restore")
    completedAt: str | None = Field(default=None, json_schema_extra={"format": "date-time"},
                                    description="When it ended")
    conditions: list[Condition] = Field(default_factory=list, description="Ready: the restore's outcome")
    observedGeneration: int | None = Field(default=None, description="The metadata.generation acted on")
    notifications: dict[str, Delivery] | None = Field(
        default=None, description="spec.notify's deliveries, by event (completed, failed)")


class SnapshotSource(Model):
    url: str = Field(max_length=2048, pattern=SITE_URL, description="The site the snapshot was read from")


class SourceSnapshotSpec(Model):
    """What a snapshot holds: one site's export, read by the rules of the clone that recorded it. Made by
    the operator; deleting one makes the next clone of its source read the site again."""

    source: SnapshotSource = Field(description="The site")
    content: ContentRules | None = Field(default=None, description="The wp-content rules it was read by")
    database: DatabaseSpec | None = Field(default=None, description="The engine of the clones it serves")


class SourceSnapshotStatus(Model):
    phase: Literal["Recording", "Ready", "Failed"] | None = Field(default=None, description="Where the snapshot is")
    recordedFor: str | None = Field(default=None, description="The WordPressClone whose copy recorded it")
    recordedAt: str | None = Field(default=None, json_schema_extra={"format": "date-time"},
                                   description="When the site was read (its tables' checksums taken)")
    expiresAt: str | None = Field(default=None, json_schema_extra={"format": "date-time"},
                                  description="When the operator deletes it")
    bytes: int | None = Field(default=None, description="Bytes of the recorded export streams")
    tables: int | None = Field(default=None, description="Tables recorded")
    rows: int | None = Field(default=None, description="Rows recorded")
    files: int | None = Field(default=None, description="Files recorded")
    checksums: dict[str, str | None] | None = Field(
        default=None, description="The source's tables' checksums at recordedAt: what a restore of a clone "
                                  "built from it compares production with")
    message: str | None = Field(default=None, description="Why it failed")
    conditions: list[Condition] = Field(default_factory=list, description="Ready: the snapshot serves clones")


class SlotTemplate(Model):
    """The shape of a pool's slots: a clone takes a slot whose shape its own spec matches."""

    image: str | None = Field(default=None, min_length=1, max_length=512,
                              description="WordPress container image; default from the operator")
    resources: ComputeResources | None = Field(default=None, description="The WordPress container's")
    storage: Storage | None = Field(default=None, description="The wp-content volume")
    database: DatabaseSpec | None = Field(default=None, description="Where the tables live; MySQL by default")


class WordPressClonePoolSpec(Model):
    """Blank clones kept ready (database and user made, WordPress pod Ready with its volume), for new
    clones to take: then only the copy is left to do."""

    replicas: int = Field(ge=0, le=200, description="Blank slots to keep ready")
    template: SlotTemplate = Field(default_factory=SlotTemplate, description=(
        "The slots' image, resources, storage and database; a change replaces the slots of the old shape"))


class WordPressClonePoolStatus(Model):
    replicas: int | None = Field(default=None, description="Slots that exist (ready or starting)")
    ready: int | None = Field(default=None, description="Slots ready to be taken")
    claimed: int | None = Field(default=None, description="Slots taken by clones since the pool was made")
    conditions: list[Condition] = Field(default_factory=list, description=(
        "Ready: every wanted slot is ready; False says why not (a slot's pod that cannot start)"))
    observedGeneration: int | None = Field(default=None, description="The metadata.generation acted on")


def body(kind: str, name: str, labels: dict[str, str], spec: WordPressCloneSpec | CloneRestoreSpec) -> dict[str, Any]:
    """A new custom resource of ours, its spec from the model (checked by pydantic as the CRD checks it):
    only what was set, the rest left to the defaults."""
    return {"apiVersion": constants.API_VERSION, "kind": kind, "metadata": {"name": name, "labels": labels},
            "spec": spec.model_dump(mode="json", exclude_unset=True, exclude_none=True)}


class WordPressClone(Model):
    """The parts of a WordPressClone object the operator reads."""

    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str
    uid: str
    generation: int
    created: str
    spec: WordPressCloneSpec
    status: WordPressCloneStatus
    tenant: str | None = None  # the API's tenant that made it (its label), if the API made it

    @classmethod
    def from_body(cls, body: Any) -> WordPressClone:
        metadata = body["metadata"]
        return cls(name=metadata["name"], namespace=metadata["namespace"], uid=metadata["uid"],
                   generation=metadata.get("generation", 1), created=metadata["creationTimestamp"],
                   tenant=(metadata.get("labels") or {}).get(constants.LABEL_TENANT),
                   spec=WordPressCloneSpec.model_validate(dict(body.get("spec", {}))),
                   status=WordPressCloneStatus.model_validate(_known_status(body)))


def _known_status(body: Any) -> dict[str, Any]:
    status = dict(body.get("status") or {})
    return {key: status[key] for key in WordPressCloneStatus.model_fields if key in status}

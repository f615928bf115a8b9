"""Source snapshots (SourceSnapshot): many clones of one site that read it once.

A clone allowed a snapshot (spec.snapshot.maxAgeMinutes, or the operator's default) is built from the
newest Ready snapshot of its source made for the same login, wp-content rules and engine, when one is
young enough: its copy Job mounts the snapshot's volume read-only and reads no production at all
(wpclone_engine.snapshot). Without one, the clone's own copy records one while it reads the site, and
the clones that ask meanwhile follow that recording as it grows rather than read the site too. Which
happens is `choose` (pure); `claim` reads and makes the objects under one lock per source, so two
clones never both record.

A snapshot's volume and its login digest (a Secret) belong to it; while it records, the snapshot itself
belongs to the recording clone, so that deleting that clone mid-copy leaves nothing behind. A snapshot
is deleted retention_minutes after the site was read, or at once when it proves unusable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from wpclone_common import constants, kube, resources
from wpclone_common.resources import WordPressClone
from wpclone_engine.transfer import CopyResult
from wpclone_operator import copy_job_control, copy_jobs, status
from wpclone_operator.settings import Settings

KEY_LABEL = f"{constants.GROUP}/snapshot-key"
DIGEST_KEY = "login-digest"
EXPIRY_MARGIN = timedelta(minutes=2)

_CLAIMS: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


@dataclass(frozen=True)
class Choice:
    """What a clone's copy does: read the site (fresh), read the site and keep a snapshot (record), or
    read a snapshot (replay), published or still being recorded by another clone's copy."""

    action: Literal["fresh", "record", "replay"]
    snapshot: str | None = None
    message: str = ""

    @property
    def use(self) -> Literal["record", "replay"] | None:
        """What the copy Job does with the snapshot (copy_jobs.Plan.snapshot_use)."""
        if self.action == "record":
            return "record"
        return "replay" if self.action == "replay" else None


def key(clone: WordPressClone) -> str:
    """What a snapshot must share with a clone to serve it: the site, the wp-content rules, the engine
    (a SQLite clone's files stream leaves out db.php), and the API's tenant that asked (tenants share the
    API's namespace: one never gets a snapshot another's clone read). A label value."""
    spec = clone.spec
    material = json.dumps([spec.site.url.rstrip("/"), spec.engine,
                           spec.content.model_dump(mode="json") if spec.content else None, clone.tenant],
                          sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:40]


def max_age_minutes(clone: WordPressClone, settings: Settings) -> int:
    if settings.copy_in != "job":  # a snapshot's volume is mounted into copy Jobs, never into the operator
        return 0
    return clone.spec.snapshot.maxAgeMinutes if clone.spec.snapshot is not None else settings.snapshot_max_age_minutes


def login_digest(url: str, login: dict[str, str]) -> str:
    """Whose snapshot it is: a clone is built from one only with the login it was read with (kept in the
    snapshot's Secret, as protected as the login itself)."""
    material = "\0".join(("wpclone-snapshot", url.rstrip("/"), login["username"], login["password"]))
    return hashlib.sha256(material.encode()).hexdigest()


def phase(snapshot: dict[str, Any]) -> str:
    """A snapshot's phase; Recording from its creation (its status is written just after)."""
    return str((snapshot.get("status") or {}).get("phase") or constants.RECORDING)


def _recording_for(snapshot: dict[str, Any]) -> str | None:
    """The uid of the clone recording it (its owner while it records)."""
    owners = snapshot["metadata"].get("ownerReferences") or []
    return next((owner["uid"] for owner in owners if owner.get("kind") == constants.CLONE_KIND), None)


def choose(clone: WordPressClone, max_age: int, deadline_seconds: float, snapshots: list[dict[str, Any]],
           digests: dict[str, str | None], digest: str, now: datetime) -> Choice:
    """The clone's copy, given its source's snapshots and their login digests (pure)."""
    if max_age == 0:
        return Choice("fresh")
    ours = [snapshot for snapshot in snapshots if "deletionTimestamp" not in snapshot["metadata"]
            and hmac.compare_digest(digests.get(snapshot["metadata"]["name"]) or "", digest)]
    ready = sorted(((status.parse_time(snapshot["status"]["recordedAt"]), snapshot) for snapshot in ours
                    if phase(snapshot) == constants.PHASE_READY and (snapshot.get("status") or {}).get("recordedAt")),
                   key=lambda pair: pair[0], reverse=True)
    for recorded, snapshot in ready:
        # (one about to go is left alone: its deletion must not meet a Job about to mount it)
        if now - recorded <= timedelta(minutes=max_age) and not due(snapshot, now + EXPIRY_MARGIN):
            return Choice("replay", snapshot["metadata"]["name"],
                          f"from snapshot {snapshot['metadata']['name']} of {recorded.isoformat()}")
    for snapshot in ours:
        if phase(snapshot) != constants.RECORDING:
            continue
        name = snapshot["metadata"]["name"]
        if _recording_for(snapshot) == clone.uid:  # its own, claimed before (a Job made again)
            return Choice("record", name, f"recording snapshot {name}")
        started = status.parse_time(snapshot["metadata"]["creationTimestamp"])
        if _recording_for(snapshot) is not None and now - started <= timedelta(seconds=deadline_seconds):
            return Choice("replay", name, f"from snapshot {name}, as another clone's copy records it")
    return Choice("record")


def snapshot_name(clone: WordPressClone, now: datetime) -> str:
    """`snapshot-{key}-{time}`: a new name for each, so that one replaces another while it still serves."""
    return f"snapshot-{key(clone)[:16]}-{int(now.timestamp()):x}"


def claim(clone: WordPressClone, settings: Settings, login: dict[str, str]) -> Choice:
    """The clone's choice, made under its source's lock; a new snapshot (with its Secret and volume)
    made for it to record when it records one."""
    max_age = max_age_minutes(clone, settings)
    if max_age == 0:
        return Choice("fresh")
    digest = login_digest(clone.spec.site.url, login)
    with _CLAIMS[(clone.namespace, key(clone))]:
        found = kube.list_objects(constants.API_VERSION, constants.SNAPSHOT_KIND, clone.namespace,
                                  f"{KEY_LABEL}={key(clone)}")
        digests = {snapshot["metadata"]["name"]: (kube.read_secret(clone.namespace, snapshot["metadata"]["name"])
                                                  or {}).get(DIGEST_KEY) for snapshot in found}
        now = status.now()
        choice = choose(clone, max_age, settings.copy_deadline_seconds, found, digests, digest, now)
        if choice.action != "record" or choice.snapshot is not None:
            return choice
        name = snapshot_name(clone, now)
        made = kube.create(snapshot_body(clone, name))
        for child in (digest_secret(clone.namespace, name, made["metadata"]["uid"], digest),
                      claim_body(clone.namespace, name, made["metadata"]["uid"], settings)):
            kube.create(child)
        kube.patch_status(constants.API_VERSION, constants.SNAPSHOT_KIND, clone.namespace, name,
                          {"phase": constants.RECORDING, "recordedFor": clone.name, "conditions": [status.condition(
                              constants.READY, False, constants.RECORDING, f"clone {clone.name}'s copy records it",
                              1, now)]})
        return Choice("record", name, f"recording snapshot {name}")


def snapshot_body(clone: WordPressClone, name: str) -> dict[str, Any]:
    spec = resources.SourceSnapshotSpec(source=resources.SnapshotSource(url=clone.spec.site.url),
                                        content=clone.spec.content, database=clone.spec.database)
    return {"apiVersion": constants.API_VERSION, "kind": constants.SNAPSHOT_KIND,
            "metadata": {"name": name, "namespace": clone.namespace, "labels": {**_labels(), KEY_LABEL: key(clone)},
                         # the recording clone's while it records: deleted with it, if it goes first
                         "ownerReferences": [{"apiVersion": constants.API_VERSION, "kind": constants.CLONE_KIND,
                                              "name": clone.name, "uid": clone.uid}]},
            "spec": spec.model_dump(mode="json", exclude_none=True)}


def _labels() -> dict[str, str]:
    return {constants.LABEL_APP: "wpclone", constants.LABEL_MANAGED_BY: "wpclone",
            constants.LABEL_COMPONENT: "snapshot"}


def _owned(namespace: str, name: str, uid: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": _labels(),
            "ownerReferences": [{"apiVersion": constants.API_VERSION, "kind": constants.SNAPSHOT_KIND, "name": name,
                                 "uid": uid, "controller": True, "blockOwnerDeletion": True}]}


def digest_secret(namespace: str, name: str, uid: str, digest: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _owned(namespace, name, uid),
            "stringData": {DIGEST_KEY: digest}}


def claim_body(namespace: str, name: str, uid: str, settings: Settings) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": settings.snapshot_storage_size}}}
    if settings.storage_class:
        spec["storageClassName"] = settings.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _owned(namespace, name, uid),
            "spec": spec}


def recorded_status(outcome: dict[str, Any], result: CopyResult, settings: Settings,
                    now: datetime) -> dict[str, Any]:
    """A snapshot's status once its recording clone's copy published it (outcome: the runner's)."""
    recorded = datetime.fromtimestamp(float(outcome["recordedAt"]), tz=status.UTC)
    at = status.format_time(recorded)
    return {"phase": constants.PHASE_READY, "recordedAt": at, "message": None,
            "expiresAt": status.format_time(recorded + timedelta(minutes=settings.snapshot_retention_minutes)),
            "bytes": int(outcome["bytes"]), "tables": result.tables, "rows": result.rows, "files": result.files,
            "checksums": dict(result.source_checksums),
            "conditions": [status.condition(constants.READY, True, "Recorded",
                                            f"serves clones of {result.source_url} read at {at}", 1, now)]}


def record_ended(namespace: str, name: str, outcome: dict[str, Any] | None, result: CopyResult | None,
                 settings: Settings) -> bool:
    """The recording clone's copy ended: the snapshot Ready and its own (no longer the clone's), or, when
    the copy kept none, deleted so that the clones waiting for it go on. Whether it is Ready."""
    kept = (outcome or {}).get("snapshot") or {}
    if result is None or "recordedAt" not in kept:
        delete(namespace, name)
        return False
    kube.patch_status(constants.API_VERSION, constants.SNAPSHOT_KIND, namespace, name,
                      recorded_status(kept, result, settings, status.now()))
    kube.patch_metadata(constants.API_VERSION, constants.SNAPSHOT_KIND, namespace, name, {"ownerReferences": None})
    return True


def due(snapshot: dict[str, Any], now: datetime) -> bool:
    """Whether an expiring snapshot's time has come (one still recording has none)."""
    expires = (snapshot.get("status") or {}).get("expiresAt")
    return bool(expires) and status.is_expired(str(expires), now)


def expire(snapshot: dict[str, Any], now: datetime) -> bool:
    """Deletes the snapshot (its volume and Secret with it) when its time has come and no copy Job that
    mounts it is still running: such a Job's pod may not have mounted the volume yet, and a claim being
    deleted is mounted by no new pod (the Job would wait until its deadline). Whether it went."""
    namespace, name = snapshot["metadata"]["namespace"], snapshot["metadata"]["name"]
    if not due(snapshot, now):
        return False
    if any(copy_jobs.snapshot_of(job)[0] == name and copy_jobs.is_active(job)
           for job in kube.list_objects("batch/v1", "Job", namespace, copy_job_control.SELECTOR)):
        return False
    delete(namespace, name)
    return True


def drop_if_ready(namespace: str, name: str) -> None:
    """A snapshot a copy found unusable goes, once recorded (a recording that failed is its recorder's to end)."""
    snapshot = kube.get(constants.API_VERSION, constants.SNAPSHOT_KIND, namespace, name)
    if snapshot is not None and phase(snapshot) == constants.PHASE_READY:
        delete(namespace, name)


def delete(namespace: str, name: str) -> None:
    kube.delete(constants.API_VERSION, constants.SNAPSHOT_KIND, namespace, name)

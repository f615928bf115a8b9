"""Warm pools (WordPressClonePool): blank clones kept ready, for new clones to take.

A pool's slot is a WordPressClone without a source, labelled with its pool and owned by it: the
operator provisions it like any clone (database and user, Secrets, volume, NetworkPolicy, Deployment,
Service; no Ingress) and calls it Ready once its WordPress pod is, with nothing copied. A new clone of
the same shape (image, resources, storage, engine; WordPressCloneSpec.slot_shape) takes a ready slot of
its pool: its copy then starts at once. The pod names no clone (its URL is in its tables,
set by the copy), so the taken slot's objects serve the clone as they are: the clone keeps their names
(status.slot; children.workload_name) and becomes their owner, and the slot object goes.

Taking is `claim`: an annotation written on the slot with its resourceVersion as a precondition, so two
clones never take one slot; then the clone's status.slot, written before anything moves, so that an
operator stopped at any step finishes the move (`take_over`) when it comes back. What the pool does
each time it looks is `plan` (pure): make the missing slots, remove those of an old shape and the ones
beyond spec.replicas, and keep one that cannot start (named in the pool's Ready condition) rather than
make it again and again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from wpclone_common import constants, kube
from wpclone_common.resources import (
    MAX_TTL_MINUTES,
    SlotReference,
    WordPressClone,
    WordPressClonePoolSpec,
    WordPressCloneSpec,
)
from wpclone_operator import children, copy_jobs, status

CLAIMED_BY = f"{constants.GROUP}/claimed-by"  # on a taken slot: "<clone name>/<clone uid>"
# A pool makes the slot that replaces a taken one this long after the claim: a new slot's start (its
# database, its pod's sandbox, WordPress and its copy runner starting) costs CPU that the taking clone's
# copy, begun at the claim, needs more (on a 2-core node it doubled a small site's copy).
REFILL_DELAY_SECONDS = 5.0
_claimed_at: dict[tuple[str, str], float] = {}  # (namespace, pool) -> time.monotonic() of its last claim here


@dataclass(frozen=True)
class Slot:
    name: str
    uid: str
    resource_version: str
    created: str
    spec: WordPressCloneSpec
    phase: str | None
    claimed_by: str | None
    deleting: bool
    problem: tuple[str, str] | None = None  # a pod problem (reason, message) its WorkloadReady condition says

    @property
    def ready(self) -> bool:
        return self.phase == constants.PHASE_READY and self.claimed_by is None and not self.deleting


@dataclass
class Plan:
    create: int = 0
    delete: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)


def slot_spec(pool: str, spec: WordPressClonePoolSpec) -> WordPressCloneSpec:
    template = spec.template
    return WordPressCloneSpec(pool=pool, image=template.image, resources=template.resources, storage=template.storage,
                              database=template.database, ttlMinutes=MAX_TTL_MINUTES)


def slot_body(namespace: str, pool: str, pool_uid: str, spec: WordPressClonePoolSpec) -> dict[str, Any]:
    """A new blank slot, named by the apiserver after its pool."""
    return {"apiVersion": constants.API_VERSION, "kind": constants.CLONE_KIND,
            "metadata": {"generateName": f"{pool}-", "namespace": namespace,
                         "labels": {constants.LABEL_POOL: pool, constants.LABEL_MANAGED_BY: "wpclone"},
                         "ownerReferences": [{"apiVersion": constants.API_VERSION, "kind": constants.POOL_KIND,
                                              "name": pool, "uid": pool_uid, "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": slot_spec(pool, spec).model_dump(mode="json", exclude_none=True)}


def slot_of(body: dict[str, Any], pool_uid: str) -> Slot | None:
    """The pool's slot that `body` is, or None (another pool's, or a clone that only asks for the pool)."""
    metadata = body["metadata"]
    if not any(reference.get("uid") == pool_uid and reference.get("controller")
               for reference in metadata.get("ownerReferences") or []):
        return None
    spec = WordPressCloneSpec.model_validate(body.get("spec") or {})
    if spec.source is not None:
        return None
    clone_status = body.get("status") or {}
    problem = None
    for condition in clone_status.get("conditions") or []:
        if (condition.get("type") == constants.WORKLOAD_READY
                and condition.get("reason") in constants.POD_PROBLEMS.values()) or \
                (condition.get("type") == constants.READY and clone_status.get("phase") == constants.FAILED):
            problem = (condition.get("reason") or constants.FAILED, condition.get("message", ""))
    return Slot(metadata["name"], metadata["uid"], metadata.get("resourceVersion", ""),
                metadata.get("creationTimestamp", ""), spec, clone_status.get("phase"),
                (metadata.get("annotations") or {}).get(CLAIMED_BY), bool(metadata.get("deletionTimestamp")), problem)


def plan(pool: str, spec: WordPressClonePoolSpec, slots: list[Slot], conditions: list[dict[str, Any]],
         generation: int, at: datetime, refill: bool = True) -> Plan:
    """What the pool does now, and its status. Taken slots are the clones' already; a slot of another
    shape (the template changed) is replaced; the youngest go first when there are too many, those still
    starting before the ready ones; missing slots are made unless `refill` is held (a claim just now)."""
    shape = slot_spec(pool, spec).slot_shape()
    free = [slot for slot in slots if slot.claimed_by is None and not slot.deleting]
    # A Failed slot stays (and says why in the pool's condition) until the template changes: made again as it
    # is, it would fail again.
    delete = [slot for slot in free if slot.spec.slot_shape() != shape]
    kept = [slot for slot in free if slot not in delete]
    youngest_first = sorted(kept, key=lambda slot: slot.created, reverse=True)
    delete += sorted(youngest_first, key=lambda slot: slot.ready)[:max(0, len(kept) - spec.replicas)]
    kept = [slot for slot in kept if slot not in delete]
    ready = sum(slot.ready for slot in kept)
    problems = [(slot.name, slot.problem) for slot in kept if slot.problem is not None]
    if ready >= spec.replicas:
        condition = status.condition(constants.READY, True, constants.SLOTS_READY,
                                     f"{ready} of {spec.replicas} slots ready", generation, at)
    elif problems:
        name, (reason, message) = problems[0]
        condition = status.condition(constants.READY, False, reason, f"slot {name}: {message}; clones are made "
                                     "without the pool meanwhile", generation, at)
    else:
        condition = status.condition(constants.READY, False, constants.SLOTS_STARTING,
                                     f"{ready} of {spec.replicas} slots ready", generation, at)
    return Plan(create=max(0, spec.replicas - len(kept)) if refill else 0, delete=[slot.name for slot in delete],
                status={"replicas": len(kept), "ready": ready, "observedGeneration": generation,
                        "conditions": status.merge_conditions(conditions, [condition])})


def choose(clone: WordPressClone, slots: list[Slot]) -> list[Slot]:
    """The slots the clone may take, in the order it tries them: by age, from a place the clone's uid gives,
    so that clones asking at once try different slots first (each starting at the oldest, 50 clones at once
    made up to 1,275 claims, all but 50 refused)."""
    shape = clone.spec.slot_shape()
    ordered = sorted((slot for slot in slots if slot.ready and slot.spec.slot_shape() == shape),
                     key=lambda slot: slot.created)
    start = int(hashlib.sha256(clone.uid.encode()).hexdigest(), 16) % len(ordered) if ordered else 0
    return ordered[start:] + ordered[:start]


def pool_name(clone: WordPressClone, default_pool: str) -> str | None:
    return clone.spec.pool or default_pool or None


def _claimant(clone: WordPressClone) -> str:
    return f"{clone.name}/{clone.uid}"


def pool_uid_of(body: Mapping[str, Any]) -> str:
    """The uid of the WordPressClonePool that controls a blank slot ("" when none does)."""
    return next((reference.get("uid", "") for reference in body["metadata"].get("ownerReferences") or []
                 if reference.get("kind") == constants.POOL_KIND and reference.get("controller")), "")


def _slots(namespace: str, pool: str, pool_uid: str) -> list[Slot]:
    found = kube.list_objects(constants.API_VERSION, constants.CLONE_KIND, namespace, f"{constants.LABEL_POOL}={pool}")
    return [slot for item in found if (slot := slot_of(item, pool_uid)) is not None]


def claim(clone: WordPressClone, default_pool: str) -> SlotReference | None:
    """Take a ready slot of the clone's pool (or the one it took before the operator stopped); None: the
    clone has no pool, or the pool no ready slot of its shape. The clone's status.slot is written here."""
    pool = pool_name(clone, default_pool)
    if pool is None or children.is_slot(clone):
        return None
    body = kube.get(constants.API_VERSION, constants.POOL_KIND, clone.namespace, pool)
    slots = _slots(clone.namespace, pool, body["metadata"]["uid"]) if body is not None else []
    taken = [slot for slot in slots if slot.claimed_by == _claimant(clone)]
    for slot in taken or choose(clone, slots):
        if not taken:
            try:
                kube.patch_metadata(constants.API_VERSION, constants.CLONE_KIND, clone.namespace, slot.name,
                                    {"resourceVersion": slot.resource_version,
                                     "annotations": {CLAIMED_BY: _claimant(clone)}})
            except ApiException as error:
                if error.status in (404, 409):  # another clone took it first, or it went
                    continue
                raise
            _claimed_at[(clone.namespace, pool)] = time.monotonic()
            count_claim(clone.namespace, pool)
        reference = SlotReference(name=slot.name, uid=slot.uid)
        kube.patch_status(constants.API_VERSION, constants.CLONE_KIND, clone.namespace, clone.name,
                          {"slot": reference.model_dump()})
        return reference
    return None


def take_over(clone: WordPressClone, admin_username: str) -> None:
    """The taken slot's objects become the clone's (idempotent: an operator stopped halfway does the rest
    when it comes back), its standing copy Job's too: each owned by the clone alone, the admin login named
    as the source's, then the slot object deleted (its clean-up leaves its database to the clone:
    `keeps_database`)."""
    slot = clone.status.slot
    assert slot is not None
    copy_job = copy_jobs.object_keys(copy_jobs.Owner.of_clone(clone))
    for api_version, kind, name in (*children.object_keys(clone), *copy_job):
        existing = kube.get(api_version, kind, clone.namespace, name)
        references = ((existing or {}).get("metadata") or {}).get("ownerReferences") or []
        if existing is None or not any(reference.get("uid") == slot.uid for reference in references):
            continue
        patch: dict[str, Any] = {"metadata": {"ownerReferences": [children.owner_reference(clone)]}}
        if name == children.admin_secret_name(clone):
            patch["stringData"] = {"username": admin_username, "email": children.admin_email(clone, admin_username)}
        kube.patch(api_version, kind, clone.namespace, name, patch)
    found = kube.get(constants.API_VERSION, constants.CLONE_KIND, clone.namespace, slot.name)
    if found is not None and found["metadata"]["uid"] == slot.uid:
        kube.delete(constants.API_VERSION, constants.CLONE_KIND, clone.namespace, slot.name)


def is_taken(body: Mapping[str, Any]) -> bool:
    """A slot a clone has claimed: the operator leaves it alone (no provisioning, no expiry)."""
    return bool(((body.get("metadata") or {}).get("annotations") or {}).get(CLAIMED_BY))


def keeps_database(body: dict[str, Any]) -> bool:
    """A deleted slot's database and user stay when the clone that took it holds them (its status.slot
    names the slot); a slot claimed by a clone that went before finishing is cleaned up like any other."""
    claimant = ((body.get("metadata") or {}).get("annotations") or {}).get(CLAIMED_BY)
    holder = _claimant_of(body["metadata"]["namespace"], claimant) if claimant else None
    return holder is not None and ((holder.get("status") or {}).get("slot") or {}).get("uid") == body["metadata"]["uid"]


def _claimant_of(namespace: str, claimant: str) -> dict[str, Any] | None:
    """The clone that claimed a slot, if it still exists (the same object: name and uid)."""
    name, _, uid = claimant.partition("/")
    holder = kube.get(constants.API_VERSION, constants.CLONE_KIND, namespace, name)
    return holder if holder is not None and holder["metadata"]["uid"] == uid else None


def reconcile(body: dict[str, Any], at: datetime) -> Plan:
    """Look at the pool's slots, make and delete what `plan` says; the status to write."""
    metadata = body["metadata"]
    namespace, pool, uid = metadata["namespace"], metadata["name"], metadata["uid"]
    spec = WordPressClonePoolSpec.model_validate(body.get("spec") or {})
    slots = _slots(namespace, pool, uid)
    conditions = (body.get("status") or {}).get("conditions") or []
    refill = time.monotonic() - _claimed_at.get((namespace, pool), -REFILL_DELAY_SECONDS) >= REFILL_DELAY_SECONDS
    decided = plan(pool, spec, slots, conditions, metadata.get("generation", 1), at, refill)
    # A slot claimed by a clone deleted before it took the slot over: nobody will; it goes with its database.
    decided.delete += [slot.name for slot in slots if slot.claimed_by and not slot.deleting
                       and _claimant_of(namespace, slot.claimed_by) is None]
    for name in decided.delete:
        kube.delete(constants.API_VERSION, constants.CLONE_KIND, namespace, name)
    for _ in range(decided.create):
        kube.create(slot_body(namespace, pool, uid, spec))
    return decided


def count_claim(namespace: str, pool: str) -> None:
    """status.claimed + 1, with the pool's resourceVersion as the precondition (retried on a conflict)."""
    for _ in range(5):
        body = kube.get(constants.API_VERSION, constants.POOL_KIND, namespace, pool)
        if body is None:
            return
        claimed = int((body.get("status") or {}).get("claimed") or 0) + 1
        try:
            kube.patch_status(constants.API_VERSION, constants.POOL_KIND, namespace, pool, {"claimed": claimed},
                              resource_version=body["metadata"]["resourceVersion"])
            return
        except ApiException as error:
            if error.status != 409:
                raise

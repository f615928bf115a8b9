"""Warm pools without a cluster: what a pool makes and removes, which slot a clone takes, and that a taken
slot's objects are the clone's exactly as they stand (the pod is never made again)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from wpclone_common import constants
from wpclone_common.resources import SlotReference, WordPressClone, WordPressClonePoolSpec
from wpclone_operator import children, copy_jobs, pools
from wpclone_operator.settings import Settings

AT = datetime(2026, 1, 1, tzinfo=UTC)
POOL_UID = "pool-uid"


@pytest.fixture
def settings() -> Settings:
    return Settings(mysql_admin_dsn="mysql://admin:s3cret@db.internal:3307/", base_domain="clones.test",
                    copy_in="operator")


def slot_body(name: str, *, phase: str | None = "Ready", created: str = "2026-01-01T00:00:00Z",
              claimed_by: str | None = None, deleting: bool = False, owner: str = POOL_UID,
              conditions: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body = pools.slot_body("team-a", "warm", owner, WordPressClonePoolSpec(replicas=1, template=spec))
    metadata = body["metadata"]
    metadata.update({"name": name, "uid": f"uid-{name}", "resourceVersion": "7", "creationTimestamp": created,
                     "generation": 1})
    if claimed_by:
        metadata["annotations"] = {pools.CLAIMED_BY: claimed_by}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:10:00Z"
    body["status"] = {"phase": phase, "conditions": conditions or []}
    return body


def slot(name: str, **kwargs: Any) -> pools.Slot:
    found = pools.slot_of(slot_body(name, **kwargs), POOL_UID)
    assert found is not None
    return found


def plan(replicas: int, slots: list[pools.Slot], **template: Any) -> pools.Plan:
    return pools.plan("warm", WordPressClonePoolSpec(replicas=replicas, template=template), slots, [], 3, AT)


def ready_condition(decided: pools.Plan) -> dict[str, Any]:
    (condition,) = decided.status["conditions"]
    return condition


def test_an_empty_pool_makes_its_slots_and_says_they_are_starting() -> None:
    decided = plan(3, [])
    assert decided.create == 3 and decided.delete == []
    assert decided.status | {"conditions": None} == {"replicas": 0, "ready": 0, "observedGeneration": 3,
                                                      "conditions": None}
    condition = ready_condition(decided)
    assert condition["status"] == "False" and condition["reason"] == constants.SLOTS_STARTING


def test_a_pool_holds_its_refill_just_after_a_claim_and_still_says_what_it_lacks() -> None:
    held = pools.plan("warm", WordPressClonePoolSpec(replicas=3), [slot("left")], [], 3, AT, refill=False)
    assert held.create == 0 and held.status["replicas"] == 1 and held.status["ready"] == 1
    assert held.status["conditions"][0]["status"] == "False"
    assert pools.plan("warm", WordPressClonePoolSpec(replicas=3), [slot("left")], [], 3, AT).create == 2


def test_too_many_slots_lose_those_still_starting_first_then_the_youngest() -> None:
    slots = [slot("old", created="2026-01-01T00:00:00Z"), slot("young", created="2026-01-01T00:05:00Z"),
             slot("starting", phase="Provisioning", created="2026-01-01T00:01:00Z")]
    assert plan(2, slots).delete == ["starting"]
    assert plan(1, slots).delete == ["starting", "young"]
    decided = plan(2, slots)
    assert decided.create == 0 and decided.status["ready"] == 2
    assert ready_condition(decided)["status"] == "True"


def test_taken_slots_are_the_clones_and_a_changed_template_replaces_the_others() -> None:
    slots = [slot("taken", claimed_by="stage/uid-stage"), slot("free"), slot("going", deleting=True)]
    decided = plan(2, slots)
    assert decided.delete == [] and decided.create == 1 and decided.status["replicas"] == 1
    changed = plan(2, slots, image="wordpress:6.7")
    assert changed.delete == ["free"] and changed.create == 2


def test_a_slot_that_cannot_start_is_kept_and_named_in_the_pools_condition() -> None:
    stuck = slot("stuck", phase="Provisioning", conditions=[{
        "type": constants.WORKLOAD_READY, "status": "False", "reason": constants.IMAGE_UNAVAILABLE,
        "message": "image wordpress:nope cannot be pulled"}])
    refused = slot("refused", phase=constants.FAILED, conditions=[{
        "type": constants.READY, "status": "False", "reason": constants.IMAGE_NOT_ALLOWED, "message": "not allowed"}])
    decided = plan(2, [stuck, refused])
    assert decided.delete == [] and decided.create == 0  # made again as it is, it would fail again
    condition = ready_condition(decided)
    assert condition["reason"] == constants.IMAGE_UNAVAILABLE and "slot stuck" in condition["message"]
    assert "without the pool" in condition["message"]


def clone(**spec: Any) -> WordPressClone:
    return WordPressClone.from_body({
        "metadata": {"name": "stage", "namespace": "team-a", "uid": "uid-stage", "generation": 1,
                     "creationTimestamp": "2026-01-01T01:00:00Z"},
        "spec": {"source": {"url": "https://shop.example.com", "credentialsSecretRef": {"name": "login"}},
                 "pool": "warm", **spec}})


def test_a_clone_takes_a_ready_slot_of_its_own_shape_and_clones_at_once_try_different_ones_first() -> None:
    slots = [slot("young", created="2026-01-01T00:05:00Z"), slot("old", created="2026-01-01T00:01:00Z"),
             slot("starting", phase="Provisioning"), slot("taken", claimed_by="other/uid-other"),
             slot("going", deleting=True), slot("bigger", resources={"limits": {"memory": "1Gi"}}),
             slot("sqlite", database={"engine": "sqlite"})]
    assert sorted(found.name for found in pools.choose(clone(), slots)) == ["old", "young"]
    many = [slot(f"s{number:02}", created=f"2026-01-01T00:{number:02}:00Z") for number in range(50)]
    firsts = [pools.choose(clone().model_copy(update={"uid": f"uid-{number}"}), many)[0].name for number in range(50)]
    assert len(set(firsts)) > 25  # not all at the oldest: most claims made at once meet no other
    tried = pools.choose(clone(), many)
    assert sorted(found.name for found in tried) == sorted(found.name for found in many)  # each, once
    assert tried == pools.choose(clone(), many)  # the same order each time the clone asks
    assert [found.name for found in pools.choose(clone(resources={"limits": {"memory": "1Gi"}}), slots)] == ["bigger"]
    assert [found.name for found in pools.choose(clone(database={"engine": "sqlite"}), slots)] == ["sqlite"]
    assert pools.choose(clone(image="wordpress:6.7"), slots) == []


def test_only_the_pools_own_blank_slots_are_its_slots() -> None:
    assert pools.slot_of(slot_body("mine"), POOL_UID) is not None
    assert pools.slot_of(slot_body("other", owner="another-pool"), POOL_UID) is None
    asking = slot_body("asking")
    asking["spec"]["source"] = {"url": "https://shop.example.com", "credentialsSecretRef": {"name": "login"}}
    assert pools.slot_of(asking, POOL_UID) is None  # a clone that names the pool is no slot of it


def test_a_slot_is_a_clone_without_a_source_owned_by_its_pool_and_never_served_from_outside(
        settings: Settings) -> None:
    body = pools.slot_body("team-a", "warm", POOL_UID, WordPressClonePoolSpec(replicas=2))
    assert body["metadata"]["generateName"] == "warm-" and "name" not in body["metadata"]
    assert body["metadata"]["labels"][constants.LABEL_POOL] == "warm"
    (owner,) = body["metadata"]["ownerReferences"]
    assert owner["kind"] == constants.POOL_KIND and owner["uid"] == POOL_UID and owner["controller"]
    assert "source" not in body["spec"] and body["spec"]["pool"] == "warm"
    blank = WordPressClone.from_body({**slot_body("warm-abcde"), "status": {}})
    assert children.is_slot(blank)
    kinds = [manifest["kind"] for manifest in children.workload_objects(blank, settings, {})]
    assert "Ingress" not in kinds and "Deployment" in kinds and "NetworkPolicy" in kinds


def taken(spec_clone: WordPressClone, name: str = "warm-abcde") -> WordPressClone:
    reference = SlotReference(name=name, uid=f"uid-{name}")
    return spec_clone.model_copy(update={"status": spec_clone.status.model_copy(update={"slot": reference})})


def test_a_clone_that_took_a_slot_keeps_its_objects_names_database_and_pod_as_they_are(settings: Settings) -> None:
    blank = WordPressClone.from_body({**slot_body("warm-abcde"), "status": {}})
    stage = taken(clone())
    for name_of in (children.db_secret_name, children.admin_secret_name, children.wp_content_name,
                    children.mu_plugins_name, children.database_name, children.database_user, children.workload_name):
        assert name_of(stage) == name_of(blank), name_of.__name__
    assert children.object_keys(stage) == children.object_keys(blank)
    # The pod's template is the slot's: taking it over rolls out no new pod.
    assert children.deployment(stage, settings)["spec"] == children.deployment(blank, settings)["spec"]
    assert children.network_policy(stage, settings)["spec"] == children.network_policy(blank, settings)["spec"]
    # Owned by the clone now, and served at the clone's own host by the slot's Service.
    (owner,) = children.deployment(stage, settings)["metadata"]["ownerReferences"]
    assert owner["uid"] == "uid-stage" and owner["name"] == "stage"
    rule = children.ingress(stage, settings)["spec"]["rules"][0]
    assert rule["host"] == "stage.clones.test"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "warm-abcde"
    assert children.endpoint(stage, settings) == children.endpoint(blank, settings)
    # Its copy Job's pod is let in by the slot's NetworkPolicy, and reaches the slot's pod.
    owner_of_copy = copy_jobs.Owner.of_clone(stage)
    assert owner_of_copy.clone == "warm-abcde" and owner_of_copy.name == "stage"
    # The slot's standing copy Job is the clone's copy Job (the same name), and goes with it at its expiry.
    assert copy_jobs.job_name(owner_of_copy) == copy_jobs.job_name(copy_jobs.Owner.of_clone(blank)) == "warm-abcde-copy"
    assert copy_jobs.object_keys(owner_of_copy) == copy_jobs.object_keys(copy_jobs.Owner.of_clone(blank))


def test_a_copy_jobs_plan_names_the_slot_the_clone_took() -> None:
    body = {"metadata": {"name": "stage", "namespace": "team-a", "uid": "uid-stage", "generation": 1,
                         "creationTimestamp": "2026-01-01T01:00:00Z"},
            "spec": clone().spec.model_dump(mode="json", exclude_none=True), "status": {"phase": "Provisioning"}}
    reference = SlotReference(name="warm-abcde", uid="uid-warm-abcde")
    planned = WordPressClone.from_body(copy_jobs.plan_body(body, reference))
    assert children.database_name(planned) == children.database_name(taken(clone()))
    assert "status" not in copy_jobs.plan_body(body)  # a clone made the usual way carries no status

"""Warm pools on the real node: a WordPressClonePool keeps blank clones (database, user, volume, a Ready
WordPress pod) for new clones to take, so that only the copy is left; it refills, says why when its
slots cannot start, and nothing it made outlives it."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from testenv import cluster
from testenv.ingress import IngressProcess
from testenv.mariadb import MariaDB
from testenv.operator_process import OperatorProcess
from tests.helpers import apply, clone_manifest, condition, credentials_secret, eventually, get_json
from tests.integration import transfer_fixtures
from tests.integration.test_clone_pods import at_clone, clone_pod
from tests.integration.transfer_fixtures import SiteMaker

pytestmark = pytest.mark.integration
make_site = transfer_fixtures.make_site


def pool_manifest(name: str, replicas: int, **template: Any) -> dict[str, Any]:
    return {"apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClonePool", "metadata": {"name": name},
            "spec": {"replicas": replicas, "template": template}}


def slots(plane: cluster.ControlPlane, namespace: str, pool: str) -> list[dict[str, Any]]:
    return (get_json(plane, namespace, "wpc", "-l", f"wpclone.dev/pool={pool}") or {}).get("items", [])


def pool_status(plane: cluster.ControlPlane, namespace: str, pool: str) -> dict[str, Any]:
    return (get_json(plane, namespace, "wpcpool", pool) or {}).get("status") or {}


def pool_with_ready(plane: cluster.ControlPlane, namespace: str, pool: str, ready: int,
                    **status: int) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = get_json(plane, namespace, "wpcpool", pool) or {}
        now = found.get("status") or {}
        return found if now.get("ready") == ready and all(now.get(k) == v for k, v in status.items()) else None

    return eventually(reached, timeout=180, interval=1, what=f"pool {pool} with {ready} ready slots {status}")


def databases(mariadb: MariaDB) -> set[str]:
    return {row for row in mariadb.sql("SHOW DATABASES").splitlines() if row.startswith("wpc_")}


def users(mariadb: MariaDB) -> set[str]:
    return {row for row in mariadb.sql("SELECT User FROM mysql.user").splitlines() if row.startswith("wpc_")}


def secret_value(plane: cluster.ControlPlane, namespace: str, name: str, key: str) -> str:
    secret = get_json(plane, namespace, "secret", name) or {}
    return base64.b64decode(secret["data"][key]).decode()


def nothing_left_once_the_pool_goes(plane: cluster.ControlPlane, namespace: str, mariadb: MariaDB,
                                    before: tuple[set[str], set[str]]) -> None:
    """Deletes the pool "warm": its slots go, and no database, user, volume claim or Secret of theirs is left."""
    plane.kubectl("delete", "-n", namespace, "wpcpool", "warm", "--wait=true", "--timeout=120s")
    eventually(lambda: not slots(plane, namespace, "warm"), timeout=120, interval=1, what="the pool's slots to go")
    # Nothing beyond what was there before (another test's clone, its namespace being deleted, may go meanwhile).
    eventually(lambda: databases(mariadb) <= before[0] and users(mariadb) <= before[1], timeout=60, interval=1,
               what="no database or user of the pool's slots left")
    # A claim goes once its pod has (the claim's protection finalizer).
    eventually(lambda: not (get_json(plane, namespace, "pvc") or {}).get("items"), timeout=120, interval=1,
               what="no volume claim of the pool's slots left")
    assert not [secret for secret in (get_json(plane, namespace, "secret") or {}).get("items", [])
                if secret["metadata"]["name"].startswith("warm-")]


def test_clones_take_ready_slots_whose_pods_serve_them_across_an_operator_stopped_mid_claim_and_leave_nothing(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, ingress: IngressProcess, mariadb: MariaDB,
        namespace: str, make_site: SiteMaker) -> None:
    plane, source, before = control_plane, make_site(), (databases(mariadb), users(mariadb))
    apply(plane, namespace, pool_manifest("warm", 3))
    pool = pool_with_ready(plane, namespace, "warm", 3, replicas=3)
    assert condition(pool, "Ready")["status"] == "True"
    standing = {slot["metadata"]["name"]: slot for slot in slots(plane, namespace, "warm")}
    assert len(standing) == 3
    for name, slot in standing.items():
        assert slot["status"]["phase"] == "Ready" and condition(slot, "Ready")["reason"] == "Standby"
        assert not slot["status"].get("url") and not slot["status"].get("adminSecretRef")
        assert get_json(plane, namespace, "ingress", name) is None  # nobody reaches a blank WordPress
    pods_before = {name: clone_pod(plane, namespace, name) for name in standing}
    assert len(databases(mariadb) - before[0]) == 3

    apply(plane, namespace, credentials_secret("source-login", source.admin_user, source.admin_password),
          clone_manifest("stage", source.url, pool="warm"))
    plane.kubectl("wait", "-n", namespace, "wpc/stage", "--for=condition=Ready", "--timeout=180s")
    stage = get_json(plane, namespace, "wpc", "stage")
    assert stage is not None
    taken = stage["status"]["slot"]["name"]
    assert taken in standing
    # The slot's own pod serves the clone: the same pod, never restarted, now the clone's.
    pod = clone_pod(plane, namespace, taken)
    assert pod["metadata"]["uid"] == pods_before[taken]["metadata"]["uid"]
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    posts = at_clone(ingress, "stage", "/wp-json/wp/v2/posts?per_page=100")
    assert posts.status_code == 200, posts.text[:300]
    assert sorted(post["title"]["rendered"] for post in posts.json()) == sorted(transfer_fixtures.wp_php(
        source, "foreach (get_posts(['numberposts' => -1]) as $p) echo get_the_title($p), \"\\n\";").splitlines())
    assert condition(stage, "SourceUrlsReplaced")["reason"] == "NoneLeft"
    # Its objects are the clone's alone; the slot object is gone; the admin login is named as production's.
    assert get_json(plane, namespace, "wpc", taken) is None
    for kind in ("deployment", "service", "networkpolicy", "ingress", "pvc/" + taken + "-wp-content"):
        found = get_json(plane, namespace, *(kind.split("/") if "/" in kind else (kind, taken)))
        assert found is not None, kind
        assert [owner["uid"] for owner in found["metadata"]["ownerReferences"]] == [stage["metadata"]["uid"]], kind
    assert stage["status"]["adminSecretRef"]["name"] == f"{taken}-admin"
    assert secret_value(plane, namespace, f"{taken}-admin", "username") == source.admin_user

    # What an operator killed mid-claim leaves, written by hand while it is stopped: `first`'s claim is on
    # its slot but not yet in its status; `second`'s is in both, its slot's objects not yet moved to it.
    first_slot, second_slot = sorted((name, slot["metadata"]["uid"]) for name, slot in standing.items()
                                     if name != taken)
    operator.stop()
    try:
        apply(plane, namespace, clone_manifest("first", source.url, pool="warm"),
              clone_manifest("second", source.url, pool="warm"))
        uids = {name: get_json(plane, namespace, "wpc", name)["metadata"]["uid"] for name in ("first", "second")}
        for clone, (slot_name, _) in (("first", first_slot), ("second", second_slot)):
            plane.kubectl("annotate", "-n", namespace, "wpc", slot_name,
                          f"wpclone.dev/claimed-by={clone}/{uids[clone]}")
        plane.kubectl("patch", "-n", namespace, "wpc", "second", "--subresource=status", "--type=merge", "-p",
                      json.dumps({"status": {"slot": {"name": second_slot[0], "uid": second_slot[1]}}}))
    finally:
        operator.start()
    for clone, (slot_name, _) in (("first", first_slot), ("second", second_slot)):
        plane.kubectl("wait", "-n", namespace, f"wpc/{clone}", "--for=condition=Ready", "--timeout=180s")
        found = get_json(plane, namespace, "wpc", clone)
        assert found["status"]["slot"]["name"] == slot_name, found["status"]
        assert condition(found, "SourceUrlsReplaced")["reason"] == "NoneLeft"
        assert clone_pod(plane, namespace, slot_name)["metadata"]["uid"] == pods_before[slot_name]["metadata"]["uid"]
        assert get_json(plane, namespace, "wpc", slot_name) is None
        deployment = get_json(plane, namespace, "deployment", slot_name)
        assert [owner["uid"] for owner in deployment["metadata"]["ownerReferences"]] == [uids[clone]]
        assert at_clone(ingress, clone, "/wp-json/wp/v2/posts").status_code == 200

    # The pool makes new slots to stand in for the taken ones (once the claim's copy had its moment:
    # pools.REFILL_DELAY_SECONDS), and counts the claim it made (the others were written by hand).
    eventually(lambda: (now := pool_status(plane, namespace, "warm")).get("replicas") == 3 and now.get("claimed") == 1,
               timeout=90, interval=1, what="the pool to make slots for the taken ones and count the claim")
    assert not {taken, first_slot[0], second_slot[0]} & {slot["metadata"]["name"] for slot in slots(plane, namespace,
                                                                                                     "warm")}

    # A slot whose claimant went before taking it over (an operator stopped mid-claim, the clone deleted):
    # the pool removes it with its database (and makes another).
    abandoned = slots(plane, namespace, "warm")[0]["metadata"]["name"]
    abandoned_database = secret_value(plane, namespace, f"{abandoned}-db", "database")
    plane.kubectl("annotate", "-n", namespace, "wpc", abandoned, "wpclone.dev/claimed-by=gone/no-such-uid")
    eventually(lambda: get_json(plane, namespace, "wpc", abandoned) is None, timeout=60, interval=1,
               what="the abandoned slot to go")
    assert abandoned_database not in databases(mariadb)

    # A clone goes with the slot's database and user; the pool with its slots and theirs.
    stage_database = secret_value(plane, namespace, f"{taken}-db", "database")
    plane.kubectl("delete", "-n", namespace, "wpc", "stage", "--wait=true", "--timeout=120s")
    assert stage_database not in databases(mariadb)
    plane.kubectl("delete", "-n", namespace, "wpc", "first", "second", "--wait=true", "--timeout=120s")
    nothing_left_once_the_pool_goes(plane, namespace, mariadb, before)


def test_a_pool_whose_pods_cannot_start_says_why_and_its_clones_are_made_without_it(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str,
        make_site: SiteMaker) -> None:
    plane = control_plane
    source = make_site()
    apply(plane, namespace, pool_manifest("broken", 1, image="localhost/wpclone/no-such-image:1"))

    def unready() -> dict[str, Any] | None:
        found = condition(get_json(plane, namespace, "wpcpool", "broken"), "Ready")
        return found if found and found["reason"] == "ImageUnavailable" else None

    found = eventually(unready, timeout=120, interval=1, what="the pool's Ready=False with reason ImageUnavailable")
    assert found["status"] == "False" and "broken-" in found["message"]
    (slot,) = slots(plane, namespace, "broken")  # kept, not made again and again
    # A clone asking for the pool (not of its shape) is made the usual way, and says so.
    apply(plane, namespace, credentials_secret("source-login", source.admin_user, source.admin_password),
          clone_manifest("cold", source.url, pool="broken"))
    plane.kubectl("wait", "-n", namespace, "wpc/cold", "--for=condition=Ready", "--timeout=180s")
    cold = get_json(plane, namespace, "wpc", "cold") or {}
    assert not cold["status"].get("slot")
    assert "PoolMiss" in plane.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=cold")
    assert [item["metadata"]["uid"] for item in slots(plane, namespace, "broken")] == [slot["metadata"]["uid"]]


def test_a_clone_without_a_source_is_refused_unless_its_pool_made_it(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str) -> None:
    plane = control_plane
    refused = plane.kubectl("apply", "-n", namespace, "-f", "-", check=False, input=(
        '{"apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClone", "metadata": {"name": "blank"}, '
        '"spec": {}}'))
    assert "spec.source is required" in refused
    apply(plane, namespace, {"apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClone",
                             "metadata": {"name": "posing"}, "spec": {"pool": "warm"}})
    failed = eventually(lambda: (c := get_json(plane, namespace, "wpc", "posing"))
                        and (c.get("status") or {}).get("phase") == "Failed" and c, timeout=60, interval=1,
                        what="a sourceless clone no pool made to fail")
    assert condition(failed, "Ready")["reason"] == "NoSource"
    assert get_json(plane, namespace, "deployment", "posing") is None

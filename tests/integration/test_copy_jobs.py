"""Copies as Kubernetes Jobs (the default copy_in): each clone's and each restore's copy runs in a Job
of the image built here, on the real node, under a ServiceAccount that may patch its owner's status and
its own outcome ConfigMap and nothing else; the operator only starts, counts and reads Jobs.

The session's operator copies in-process (its tests' sites are on loopback, where no pod reaches); for
this module it is restarted with copy_in=job and at most two copy Jobs at once, and the sites live on
the node bridge's gateway. Restores as Jobs: tests/integration/test_chart_install.py, whose operator
copies in Jobs (the chart's default) under the chart's RBAC."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from testenv import cluster, images, network, node
from testenv.mariadb import MariaDB
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import (
    apply,
    clone_manifest,
    clone_wp_content,
    completed_job,
    condition,
    credentials_secret,
    eventually,
    get_json,
)
from tests.integration import transfer_fixtures
from tests.integration.test_restore import (
    hold_route,
    post_titles,
    restore_manifest,
    wait_restore,
)
from tests.integration.test_snapshot_copy import count_exports, exports
from tests.integration.test_sqlite_clone import ODD_TABLE, mysql_rows, row_differences
from tests.integration.test_warm_pool import pool_manifest, pool_with_ready, slots
from tests.integration.transfer_fixtures import SiteMaker
from wpclone_common import times
from wpclone_engine.sqlite_dropin import DATABASE_FILE

pytestmark = pytest.mark.integration
make_site = transfer_fixtures.make_site

MAX_COPY_JOBS = 2
# The source's database export, held while wp-content/hold-imports exists: a copy Job caught mid-copy.
HOLD_EXPORT = hold_route("export/database")


@pytest.fixture(scope="module", autouse=True)
def copies_in_jobs(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    images.import_into(node.ctr(), ["wpclone"])
    before = dict(operator.env)
    operator.env.update({"WPCLONE_COPY_IN": "job", "WPCLONE_MAX_COPY_JOBS": str(MAX_COPY_JOBS),
                         "WPCLONE_COPY_IMAGE": images.ref("wpclone")})
    operator.restart()
    yield operator
    operator.env.clear()
    operator.env.update(before)
    operator.restart()


def login_of(site: WordPressSite, name: str = "production-login") -> dict[str, Any]:
    return credentials_secret(name, site.admin_user, site.admin_password)


def wait_phase(plane: cluster.ControlPlane, namespace: str, name: str, *phases: str,
               timeout: float = 180) -> dict[str, Any]:
    return eventually(lambda: (c := get_json(plane, namespace, "wpc", name))
                      and (c.get("status") or {}).get("phase") in phases and c,
                      timeout=timeout, what=f"clone {name} to be {' or '.join(phases)}", interval=0.5)


def job_pods(plane: cluster.ControlPlane, namespace: str, job: str) -> list[dict[str, Any]]:
    return (get_json(plane, namespace, "pods", "-l", f"job-name={job}") or {}).get("items", [])


def can(plane: cluster.ControlPlane, namespace: str, account: str, *request: str) -> bool:
    """`kubectl auth can-i` as the ServiceAccount (the apiserver's own RBAC decision)."""
    answer = plane.kubectl("auth", "can-i", "-n", namespace, f"--as=system:serviceaccount:{namespace}:{account}",
                           *request, check=False)
    return answer.strip().splitlines()[0] == "yes"


def hold(site: WordPressSite) -> None:
    content = site.docroot / "wp-content"
    (content / "mu-plugins" / "hold-export.php").write_text(HOLD_EXPORT)
    (content / "hold-imports").touch()


def held(site: WordPressSite) -> bool:
    return (site.docroot / "wp-content" / "import-held").exists()


def release(site: WordPressSite) -> None:
    (site.docroot / "wp-content" / "hold-imports").unlink(missing_ok=True)
    (site.docroot / "wp-content" / "import-held").unlink(missing_ok=True)


def test_a_clone_is_copied_by_its_own_job_whose_account_reaches_nothing_else(
        control_plane: cluster.ControlPlane, namespace: str, make_site: SiteMaker) -> None:
    production = make_site(host=network.GATEWAY)
    apply(control_plane, namespace, login_of(production), clone_manifest("stage", production.url, "production-login"),
          clone_manifest("other", production.url, "production-login"))
    clone = wait_phase(control_plane, namespace, "stage", "Ready", "Failed")
    assert clone["status"]["phase"] == "Ready", clone["status"]
    assert clone["status"]["progress"]["phase"] == "done" and clone["status"]["progress"]["rows"] > 0
    assert condition(clone, "SourceUrlsReplaced")["reason"] == "NoneLeft"
    assert condition(clone, "ContentCloned")["reason"] == "Copied"

    job = completed_job(control_plane, namespace, "stage-copy")
    assert job["metadata"]["ownerReferences"][0]["uid"] == clone["metadata"]["uid"]
    (pod,) = job_pods(control_plane, namespace, "stage-copy")
    assert pod["spec"]["serviceAccountName"] == "stage-copy"
    assert "copied" in control_plane.kubectl("logs", "-n", namespace, "job/stage-copy")
    # The clone serves the copied site: production's posts, through the ingress, from the clone's own pod.
    served = httpx.get(f"{clone['status']['url']}/wp-json/wp/v2/posts?per_page=100", timeout=30).json()
    assert post_titles(production) and sorted(post["title"]["rendered"] for post in served) == sorted(
        post_titles(production))

    role = get_json(control_plane, namespace, "role", "stage-copy")
    assert role["rules"] == [
        {"apiGroups": ["wpclone.dev"], "resources": ["wordpressclones/status"], "resourceNames": ["stage"],
         "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["stage-copy"], "verbs": ["patch"]}]
    account = "stage-copy"
    assert can(control_plane, namespace, account, "patch", "wordpressclones.wpclone.dev/stage", "--subresource=status")
    assert can(control_plane, namespace, account, "patch", "configmaps/stage-copy")
    refused = [("patch", "wordpressclones.wpclone.dev/other", "--subresource=status"),
               ("patch", "wordpressclones.wpclone.dev/stage"), ("get", "wordpressclones.wpclone.dev/stage"),
               ("get", "secrets/stage-db"), ("get", "secrets/production-login"), ("list", "secrets"),
               ("patch", "configmaps/other-copy"), ("create", "configmaps"), ("list", "pods"),
               ("create", "jobs.batch"), ("get", "configmaps/stage-source-checksums")]
    assert [request for request in refused if can(control_plane, namespace, account, *request)] == []

    control_plane.kubectl("delete", "-n", namespace, "wpc", "stage", "other", "--wait=true", "--timeout=120s")
    eventually(lambda: not (get_json(control_plane, namespace, "jobs", "-l", "app.kubernetes.io/component=copy")
                            or {}).get("items") and not job_pods(control_plane, namespace, "stage-copy"),
               timeout=120, what="the deleted clones' Jobs and their pods to be gone")


def test_a_clone_that_takes_a_pool_slot_is_copied_by_the_slots_standing_job_let_read_only_its_logins(
        control_plane: cluster.ControlPlane, namespace: str, make_site: SiteMaker) -> None:
    plane = control_plane
    production = make_site(host=network.GATEWAY)
    apply(plane, namespace, pool_manifest("warm", 1))
    pool_with_ready(plane, namespace, "warm", 1)
    (slot,) = [item["metadata"]["name"] for item in slots(plane, namespace, "warm")]
    job_name = f"{slot}-copy"
    (standing,) = eventually(lambda: running_pods(plane, namespace, job_name), timeout=120,
                             what="the slot's standing copy Job to run")
    job = get_json(plane, namespace, "job", job_name)
    assert job["metadata"]["labels"]["wpclone.dev/standby"] == "true" and "activeDeadlineSeconds" not in job["spec"]
    # Standing, it reads its own ConfigMap (where its plan will be handed) and no Secret at all.
    assert can(plane, namespace, job_name, "watch", f"configmaps/{job_name}")
    assert not can(plane, namespace, job_name, "get", "secrets/production-login")
    assert not can(plane, namespace, job_name, "get", f"secrets/{slot}-db")
    assert "standing by" in plane.kubectl("logs", "-n", namespace, f"job/{job_name}")
    # A plan written into its ConfigMap by anyone but the operator (here: for the clone about to be made, but
    # copying from elsewhere with its login) is not its clone's as the apiserver has it: ignored.
    forged = {"kind": "WordPressClone", "namespace": namespace, "name": "stage", "outcome": job_name,
              "clone": {"metadata": {"name": "stage", "namespace": namespace, "uid": "guessed"},
                        "spec": {"source": {"url": "http://attacker.invalid",
                                            "credentialsSecretRef": {"name": "production-login"}}}}}
    plane.kubectl("patch", "-n", namespace, "configmap", job_name, "--type=merge", "-p",
                  json.dumps({"data": {"plan.json": json.dumps(forged)}}))
    eventually(lambda: "not its clone's" in plane.kubectl("logs", "-n", namespace, f"job/{job_name}"), timeout=30,
               what="the forged plan to be ignored")
    assert running_pods(plane, namespace, job_name) == [standing]

    apply(plane, namespace, login_of(production), clone_manifest("stage", production.url, "production-login",
                                                                 pool="warm"))
    clone = wait_phase(plane, namespace, "stage", "Ready", "Failed")
    assert clone["status"]["phase"] == "Ready", clone["status"]
    assert clone["status"]["slot"]["name"] == slot and condition(clone, "SourceUrlsReplaced")["reason"] == "NoneLeft"
    assert clone["status"]["progress"]["phase"] == "done" and clone["status"]["progress"]["rows"] > 0
    served = httpx.get(f"{clone['status']['url']}/wp-json/wp/v2/posts?per_page=100", timeout=30).json()
    assert sorted(post["title"]["rendered"] for post in served) == sorted(post_titles(production))
    # The copy was the standing pod's, started before the clone was asked for: now the clone's Job, with the
    # copy's deadline, counted among the running copies no more since it is done.
    job = completed_job(plane, namespace, job_name)
    assert job["metadata"]["ownerReferences"][0]["uid"] == clone["metadata"]["uid"]
    assert "wpclone.dev/standby" not in job["metadata"]["labels"] and job["spec"]["activeDeadlineSeconds"] > 0
    (pod,) = job_pods(plane, namespace, job_name)
    assert pod["metadata"]["name"] == standing and job["status"]["succeeded"] == 1
    assert times.parse_time(pod["status"]["startTime"]) < times.parse_time(clone["metadata"]["creationTimestamp"])
    assert "copied" in plane.kubectl("logs", "-n", namespace, f"job/{job_name}")
    # Handed the plan, its account read the clone's logins, and nothing else: no other Secret, no other clone.
    assert can(plane, namespace, job_name, "get", "secrets/production-login")
    assert can(plane, namespace, job_name, "patch", "wordpressclones.wpclone.dev/stage", "--subresource=status")
    refused = [("list", "secrets"), ("get", "secrets/other-login"), ("watch", "configmaps"),
               ("patch", f"wordpressclones.wpclone.dev/{slot}", "--subresource=status"), ("create", "jobs.batch"),
               ("get", "wordpressclones.wpclone.dev/other"), ("list", "wordpressclones.wpclone.dev")]
    assert [request for request in refused if can(plane, namespace, job_name, *request)] == []

    # The Job is the clone's: it goes with it (the pool's leftovers: tests/integration/test_warm_pool.py).
    plane.kubectl("delete", "-n", namespace, "wpc", "stage", "--wait=true", "--timeout=120s")
    eventually(lambda: get_json(plane, namespace, "job", job_name) is None, timeout=60,
               what="the clone's copy Job to go with it")


def test_a_wrong_password_ends_the_job_at_once_and_fails_the_clone(
        control_plane: cluster.ControlPlane, namespace: str, make_site: SiteMaker) -> None:
    production = make_site(host=network.GATEWAY)
    apply(control_plane, namespace, credentials_secret("production-login", production.admin_user, "not-it"),
          clone_manifest("stage", production.url, "production-login"))
    clone = wait_phase(control_plane, namespace, "stage", "Failed", "Ready")
    assert condition(clone, "ContentCloned")["reason"] == "LoginFailed", clone["status"]
    assert "not-it" not in str(clone)
    job = get_json(control_plane, namespace, "job", "stage-copy")
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed" and c["status"] == "True"]
    assert failed and failed[0]["reason"] == "PodFailurePolicy"
    assert job["status"].get("failed") == 1 and len(job_pods(control_plane, namespace, "stage-copy")) == 1


def running_pods(plane: cluster.ControlPlane, namespace: str, job: str) -> list[str]:
    return [pod["metadata"]["name"] for pod in job_pods(plane, namespace, job)
            if pod["status"].get("phase") == "Running" and "deletionTimestamp" not in pod["metadata"]]


def test_an_evicted_copy_pod_is_replaced_an_operator_restart_interrupts_no_copy_and_the_cap_holds(
        control_plane: cluster.ControlPlane, copies_in_jobs: OperatorProcess, namespace: str,
        make_site: SiteMaker) -> None:
    production, other = make_site(host=network.GATEWAY), make_site(host=network.GATEWAY)
    hold(production)  # every export of production's database waits, until release()
    try:
        apply(control_plane, namespace, login_of(production), login_of(other, "other-login"),
              clone_manifest("first", production.url, "production-login"),
              clone_manifest("second", production.url, "production-login"))
        eventually(lambda: held(production) and running_pods(control_plane, namespace, "first-copy")
                   and running_pods(control_plane, namespace, "second-copy"), timeout=180,
                   what="both copies to run, one held mid-export")
        (killed,) = running_pods(control_plane, namespace, "first-copy")
        # Evicted, as a drained node's pods are: the Job makes a new pod at once and counts no failure.
        control_plane.kubectl("create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{killed}/eviction", "-f", "-",
                              input=json.dumps({"apiVersion": "policy/v1", "kind": "Eviction",
                                                "metadata": {"name": killed, "namespace": namespace}}))
        # Both slots taken (the first Job is still at work, with a new pod): a third clone, of a site
        # nothing holds, waits and says so.
        apply(control_plane, namespace, clone_manifest("third", other.url, "other-login"))
        waiting = eventually(lambda: (c := get_json(control_plane, namespace, "wpc", "third"))
                             and (condition(c, "ContentCloned") or {}).get("reason") == "WaitingForCopySlot" and c,
                             timeout=120, what="the third clone to wait for a copy slot")
        assert waiting["status"]["phase"] == "Cloning"
        assert "in line" in condition(waiting, "ContentCloned")["message"]
        eventually(lambda: [pod for pod in running_pods(control_plane, namespace, "first-copy") if pod != killed],
                   timeout=120, what="a new pod of the first Job to copy")
        copies_in_jobs.restart()  # the copies go on without it
        time.sleep(2)
        assert get_json(control_plane, namespace, "job", "third-copy") is None
    finally:
        release(production)
    for name in ("first", "second", "third"):
        clone = wait_phase(control_plane, namespace, name, "Ready", "Failed")
        assert clone["status"]["phase"] == "Ready", (name, clone["status"])
    first, second = (get_json(control_plane, namespace, "job", name) for name in ("first-copy", "second-copy"))
    # The evicted pod's copy was done by another pod, no failure counted; the operator's restart cost no
    # attempt of either Job.
    (survivor,) = job_pods(control_plane, namespace, "first-copy")
    assert survivor["metadata"]["name"] != killed and first["status"]["succeeded"] == 1
    assert first["status"].get("failed", 0) == 0
    assert second["status"]["succeeded"] == 1 and second["status"].get("failed", 0) == 0


# --- SQLite clones: their copy Job writes the database file on the clone's own volume ------------------

def rest(base: str, path: str) -> Any:
    answer = httpx.get(base + path, timeout=30)
    assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:200]}"
    return answer.json()


def test_a_sqlite_clone_is_a_pod_without_a_database_server_that_serves_the_whole_site_and_leaves_nothing(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        make_site: SiteMaker) -> None:
    source = make_site(host=network.GATEWAY)
    mariadb.sql(ODD_TABLE.format(db=source.db_name))
    name = f"lite-{uuid.uuid4().hex[:6]}"
    apply(control_plane, namespace, credentials_secret("source-login", source.admin_user, source.admin_password),
          clone_manifest(name, source.url, database={"engine": "sqlite"}))
    control_plane.kubectl("wait", "-n", namespace, f"wpc/{name}", "--for=condition=Ready", "--timeout=240s")
    clone = get_json(control_plane, namespace, "wpc", name)
    assert clone is not None
    url = clone["status"]["url"]
    assert condition(clone, "DatabaseReady")["reason"] == "SqliteFile"  # type: ignore[index]
    assert clone["status"]["progress"]["sourceUrlsLeft"] == 0
    assert "wp_odd.kind: enum('small','large') is kept as text" in clone["status"]["progress"]["notCopied"]
    assert get_json(control_plane, namespace, "secret", f"{name}-db") is None
    assert name.replace("-", "_") not in mariadb.sql("SHOW DATABASES")

    # What a visitor and an editor see: posts (one in Japanese), pages, media, users, all at the clone's URL.
    for kind in ("posts", "pages", "media", "users"):
        theirs, ours = rest(source.url, f"/wp-json/wp/v2/{kind}?per_page=100"), rest(url, f"/wp-json/wp/v2/{kind}"
                                                                                           "?per_page=100")
        field = "name" if kind == "users" else "title"
        assert sorted(str(item[field]) for item in ours) == sorted(str(item[field]) for item in theirs) != [], kind
        assert all(item["link"].startswith(url) for item in ours), kind
    (upload,) = rest(url, "/wp-json/wp/v2/media?per_page=1")
    assert httpx.get(upload["source_url"], timeout=30).content == httpx.get(
        upload["source_url"].replace(url, source.url), timeout=30).content
    assert "日本語" in httpx.get(url, timeout=30).text and source.url not in httpx.get(url, timeout=30).text

    # The file itself: the serialized option rewritten, the table without a primary key byte for byte.
    folder = clone_wp_content(control_plane, namespace, name, "database")
    with sqlite3.connect(folder / DATABASE_FILE) as database:
        database.text_factory = bytes
        (settings,) = database.execute("SELECT option_value FROM wp_options WHERE option_name = "
                                       "'wpclone_seed_settings'").fetchone()
        odd = database.execute("SELECT * FROM wp_odd").fetchall()
    assert url.encode() in settings and source.url.encode() not in settings
    assert row_differences(mysql_rows(mariadb, source.db_name, "wp_odd"), odd, source.url, url) == []
    assert not (clone_wp_content(control_plane, namespace, name) / DATABASE_FILE).exists()

    admin = {key: base64.b64decode(value).decode() for key, value in
             get_json(control_plane, namespace, "secret", f"{name}-admin")["data"].items()}  # type: ignore[index]
    browser = httpx.Client(base_url=url, timeout=30)
    browser.get("/wp-login.php")
    browser.post("/wp-login.php", data={"log": admin["username"], "pwd": admin["password"], "testcookie": "1"})
    editor = browser.get("/wp-admin/post-new.php").text
    assert "wp-admin-bar" in editor

    # An editor's post on the clone (its WordPress writes it through the drop-in), restored into production
    # by a CloneRestore: its copy Job reads the clone's database file.
    nonce = re.search(r'wpApiSettings = \{[^;]*"nonce":"([0-9a-f]+)"', editor)
    assert nonce is not None
    made = browser.post("/wp-json/wp/v2/posts", headers={"X-WP-Nonce": nonce.group(1)},
                        json={"title": "Written on the SQLite clone", "status": "publish"})
    assert made.status_code == 201, made.text[:300]
    apply(control_plane, namespace, login_of(source),
          restore_manifest("push", source, source={"cloneRef": {"name": name}}, onConflict="Overwrite"))
    pushed = wait_restore(control_plane, namespace, "push", timeout=180)
    assert pushed["status"]["phase"] == "Completed", pushed["status"]
    assert "Written on the SQLite clone" in post_titles(source)
    assert pushed["status"]["backupId"]

    control_plane.kubectl("delete", "-n", namespace, "wpc", name, "--timeout=90s")
    # Everything of the clone's (the restore keeps its own record: its Job and outcome); a claim goes once no
    # pod has it, the finished restore's neither.
    mine = f"wpclone.dev/clone={name},app.kubernetes.io/instance={name}"
    for kind in ("pvc", "configmap", "secret", "deployment", "job", "pod"):
        eventually(lambda kind=kind: not (get_json(control_plane, namespace, kind, "-l", mine) or {}).get("items"),
                   timeout=90, what=f"no {kind} of the clone left")
    eventually(lambda: not folder.exists(), timeout=60, what="the database volume's folder removed")


def snapshot_objects(plane: cluster.ControlPlane, namespace: str) -> dict[str, list[str]]:
    """The namespace's snapshots and what they own (their volume claims and login digests), by kind."""
    found = {kind: [item["metadata"]["name"] for item in (get_json(plane, namespace, kind, *selector) or {})
                    .get("items", [])]
             for kind, selector in (("sourcesnapshots", ()), ("pvc", ("-l", "app.kubernetes.io/component=snapshot")),
                                    ("secret", ("-l", "app.kubernetes.io/component=snapshot")))}
    return {kind: names for kind, names in found.items() if names}


def test_clones_of_one_site_asked_at_once_read_it_once_and_its_snapshot_goes_at_its_time(
        control_plane: cluster.ControlPlane, namespace: str, make_site: SiteMaker) -> None:
    production = make_site(host=network.GATEWAY)
    count_exports(production)
    names = ["snap-a", "snap-b", "snap-c"]
    apply(control_plane, namespace, login_of(production),
          *(clone_manifest(name, production.url, "production-login", snapshot={"maxAgeMinutes": 30})
            for name in names))
    clones = {name: wait_phase(control_plane, namespace, name, "Ready", "Failed", timeout=300) for name in names}
    assert {name: clone["status"]["phase"] for name, clone in clones.items()} == dict.fromkeys(names, "Ready")
    assert exports(production) == 1  # one read of production for three clones

    (snapshot,) = get_json(control_plane, namespace, "sourcesnapshots")["items"]  # type: ignore[index]
    state = snapshot["status"]
    assert state["phase"] == "Ready" and condition(snapshot, "Ready")["status"] == "True"
    assert state["recordedFor"] in names and "ownerReferences" not in snapshot["metadata"]  # outlives its clone
    assert state["bytes"] > 0 and state["tables"] > 0 and state["checksums"]["wp_posts"]
    assert snapshot["spec"]["source"]["url"] == production.url
    uses = {}
    for name in names:
        job = get_json(control_plane, namespace, "job", f"{name}-copy")
        uses[name] = job["metadata"]["annotations"]["wpclone.dev/snapshot-use"]  # type: ignore[index]
        mounted = [volume.get("secret", {}).get("secretName") for volume in job["spec"]["template"]["spec"]["volumes"]]
        # A clone built from the snapshot never reads production: its Job has not even the login.
        assert ("production-login" in mounted) == (uses[name] == "record"), (name, mounted)
        assert not job_pods(control_plane, namespace, f"{name}-copy")  # they hold the snapshot's volume no longer
    assert sorted(uses.values()) == ["record", "replay", "replay"] and uses[state["recordedFor"]] == "record"
    # Each clone is production's site at its own address.
    titles = sorted(post_titles(production))
    for name, clone in clones.items():
        served = rest(clone["status"]["url"], "/wp-json/wp/v2/posts?per_page=100")
        assert sorted(post["title"]["rendered"] for post in served) == titles, name
        assert all(post["link"].startswith(clone["status"]["url"] + "/") for post in served), name
        assert condition(clone, "SourceUrlsReplaced")["reason"] == "NoneLeft"

    # The clones go; the snapshot stays until its time, then goes with its volume and login digest.
    control_plane.kubectl("delete", "-n", namespace, "wpc", *names, "--timeout=120s")
    assert set(snapshot_objects(control_plane, namespace)) == {"sourcesnapshots", "pvc", "secret"}
    control_plane.kubectl("patch", "-n", namespace, "sourcesnapshots", snapshot["metadata"]["name"],
                          "--subresource=status", "--type=merge",
                          "-p", json.dumps({"status": {"expiresAt": times.format_time(times.now())}}))
    eventually(lambda: not snapshot_objects(control_plane, namespace), timeout=120,
               what="the expired snapshot, its claim and its Secret gone")


def test_a_clone_deleted_while_it_records_a_snapshot_leaves_none_and_the_next_clone_records_anew(
        control_plane: cluster.ControlPlane, namespace: str, make_site: SiteMaker) -> None:
    production = make_site(host=network.GATEWAY)
    hold(production)
    apply(control_plane, namespace, login_of(production),
          clone_manifest("first", production.url, "production-login", snapshot={"maxAgeMinutes": 30}))
    eventually(lambda: held(production), timeout=180, what="the recording copy reading production")
    (recording,) = get_json(control_plane, namespace, "sourcesnapshots")["items"]  # type: ignore[index]
    assert recording["status"]["phase"] == "Recording" and recording["status"]["recordedFor"] == "first"
    control_plane.kubectl("delete", "-n", namespace, "wpc", "first", "--timeout=120s")
    release(production)
    eventually(lambda: not snapshot_objects(control_plane, namespace), timeout=120,
               what="the unfinished snapshot, its claim and its Secret gone with its clone")

    count_exports(production)
    apply(control_plane, namespace,
          clone_manifest("second", production.url, "production-login", snapshot={"maxAgeMinutes": 30}))
    clone = wait_phase(control_plane, namespace, "second", "Ready", "Failed", timeout=300)
    assert clone["status"]["phase"] == "Ready", clone["status"]
    (snapshot,) = get_json(control_plane, namespace, "sourcesnapshots")["items"]  # type: ignore[index]
    assert snapshot["status"]["phase"] == "Ready" and snapshot["status"]["recordedFor"] == "second"
    assert exports(production) == 1
    control_plane.kubectl("delete", "-n", namespace, "wpc", "second", "--timeout=120s")
    control_plane.kubectl("delete", "-n", namespace, "sourcesnapshots", "--all", "--timeout=120s")
    eventually(lambda: not snapshot_objects(control_plane, namespace), timeout=120, what="the snapshot gone")

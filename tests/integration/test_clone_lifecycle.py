"""A WordPressClone's life on the real stack: provision, status, TTL, expiry policies, cleanup."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from testenv import cluster
from testenv.ingress import IngressProcess
from testenv.mariadb import MariaDB
from testenv.operator_process import OperatorProcess, operator_env
from testenv.wordpress import WordPressSite
from tests.helpers import (
    apply,
    bring_ttl_forward,
    clone_manifest,
    condition,
    credentials_secret,
    eventually,
    get_json,
    handled,
)
from tests.integration import transfer_fixtures
from tests.integration.transfer_fixtures import SiteMaker, restart
from tests.security.test_migrator_sessions import REQUEST_LOG
from wpclone_common.resources import WordPressClone
from wpclone_operator import children

pytestmark = pytest.mark.integration
make_site = transfer_fixtures.make_site


@pytest.fixture
def site(wordpress_sites: list[WordPressSite]) -> WordPressSite:
    return wordpress_sites[0]


def login(site: WordPressSite, name: str = "source-login") -> dict:
    return credentials_secret(name, site.admin_user, site.admin_password)


def database_exists(mariadb: MariaDB, name_prefix: str) -> list[str]:
    rows = mariadb.sql("SHOW DATABASES")
    return [row for row in rows.splitlines() if row.startswith(name_prefix)]


def resumed(operator: OperatorProcess, namespace: str, name: str) -> bool:
    for line in operator.log_path.read_text().splitlines()[::-1]:
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("k8s", {}).get("name") == name and entry.get("k8s", {}).get("namespace") == namespace \
                and entry.get("message") == "Handler 'resume' succeeded.":
            return True
    return False


def wait_ready(plane: cluster.ControlPlane, namespace: str, name: str) -> dict:
    plane.kubectl("wait", "-n", namespace, f"wpc/{name}", "--for=condition=Ready", "--timeout=90s")
    clone = get_json(plane, namespace, "wpc", name)
    assert clone is not None
    return clone


@dataclass(frozen=True)
class Shop:
    """A Ready clone named shared-shop of the sample site, in a namespace of its own: the tests that only look at
    a clone share it (each would otherwise wait for a clone of its own)."""

    namespace: str
    clone: dict


@pytest.fixture(scope="module")
def shop(control_plane: cluster.ControlPlane, operator: OperatorProcess, kube_client: ApiClient,
         wordpress_sites: list[WordPressSite]) -> Iterator[Shop]:
    namespace = f"t-shared-shop-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": namespace}})
    apply(control_plane, namespace, login(wordpress_sites[0]), clone_manifest("shared-shop", wordpress_sites[0].url))
    yield Shop(namespace, wait_ready(control_plane, namespace, "shared-shop"))
    core.delete_namespace(namespace)


def test_applied_clone_gets_database_children_and_becomes_ready(
        control_plane: cluster.ControlPlane, mariadb: MariaDB, ingress: IngressProcess, shop: Shop) -> None:
    namespace, clone = shop.namespace, shop.clone

    status = clone["status"]
    assert status["phase"] == "Ready"
    assert status["url"] == f"http://shared-shop.localhost:{ingress.port}"
    assert status["adminSecretRef"] == {"name": "shared-shop-admin"}
    assert status["observedGeneration"] == clone["metadata"]["generation"]
    for kind in ("Ready", "DatabaseReady", "ObjectsReady", "WorkloadReady"):
        found = condition(clone, kind)
        assert found and found["status"] == "True", found
        assert found["observedGeneration"] == clone["metadata"]["generation"]

    prefix = f"wpc_{namespace.replace('-', '_')[:20]}_shared_shop_"
    assert len(database_exists(mariadb, prefix)) == 1
    uid = clone["metadata"]["uid"]
    for kind, name in [("secret", "shared-shop-db"), ("secret", "shared-shop-admin"),
                       ("configmap", "shared-shop-mu-plugins"), ("deployment", "shared-shop"),
                       ("service", "shared-shop"), ("ingress", "shared-shop")]:
        child = get_json(control_plane, namespace, kind, name)
        assert child is not None, f"{kind}/{name} missing"
        assert [ref["uid"] for ref in child["metadata"]["ownerReferences"]] == [uid]
    pods = get_json(control_plane, namespace, "pods", "-l", "wpclone.dev/clone=shared-shop")
    assert pods and pods["items"][0]["status"]["phase"] == "Running"

    table = control_plane.kubectl("get", "wpc", "-n", namespace)
    header = table.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "URL", "EXPIRES", "AGE"]
    assert "Ready" in table and status["url"] in table


def test_the_clone_database_user_can_log_in_with_the_secret_password(
        control_plane: cluster.ControlPlane, mariadb: MariaDB, shop: Shop) -> None:
    secret = get_json(control_plane, shop.namespace, "secret", "shared-shop-db")
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    result = subprocess.run(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(mariadb.port),
                             "-u", data["username"], f"-p{data['password']}", data["database"], "-e", "SELECT 1"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_deleting_a_clone_drops_its_database_and_user(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        site: WordPressSite) -> None:
    apply(control_plane, namespace, login(site), clone_manifest("gone", site.url))
    wait_ready(control_plane, namespace, "gone")
    prefix = f"wpc_{namespace.replace('-', '_')[:20]}_gone_"
    user = base64.b64decode(get_json(control_plane, namespace, "secret", "gone-db")["data"]["username"]).decode()

    def user_exists() -> bool:
        return mariadb.sql(f"SELECT COUNT(*) FROM mysql.user WHERE User = '{user}'") == "1"
    assert database_exists(mariadb, prefix) and user_exists()
    control_plane.kubectl("delete", "-n", namespace, "wpc", "gone", "--timeout=60s")
    assert not database_exists(mariadb, prefix)
    assert not user_exists()
    assert get_json(control_plane, namespace, "wpc", "gone") is None


def test_fifty_clones_deleted_at_once_are_all_gone_with_their_databases_and_users_at_the_first_try(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        site: WordPressSite) -> None:
    """Provisioned (database, user, Secrets, Deployment, Service, Ingress), with pods that ask for more CPU
    than any node has: all of a clone's cleanup runs, and no 50 containers start on the test node."""
    names = [f"many-{index}" for index in range(50)]
    unschedulable = {"requests": {"cpu": "64"}}
    apply(control_plane, namespace, login(site), *(clone_manifest(name, site.url, resources=unschedulable)
                                                   for name in names))

    def provisioned() -> list[dict]:
        clones = (get_json(control_plane, namespace, "wpc") or {}).get("items", [])
        done = [clone for clone in clones if clone["metadata"]["name"] in names
                and (condition(clone, "DatabaseReady") or {}).get("status") == "True"]
        return done if len(done) == len(names) else []
    clones = eventually(provisioned, timeout=180, what="50 clones with their databases and users")
    users = sorted(children.database_user(WordPressClone.from_body(clone)) for clone in clones)
    prefix = f"wpc_{namespace.replace('-', '_')[:20]}_many_"
    listed = "', '".join(users)

    def users_left() -> int:
        return int(mariadb.sql(f"SELECT COUNT(*) FROM mysql.user WHERE User IN ('{listed}')"))
    assert len(database_exists(mariadb, prefix)) == 50 and users_left() == 50

    control_plane.kubectl("delete", "-n", namespace, "wpc", *names, "--wait=false")
    eventually(lambda: not any(clone["metadata"]["name"] in names for clone in
                               (get_json(control_plane, namespace, "wpc") or {}).get("items", [])),
               timeout=120, what="all 50 clones to be gone")
    assert database_exists(mariadb, prefix) == [] and users_left() == 0
    retried = [entry["message"] for line in operator.log_path.read_text().splitlines() if line.startswith("{")
               and (entry := json.loads(line)).get("k8s", {}).get("name") in names
               and entry.get("message", "").startswith("Handler 'cleanup'") and "succeeded" not in entry["message"]
               and "invoked" not in entry["message"]]
    assert retried == []


def test_deletion_never_sticks_when_the_database_is_already_gone(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        site: WordPressSite) -> None:
    apply(control_plane, namespace, login(site), clone_manifest("orphan", site.url))
    wait_ready(control_plane, namespace, "orphan")
    (database,) = database_exists(mariadb, f"wpc_{namespace.replace('-', '_')[:20]}_orphan_")
    mariadb.sql(f"DROP DATABASE `{database}`")
    control_plane.kubectl("delete", "-n", namespace, "wpc", "orphan", "--timeout=60s")
    assert get_json(control_plane, namespace, "wpc", "orphan") is None


def test_missing_source_secret_is_reported_then_recovered(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str, site: WordPressSite) -> None:
    apply(control_plane, namespace, clone_manifest("waiting", site.url, secret="late-login"))
    clone = eventually(lambda: (c := get_json(control_plane, namespace, "wpc", "waiting"))
                       and (condition(c, "Ready") or {}).get("reason") == "CredentialsMissing" and c,
                       what="the CredentialsMissing reason")
    assert "late-login" in condition(clone, "Ready")["message"]
    apply(control_plane, namespace, login(site, "late-login"))
    wait_ready(control_plane, namespace, "waiting")


def test_ttl_extension_moves_expiry_and_a_restart_keeps_it(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str, site: WordPressSite) -> None:
    apply(control_plane, namespace, login(site), clone_manifest("ttl", site.url, ttlMinutes=30))
    clone = wait_ready(control_plane, namespace, "ttl")
    created = datetime.datetime.fromisoformat(clone["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    expires = clone["status"]["expiresAt"]
    assert datetime.datetime.fromisoformat(expires.replace("Z", "+00:00")) - created == datetime.timedelta(minutes=30)

    operator.restart()
    # After a restart the operator resumes every clone; the expiry must not move.
    eventually(lambda: resumed(operator, namespace, "ttl"), what="the resume handler to run for the clone")
    clone = wait_ready(control_plane, namespace, "ttl")
    assert clone["status"]["expiresAt"] == expires

    control_plane.kubectl("patch", "-n", namespace, "wpc", "ttl", "--type=merge", "-p",
                          json.dumps({"spec": {"ttlMinutes": 90}}))
    extended = eventually(lambda: (c := get_json(control_plane, namespace, "wpc", "ttl"))
                          and c["status"]["expiresAt"] != expires and c, what="the extended expiry")
    moved = datetime.datetime.fromisoformat(extended["status"]["expiresAt"].replace("Z", "+00:00")) - created
    assert moved == datetime.timedelta(minutes=90)
    assert extended["status"]["observedGeneration"] == extended["metadata"]["generation"]


def test_a_ttl_that_fell_due_while_the_operator_was_down_expires_under_both_policies(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        site: WordPressSite) -> None:
    apply(control_plane, namespace, login(site),
          clone_manifest("short-delete", site.url, ttlMinutes=1, expiryPolicy="Delete"),
          clone_manifest("short-retain", site.url, ttlMinutes=1, expiryPolicy="Retain"))
    wait_ready(control_plane, namespace, "short-delete")
    wait_ready(control_plane, namespace, "short-retain")
    prefix = f"wpc_{namespace.replace('-', '_')[:20]}_short_"
    assert len(database_exists(mariadb, prefix)) == 2
    # Both expiries fall due while no operator runs; the operator carries them out when it returns. (A
    # whole minute's TTL running out by itself: the chart's install test waits for that.)
    operator.stop()
    try:
        for name in ("short-delete", "short-retain"):
            bring_ttl_forward(control_plane, namespace, name)
        time.sleep(2)
        assert get_json(control_plane, namespace, "wpc", "short-delete") is not None  # nobody acted meanwhile
    finally:
        operator.start()

    eventually(lambda: get_json(control_plane, namespace, "wpc", "short-delete") is None, timeout=120,
               what="the Delete-policy clone to be deleted", interval=1)
    retained = eventually(lambda: (c := get_json(control_plane, namespace, "wpc", "short-retain"))
                          and c["status"].get("phase") == "Expired" and c, timeout=60,
                          what="the Retain-policy clone to be Expired", interval=1)
    assert condition(retained, "Ready")["status"] == "False"
    assert condition(retained, "Ready")["reason"] == "Expired"
    assert "url" not in retained["status"]
    assert database_exists(mariadb, prefix) == []
    for kind, name in [("secret", "short-retain-db"), ("secret", "short-retain-admin"),
                       ("configmap", "short-retain-mu-plugins"), ("deployment", "short-retain"),
                       ("service", "short-retain"), ("ingress", "short-retain")]:
        eventually(lambda kind=kind, name=name: get_json(control_plane, namespace, kind, name) is None,
                   what=f"{kind}/{name} to be gone")
    # Re-applying the manifest (as GitOps does, here with an edited TTL, so that the operator has a change
    # to handle) must not bring an expired clone back: checked once the operator has handled it.
    apply(control_plane, namespace, clone_manifest("short-retain", site.url, ttlMinutes=2, expiryPolicy="Retain"))
    still = eventually(lambda: (c := get_json(control_plane, namespace, "wpc", "short-retain"))
                       and c["spec"]["ttlMinutes"] == 2 and handled(c) and c, timeout=60,
                       what="the operator to handle the re-applied clone")
    assert still["status"]["phase"] == "Expired" and "url" not in still["status"]
    assert get_json(control_plane, namespace, "deployment", "short-retain") is None
    assert database_exists(mariadb, prefix) == []


def test_no_password_reaches_the_resource_events_or_log(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, site: WordPressSite,
        shop: Shop) -> None:
    namespace = shop.namespace
    generated = [base64.b64decode(value).decode() for name in ("shared-shop-db", "shared-shop-admin")
                 for key, value in get_json(control_plane, namespace, "secret", name)["data"].items()
                 if key in ("password", "migrator-token")]
    visible = json.dumps(get_json(control_plane, namespace, "wpc", "shared-shop")) + \
        control_plane.kubectl("get", "events", "-n", namespace, "-o", "json") + \
        operator.log_path.read_text()
    for secret in [site.admin_password, mariadb.admin_password, *generated]:
        assert secret not in visible


def test_clone_serves_a_copy_of_the_source_with_its_own_admin_login(
        control_plane: cluster.ControlPlane, site: WordPressSite, shop: Shop) -> None:
    """The pod's spec alone points WordPress at the clone's database, which now holds the source's
    content, at the clone's URL."""
    namespace, clone = shop.namespace, shop.clone
    url = clone["status"]["url"]
    assert condition(clone, "ContentCloned")["status"] == "True"
    assert clone["status"]["progress"]["rows"] > 0 and clone["status"]["progress"]["files"] > 0
    assert condition(clone, "SourceUrlsReplaced")["reason"] == "NoneLeft"
    assert clone["status"]["progress"]["sourceUrlsLeft"] == 0 and clone["status"]["progress"]["dropInsLeft"] == []

    source_posts = httpx.get(f"{site.url}/wp-json/wp/v2/posts?per_page=50", timeout=30).json()
    clone_posts = httpx.get(f"{url}/wp-json/wp/v2/posts?per_page=50", timeout=30).json()
    assert sorted(post["title"]["rendered"] for post in clone_posts) == \
        sorted(post["title"]["rendered"] for post in source_posts)
    assert all(post["link"].startswith(url) for post in clone_posts)
    home = httpx.get(url, timeout=30)
    assert site.url not in home.text
    assert home.headers.get("x-robots-tag", "").startswith("noindex")

    admin = {key: base64.b64decode(value).decode()
             for key, value in get_json(control_plane, namespace, "secret", "shared-shop-admin")["data"].items()}
    assert admin["username"] == site.admin_user and admin["password"] != site.admin_password
    browser = httpx.Client(base_url=url, timeout=30)
    browser.get("/wp-login.php")
    browser.post("/wp-login.php", data={"log": admin["username"], "pwd": admin["password"], "testcookie": "1"})
    dashboard = browser.get("/wp-admin/")
    assert dashboard.status_code == 200 and "wp-admin-bar" in dashboard.text
    checksums = get_json(control_plane, namespace, "configmap", "shared-shop-source-checksums")
    assert any(table.endswith("posts") for table in checksums["data"])


OwnOperator = Callable[..., OperatorProcess]


@pytest.fixture
def own_operator(control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB,
                 ingress: IngressProcess, namespace: str, tmp_path: Path) -> Iterator[OwnOperator]:
    """Starts an operator of the test's own, watching only its namespace, with settings of its own (so its
    metrics count only the test's clones); the session's operator pauses meanwhile: one operator per clone."""
    started: list[OperatorProcess] = []

    def start(**settings: str) -> OperatorProcess:
        env = operator_env(control_plane, mariadb, ingress, WPCLONE_NAMESPACES=json.dumps([namespace]), **settings)
        own = OperatorProcess(env=env, log_path=tmp_path / "operator.log", name="wpclone-operator-own")
        operator.stop()
        started.append(own)
        own.start()
        return own
    yield start
    for own in started:
        own.stop()
    operator.start()


@pytest.fixture
def other_namespace(control_plane: cluster.ControlPlane, namespace: str) -> Iterator[str]:
    other = f"{namespace[:50]}-other"
    control_plane.kubectl("create", "namespace", other)
    yield other
    control_plane.kubectl("delete", "namespace", other, "--wait=false")


def test_metrics_count_clones_by_phase_copies_and_failures_of_the_watched_namespace_only(
        control_plane: cluster.ControlPlane, own_operator: OwnOperator, namespace: str, other_namespace: str,
        site: WordPressSite) -> None:
    watching = own_operator()
    apply(control_plane, namespace, login(site), clone_manifest("measured", site.url),
          credentials_secret("wrong-login", site.admin_user, "not-the-password"),
          clone_manifest("denied", site.url, secret="wrong-login"))
    apply(control_plane, other_namespace, login(site), clone_manifest("elsewhere", site.url))
    copied = wait_ready(control_plane, namespace, "measured")
    eventually(lambda: (c := get_json(control_plane, namespace, "wpc", "denied"))
               and c.get("status", {}).get("phase") == "Failed" and handled(c), timeout=90,
               what="the clone with a wrong login to fail")

    text = httpx.get(f"http://127.0.0.1:{watching.metrics_port}/metrics", timeout=10).text
    series = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if line.startswith("wpclone_")}
    phases = {key.split('"')[1]: value for key, value in series.items() if key.startswith("wpclone_clones{")}
    assert phases == {"Pending": 0, "Provisioning": 0, "Cloning": 0, "Ready": 1, "Failed": 1, "Expiring": 0,
                      "Expired": 0}
    assert series["wpclone_queue_depth"] == 0
    assert series["wpclone_provisioning_seconds_count"] == 1
    assert series['wpclone_copy_seconds_count{kind="clone"}'] == 1
    assert series['wpclone_copy_bytes_total{kind="clone"}'] == copied["status"]["progress"]["bytes"] > 0
    failures = {key: value for key, value in series.items() if key.startswith("wpclone_failures_total")}
    assert failures == {'wpclone_failures_total{reason="LoginFailed"}': 1}
    # A clone in a namespace the operator does not watch is not its business (nor counted above).
    ignored = get_json(control_plane, other_namespace, "wpc", "elsewhere")
    assert not ignored.get("status") and not ignored["metadata"].get("finalizers")
    control_plane.kubectl("delete", "-n", other_namespace, "wpc", "elsewhere")  # before the session's operator returns


def test_copies_beyond_the_concurrency_setting_wait_their_turn(
        control_plane: cluster.ControlPlane, own_operator: OwnOperator, namespace: str, make_site: SiteMaker) -> None:
    source = make_site()
    (source.docroot / "wp-content" / "mu-plugins" / "log-requests.php").write_text(REQUEST_LOG)
    own_operator(WPCLONE_CONCURRENCY="1")
    apply(control_plane, namespace, login(source), clone_manifest("first", source.url),
          clone_manifest("second", source.url))
    wait_ready(control_plane, namespace, "first")
    wait_ready(control_plane, namespace, "second")
    routes = [json.loads(line)["route"] for line in
              (source.docroot / "wp-content" / "migrator-requests.log").read_text().split()]
    # One copy at a time: no job opens a session on the source while another's is open (a copy tried
    # again, when the clone's pod was not answering yet, is a job of its own), and both copies ran.
    open_sessions, most = 0, 0
    for route in routes:
        open_sessions += {"session": 1, "session/close": -1}.get(route, 0)
        most = max(most, open_sessions)
    assert most == 1 and open_sessions == 0, routes
    assert routes.count("export/files") == 2, routes


def test_a_source_that_is_down_for_a_while_is_retried_until_it_returns(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str, make_site: SiteMaker) -> None:
    source = make_site()
    source.stop()
    try:
        apply(control_plane, namespace, login(source), clone_manifest("patient", source.url))
        waiting = eventually(lambda: (cause := condition(get_json(control_plane, namespace, "wpc", "patient"),
                                                         "ContentCloned")) and cause["reason"] == "Unreachable"
                             and cause, timeout=120, what="the copy to find the source unreachable")
        assert waiting["status"] == "False" and source.url in waiting["message"]
    finally:
        restart(source)
    clone = wait_ready(control_plane, namespace, "patient")
    assert condition(clone, "ContentCloned")["status"] == "True"  # type: ignore[index]


def test_a_source_down_for_longer_than_the_retry_window_gives_up(
        control_plane: cluster.ControlPlane, own_operator: OwnOperator, namespace: str, make_site: SiteMaker) -> None:
    source = make_site()
    source.stop()
    own_operator(WPCLONE_COPY_RETRY_SECONDS="3")
    apply(control_plane, namespace, login(source), clone_manifest("hopeless", source.url))
    failed = eventually(lambda: (c := get_json(control_plane, namespace, "wpc", "hopeless"))
                        and c.get("status", {}).get("phase") == "Failed" and c, timeout=120,
                        what="the clone to give up")
    ready = condition(failed, "Ready")
    assert ready is not None and ready["reason"] == "GaveUp"
    assert "still failing after 3s" in ready["message"] and source.url in ready["message"]


def test_a_wrong_source_password_fails_once_with_a_clear_reason_and_the_failed_clone_still_expires(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        site: WordPressSite) -> None:
    apply(control_plane, namespace, credentials_secret("wrong-login", site.admin_user, "not-the-password"),
          clone_manifest("denied", site.url, secret="wrong-login", expiryPolicy="Retain"))
    failed = eventually(lambda: (c := get_json(control_plane, namespace, "wpc", "denied"))
                        and c.get("status", {}).get("phase") == "Failed" and c, timeout=90, what="the clone to fail")
    ready = condition(failed, "Ready")
    assert ready["reason"] == "LoginFailed"
    assert f"login failed for {site.admin_user}@{site.url}" in ready["message"]
    assert "not-the-password" not in json.dumps(failed)
    # A permanent failure is not retried (no storm of logins against production): once the operator
    # has finished with the clone (no handler pending or due for a retry), one login was tried.
    eventually(lambda: handled(get_json(control_plane, namespace, "wpc", "denied")), timeout=60,
               what="the operator to finish with the failed clone")
    events = json.loads(control_plane.kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
    assert sum(event.get("count") or 1 for event in events if event["reason"] == "LoginFailed") == 1
    # Its database and pod were made before the login failed: they go at the TTL like any clone's.
    database = children.database_name(WordPressClone.from_body(failed))
    assert database_exists(mariadb, database) == [database]
    bring_ttl_forward(control_plane, namespace, "denied")
    expired = eventually(lambda: (c := get_json(control_plane, namespace, "wpc", "denied"))["status"]["phase"]
                         == "Expired" and c, timeout=60, interval=1, what="the failed clone to expire")
    assert condition(expired, "Ready")["reason"] == "Expired"
    assert database_exists(mariadb, database) == []
    assert get_json(control_plane, namespace, "deployment", "denied") is None


@pytest.fixture
def silent_site() -> Iterator[str]:
    """A source that accepts connections and never answers, as a hung production server does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def test_a_stuck_copy_does_not_hold_back_the_ttl(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str, silent_site: str) -> None:
    apply(control_plane, namespace, credentials_secret("source-login"),
          clone_manifest("stuck", silent_site, expiryPolicy="Delete"))
    eventually(lambda: ((get_json(control_plane, namespace, "wpc", "stuck") or {}).get("status") or {})
               .get("phase") == "Cloning", what="the copy to start", timeout=60)
    # The source never answers (the copy would wait for its 120 s read timeout); the TTL ends now.
    bring_ttl_forward(control_plane, namespace, "stuck")
    eventually(lambda: get_json(control_plane, namespace, "wpc", "stuck") is None, timeout=60, interval=1,
               what="the clone to expire while its copy is stuck")

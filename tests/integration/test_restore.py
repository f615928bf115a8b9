"""CloneRestore on the real stack: a clone's changes pushed back to production, safely."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from testenv import cluster
from testenv.api_process import ApiProcess
from testenv.mariadb import MariaDB
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import apply, clone_manifest, clone_wp_content, credentials_secret, eventually, get_json
from tests.integration import transfer_fixtures
from tests.integration.transfer_fixtures import SiteMaker, backup_store, leftovers, restart, snapshot
from wpclone_common import times

pytestmark = pytest.mark.integration
make_site = transfer_fixtures.make_site


def restore_manifest(name: str, target: WordPressSite, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "wpclone.dev/v1alpha1", "kind": "CloneRestore", "metadata": {"name": name},
            "spec": {"target": {"url": target.url, "credentialsSecretRef": {"name": "production-login"}}, **spec}}


def wait_restore(plane: cluster.ControlPlane, namespace: str, name: str, timeout: float = 120) -> dict[str, Any]:
    return eventually(lambda: (r := get_json(plane, namespace, "wpcr", name))
                      and (r.get("status") or {}).get("phase") in ("Completed", "Failed", "RolledBack") and r,
                      timeout=timeout, what=f"restore {name} to finish", interval=0.5)


def clone_of(plane: cluster.ControlPlane, namespace: str, production: WordPressSite) -> str:
    """A Ready clone of production; its name is unique, as its host name {name}.localhost must be."""
    name = f"stage-{uuid.uuid4().hex[:6]}"
    apply(plane, namespace, credentials_secret("production-login", production.admin_user, production.admin_password),
          clone_manifest(name, production.url, secret="production-login"))
    plane.kubectl("wait", "-n", namespace, f"wpc/{name}", "--for=condition=Ready", "--timeout=120s")
    return name




def clone_database(plane: cluster.ControlPlane, namespace: str, name: str) -> str:
    secret = get_json(plane, namespace, "secret", f"{name}-db")
    return base64.b64decode(secret["data"]["database"]).decode()


# Each part of a site a user changes on a staging copy, as the file it leaves in wp-content.
CLONE_FILES = {"uploads": "uploads/from-the-clone.txt", "themes": "themes/from-the-clone/style.css",
               "plugins": "plugins/from-the-clone/from-the-clone.php",
               "content": "languages/from-the-clone-fr_FR.l10n.php"}


def change_the_clone(mariadb: MariaDB, database: str, wp_content: Path) -> None:
    """What a user does on a staging copy: a new post, an edited option, a new media file, theme and plugin."""
    mariadb.sql(f"""USE `{database}`;
        INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt,
            post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered,
            post_type, guid)
        VALUES (1, NOW(), UTC_TIMESTAMP(), '<p>Written on the clone</p>', 'Made on the clone', '', 'publish',
            'made-on-the-clone', '', '', NOW(), UTC_TIMESTAMP(), '', 'post', '');
        UPDATE wp_options SET option_value = 'Tagline from the clone' WHERE option_name = 'blogdescription';""")
    note = wp_content / "uploads" / "from-the-clone.txt"
    note.write_bytes(b"media made on the clone\n")
    for part in ("themes", "plugins", "content"):
        (wp_content / CLONE_FILES[part]).parent.mkdir(exist_ok=True)
        (wp_content / CLONE_FILES[part]).write_text(f"/* {part} made on the clone */\n")


def changed_clone_of(plane: cluster.ControlPlane, mariadb: MariaDB, namespace: str,
                     production: WordPressSite) -> str:
    """A Ready clone of production with a user's changes on it; its name."""
    stage = clone_of(plane, namespace, production)
    change_the_clone(mariadb, clone_database(plane, namespace, stage), clone_wp_content(plane, namespace, stage))
    return stage


class Staged(NamedTuple):
    """A fresh production and, in a namespace of its own (with production's login as production-login),
    a Ready clone of it named `stage` with a user's changes on it."""

    production: WordPressSite
    namespace: str
    stage: str


STAGED_AT_ONCE = 5  # the tests below that take one


@pytest.fixture(scope="module")
def staged(control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB,
           kube_client: ApiClient, make_site: SiteMaker) -> Iterator[Callable[[], Staged]]:
    """Hands out Staged clones: the first call makes STAGED_AT_ONCE side by side (their pods start and
    copy together), so each test waits for its restore, not for a clone of its own in turn."""
    core, made, ready = client.CoreV1Api(kube_client), [], []

    def start() -> tuple[WordPressSite, str, str]:
        production, namespace = make_site(), f"t-staged-{uuid.uuid4().hex[:8]}"
        core.create_namespace({"metadata": {"name": namespace}})
        made.append(namespace)
        stage = f"stage-{uuid.uuid4().hex[:6]}"
        apply(control_plane, namespace,
              credentials_secret("production-login", production.admin_user, production.admin_password),
              clone_manifest(stage, production.url, secret="production-login"))
        return production, namespace, stage

    def take() -> Staged:
        if not ready:
            for production, namespace, stage in [start() for _ in range(STAGED_AT_ONCE)]:
                control_plane.kubectl("wait", "-n", namespace, f"wpc/{stage}", "--for=condition=Ready",
                                      "--timeout=180s")
                change_the_clone(mariadb, clone_database(control_plane, namespace, stage),
                                 clone_wp_content(control_plane, namespace, stage))
                ready.append(Staged(production, namespace, stage))
        return ready.pop()
    yield take
    for namespace in made:
        core.delete_namespace(namespace)


def option(mariadb: MariaDB, site: WordPressSite, name: str) -> str:
    return mariadb.sql(f"SELECT option_value FROM `{site.db_name}`.wp_options WHERE option_name = '{name}'")


def post_titles(site: WordPressSite) -> list[str]:
    return [post["title"]["rendered"] for post in httpx.get(f"{site.url}/wp-json/wp/v2/posts?per_page=100",
                                                            timeout=30).json()]


def test_clone_changes_are_restored_to_production_with_a_backup(
        control_plane: cluster.ControlPlane, operator: OperatorProcess,
        mariadb: MariaDB, namespace: str, make_site: SiteMaker) -> None:
    production = make_site(migrator=False)  # the migrator is installed with the admin login when missing
    stage = changed_clone_of(control_plane, mariadb, namespace, production)
    before = {name: option(mariadb, production, name) for name in ("siteurl", "home", "blog_public")}
    replaced = snapshot(mariadb, production)

    apply(control_plane, namespace, restore_manifest("push", production, source={"cloneRef": {"name": stage}}))
    done = wait_restore(control_plane, namespace, "push")

    assert done["status"]["phase"] == "Completed", done["status"]
    assert done["status"]["backupId"]
    assert done["status"]["counts"]["rows"] > 0 and done["status"]["counts"]["files"] > 0
    assert "Made on the clone" in post_titles(production)
    post = next(p for p in httpx.get(f"{production.url}/wp-json/wp/v2/posts?slug=made-on-the-clone",
                                     timeout=30).json())
    assert post["link"].startswith(production.url)
    assert option(mariadb, production, "blogdescription") == "Tagline from the clone"
    media = production.docroot / "wp-content" / "uploads" / "from-the-clone.txt"
    assert media.read_bytes() == b"media made on the clone\n"
    assert {name: option(mariadb, production, name) for name in before} == before
    assert "localhost" not in mariadb.sql(f"SELECT GROUP_CONCAT(guid) FROM `{production.db_name}`.wp_posts")
    # The backup holds what the restore replaced: production's tables and files as they were.
    backup = done["status"]["backupId"]
    record = json.loads((production.docroot / "wp-content" / "wpclone-migrator" / "backups" / f"{backup}.json")
                        .read_text())
    kept_tables = {name: mariadb.sql(f"CHECKSUM TABLE `{production.db_name}`.`{kept}` EXTENDED").split("\t")[1]
                   for name, kept in record["tables"]}
    # (the options also hold the migrator, installed again for the restore: compared by their content)
    assert {name: digest for name, digest in kept_tables.items() if name != "wp_options"} == \
        {name: digest for name, digest in replaced.tables.items() if name != "wp_options"}
    kept_options = dict(record["tables"])["wp_options"]
    assert mariadb.sql(f"SELECT option_value FROM `{production.db_name}`.`{kept_options}` "
                       "WHERE option_name = 'blogdescription'") != "Tagline from the clone"
    for root in ("uploads", "themes", "plugins"):
        kept = Path(record["folders"][root]["kept"])
        assert kept.is_dir() and production.docroot not in kept.parents, kept
        assert file_hashes(kept) == {path.removeprefix(f"{root}/"): digest for path, digest in replaced.files.items()
                                     if path.startswith(f"{root}/") and digest not in ("folder", "link")}


def test_rollback_returns_production_to_its_pre_restore_state(
        control_plane: cluster.ControlPlane, operator: OperatorProcess,
        mariadb: MariaDB, staged: Callable[[], Staged]) -> None:
    production, namespace, stage = staged()
    before = snapshot(mariadb, production)
    apply(control_plane, namespace, restore_manifest("push", production, source={"cloneRef": {"name": stage}}))
    backup = wait_restore(control_plane, namespace, "push")["status"]["backupId"]
    assert snapshot(mariadb, production) != before

    apply(control_plane, namespace, restore_manifest("undo", production, rollbackTo=backup))
    undone = wait_restore(control_plane, namespace, "undo")
    assert undone["status"]["phase"] == "RolledBack", undone["status"]
    after = snapshot(mariadb, production)
    assert after.files == before.files
    assert after.tables == before.tables


def test_production_changed_since_the_clone_refuses_the_restore(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB,
        staged: Callable[[], Staged]) -> None:
    production, namespace, stage = staged()
    mariadb.sql(f"UPDATE `{production.db_name}`.wp_posts SET post_title = 'Edited in production' WHERE ID = 1")
    before = snapshot(mariadb, production)

    apply(control_plane, namespace, restore_manifest("push", production, source={"cloneRef": {"name": stage}}))
    refused = wait_restore(control_plane, namespace, "push")
    assert refused["status"]["phase"] == "Failed"
    assert refused["status"]["conditions"][0]["reason"] == "Conflict"
    assert any(line.startswith("wp_posts:") for line in refused["status"]["conflicts"]), refused["status"]
    assert snapshot(mariadb, production) == before


def test_overwrite_restores_over_a_conflict_and_says_what_it_overwrote(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB,
        staged: Callable[[], Staged]) -> None:
    production, namespace, stage = staged()
    mariadb.sql(f"UPDATE `{production.db_name}`.wp_posts SET post_title = 'Edited in production' WHERE ID = 1")

    apply(control_plane, namespace, restore_manifest("push", production, source={"cloneRef": {"name": stage}},
                                                     onConflict="Overwrite"))
    done = wait_restore(control_plane, namespace, "push")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert any(line.startswith("wp_posts:") for line in done["status"]["conflicts"]), done["status"]
    titles = post_titles(production)
    assert "Made on the clone" in titles and "Edited in production" not in titles  # as Overwrite promises
    assert done["status"]["backupId"]  # what production had is kept for a rollback


def test_a_restore_without_a_backup_keeps_none(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB,
        staged: Callable[[], Staged]) -> None:
    production, namespace, stage = staged()
    apply(control_plane, namespace, restore_manifest("push", production, source={"cloneRef": {"name": stage}},
                                                     backup=False))
    done = wait_restore(control_plane, namespace, "push")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "Made on the clone" in post_titles(production)
    assert not done["status"].get("backupId")
    assert mariadb.sql(f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{production.db_name}'"
                       " AND TABLE_NAME LIKE 'wpcb%'") == "0"
    assert not list((production.docroot / "wp-content" / "wpclone-migrator" / "backups").glob("*.json"))
    assert not backup_store(production).exists() or not list(backup_store(production).iterdir())


def test_a_rollback_to_an_unknown_backup_fails_and_changes_nothing(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        make_site: SiteMaker) -> None:
    production = make_site()
    apply(control_plane, namespace,
          credentials_secret("production-login", production.admin_user, production.admin_password),
          restore_manifest("undo", production, rollbackTo="0123456789ab"))
    before = snapshot(mariadb, production)
    refused = wait_restore(control_plane, namespace, "undo")
    assert refused["status"]["phase"] == "Failed"
    assert refused["status"]["conditions"][0]["reason"] == "UnknownBackup"
    assert "no backup 0123456789ab" in refused["status"]["message"]
    assert snapshot(mariadb, production) == before


def test_a_restore_from_a_site_given_by_url_and_login(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        make_site: SiteMaker) -> None:
    production, staging = make_site(), make_site()
    change_the_clone(mariadb, staging.db_name, staging.docroot / "wp-content")
    apply(control_plane, namespace,
          credentials_secret("production-login", production.admin_user, production.admin_password),
          credentials_secret("staging-login", staging.admin_user, staging.admin_password),
          restore_manifest("push", production, source={"url": staging.url,
                                                       "credentialsSecretRef": {"name": "staging-login"}}))
    done = wait_restore(control_plane, namespace, "push")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "Made on the clone" in post_titles(production)
    assert all((production.docroot / "wp-content" / path).is_file() for path in CLONE_FILES.values())
    post = httpx.get(f"{production.url}/wp-json/wp/v2/posts?slug=made-on-the-clone", timeout=30).json()[0]
    assert post["link"].startswith(production.url)  # the staging URL is rewritten to production's


def test_dry_run_lists_what_would_change_and_writes_nothing(
        control_plane: cluster.ControlPlane, operator: OperatorProcess,
        mariadb: MariaDB, staged: Callable[[], Staged]) -> None:
    production, namespace, stage = staged()
    before = snapshot(mariadb, production)
    apply(control_plane, namespace, restore_manifest("preview", production, source={"cloneRef": {"name": stage}},
                                                     dryRun=True))
    preview = wait_restore(control_plane, namespace, "preview")
    assert preview["status"]["phase"] == "Completed"
    assert preview["status"]["conditions"][0]["reason"] == "DryRun"
    posts = next(line for line in preview["status"]["changes"] if line.startswith("table wp_posts:"))
    rows_before, rows_after = [int(word) for word in posts.replace("->", " ").split() if word.isdigit()]
    assert rows_after == rows_before + 1
    assert snapshot(mariadb, production) == before


# What each selection restores: its include, whether the database arrives (all of it, or the options table
# alone), and which of the clone's files.
SELECTIONS: dict[str, tuple[dict[str, Any], bool | str, set[str]]] = {
    "uploads": ({"database": False, "themes": False, "plugins": False, "content": False}, False, {"uploads"}),
    "themes-and-plugins": ({"database": False, "uploads": False, "content": False}, False, {"themes", "plugins"}),
    "themes": ({"database": False, "uploads": False, "plugins": False, "content": False}, False, {"themes"}),
    "rest-of-wp-content": ({"database": False, "uploads": False, "themes": False, "plugins": False}, False,
                           {"content"}),
    "database": ({"uploads": False, "themes": False, "plugins": False, "content": False}, True, set()),
    "options-table": ({"uploads": False, "themes": False, "plugins": False, "content": False,
                       "tables": ["options"]}, "options only", set()),
}


def test_selective_restores_write_only_what_each_includes(
        control_plane: cluster.ControlPlane, operator: OperatorProcess,
        mariadb: MariaDB, namespace: str, make_site: SiteMaker) -> None:
    """Each selection restores a changed clone into a production of its own; all at once, so that their
    clones' pods start side by side (a failure names its selection)."""
    productions = {selection: make_site() for selection in SELECTIONS}
    stages = {selection: f"part{number}-{uuid.uuid4().hex[:6]}" for number, selection in enumerate(SELECTIONS)}
    for selection, production in productions.items():
        apply(control_plane, namespace,
              credentials_secret(f"login-{stages[selection]}", production.admin_user, production.admin_password),
              clone_manifest(stages[selection], production.url, secret=f"login-{stages[selection]}"))
    for selection, production in productions.items():
        stage = stages[selection]
        control_plane.kubectl("wait", "-n", namespace, f"wpc/{stage}", "--for=condition=Ready", "--timeout=180s")
        change_the_clone(mariadb, clone_database(control_plane, namespace, stage),
                         clone_wp_content(control_plane, namespace, stage))
        (production.docroot / "wp-content" / "object-cache.php").write_text(PRODUCTIONS_DROP_IN)
        restore = restore_manifest(stage, production, source={"cloneRef": {"name": stage}},
                                   include=SELECTIONS[selection][0])
        restore["spec"]["target"]["credentialsSecretRef"]["name"] = f"login-{stage}"
        apply(control_plane, namespace, restore)

    for selection, (_, database_changes, file_changes) in SELECTIONS.items():
        production, done = productions[selection], wait_restore(control_plane, namespace, stages[selection])
        assert done["status"]["phase"] == "Completed", (selection, json.dumps(done["status"]))
        content = production.docroot / "wp-content"
        arrived = {part for part, path in CLONE_FILES.items() if (content / path).exists()}
        assert arrived == file_changes, selection
        assert (content / "object-cache.php").read_text() == PRODUCTIONS_DROP_IN, selection  # production's own
        assert (option(mariadb, production, "blogdescription") == "Tagline from the clone") == bool(
            database_changes), selection
        assert ("Made on the clone" in post_titles(production)) == (database_changes is True), selection


PRODUCTIONS_DROP_IN = "<?php // production's own object cache\n"


def test_rest_restore_of_a_clone_made_over_rest_then_its_rollback_over_rest(
        api: ApiProcess, operator: OperatorProcess, mariadb: MariaDB,
        control_plane: cluster.ControlPlane, make_site: SiteMaker) -> None:
    production = make_site()
    http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
    customer = f"rest-{uuid.uuid4().hex[:6]}"
    job = http.post("/api/v2/clone", json={
        "source_url": production.url, "source_username": production.admin_user,
        "source_password": production.admin_password, "customer_id": customer}).json()
    clone = eventually(lambda: (s := http.get(job["status_url"]).json())["status"] == "completed" and s,
                       timeout=120, what="the clone job")
    change_the_clone(mariadb, clone_database(control_plane, api.namespace, customer),
                     clone_wp_content(control_plane, api.namespace, customer))
    body = {"source": {"url": clone["clone_url"], "username": clone["username"], "password": clone["password"]},
            "target": {"url": production.url, "username": production.admin_user,
                       "password": production.admin_password}}

    preview = http.post("/restore", json={**body, "dry_run": True}, timeout=180)
    assert preview.status_code == 200, preview.text
    assert preview.json()["status"] == "completed" and preview.json()["changes"]
    assert "Made on the clone" not in post_titles(production)

    accepted = http.post("/api/v2/restore", json=body)
    assert accepted.status_code == 202, accepted.text
    done = eventually(lambda: (s := http.get(accepted.json()["status_url"]).json())["status"]
                      in ("completed", "failed") and s, timeout=120, what="the restore job")
    assert done["status"] == "completed", done
    assert done["kind"] == "restore" and done["backup_id"]
    assert "Made on the clone" in post_titles(production)
    restore = get_json(control_plane, api.namespace, "wpcr", "-l", f"wpclone.dev/job-id={done['job_id']}")["items"][0]
    assert restore["spec"]["source"] == {"cloneRef": {"name": customer}}
    assert production.admin_password not in json.dumps(restore) + api.log_path.read_text()

    # Restored by mistake: the backup goes back through REST too, and the clone's post is gone again.
    target = body["target"]
    refused = http.post("/api/v2/rollback", json={"target": target, "backup_id": "no-such-backup"})
    assert refused.status_code == 202
    failed = eventually(lambda: (s := http.get(refused.json()["status_url"]).json())["status"]
                        in ("completed", "failed") and s, timeout=120, what="the rollback to a missing backup")
    assert failed["status"] == "failed" and "no-such-backup" in failed["error"]
    back = http.post("/api/v2/rollback", json={"target": target, "backup_id": done["backup_id"]})
    assert back.status_code == 202, back.text
    rolled = eventually(lambda: (s := http.get(back.json()["status_url"]).json())["status"]
                        in ("completed", "failed") and s, timeout=120, what="the rollback job")
    assert rolled["status"] == "completed", rolled
    assert "Made on the clone" not in post_titles(production)
    labelled = f"wpclone.dev/job-id={rolled['job_id']}"
    (rollback,) = get_json(control_plane, api.namespace, "wpcr", "-l", labelled)["items"]
    assert rollback["spec"]["rollbackTo"] == done["backup_id"]
    (kept,) = http.get("/api/v2/backups", params={"target": production.url}).json()
    assert (kept["backup_id"], kept["job_id"], kept["rolled_back"]) == (done["backup_id"], done["job_id"], True)
    assert production.admin_password not in json.dumps(rollback) + api.log_path.read_text()

    # The clone is listed (without its login) and lives longer once extended.
    listed = http.get("/api/v2/clones").json()
    mine = next(item for item in listed if item["clone_id"] == customer)
    assert mine["status"] == "completed" and mine["password"] is None
    extended = http.patch(f"/api/v2/clones/{customer}", json={"ttl_minutes": 90})
    assert extended.status_code == 200, extended.text
    created = get_json(control_plane, api.namespace, "wpc", customer)["metadata"]["creationTimestamp"]
    assert extended.json()["expires_at"] == times.expires_at(created, 90)
    eventually(lambda: http.get(job["status_url"]).json()["expires_at"] == extended.json()["expires_at"],
               timeout=30, what="the operator to move the clone's expiry")


def test_rest_restore_rejects_bad_input_with_a_message(api: ApiProcess) -> None:
    http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
    answer = http.post("/api/v2/restore", json={"source": {"url": "not a url", "username": "a", "password": "b"},
                                                "target": {"url": "https://shop.example.com", "username": "a"}})
    assert answer.status_code == 422
    message = answer.json()["message"]
    assert "source.url" in message and "target.password" in message


def staging_left(mariadb: MariaDB, site: WordPressSite, backup_id: str) -> list[str]:
    """What interrupted imports left behind; the backup the restore kept is meant to stay."""
    return [name for name in leftovers(mariadb, site) if backup_id not in name]


def file_hashes(folder: Path) -> dict[str, str]:
    """The hash of every regular file under `folder`, by its path there; links not followed."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in folder.rglob("*") if path.is_file() and not path.is_symlink()}


def hold_route(route: str) -> str:
    """A must-use plugin that holds the migrator's `route` on production: its requests wait, before the
    migrator sees them, while wp-content/hold-imports exists (and say so in wp-content/import-held). It
    hooks the plugins' REST check, which the migrator asks of an import chunk it serves early too."""
    return """<?php
add_filter('rest_authentication_errors', function ($result) {
    $hold = WP_CONTENT_DIR . '/hold-imports';
    $path = (string) parse_url((string) ($_SERVER['REQUEST_URI'] ?? ''), PHP_URL_PATH);
    if (substr($path, -strlen('/wpclone/v1/ROUTE')) === '/wpclone/v1/ROUTE' && is_file($hold)) {
        touch(WP_CONTENT_DIR . '/import-held');
        for ($waited = 0; $waited < 1200 && is_file($hold); $waited++) {
            usleep(100000);
            clearstatcache();  // is_file() of a file that existed is cached: it would never see it go
        }
    }
    return $result;
});
""".replace("ROUTE", route)


# A restore held in the middle: its import's file chunks wait.
HOLD_IMPORTS = hold_route("import/files")


def start_a_held_restore(plane: cluster.ControlPlane, mariadb: MariaDB, namespace: str,
                         production: WordPressSite) -> transfer_fixtures.Snapshot:
    """A clone with changes, its restore "push" held in the middle of its import on production (staging
    begun, nothing committed); production's state before. Release it with release_imports()."""
    content = production.docroot / "wp-content"
    (content / "mu-plugins" / "hold-imports.php").write_text(HOLD_IMPORTS)
    (content / "hold-imports").touch()
    stage = changed_clone_of(plane, mariadb, namespace, production)
    before = snapshot(mariadb, production)
    apply(plane, namespace, restore_manifest("push", production, source={"cloneRef": {"name": stage}}))
    eventually(lambda: (content / "import-held").exists(), timeout=120, what="the restore's import to be held")
    return before


def release_imports(production: WordPressSite) -> None:
    (production.docroot / "wp-content" / "hold-imports").unlink(missing_ok=True)


def test_a_crashed_operator_leaves_production_before_or_after_and_the_restore_converges(
        control_plane: cluster.ControlPlane, operator: OperatorProcess,
        mariadb: MariaDB, namespace: str, make_site: SiteMaker) -> None:
    production = make_site()
    before = start_a_held_restore(control_plane, mariadb, namespace, production)
    operator.kill()  # before the commit: the import is held with its staging begun
    try:
        during, staged = snapshot(mariadb, production), leftovers(mariadb, production)
    finally:
        release_imports(production)
        operator.start()
    done = wait_restore(control_plane, namespace, "push", timeout=180)
    assert done["status"]["phase"] == "Completed", done["status"]
    after = snapshot(mariadb, production)
    assert during == before and staged, "the kill did not come before the commit"
    assert after != before and done["status"]["backupId"]
    assert "Made on the clone" in post_titles(production)
    assert staging_left(mariadb, production, done["status"]["backupId"]) == []


def test_a_target_that_goes_away_mid_restore_is_left_whole_and_the_restore_converges(
        control_plane: cluster.ControlPlane, operator: OperatorProcess,
        mariadb: MariaDB, namespace: str, make_site: SiteMaker) -> None:
    production = make_site()
    before = start_a_held_restore(control_plane, mariadb, namespace, production)
    production.stop()
    try:
        assert snapshot(mariadb, production) == before
    finally:
        release_imports(production)
        restart(production)
    done = wait_restore(control_plane, namespace, "push", timeout=180)
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "Made on the clone" in post_titles(production)
    assert staging_left(mariadb, production, done["status"]["backupId"]) == []

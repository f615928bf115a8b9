"""Merge restores on the real stack: the clone's changes go to production row by row, and production keeps
what happened there while the clone was worked on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from testenv import cluster
from testenv.mariadb import MariaDB
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import apply, clone_wp_content, eventually, get_json
from tests.integration import test_clone_lifecycle, transfer_fixtures
from tests.integration.test_clone_lifecycle import OwnOperator
from tests.integration.test_restore import (
    clone_database,
    clone_of,
    hold_route,
    post_titles,
    release_imports,
    restore_manifest,
    staging_left,
    wait_restore,
)
from tests.integration.transfer_fixtures import SiteMaker, leftovers, snapshot

pytestmark = pytest.mark.integration
make_site = transfer_fixtures.make_site
own_operator = test_clone_lifecycle.own_operator
DATABASE_ONLY = {"database": True, "uploads": False, "themes": False, "plugins": False, "content": False}


def sql_text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def insert_post(title: str, content: str = "", post_type: str = "post") -> str:
    return f"""INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt,
        post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered, post_type,
        guid) VALUES (1, NOW(), UTC_TIMESTAMP(), {sql_text(content)}, {sql_text(title)}, '', 'publish',
        {sql_text(title.lower().replace(' ', '-'))}, '', '', NOW(), UTC_TIMESTAMP(), '', '{post_type}', '');"""


def on(mariadb: MariaDB, database: str, *statements: str) -> str:
    return mariadb.sql(f"USE `{database}`; " + " ".join(statements))


def rows(mariadb: MariaDB, database: str, query: str) -> list[str]:
    found = on(mariadb, database, query)
    return found.split("\n") if found else []


def merge_restore(name: str, production: WordPressSite, stage: str, include: dict[str, bool] = DATABASE_ONLY,
                  **spec: Any) -> dict[str, Any]:
    return restore_manifest(name, production, source={"cloneRef": {"name": stage}}, onConflict="Merge",
                            include=include, **spec)


def production_changes(mariadb: MariaDB, production: WordPressSite) -> None:
    """What a live shop gets while a clone is worked on: 50 comments, 20 posts, 5 customers."""
    statements = [f"""INSERT INTO wp_comments (comment_post_ID, comment_author, comment_author_email, comment_content,
        comment_date, comment_date_gmt, comment_approved, comment_type) VALUES (1, 'Customer {n}',
        'c{n}@example.com', 'Comment {n} made in production', NOW(), UTC_TIMESTAMP(), '1', 'comment');"""
                  for n in range(50)]
    statements += [insert_post(f"Production post {n}", f"<p>News {n}</p>") for n in range(20)]
    statements += [f"""INSERT INTO wp_users (user_login, user_pass, user_nicename, user_email, user_registered,
        display_name) VALUES ('customer{n}', '$P$Bnotarealhash', 'customer{n}', 'customer{n}@example.com', NOW(),
        'Customer {n}');""" for n in range(5)]
    on(mariadb, production.db_name, *statements)


def test_a_merge_keeps_every_production_change_and_brings_every_clone_change(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        make_site: SiteMaker) -> None:
    production = make_site()
    on(mariadb, production.db_name, *(insert_post(f"Page {n}", f"<p>Page {n} as it was</p>", "page")
                                      for n in range(10)),
       "INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('theme_mods_shop', "
       "'a:1:{s:12:\"header_color\";s:4:\"blue\";}', 'yes');")
    pages = rows(mariadb, production.db_name, "SELECT ID FROM wp_posts WHERE post_type = 'page' AND post_title LIKE "
                                              "'Page %' ORDER BY ID")
    stage = clone_of(control_plane, namespace, production)
    clone_url = get_json(control_plane, namespace, "wpc", stage)["status"]["url"]
    database = clone_database(control_plane, namespace, stage)
    on(mariadb, database,
       *(f"UPDATE wp_posts SET post_content = '<p>Page {n} edited on the clone, see <a href=\"{clone_url}/shop\">"
         f"the shop</a></p>' WHERE ID = {page};" for n, page in enumerate(pages)),
       *(insert_post(f"Clone post {n}", f"<p>Made on the clone {n}</p>") for n in range(3)),
       "UPDATE wp_options SET option_value = 'a:1:{s:12:\"header_color\";s:3:\"red\";}' "
       "WHERE option_name = 'theme_mods_shop';",
       # Two tables production does not have, with foreign keys: to each other and to one it has.
       "CREATE TABLE wp_shop_orders (id BIGINT UNSIGNED PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB;",
       "CREATE TABLE wp_shop_items (id BIGINT UNSIGNED PRIMARY KEY, order_id BIGINT UNSIGNED NOT NULL, "
       "post_id BIGINT UNSIGNED NOT NULL, FOREIGN KEY (order_id) REFERENCES wp_shop_orders (id) ON DELETE CASCADE, "
       "FOREIGN KEY (post_id) REFERENCES wp_posts (ID)) ENGINE=InnoDB;",
       "INSERT INTO wp_shop_orders VALUES (1, 'first'), (2, 'second');",
       f"INSERT INTO wp_shop_items VALUES (1, 1, {pages[0]}), (2, 1, {pages[1]}), (3, 2, {pages[2]});")
    production_changes(mariadb, production)
    before = {table: int(on(mariadb, production.db_name, f"SELECT COUNT(*) FROM {table}"))
              for table in ("wp_comments", "wp_posts", "wp_users", "wp_options")}

    apply(control_plane, namespace, merge_restore("preview", production, stage, dryRun=True))
    preview = wait_restore(control_plane, namespace, "preview")["status"]
    assert preview["phase"] == "Completed" and not preview["conflicts"], preview
    assert [line for line in preview["changes"] if line.startswith("table ")] == [
        "table wp_options: insert 0, update 1, delete 0", "table wp_posts: insert 3, update 10, delete 0",
        "table wp_shop_items: create (a table production does not have) (3 rows)",
        "table wp_shop_orders: create (a table production does not have) (2 rows)"], preview
    listed = [line for line in preview["changes"] if not line.startswith("table ")]
    assert sorted(line.split(" (")[1].rstrip(")") for line in listed if line.startswith("insert wp_posts")) == \
        ["Clone post 0", "Clone post 1", "Clone post 2"]
    assert {line.split(" ")[2] for line in listed if line.startswith("update wp_posts")} == \
        {f"ID={page}" for page in pages}
    assert [line for line in listed if "wp_options" in line] == [
        line for line in listed if line.startswith("update wp_options") and "(theme_mods_shop)" in line]
    assert len(listed) == 15 and listed[-1] == "… and 5 more rows"  # the new tables' rows are counted, not listed
    assert "Clone post 0" not in post_titles(production)

    apply(control_plane, namespace, merge_restore("push", production, stage))
    done = wait_restore(control_plane, namespace, "push")["status"]
    assert done["phase"] == "Completed" and done["backupId"], done
    after = {table: int(on(mariadb, production.db_name, f"SELECT COUNT(*) FROM {table}"))
             for table in before}
    assert after == {**before, "wp_posts": before["wp_posts"] + 3}
    assert len(rows(mariadb, production.db_name, "SELECT comment_ID FROM wp_comments WHERE comment_content "
                                                 "LIKE 'Comment % made in production'")) == 50
    titles = rows(mariadb, production.db_name, "SELECT post_title FROM wp_posts")
    assert {f"Production post {n}" for n in range(20)} | {f"Clone post {n}" for n in range(3)} <= set(titles)
    assert len(rows(mariadb, production.db_name, "SELECT ID FROM wp_users WHERE user_login LIKE 'customer%'")) == 5
    edited = rows(mariadb, production.db_name, f"SELECT post_content FROM wp_posts WHERE ID IN ({','.join(pages)})")
    assert len(edited) == 10 and all("edited on the clone" in text and f'"{production.url}/shop"' in text
                                     for text in edited), edited
    assert on(mariadb, production.db_name, "SELECT option_value FROM wp_options WHERE option_name = "
                                           "'theme_mods_shop'") == 'a:1:{s:12:"header_color";s:3:"red";}'
    # The clone's new posts kept the ids they had on the clone: far above production's own.
    ids = rows(mariadb, production.db_name, "SELECT ID FROM wp_posts WHERE post_title LIKE 'Clone post %'")
    assert all(int(found) > 100_000_000 for found in ids), ids
    # The backup holds the rows the merge replaced, nothing else: 10 pages and one option.
    record = json.loads((production.docroot / "wp-content" / "wpclone-migrator" / "backups"
                         / f"{done['backupId']}.json").read_text())
    kept = {name: int(on(mariadb, production.db_name, f"SELECT COUNT(*) FROM `{table}`"))
            for name, table in record["tables"]}
    assert kept == {"wp_posts": 10, "wp_options": 1}, kept
    assert staging_left(mariadb, production, done["backupId"]) == []
    # The new tables came with their foreign keys, live: to each other and to production's own posts.
    assert rows(mariadb, production.db_name, "SELECT TABLE_NAME, REFERENCED_TABLE_NAME FROM information_schema."
                "REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() ORDER BY 1, 2") == [
        "wp_shop_items\twp_posts", "wp_shop_items\twp_shop_orders"]
    on(mariadb, production.db_name, "DELETE FROM wp_shop_orders WHERE id = 1;")
    assert rows(mariadb, production.db_name, "SELECT id FROM wp_shop_items") == ["3"]


def test_a_clone_made_without_a_baseline_copies_none_and_its_merge_is_refused_leaving_production_as_it_was(
        control_plane: cluster.ControlPlane, own_operator: OwnOperator, mariadb: MariaDB, namespace: str,
        make_site: SiteMaker) -> None:
    own_operator(WPCLONE_MERGE_BASELINE="false")
    production = make_site()
    stage = clone_of(control_plane, namespace, production)
    database = clone_database(control_plane, namespace, stage)
    assert rows(mariadb, database, "SHOW TABLES LIKE 'wpclone_baseline'") == []
    on(mariadb, database, insert_post("Clone post"))
    titles = post_titles(production)

    apply(control_plane, namespace, merge_restore("push", production, stage))
    refused = wait_restore(control_plane, namespace, "push")["status"]
    assert refused["phase"] == "Failed" and refused["conditions"][0]["reason"] == "NoBaseline", refused
    assert "WPCLONE_MERGE_BASELINE=false" in refused["conditions"][0]["message"]
    assert post_titles(production) == titles


def settle(plane: cluster.ControlPlane, namespace: str, production: WordPressSite, stage: str, policy: str,
           include: dict[str, bool] = DATABASE_ONLY) -> dict[str, Any]:
    """A merge under `policy`; its status."""
    name = f"push-{policy.lower()}"
    apply(plane, namespace, merge_restore(name, production, stage, include, mergeConflicts=policy))
    return dict(wait_restore(plane, namespace, name)["status"])


def roll_back(plane: cluster.ControlPlane, namespace: str, production: WordPressSite, backup: str) -> None:
    name = f"undo-{backup}"
    apply(plane, namespace, restore_manifest(name, production, rollbackTo=backup))
    assert wait_restore(plane, namespace, name)["status"]["phase"] == "RolledBack"


def test_a_page_edited_on_both_sides_is_settled_by_each_policy_and_rolls_back_exactly(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        make_site: SiteMaker) -> None:
    production = make_site()
    on(mariadb, production.db_name, insert_post("About us", "<p>As it was</p>", "page"))
    page = on(mariadb, production.db_name, "SELECT ID FROM wp_posts WHERE post_title = 'About us'")
    stage = clone_of(control_plane, namespace, production)
    on(mariadb, clone_database(control_plane, namespace, stage),
       f"UPDATE wp_posts SET post_content = '<p>Edited on the clone</p>' WHERE ID = {page};",
       insert_post("Made on the clone"))
    on(mariadb, production.db_name, f"UPDATE wp_posts SET post_content = '<p>Edited in production</p>' "
                                    f"WHERE ID = {page};")
    before = snapshot(mariadb, production)
    conflict = [f"wp_posts ID={page} (About us): changed on the clone and in production"]

    refused = settle(control_plane, namespace, production, stage, "Fail")
    assert refused["phase"] == "Failed" and refused["conditions"][0]["reason"] == "Conflict", refused
    assert refused["conflicts"] == conflict and snapshot(mariadb, production) == before

    for policy, kept in (("PreferProduction", "<p>Edited in production</p>"),
                         ("PreferClone", "<p>Edited on the clone</p>")):
        done = settle(control_plane, namespace, production, stage, policy)
        assert done["phase"] == "Completed" and done["conflicts"] == conflict, done
        assert on(mariadb, production.db_name, f"SELECT post_content FROM wp_posts WHERE ID = {page}") == kept
        assert "Made on the clone" in post_titles(production)
        roll_back(control_plane, namespace, production, done["backupId"])
        assert snapshot(mariadb, production) == before, policy


def test_uploads_are_merged_file_by_file_and_roll_back_exactly(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        make_site: SiteMaker) -> None:
    production = make_site()
    uploads = production.docroot / "wp-content" / "uploads"
    for name, text in (("both.txt", "as it was"), ("edited-on-the-clone.txt", "old"), ("gone-on-the-clone.txt", "x")):
        (uploads / name).write_text(text)
    stage = clone_of(control_plane, namespace, production)
    on_clone = clone_wp_content(control_plane, namespace, stage) / "uploads"
    (on_clone / "2026").mkdir(exist_ok=True)
    (on_clone / "2026" / "made-on-the-clone.jpg").write_bytes(b"media made on the clone")
    (on_clone / "edited-on-the-clone.txt").write_text("new")
    (on_clone / "gone-on-the-clone.txt").unlink()
    (on_clone / "both.txt").write_text("the clone's")
    (uploads / "made-in-production.jpg").write_bytes(b"media made in production")
    (uploads / "both.txt").write_text("production's")
    before = snapshot(mariadb, production)
    with_uploads = {**DATABASE_ONLY, "uploads": True}
    conflict = ["wp-content path=uploads/both.txt: changed on the clone and in production"]

    refused = settle(control_plane, namespace, production, stage, "Fail", with_uploads)
    assert refused["phase"] == "Failed" and refused["conflicts"] == conflict, refused
    assert snapshot(mariadb, production) == before

    done = settle(control_plane, namespace, production, stage, "PreferProduction", with_uploads)
    assert done["phase"] == "Completed" and done["conflicts"] == conflict, done
    assert "files wp-content: insert 1, update 1, delete 1" in done["changes"], done
    assert (uploads / "2026" / "made-on-the-clone.jpg").read_bytes() == b"media made on the clone"
    assert (uploads / "edited-on-the-clone.txt").read_text() == "new"
    assert not (uploads / "gone-on-the-clone.txt").exists()
    assert (uploads / "made-in-production.jpg").read_bytes() == b"media made in production"
    assert (uploads / "both.txt").read_text() == "production's"
    roll_back(control_plane, namespace, production, done["backupId"])
    assert snapshot(mariadb, production) == before


# Production's side of a merge held before it begins.
HOLD_MERGE = hold_route("import/merge")


def test_an_operator_killed_in_the_middle_of_a_merge_leaves_production_before_or_after(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        make_site: SiteMaker) -> None:
    production = make_site()
    content = production.docroot / "wp-content"
    (content / "mu-plugins" / "hold-merge.php").write_text(HOLD_MERGE)
    (content / "hold-imports").touch()
    stage = clone_of(control_plane, namespace, production)
    on(mariadb, clone_database(control_plane, namespace, stage), insert_post("Made on the clone"),
       "UPDATE wp_posts SET post_title = 'Hello from the clone' WHERE ID = 1;")
    production_changes(mariadb, production)
    before = snapshot(mariadb, production)
    apply(control_plane, namespace, merge_restore("push", production, stage))
    eventually(lambda: (content / "import-held").exists(), timeout=120, what="the merge to be held")
    operator.kill()
    try:
        during = snapshot(mariadb, production)
    finally:
        release_imports(production)
        operator.start()
    done = wait_restore(control_plane, namespace, "push", timeout=180)["status"]
    assert during == before
    assert done["phase"] == "Completed", done
    titles = rows(mariadb, production.db_name, "SELECT post_title FROM wp_posts")
    assert titles.count("Made on the clone") == 1 and "Hello from the clone" in titles
    assert {f"Production post {n}" for n in range(20)} <= set(titles)
    # (the merge released after the kill may have committed with a backup of its own: backups stay)
    assert [name for name in leftovers(mariadb, production) if not name.startswith("wpcb_")] == []

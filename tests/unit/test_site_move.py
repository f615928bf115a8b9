"""What a move changes in tables and rows on their way: names, prefixed keys, kept options, the admin."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wpclone_engine import frames
from wpclone_engine.rewrite import UrlRewrite
from wpclone_engine.site_move import DatabaseObject, SiteMove, collations_to_restore, database_objects, map_collations

MOVE = SiteMove(UrlRewrite("http://a.test", "https://b.test"), "wp_", "clone_",
                preserved_options={"siteurl": b"https://b.test", "home": b"https://b.test", "blog_public": b"0"},
                admin_login="admin", admin_hash="$P$Bhash")


def payload(*rows: list[bytes | None]) -> bytes:
    return b"".join(frames.encode_record(row) for row in rows)


def rows_of(data: bytes, width: int) -> list[list[bytes | None]]:
    return list(frames.decode_records(data, width))


def test_tables_take_the_destination_prefix() -> None:
    assert MOVE.table_name("wp_posts") == "clone_posts"
    assert MOVE.table_name("wp_wc_orders") == "clone_wc_orders"
    with pytest.raises(frames.StreamError, match="not a table of the source"):
        MOVE.table_name("other_posts")


def test_definitions_are_renamed_and_lose_their_foreign_keys_only() -> None:
    create = ("CREATE TABLE `wp_wc_download_log` (\n  `id` bigint NOT NULL,\n  `permission_id` bigint NOT NULL,\n"
              "  PRIMARY KEY (`id`),\n  CONSTRAINT `amount` CHECK (`id` > 0),\n"
              "  CONSTRAINT `fk_wp_wc_download_log_permission_id` FOREIGN KEY (`permission_id`) REFERENCES "
              "`wp_woocommerce_downloadable_product_permissions` (`permission_id`) ON DELETE CASCADE\n"
              ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    assert MOVE.create_statement(create, "wp_wc_download_log") == (
        "CREATE TABLE `clone_wc_download_log` (\n  `id` bigint NOT NULL,\n  `permission_id` bigint NOT NULL,\n"
        "  PRIMARY KEY (`id`),\n  CONSTRAINT `amount` CHECK (`id` > 0)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")


def test_a_definition_of_another_table_is_refused() -> None:
    with pytest.raises(frames.StreamError, match="does not begin with"):
        MOVE.create_statement("CREATE TABLE `wp_users` (`id` int)", "wp_posts")


def test_options_keep_the_destination_settings_and_follow_the_prefix() -> None:
    columns = ["option_id", "option_name", "option_value", "autoload"]
    source = payload([b"1", b"siteurl", b"http://a.test", b"yes"], [b"2", b"blog_public", b"1", b"yes"],
                     [b"3", b"wp_user_roles", b'a:1:{s:5:"admin";b:1;}', b"yes"],
                     [b"4", b"widget", b's:15:"http://a.test/x";', b"yes"])
    moved, counts = MOVE.table_rows("wp_options", columns).apply(source)
    assert rows_of(moved, 4) == [[b"1", b"siteurl", b"https://b.test", b"yes"], [b"2", b"blog_public", b"0", b"yes"],
                                 [b"3", b"clone_user_roles", b'a:1:{s:5:"admin";b:1;}', b"yes"],
                                 [b"4", b"widget", b's:16:"https://b.test/x";', b"yes"]]
    assert counts.rewritten == 2  # siteurl was rewritten, then replaced by the destination's own


def test_an_option_the_destination_lacks_keeps_the_source_value_rewritten() -> None:
    move = SiteMove(UrlRewrite("http://a.test", "https://b.test"), "wp_", "wp_")
    moved, _ = move.table_rows("wp_options", ["option_name", "option_value"]).apply(payload([b"home", b"http://a.test"]))
    assert rows_of(moved, 2) == [[b"home", b"https://b.test"]]


def test_user_meta_keys_follow_the_prefix() -> None:
    source = payload([b"1", b"wp_capabilities", b'a:1:{s:13:"administrator";b:1;}'], [b"1", b"nickname", b"wp_x"],
                     [b"1", None, None])
    moved, _ = MOVE.table_rows("wp_usermeta", ["user_id", "meta_key", "meta_value"]).apply(source)
    assert [row[1] for row in rows_of(moved, 3)] == [b"clone_capabilities", b"nickname", None]


def test_the_administrator_gets_the_new_password_and_nobody_else_does() -> None:
    columns = ["ID", "user_login", "user_pass", "user_activation_key"]
    source = payload([b"1", b"admin", b"$P$Bold", b"1234:key"], [b"2", b"editor", b"$P$Bother", b""])
    moved, counts = MOVE.table_rows("wp_users", columns).apply(source)
    assert rows_of(moved, 4) == [[b"1", b"admin", b"$P$Bhash", b""], [b"2", b"editor", b"$P$Bother", b""]]
    assert counts.admin_passwords == 1


def test_rows_without_the_url_pass_through_untouched() -> None:
    source = payload([b"1", b"plain text"])
    moved, counts = MOVE.table_rows("wp_posts", ["ID", "post_content"]).apply(source)
    assert moved is source and counts.rewritten == 0


# Values as a table holds them: NULLs, empty values, the old URL in every form around other bytes,
# serialized and not, and pieces of its host that meet across two values.
VALUE = st.one_of(st.none(), st.lists(st.sampled_from(
    [b"", b"x", b"a.te", b"st", b"http://a.test", b"//a.test/p", b"http:\\/\\/a.test", b'a:1:{i:0;s:13:"http://a.test";}',
     b's:13:"', b'";', b"\x00", b"\xff", b"a.test.other", b"https://a.test:8080"]), max_size=6).map(b"".join))


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=5).flatmap(
    lambda width: st.lists(st.lists(VALUE, min_size=width, max_size=width), max_size=8)))
def test_rows_are_rewritten_as_if_every_value_were_taken_apart(rows: list[list[bytes | None]]) -> None:
    # Only the values holding the host are taken apart: the payload must be what rewriting each value
    # of each record, then encoding the records again, makes.
    width = len(rows[0]) if rows else 1
    source = payload(*rows)
    moved, counts = MOVE.table_rows("wp_postmeta", [f"c{index}" for index in range(width)]).apply(source)
    expected, rewritten, unparseable = [], 0, 0
    for row in rows:
        values = []
        for value in row:
            if value is None:
                values.append(None)
                continue
            new, outcome = MOVE.rewrite.value(value)
            values.append(new)
            rewritten += outcome.name == "REWRITTEN"
            unparseable += outcome.name == "UNPARSEABLE"
        expected.append(values)
    assert moved == payload(*expected)
    assert (counts.rewritten, counts.unparseable) == (rewritten, unparseable)


def test_corrupt_serialized_values_are_counted() -> None:
    source = payload([b"1", b'a:1:{i:0;s:99:"http://a.test";}'], [b"2", b"http://a.test/"])
    moved, counts = MOVE.table_rows("wp_postmeta", ["meta_id", "meta_value"]).apply(source)
    assert rows_of(moved, 2) == [[b"1", b'a:1:{i:0;s:99:"https://b.test";}'], [b"2", b"https://b.test/"]]
    assert (counts.rewritten, counts.unparseable) == (1, 1)


def test_a_view_trigger_or_routine_loses_its_definer_and_follows_the_prefix() -> None:
    move = SiteMove(UrlRewrite("http://a.test", "http://b.test"), "wp_", "clone_")
    view = DatabaseObject("view", "wp_open", "CREATE ALGORITHM=MERGE DEFINER=`shop`@`%` SQL SECURITY INVOKER VIEW "
                                             "`wp_open` AS select `ID` from `wp_posts` where `post_title` = 'wp_posts'")
    assert move.database_object(view) == DatabaseObject(
        "view", "clone_open", "CREATE ALGORITHM=MERGE SQL SECURITY INVOKER VIEW `clone_open` AS select `ID` from "
                              "`clone_posts` where `post_title` = 'wp_posts'")
    routine = DatabaseObject("function", "double_it", "CREATE DEFINER='a'@'localhost' FUNCTION `double_it`(x INT) "
                                                      "RETURNS int DETERMINISTIC RETURN 2 * x")
    assert move.database_object(routine).create == (
        "CREATE FUNCTION `double_it`(x INT) RETURNS int DETERMINISTIC RETURN 2 * x")
    same = SiteMove(UrlRewrite("http://a.test", "http://b.test"), "wp_", "wp_")
    assert same.database_object(view).create.startswith("CREATE ALGORITHM=MERGE SQL SECURITY INVOKER VIEW `wp_open`")


@pytest.mark.parametrize("create", [
    "CREATE DEFINER=`root`@`%` DEFINER=`x`@`%` VIEW `wp_open` AS select 1",  # a second definer
    "CREATE VIEW `wp_other` AS select 1",  # another name than the export said
    "CREATE TRIGGER `wp_open` BEFORE INSERT ON `wp_posts` FOR EACH ROW SET @a = 1",  # another kind
    "DROP TABLE `wp_users`",
    "/* a comment */ CREATE VIEW `wp_open` AS select 1",
])
def test_a_definition_that_is_not_what_show_create_writes_is_refused(create: str) -> None:
    move = SiteMove(UrlRewrite("http://a.test", "http://b.test"), "wp_", "clone_")
    with pytest.raises(frames.StreamError, match="does not begin as CREATE ... VIEW wp_open"):
        move.database_object(DatabaseObject("view", "wp_open", create))


def test_only_well_formed_objects_of_known_kinds_are_taken_from_an_export_in_the_order_they_are_made() -> None:
    found = [{"type": "view", "name": "wp_v", "create": "CREATE VIEW `wp_v` AS select 1"},
             {"type": "event", "name": "wp_e", "create": "CREATE EVENT ..."},
             {"type": "trigger", "name": "", "create": "CREATE TRIGGER ..."},
             {"type": "procedure", "name": "p", "create": "x" * 70000},
             {"type": "function", "name": "f", "create": "CREATE FUNCTION `f`() RETURNS int RETURN 1"},
             "not an object"]
    assert [(item.kind, item.name) for item in database_objects(found)] == [("function", "f"), ("view", "wp_v")]
    assert database_objects({"objects": []}) == ()


# --- MySQL 8's collations: a clone on a server without them got stand-ins; a restore gives them back ---

MYSQL8_TABLE = ("CREATE TABLE `wp_posts` (\n  `ID` bigint unsigned NOT NULL,\n"
                "  `post_title` text COLLATE utf8mb4_0900_ai_ci NOT NULL,\n"
                "  `slug` varchar(200) COLLATE utf8mb4_0900_as_cs DEFAULT 'utf8mb4_0900_ai_ci',\n"
                "  PRIMARY KEY (`ID`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci")


def test_a_restore_gives_a_table_its_mysql_8_collations_back_where_the_clone_has_their_stand_ins() -> None:
    on_the_clone = map_collations(MYSQL8_TABLE, known={"utf8mb4_unicode_520_ci", "utf8mb4_bin"})
    assert "0900_as_cs" not in on_the_clone and "COLLATE=utf8mb4_unicode_520_ci" in on_the_clone
    production = ["utf8mb4_0900_ai_ci", "utf8mb4_0900_as_cs"]  # as the migrator's info reports the live table
    restored = collations_to_restore(production)
    assert restored == {"utf8mb4_unicode_520_ci": "utf8mb4_0900_ai_ci", "utf8mb4_bin": "utf8mb4_0900_as_cs"}
    move = SiteMove(UrlRewrite("http://clone.test", "http://shop.test"), "wp_", "wp_",
                    restored_collations={"wp_posts": restored})
    assert move.create_statement(on_the_clone, "wp_posts") == (
        MYSQL8_TABLE)  # the string default stays as written, too
    # A table production does not have, or one whose own collations production's server reports as they are,
    # keeps what the clone has.
    assert move.create_statement(on_the_clone.replace("`wp_posts`", "`wp_notes`"), "wp_notes") == \
        on_the_clone.replace("`wp_posts`", "`wp_notes`")


@pytest.mark.parametrize(("production", "restored"), [
    (["utf8mb4_0900_ai_ci", "utf8mb4_unicode_520_ci"], {}),  # the stand-in is production's own too: unsure
    (["utf8mb4_0900_ai_ci", "utf8mb4_de_pb_0900_ai_ci"], {}),  # two that look the same on the clone: unsure
    (["utf8mb4_0900_bin", "utf8mb4_general_ci"], {"utf8mb4_bin": "utf8mb4_0900_bin"}),
    (["utf8mb4_unicode_ci", "latin1_swedish_ci"], {}),  # no MySQL 8 collation: nothing to give back
], ids=["stand-in-is-its-own", "two-alike", "binary", "none"])
def test_collations_are_given_back_only_where_certain(production: list[str], restored: dict[str, str]) -> None:
    assert collations_to_restore(production) == restored

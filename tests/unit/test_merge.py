"""How a merge restore judges rows (pure): the baseline, each side's changes, conflicts and policies."""

from __future__ import annotations

import hashlib

import pytest

from wpclone_engine import frames, merge
from wpclone_engine.merge import BaselineEntry, TableMerge


def key(value: int) -> bytes:
    return frames.encode_record([str(value).encode()])


def fp(text: str) -> bytes:
    return hashlib.md5(text.encode()).digest()


def posts(policy: merge.Policy = "Fail", *, baseline: dict[int, tuple[str, str]],
          production: dict[int, str]) -> TableMerge:
    """wp_posts with baseline rows {id: (source's content, clone's content)} and production {id: content}."""
    return TableMerge("wp_posts", "posts", ("ID",),
                      {key(row): BaselineEntry(fp(source), fp(clone), b"title %d" % row)
                       for row, (source, clone) in baseline.items()},
                      {key(row): fp(content) for row, content in production.items()}, policy, plugins=True)


def test_a_row_changed_only_on_the_clone_is_written_and_only_in_production_is_left() -> None:
    merge_ = posts(baseline={1: ("a", "a'"), 2: ("b", "b'")}, production={1: "a", 2: "b changed"})
    assert merge_.clone_row(key(1), fp("a' edited"), fp("a edited"), b"one") is True
    assert merge_.clone_row(key(2), fp("b'"), fp("b"), b"two") is False  # unchanged on the clone
    assert merge_.deletions() == []
    assert [k for k, _ in merge_.updates] == [key(1)] and not merge_.conflicts


def test_rows_added_on_either_side_are_kept_and_deleted_rows_follow_the_clone() -> None:
    merge_ = posts(baseline={1: ("a", "a"), 2: ("b", "b"), 3: ("c", "c")},
                   production={1: "a", 2: "b", 3: "c", 50: "made in production"})
    assert merge_.clone_row(key(1), fp("a"), fp("a"), None) is False
    assert merge_.clone_row(key(100_000_001), fp("new"), fp("new"), b"made on the clone") is True
    # rows 2 and 3 were deleted on the clone; production did not touch them
    assert sorted(merge_.deletions()) == sorted([key(2), key(3)])
    assert [k for k, _ in merge_.inserts] == [key(100_000_001)]
    assert merge_.written == 3 and not merge_.conflicts


@pytest.mark.parametrize(("policy", "written"), [("Fail", False), ("PreferProduction", False), ("PreferClone", True)])
def test_a_row_changed_on_both_sides_is_a_conflict_the_policy_settles(policy: merge.Policy, written: bool) -> None:
    merge_ = posts(policy, baseline={7: ("page", "page")}, production={7: "page edited in production"})
    assert merge_.clone_row(key(7), fp("page edited on the clone"), fp("pushed"), b"About us") is written
    assert merge_.conflicts == [(key(7), "About us", "changed on the clone and in production")]
    assert merge_.describe(key(7)) == "ID=7"


def test_the_same_change_on_both_sides_is_no_conflict_and_writes_nothing() -> None:
    """As after a merge that was applied but whose answer was lost: trying again writes nothing."""
    merge_ = posts(baseline={7: ("page", "page")}, production={7: "same edit", 9: "new row"})
    assert merge_.clone_row(key(7), fp("same edit on the clone"), fp("same edit"), None) is False
    assert merge_.clone_row(key(9), fp("new"), fp("new row"), None) is False  # inserted already
    assert not merge_.conflicts and merge_.written == 0


def test_deleted_on_the_clone_and_changed_in_production_is_a_conflict() -> None:
    merge_ = posts(baseline={4: ("x", "x")}, production={4: "x edited"})
    assert merge_.deletions() == []
    assert merge_.conflicts[0][2] == "deleted on the clone, changed in production"
    clone_wins = posts("PreferClone", baseline={4: ("x", "x")}, production={4: "x edited"})
    assert clone_wins.deletions() == [key(4)]


def test_the_digest_covers_what_production_held_for_every_key_written() -> None:
    one = posts(baseline={1: ("a", "a")}, production={1: "a"})
    one.clone_row(key(1), fp("a2"), fp("a2"), None)
    one.clone_row(key(5), fp("n"), fp("n"), None)
    expected = hashlib.md5()
    for k, now in sorted([(key(1), fp("a")), (key(5), bytes(16))]):
        expected.update(len(k).to_bytes(4) + k + now)
    assert one.digest() == expected.hexdigest()


@pytest.mark.parametrize(("table", "label", "plugins", "kept"), [
    ("options", b"siteurl", True, True), ("options", b"_transient_doing_cron", True, True),
    ("options", b"_site_transient_update_core", True, True), ("options", b"wpclone_migrator_state", True, True),
    ("options", b"active_plugins", False, True), ("options", b"active_plugins", True, False),
    ("options", b"blogdescription", True, False), ("usermeta", b"session_tokens", True, True),
    ("usermeta", b"nickname", True, False), ("posts", b"siteurl", True, False), ("options", None, True, False)])
def test_rows_production_keeps_by_rule(table: str, label: bytes | None, plugins: bool, kept: bool) -> None:
    assert merge.kept_in_production(table, label, plugins=plugins) is kept


def test_a_kept_row_is_never_written_nor_deleted() -> None:
    merge_ = TableMerge("wp_options", "options", ("option_id",),
                        {key(1): BaselineEntry(fp("cron"), fp("cron"), b"cron")}, {key(1): fp("cron")}, "Fail",
                        plugins=True)
    assert merge_.clone_row(key(2), fp("t"), fp("t"), b"_transient_x") is False
    assert merge_.deletions() == []  # the clone dropped its cron row: production keeps its own


def test_the_baseline_records_both_sides_of_each_row_and_a_sum_for_tables_without_a_key() -> None:
    sent = frames.encode_record([b"1", b"http://shop.test/a", b"Hello"]) + frames.encode_record([b"2", None, b"x"])
    arrived = frames.encode_record([b"1", b"http://clone.test/a", b"Hello"]) + frames.encode_record([b"2", None, b"x"])
    table = merge.TableBaseline.of("wp_posts", ["ID", "guid", "post_title"], ["ID"], "posts")
    rows = table.rows(sent, arrived)
    first = frames.encode_record([b"1", b"http://shop.test/a", b"Hello"])
    assert rows[0] == (key(1), hashlib.md5(first).digest(),
                       hashlib.md5(frames.encode_record([b"1", b"http://clone.test/a", b"Hello"])).digest(), b"Hello")
    assert rows[1][0] == key(2) and rows[1][1] == rows[1][2]
    assert table.summary() == []
    keyless = merge.TableBaseline.of("wp_log", ["line"], [], "log")
    assert keyless.rows(frames.encode_record([b"a"]), frames.encode_record([b"a"])) == []
    keyless.rows(frames.encode_record([b"b"]), frames.encode_record([b"b"]))
    other_order = merge.TableBaseline.of("wp_log", ["line"], None, "log")
    other_order.rows(frames.encode_record([b"b"]) + frames.encode_record([b"a"]),
                     frames.encode_record([b"b"]) + frames.encode_record([b"a"]))
    assert keyless.summary() == other_order.summary() and keyless.summary()[0][0] == b""


@pytest.mark.parametrize("key_", [["ID"], ["post_name"], ["ID", "post_name"]])
def test_a_baseline_entry_holds_its_rows_key_as_encode_record_makes_it_whether_or_not_the_payload_changed(
        key_: list[str]) -> None:
    columns = ["ID", "post_name", "post_title"]
    rows = [[b"1", b"a", b"Hello"], [None, b"b", None], [b"33", None, b""], [b"", b"", b"Long " * 100]]
    sent = b"".join(map(frames.encode_record, rows))
    table = merge.TableBaseline.of("wp_posts", columns, key_, "posts")
    expected = [(frames.encode_record([row[columns.index(name)] for name in key_]),
                 hashlib.md5(frames.encode_record(row)).digest(), hashlib.md5(frames.encode_record(row)).digest(),
                 row[2][:merge.MAX_LABEL_BYTES] if row[2] else row[2]) for row in rows]
    assert table.rows(sent, sent) == expected  # nothing rewritten: the payload arrives as it was sent
    assert table.rows(sent, bytes(bytearray(sent))) == expected  # rewritten, but no row changed


@pytest.mark.parametrize("key_", [["nope"], [], None, "ID", ["ID", "ID"], [1]])
def test_a_key_the_table_does_not_have_is_no_key(key_: object) -> None:
    assert merge.key_positions(["ID", "title"], key_) == ()


@pytest.mark.parametrize(("column_type", "next_id", "raised"), [
    ("bigint(20) unsigned", 1234, 100_001_234), ("int(11)", 50, 100_000_050), ("int(10) unsigned", 7, 100_000_007),
    ("smallint(5) unsigned", 10, None), ("mediumint(9)", 10, None), ("varchar(20)", 10, None),
    ("int(11)", 2_000_000_000, None)])
def test_a_clone_numbers_its_own_rows_far_above_the_source_where_the_type_has_room(
        column_type: str, next_id: int, raised: int | None) -> None:
    assert merge.raised_counter(column_type, next_id, 100_000_000) == raised


def test_the_report_counts_every_row_and_lists_a_bounded_number() -> None:
    merge_ = posts(baseline={}, production={})
    for row in range(merge.MAX_LISTED + 50):
        merge_.clone_row(key(row), fp(str(row)), fp(str(row)), b"post")
    report = merge.MergeReport()
    report.table(merge_)
    lines = report.lines()
    assert lines[0] == f"table wp_posts: insert {merge.MAX_LISTED + 50}, update 0, delete 0"
    assert lines[1] == "insert wp_posts ID=0 (post)" and lines[-1] == "… and 50 more rows"
    assert len(lines) == merge.MAX_LISTED + 2

"""Table definitions from a hostile source: the operator (site_move.table_definition, before any database)
and the migrator (WPClone_Table_Definition, before its target's database) take them apart the same way,
refuse every one that would do more than create a table, and rebuild only what they checked."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.hostile_input import hostile_definitions, php, php_definitions
from wpclone_common import constants
from wpclone_engine import frames
from wpclone_engine.rewrite import UrlRewrite
from wpclone_engine.site_move import SiteMove, table_definition

TABLE, STAGING = "wp_t0", "wpci_0123456789ab_0"
ATTACKS = hostile_definitions(TABLE)
WORDPRESS_POSTS = """CREATE TABLE `wp_t0` (
  `ID` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `post_date` datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  `post_title` text NOT NULL,
  `price` decimal(10,2) DEFAULT -1.50,
  `flag` bit(1) NOT NULL DEFAULT b'1',
  `kind` enum('a','b''c','d\\\\e') DEFAULT 'a' COMMENT 'it''s -- not /* a */ comment; DROP TABLE wp_users',
  `data` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`data`)),
  `doubled` bigint(20) GENERATED ALWAYS AS (`ID` * 2) VIRTUAL,
  `modified` timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  PRIMARY KEY (`ID`),
  UNIQUE KEY `kind_price` (`kind`,`price`),
  KEY `post_title` (`post_title`(191)) USING BTREE COMMENT 'prefix',
  FULLTEXT KEY `title` (`post_title`),
  CONSTRAINT `positive` CHECK (`price` > -100)
) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci ROW_FORMAT=DYNAMIC \
COMMENT='posts'"""


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_hostile_table_definition_is_refused_by_the_operator_and_the_migrator(attack: str) -> None:
    with pytest.raises(frames.StreamError) as refusal:
        table_definition(ATTACKS[attack], TABLE)
    assert refusal.value.reason == constants.BAD_TABLE_DEFINITION
    assert len(str(refusal.value)) < 300  # says why, without echoing what was sent
    [answer] = php_definitions([ATTACKS[attack]], TABLE, STAGING)
    assert answer.get("error") == "bad_table_definition", answer


def test_a_real_definition_is_rebuilt_exactly_under_the_staging_name_by_both() -> None:
    expected = WORDPRESS_POSTS.replace(f"`{TABLE}`", f"`{STAGING}`", 1)
    assert table_definition(WORDPRESS_POSTS, TABLE).statement(STAGING) == expected
    assert php_definitions([WORDPRESS_POSTS], TABLE, STAGING) == [{"statement": expected}]


def test_foreign_keys_are_taken_apart_so_that_a_copy_can_leave_them_out() -> None:
    create = ("CREATE TABLE `wp_t0` (\n  `id` int NOT NULL,\n  `parent` int DEFAULT NULL,\n  PRIMARY KEY (`id`),\n"
              "  CONSTRAINT `fk_parent` FOREIGN KEY (`parent`) REFERENCES `wp_t1` (`id`) ON DELETE CASCADE\n"
              ") ENGINE=InnoDB")
    definition = table_definition(create, TABLE)
    assert [key.text for key in definition.foreign_keys] == [
        "CONSTRAINT `fk_parent` FOREIGN KEY (`parent`) REFERENCES `wp_t1` (`id`) ON DELETE CASCADE"]
    move = SiteMove(UrlRewrite("http://a.test", "http://b.test"), "wp_", "clone_")
    assert move.create_statement(create, TABLE) == (
        "CREATE TABLE `clone_t0` (\n  `id` int NOT NULL,\n  `parent` int DEFAULT NULL,\n  PRIMARY KEY (`id`)\n"
        ") ENGINE=InnoDB")
    assert move.foreign_keys(create, TABLE) == [
        "CONSTRAINT `fk_parent` FOREIGN KEY (`parent`) REFERENCES `clone_t1` (`id`) ON DELETE CASCADE"]


@pytest.mark.parametrize(("reference", "refusal"), [
    ("`other_db`.`wp_t1`", "refers to no table of the same database"),
    ("`mysql`.`user`", "refers to no table of the same database"),
    ("`other_t1`", "refers to other_t1, which is not a table of the source site"),
])
def test_a_foreign_key_to_anything_but_the_sites_own_tables_is_refused(reference: str, refusal: str) -> None:
    create = (f"CREATE TABLE `wp_t0` (\n  `id` int NOT NULL,\n  `parent` int DEFAULT NULL,\n  PRIMARY KEY (`id`),\n"
              f"  CONSTRAINT `fk` FOREIGN KEY (`parent`) REFERENCES {reference} (`id`)\n) ENGINE=InnoDB")
    move = SiteMove(UrlRewrite("http://a.test", "http://b.test"), "wp_", "clone_")
    with pytest.raises(frames.StreamError, match=refusal) as refusal_error:
        move.foreign_keys(create, TABLE)
    assert refusal_error.value.reason == "BadTableDefinition"


def test_the_migrator_rebuilds_a_foreign_key_from_its_parts_without_its_names() -> None:
    clause = ("CONSTRAINT `fk_parent` FOREIGN KEY `by_parent` (`parent`, `kind`) REFERENCES `wp_t1` (`id`, `kind`) "
              "ON DELETE CASCADE ON UPDATE SET NULL")
    assert php("foreign_keys", json.dumps([{"clause": clause, "name": TABLE}]).encode()) == [{"key": {
        "head": "FOREIGN KEY (`parent`, `kind`)", "references": "wp_t1",
        "tail": "(`id`, `kind`) ON DELETE CASCADE ON UPDATE SET NULL"}}]


@pytest.mark.parametrize("clause", [
    "CONSTRAINT `fk` FOREIGN KEY (`parent`) REFERENCES `other_db`.`wp_t1` (`id`)",
    "FOREIGN KEY (`parent`) REFERENCES `wp_t1` (`id`); DROP TABLE `wp_users`",
    "FOREIGN KEY (`parent`) REFERENCES `wp_t1` (`id`) /*!50000 , ADD COLUMN x int */",
    "FOREIGN KEY (`parent`) REFERENCES `wp_t1` (`id`) ON DELETE DROP",
    "FOREIGN KEY (`parent`) REFERENCES `wp_t1` (`id`), ADD COLUMN `x` int",
    "FOREIGN KEY (parent) REFERENCES `wp_t1` (`id`)",
    "FOREIGN KEY (`parent`) REFERENCES (SELECT 1)",
    "CHECK (1)",
    "",
])
def test_the_migrator_refuses_a_foreign_key_that_is_anything_more(clause: str) -> None:
    [answer] = php("foreign_keys", json.dumps([{"clause": clause, "name": TABLE}]).encode())
    assert answer.get("error") == "bad_table_definition", answer


def _verdict(answer: dict[str, str]) -> str | None:
    return answer.get("statement")


# Characters that change how MySQL reads what follows them.
_TRICKY = st.sampled_from([*"'`\\;-#/*()\",= \n@?", "--", "/*", "*/", "''", "\\'", " ENGINE=FEDERATED", " SELECT 1"])


@st.composite
def bent_definitions(draw: st.DrawFn) -> str:
    create = WORDPRESS_POSTS
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(create)))
        create = create[:at] + draw(_TRICKY) + create[at:]
    return create


@settings(max_examples=25, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(bent_definitions(), min_size=40, max_size=40))
def test_the_operator_and_the_migrator_agree_on_every_definition(creates: list[str]) -> None:
    """The two readers of a definition accept the same ones and rebuild them alike: a definition one of
    them reads differently from the server would show up as a disagreement."""
    answers = php_definitions(creates, TABLE, STAGING)
    for create, answer in zip(creates, answers, strict=True):
        try:
            ours: str | None = table_definition(create, TABLE).statement(STAGING)
        except frames.StreamError as refusal:
            assert refusal.reason == constants.BAD_TABLE_DEFINITION
            ours = None
        assert ours == _verdict(answer), (create, answer)

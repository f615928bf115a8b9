"""Which of a restore target's backups the retention setting deletes (restoring.backups_to_delete), and
the thin call after a restore that made one (restoring.prune_backups)."""

from __future__ import annotations

import asyncio
from typing import Any

from wpclone_engine.wordpress import WordPressError
from wpclone_operator.restoring import backups_to_delete, prune_backups
from wpclone_operator.settings import Settings


def listed(*created: int) -> list[dict[str, Any]]:
    return [{"id": f"{at:012x}", "created": at, "tables": [], "folders": ["uploads"]} for at in created]


def test_all_but_the_newest_n_are_deleted_oldest_last_whatever_the_order_listed() -> None:
    backups = listed(300, 100, 500, 200, 400)
    assert backups_to_delete(backups, 3) == [f"{200:012x}", f"{100:012x}"]
    assert backups_to_delete(backups, 1) == [f"{400:012x}", f"{300:012x}", f"{200:012x}", f"{100:012x}"]


def test_zero_keeps_every_backup_and_fewer_than_n_deletes_none() -> None:
    assert backups_to_delete(listed(1, 2, 3, 4), 0) == []
    assert backups_to_delete(listed(1, 2), 3) == []
    assert backups_to_delete([], 3) == []


def test_the_backup_just_made_is_never_deleted_even_with_a_clock_gone_wrong() -> None:
    backups = listed(900, 800) + [{"id": "0000000000aa", "created": 5}]
    assert backups_to_delete(backups, 1, made="0000000000aa") == [f"{900:012x}", f"{800:012x}"]
    assert "0000000000aa" not in backups_to_delete(backups, 2, made="0000000000aa")


def test_entries_without_an_id_are_skipped_and_without_a_time_count_as_oldest() -> None:
    backups = [{"created": 1}, "junk", {"id": "aaaaaaaaaaaa"}, {"id": "bbbbbbbbbbbb", "created": "x"},
               *listed(10)]
    assert sorted(backups_to_delete(backups, 1)) == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]  # type: ignore[arg-type]


def test_the_setting_defaults_to_three_and_reads_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("WPCLONE_MYSQL_ADMIN_DSN", "mysql://root:x@db:3306/")
    assert Settings().backup_retention == 3  # type: ignore[call-arg]
    monkeypatch.setenv("WPCLONE_BACKUP_RETENTION", "0")
    assert Settings().backup_retention == 0  # type: ignore[call-arg]


class FakeTarget:
    url = "https://shop.example"

    def __init__(self, backups: list[dict[str, Any]], fail_on: str | None = None) -> None:
        self.backups = backups
        self.deleted: list[str] = []
        self.fail_on = fail_on

    async def info(self) -> Any:
        return type("Info", (), {"backups": self.backups})()

    async def delete_backup(self, backup: str) -> None:
        if backup == self.fail_on:
            raise WordPressError("MigratorError", "backup/delete failed")
        self.deleted.append(backup)


def test_pruning_asks_the_target_to_delete_the_old_ones_and_never_fails_the_restore() -> None:
    target = FakeTarget(listed(1, 2, 3, 4, 5))
    assert asyncio.run(prune_backups(target, 3, f"{5:012x}")) == [f"{2:012x}", f"{1:012x}"]  # type: ignore[arg-type]
    assert target.deleted == [f"{2:012x}", f"{1:012x}"]
    failing = FakeTarget(listed(1, 2, 3, 4, 5), fail_on=f"{2:012x}")
    assert asyncio.run(prune_backups(failing, 3, None)) == []  # type: ignore[arg-type]
    idle = FakeTarget(listed(1, 2, 3, 4, 5))
    assert asyncio.run(prune_backups(idle, 0, None)) == [] and idle.deleted == []  # type: ignore[arg-type]

"""Statements on the shared MySQL server: a moment's refusal is tried again, anything else is not."""

from __future__ import annotations

import aiomysql
import pytest

from wpclone_operator import mysql


class Cursor:
    def __init__(self, *failures: int) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def execute(self, statement: str, parameters: object) -> None:
        self.calls += 1
        if self.failures:
            code = self.failures.pop(0)
            raise aiomysql.OperationalError(code, "Table './mysql/db.MAI' is read only")


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mysql, "RETRY_DELAYS", (0.0, 0.0, 0.0))


async def test_a_transient_refusal_is_tried_again() -> None:
    cursor = Cursor(1036, 1213)
    await mysql._execute(cursor, "DROP USER IF EXISTS %s@'%%'", ("u",))  # type: ignore[arg-type]
    assert cursor.calls == 3


async def test_a_transient_refusal_that_persists_is_raised() -> None:
    cursor = Cursor(1036, 1036, 1036, 1036)
    with pytest.raises(aiomysql.OperationalError):
        await mysql._execute(cursor, "DROP USER IF EXISTS %s@'%%'", ("u",))  # type: ignore[arg-type]
    assert cursor.calls == 4


async def test_any_other_error_is_raised_at_once() -> None:
    cursor = Cursor(1045)
    with pytest.raises(aiomysql.OperationalError):
        await mysql._execute(cursor, "CREATE USER", ())  # type: ignore[arg-type]
    assert cursor.calls == 1

"""Thin adapter around aiomysql: a database and a user per clone on the shared MySQL server."""

from __future__ import annotations

import asyncio
import re

import aiomysql

from wpclone_operator.settings import MySQLAdmin

IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class DatabaseError(Exception):
    """The shared MySQL server refused or could not be reached; the message names no password."""


def _identifier(name: str) -> str:
    if not IDENTIFIER.match(name):
        raise ValueError(f"not a safe MySQL identifier: {name!r}")
    return name


async def _run(admin: MySQLAdmin, statements: list[tuple[str, tuple[str, ...]]]) -> None:
    try:
        connection = await aiomysql.connect(host=admin.host, port=admin.port, user=admin.user,
                                            password=admin.password, autocommit=True, connect_timeout=10)
    except Exception as error:  # aiomysql raises several types; the message is what matters
        raise DatabaseError(f"cannot connect to MySQL at {admin.host}:{admin.port} as {admin.user}: "
                            f"{_first_line(error)}") from None
    try:
        async with connection.cursor() as cursor:
            for statement, parameters in statements:
                await _execute(cursor, statement, parameters)
    except aiomysql.Error as error:
        raise DatabaseError(f"MySQL at {admin.host}:{admin.port}: {_first_line(error)}") from None
    finally:
        connection.close()


# Errors a statement meets for a moment, when many clones come or go at once: MariaDB's Aria system
# tables (mysql.db) answer "is read only" (1036) to a DROP USER racing others, and InnoDB deadlocks
# (1213) or lock waits (1205). Every statement here may run again (IF EXISTS, IF NOT EXISTS).
TRANSIENT_ERRORS = frozenset({1036, 1205, 1213})
RETRY_DELAYS = (0.1, 0.3, 1.0)


async def _execute(cursor: aiomysql.Cursor, statement: str, parameters: tuple[str, ...]) -> None:
    for delay in (*RETRY_DELAYS, None):
        try:
            await cursor.execute(statement, parameters or None)
            return
        except aiomysql.OperationalError as error:
            if delay is None or not error.args or error.args[0] not in TRANSIENT_ERRORS:
                raise
        await asyncio.sleep(delay)


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


async def ensure_database(admin: MySQLAdmin, database: str, user: str, password: str) -> None:
    """Create the database and its user, or bring them back to this state: safe to repeat."""
    database, user = _identifier(database), _identifier(user)
    await _run(admin, [
        (f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", ()),
        ("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password)),
        ("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password)),
        (f"GRANT ALL PRIVILEGES ON `{database}`.* TO %s@'%%'", (user,)),
    ])


async def drop_database(admin: MySQLAdmin, database: str, user: str) -> None:
    """Drop both; what is already gone is not an error."""
    database, user = _identifier(database), _identifier(user)
    await _run(admin, [
        (f"DROP DATABASE IF EXISTS `{database}`", ()),
        ("DROP USER IF EXISTS %s@'%%'", (user,)),
    ])

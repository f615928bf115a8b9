"""Thin adapter around aiomysql: a database and a user per clone on the shared MySQL server."""

from __future__ import annotations

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
                await cursor.execute(statement, parameters or None)
    except aiomysql.Error as error:
        raise DatabaseError(f"MySQL at {admin.host}:{admin.port}: {_first_line(error)}") from None
    finally:
        connection.close()


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

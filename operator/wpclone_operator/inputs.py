"""Where a copy reads its logins and records: from the apiserver (a copy inside the operator, or a pool
slot's standing copy Job, whose account may read the Secrets of the plan it was handed and no other) or
from the files the operator mounted into its copy Job (which reads no Secret through the API at all)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wpclone_common import constants, kube
from wpclone_engine.database_import import DatabaseTarget
from wpclone_engine.sqlite_import import SqliteTarget
from wpclone_engine.transfer import TransferError
from wpclone_operator import children, credentials
from wpclone_operator.settings import split_address


class Inputs(Protocol):
    def login(self, name: str) -> dict[str, str]:
        """A user's site login (Secret `name`: username and password), or a TransferError saying why not."""

    def secret(self, name: str) -> dict[str, str] | None:
        """One of the operator's own Secrets (a clone's admin or database login); None when missing."""

    def config_map(self, name: str) -> dict[str, str]:
        """A ConfigMap's data; empty when it does not exist."""

    def database(self, secret: str) -> DatabaseTarget | None:
        """A clone's database, from its database Secret, where this copy reaches the shared server."""

    def sqlite(self) -> SqliteTarget | None:
        """A SQLite clone's database folder, when this copy has its volume (a copy Job of a SQLite clone)."""


def _target(data: dict[str, str], host: str, port: int) -> DatabaseTarget:
    return DatabaseTarget(host=host, port=port, user=data["username"], password=data["password"],
                          database=data["database"], table_prefix=children.TABLE_PREFIX)


@dataclass(frozen=True)
class FromApi:
    """The namespace's objects through the apiserver; the shared MySQL server at the address the operator
    reaches it by (which may differ from the clones' when the operator runs outside), or, for a copy in a
    pod (mysql_address None), where pods reach it (the database Secret's host)."""

    namespace: str
    mysql_address: str | None = None

    def login(self, name: str) -> dict[str, str]:
        return credentials.read_login(self.namespace, name)

    def secret(self, name: str) -> dict[str, str] | None:
        return kube.read_secret(self.namespace, name)

    def config_map(self, name: str) -> dict[str, str]:
        body = kube.get("v1", "ConfigMap", self.namespace, name)
        return dict((body or {}).get("data") or {})

    def database(self, secret: str) -> DatabaseTarget | None:
        data = self.secret(secret)
        return None if data is None else _target(data, *split_address(self.mysql_address or data["host"]))

    def sqlite(self) -> SqliteTarget | None:
        return None  # a clone's volume is mounted in its pods, never in the operator


@dataclass(frozen=True)
class Mounted:
    """A copy Job's view: each Secret the operator mounted at `root`/secrets/<name>/<key>, each ConfigMap
    at `root`/config/<name>/<key>; the shared MySQL server where pods reach it (the Secret's host). The
    operator checked the user's login Secrets (their opt-in label) before it mounted them."""

    root: Path

    @staticmethod
    def _read(folder: Path) -> dict[str, str] | None:
        if not folder.is_dir():
            return None
        return {entry.name: entry.read_text(errors="replace") for entry in folder.iterdir()
                if entry.is_file() and not entry.name.startswith(".")}

    def login(self, name: str) -> dict[str, str]:
        data = self._read(self.root / "secrets" / name)
        if data is None:
            raise TransferError(constants.CREDENTIALS_MISSING, f"Secret {name} with the admin login is not mounted")
        return credentials.login_data(data, name)

    def secret(self, name: str) -> dict[str, str] | None:
        return self._read(self.root / "secrets" / name)

    def config_map(self, name: str) -> dict[str, str]:
        return self._read(self.root / "config" / name) or {}

    def database(self, secret: str) -> DatabaseTarget | None:
        data = self.secret(secret)
        return None if data is None else _target(data, *split_address(data["host"]))

    def sqlite(self) -> SqliteTarget | None:
        folder = self.root / "database"
        return SqliteTarget(folder, children.TABLE_PREFIX) if folder.is_dir() else None

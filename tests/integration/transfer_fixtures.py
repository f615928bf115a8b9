"""Sites for the copy engine's tests: a seeded source with the migrator as a must-use plugin, fresh
destinations per test (copies write to them), and ways to look at a site from outside."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from testenv import processes, wordpress
from testenv.mariadb import MariaDB
from wpclone_engine import migrator, sqlite_dropin

ROOTS = ("uploads", "themes", "plugins")


def install_migrator_as_mu_plugin(docroot: Path) -> None:
    """As the operator mounts it from a ConfigMap: the plugin's flat files in mu-plugins."""
    mu_plugins = docroot / "wp-content" / "mu-plugins"
    mu_plugins.mkdir(parents=True, exist_ok=True)
    for name, text in migrator.mu_plugins().items():
        (mu_plugins / name).write_text(text)


def wp_php(site: wordpress.WordPressSite, code: str) -> str:
    """Runs PHP inside the site's WordPress (wp-load.php) and returns what it printed."""
    script = (f"$_SERVER['HTTP_HOST'] = '127.0.0.1'; require '{site.docroot}/wp-load.php'; "
              "add_filter('pre_wp_mail', '__return_false'); " + code)
    result = subprocess.run(["php", "-r", script], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"php failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result.stdout


async def log_in(url: str, login: str, password: str) -> httpx.Response:
    """The site's wp-admin, after logging in as a browser does."""
    async with httpx.AsyncClient(timeout=30) as browser:
        await browser.get(url + "/wp-login.php")
        await browser.post(url + "/wp-login.php", data={"log": login, "pwd": password, "testcookie": "1",
                                                        "redirect_to": url + "/wp-admin/"})
        return await browser.get(url + "/wp-admin/")


def restart(site: wordpress.WordPressSite) -> None:
    site.stop()
    site.server = wordpress.serve(site.docroot, site.port, site.server.log_path, host=urlsplit(site.url).hostname or "")


@dataclass(frozen=True)
class Snapshot:
    """Everything of a site an import may change: its tables' checksums and its content files' hashes
    (the migrator's own staging is what `leftovers` finds)."""

    tables: dict[str, str]
    files: dict[str, str]


def snapshot(mariadb: MariaDB, site: wordpress.WordPressSite) -> Snapshot:
    names = mariadb.sql(f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{site.db_name}'"
                        " AND TABLE_NAME NOT LIKE 'wpc%'").split()
    tables = {name: mariadb.sql(f"CHECKSUM TABLE `{site.db_name}`.`{name}` EXTENDED").split("\t")[1]
              for name in sorted(names)}
    content = site.docroot / "wp-content"
    files = {}
    for root in ROOTS:
        for folder, subfolders, names in os.walk(content / root):
            subfolders[:] = [name for name in subfolders if not name.startswith(".wpclone-")]
            for name in subfolders + names:
                path = Path(folder) / name
                key = str(path.relative_to(content))
                files[key] = ("link" if path.is_symlink() else "folder" if path.is_dir()
                              else hashlib.sha256(path.read_bytes()).hexdigest())
    return Snapshot(tables, files)


def leftovers(mariadb: MariaDB, site: wordpress.WordPressSite) -> list[str]:
    """Staging tables, staging folders and job files of imports that did not finish."""
    found = mariadb.sql(f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{site.db_name}'"
                        " AND TABLE_NAME LIKE 'wpc%'").split()
    content = site.docroot / "wp-content"
    for root in ROOTS:
        found += [str(path) for path in (content / root).glob(".wpclone-*")]
    # (a dropped job's record of why, jobs/<id>.failed, is no staging: the next import or abort removes it)
    found += [str(path) for path in (content / "wpclone-migrator" / "jobs").glob("*") if path.suffix != ".failed"]
    return found


def backup_store(site: wordpress.WordPressSite) -> Path:
    """Where the site's migrator keeps backups outside its document root: beside it, named by its
    ABSPATH (wpclone-migrator-backup.php, WPClone_Backups::store)."""
    name = hashlib.sha256(f"{site.docroot.resolve()}/".encode()).hexdigest()[:12]
    return site.docroot.parent / f".wpclone-backups-{name}"


def content_hashes(docroot: Path, root: str = "uploads") -> dict[str, str]:
    """The hash of every regular file under wp-content/<root>, links not followed."""
    top = docroot / "wp-content" / root
    hashes = {}
    for folder, _, names in os.walk(top):
        for name in names:
            path = Path(folder) / name
            if not path.is_symlink():
                hashes[str(path.relative_to(top))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


class CutExports(httpx.AsyncBaseTransport):
    """Passes requests through, but an export stream stops after `limit` bytes, as when the exporting
    PHP process is killed or the connection drops (only the first `times` ones, when given); keeps the
    parameters each database and files export was asked with."""

    def __init__(self, limit: int, times: int | None = None) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._limit = limit
        self._times = times
        self.database_exports: list[dict[str, Any]] = []
        self.files_exports: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.url.path.endswith("/export/database"):
            self.database_exports.append(json.loads(request.content))
        if request.url.path.endswith("/export/files"):
            self.files_exports.append(json.loads(request.content))
        if "/export/" not in request.url.path or self._times == 0:
            return response
        if self._times is not None:
            self._times -= 1
        return httpx.Response(response.status_code, headers=response.headers, request=request,
                              stream=_Truncated(response.stream, self._limit))

    async def aclose(self) -> None:
        await self._inner.aclose()


class Timeline(httpx.AsyncBaseTransport):
    """Passes requests through and notes, in order, when each migrator route was asked ("asked <port>
    <route>") and when its answer was done with ("done <port> <route>": read, or closed before its end)."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.events: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = f"{request.url.port} {request.url.path.rsplit('/v1/', 1)[-1]}"
        self.events.append(f"asked {route}")
        response = await self._inner.handle_async_request(request)
        return httpx.Response(response.status_code, headers=response.headers, request=request,
                              stream=_Noted(response.stream, self.events, f"done {route}"))

    def first(self, event: str) -> int:
        return self.events.index(event)

    def last(self, event: str) -> int:
        return len(self.events) - 1 - self.events[::-1].index(event)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Noted(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, events: list[str], event: str) -> None:
        self._inner, self._events, self._event = inner, events, event

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
        self._events.append(self._event)


class _Truncated(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self._inner:
            yield chunk[:self._limit - sent]
            sent += len(chunk)
            if sent >= self._limit:
                return

    async def aclose(self) -> None:
        await self._inner.aclose()


SiteMaker = Callable[..., wordpress.WordPressSite]


@pytest.fixture(scope="module")
def make_site(mariadb: MariaDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteMaker]:
    """Makes seeded WordPress sites (with the migrator as a must-use plugin unless asked otherwise; on the
    node bridge's gateway `host` when pods must reach them), stopped when the module's tests are done."""
    base = tmp_path_factory.mktemp("transfer-sites")
    made: list[wordpress.WordPressSite] = []

    def make(*, migrator: bool = True, host: str = "127.0.0.1") -> wordpress.WordPressSite:
        site = wordpress.create_sites(1, mariadb, base, host=host)[0]
        made.append(site)
        if migrator:
            install_migrator_as_mu_plugin(site.docroot)
        return site

    yield make
    for site in made:
        site.stop()


@pytest.fixture(scope="module")
def source_site(make_site: SiteMaker) -> wordpress.WordPressSite:
    """The seeded site copies start from (tests only read it), with a link that must not be followed."""
    site = make_site()
    (site.docroot / "wp-content" / "uploads" / "outside").symlink_to("/etc")
    return site


@dataclass
class EmptyClone:
    """A WordPress whose database has no tables yet, configured as the operator configures a clone."""

    url: str
    docroot: Path
    db_name: str
    db_user: str
    db_password: str
    token: str
    table_prefix: str
    server: processes.Server


@pytest.fixture
def empty_clone(mariadb: MariaDB, tmp_path: Path) -> Iterator[EmptyClone]:
    with an_empty_clone(mariadb, tmp_path) as clone:
        yield clone


@contextlib.contextmanager
def an_empty_clone(mariadb: MariaDB, tmp_path: Path) -> Iterator[EmptyClone]:
    port = processes.free_port()
    db_name = db_user = f"clone_{port}"
    db_password, token = secrets.token_urlsafe(18), secrets.token_urlsafe(32)
    mariadb.sql(f"CREATE DATABASE `{db_name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
                f"CREATE USER '{db_user}'@'127.0.0.1' IDENTIFIED BY '{db_password}';"
                f"GRANT ALL PRIVILEGES ON `{db_name}`.* TO '{db_user}'@'127.0.0.1';")
    docroot = tmp_path / f"clone-{port}"
    url = f"http://127.0.0.1:{port}"
    wordpress.prepare_docroot(docroot)
    wordpress.write_config(docroot, db_host=f"{mariadb.host}:{mariadb.port}", db_name=db_name, db_user=db_user,
                           db_password=db_password, url=url, table_prefix="clone_",
                           extra_php=f"define('WPCLONE_MIGRATOR_TOKEN', '{token}');")
    install_migrator_as_mu_plugin(docroot)
    server = wordpress.serve(docroot, port, tmp_path / f"clone-{port}.log")
    try:
        yield EmptyClone(url, docroot, db_name, db_user, db_password, token, "clone_", server)
    finally:
        server.stop()


@dataclass(frozen=True)
class SqliteClone:
    """A WordPress on the SQLite drop-in with no database file yet, configured as the operator configures
    a SQLite clone: the drop-in's loader as wp-content/db.php, the database in a folder outside the docroot."""

    url: str
    docroot: Path
    database: Path  # the folder of its database file
    token: str
    table_prefix: str
    server: processes.Server


def sqlite_wordpress(docroot: Path, database: Path, url: str, extra_php: str = "") -> None:
    """A WordPress on the SQLite drop-in, its database file in `database`: no MySQL behind it (its
    database settings are never used)."""
    wordpress.prepare_docroot(docroot)
    wordpress.write_config(docroot, db_host="127.0.0.1:9", db_name="none", db_user="none", db_password="none",
                           url=url, table_prefix="clone_", extra_php=extra_php)
    (docroot / "wp-content" / "db.php").write_text(sqlite_dropin.loader(str(sqlite_dropin.FOLDER), str(database)))


@pytest.fixture
def sqlite_clone(tmp_path: Path) -> Iterator[SqliteClone]:
    port = processes.free_port()
    token = secrets.token_urlsafe(32)
    docroot, database = tmp_path / "sqlite-clone", tmp_path / "sqlite-database"
    url = f"http://127.0.0.1:{port}"
    sqlite_wordpress(docroot, database, url, extra_php=f"define('WPCLONE_MIGRATOR_TOKEN', '{token}');")
    install_migrator_as_mu_plugin(docroot)
    server = wordpress.serve(docroot, port, tmp_path / "sqlite-clone.log")
    yield SqliteClone(url, docroot, database, token, "clone_", server)
    server.stop()

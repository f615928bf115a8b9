"""A WordPress site, seen through its migrator plugin (migrator_plugin/), over httpx.

`Migrator` wraps the plugin's REST routes. With a login it opens a session first (the password crosses
the network once; every later call carries the session's token) and opens it again if it expired;
a clone's migrator takes the clone's own token. `site_session` is one job on a site: the migrator
installed where it is missing, with nothing but the site's administrator login (wp-login.php, upload,
activate), and at the end the session closed and, unless kept, the plugin removed. Errors say which
site and which login failed and why; they never contain a password or a token, and what a site sent
reaches them only as a short, plain reason (_brief): never a response body.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import logging
import re
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from httpcore._async.http11 import AsyncHTTP11Connection

from wpclone_engine import migrator, outbound, reasons

# httpcore reads a response 64 KiB at a time, each read a trip through h11 and anyio; an export streams
# hundreds of MiB. Reads of up to 1 MiB: a copy of bench.bench_transfer's reference site takes 1.49-1.55
# CPU-seconds of Python instead of 1.63-1.67. The size is a class attribute of httpcore's HTTP/1.1
# connection, its one setting for it; a read still returns only what the socket holds.
AsyncHTTP11Connection.READ_NUM_BYTES = 1024 * 1024

MIGRATOR_SLUG = "wpclone-migrator"
NAMESPACE = "wpclone/v1"
TOKEN_HEADER = "X-WPClone-Token"
log = logging.getLogger(__name__)
# Jobs on one site take turns to install the migrator and to close their session (so that one job's
# removal of the plugin never races another's installation).
_SITE_LOCKS: dict[str, asyncio.Lock] = {}


class WordPressError(Exception):
    """A site refused or failed a request. `reason` is machine-readable (for a CR condition)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TableInfo:
    name: str
    rows: int
    checksum: str | None = None
    collations: tuple[str, ...] = ()  # the table's and its columns', when asked for


@dataclass(frozen=True)
class SiteInfo:
    """What the migrator's info route reports about a site."""

    home: str
    siteurl: str
    table_prefix: str
    tables: dict[str, TableInfo]
    options: dict[str, str | None]  # the raw database values of home, siteurl, blog_public
    mode: str  # "plugin" or "mu-plugin"
    max_request_bytes: int
    backups: list[dict[str, Any]]
    versions: dict[str, str]
    content: dict[str, dict[str, int]] | None = None

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> SiteInfo:
        return cls(
            home=report["home"], siteurl=report["siteurl"], table_prefix=report["table_prefix"],
            tables={table["name"]: TableInfo(table["name"], int(table["rows"]), table.get("checksum"),
                                             tuple(table.get("collations") or ())) for table in report["tables"]},
            options=report["options"], mode=report["mode"],
            max_request_bytes=int(report["limits"]["max_request_bytes"]), backups=report["backups"],
            versions={key: report[key] for key in ("migrator", "wordpress", "php", "database")},
            content=report.get("content"),
        )

    def checksums(self) -> dict[str, str | None]:
        return {name: table.checksum for name, table in self.tables.items()}


@dataclass(frozen=True)
class ImportJob:
    id: str
    max_request_bytes: int


@dataclass
class Migrator:
    """The migrator's routes on one site, reached in a session opened as `login` or with a clone's `token`."""

    http: httpx.AsyncClient
    url: str
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    session: str | None = field(default=None, repr=False)  # the open session's token
    build: str | None = None  # the release of the site's copy, as its session reported it (migrator.build)
    must_use: bool = False  # whether that copy is a must-use plugin (its owner's to update, not ours)
    role: str = "site"  # "source", "target", "clone": names the site in errors
    # A chunk whose reply was lost is sent again, with the same number, after each of these delays:
    # the migrator answers a repeated chunk without applying it twice.
    retry_delays: tuple[float, ...] = (1.0, 3.0, 9.0)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        try:  # before the URL appears in any message: it must not hold a password
            outbound.check_url(self.url)
        except outbound.DestinationNotAllowed as refused:
            raise WordPressError(reasons.DESTINATION_NOT_ALLOWED, f"{self.role} URL refused: {refused}") from None
        if self.token is None and (self.login is None or self.password is None):
            raise ValueError("a migrator needs a login and password, or a token")

    @property
    def who(self) -> str:
        return f"{self.login}@{self.url}" if self.token is None else f"token@{self.url}"

    async def open_session(self) -> None:
        """Sends the login once, for a token that every later call carries instead."""
        if self.token is not None:
            return
        self.session = None
        answer = await self._call("session", basic=True)
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise WordPressError("MigratorError", f"{self.role} {self.url}: session answered no token")
        self.session = token
        build = answer.get("build")
        self.build = build if isinstance(build, str) else None  # None: a release before builds were reported
        self.must_use = answer.get("must_use") is True

    async def close_session(self, *, remove: bool) -> bool:
        """Ends the session; with `remove` the plugin leaves the site once no other job's session is
        live. Returns whether it left now. A failure is logged, never raised (the job is done)."""
        if self.session is None:
            return False
        try:
            answer = await self._call("session/close", {"remove": remove})
        except WordPressError as error:
            log.warning("closing the migrator session on %s %s failed: %s", self.role, self.url, error)
            return False
        finally:
            self.session = None
        return answer.get("removed") is True

    async def info(self, *, checksums: bool = False, content: bool = False, collations: bool = False) -> SiteInfo:
        report = await self._call("info", {"checksums": checksums, "content": content, "collations": collations})
        try:
            return SiteInfo.from_report(report)
        except (KeyError, TypeError, ValueError) as error:
            raise WordPressError("MigratorError", f"{self.role} {self.url}: unexpected info report "
                                 f"({_brief(str(error))})") from None

    @asynccontextmanager
    async def export_database(self, tables: list[str] | None, slice_bytes: int, resume: dict[str, Any] | None = None,
                              ) -> AsyncIterator[AsyncIterator[bytes]]:
        """The tables' stream; with `resume` (frames.ResumePoint.resume), what an interrupted one had left."""
        params = {"tables": tables, "slice_bytes": slice_bytes, **(resume or {})}
        async with self._stream("export/database", params) as chunks:
            yield chunks

    @asynccontextmanager
    async def export_files(self, include: list[str], slice_bytes: int, *, dropins: bool = False,
                           exclude: tuple[str, ...] = (), paths: list[str] | None = None,
                           resume: dict[str, Any] | None = None) -> AsyncIterator[AsyncIterator[bytes]]:
        """The files of the `include` folders (only `paths`, stream paths, when given); with `resume`
        (frames.FilesResumePoint.resume), what an interrupted one had left."""
        params = {"include": include, "slice_bytes": slice_bytes, "dropins": dropins, "exclude": list(exclude),
                  "paths": paths, **(resume or {})}
        async with self._stream("export/files", params) as chunks:
            yield chunks

    @asynccontextmanager
    async def export_file_fingerprints(self, include: list[str], *, dropins: bool = False,
                                       exclude: tuple[str, ...] = ()) -> AsyncIterator[AsyncIterator[bytes]]:
        """Each file's stream path and md5, as export_files walks them (merge.py)."""
        params = {"include": include, "dropins": dropins, "exclude": list(exclude)}
        async with self._stream("export/file-fingerprints", params) as chunks:
            yield chunks

    async def begin_import(self, *, database: bool, tables: list[str] | None, files: list[str], dropins: bool = False,
                           exclude: tuple[str, ...] = ()) -> ImportJob:
        answer = await self._call("import/begin", {"database": database, "tables": tables, "files": files,
                                                   "dropins": dropins, "exclude": list(exclude)})
        return ImportJob(answer["job"], int(answer["max_request_bytes"]))

    async def send_chunk(self, kind: str, body: list[bytes]) -> dict[str, Any]:
        """Sends one numbered chunk of an import (its frames, the H frame first), again if the reply is lost."""
        for delay in self.retry_delays:
            try:
                return await self._call(f"import/{kind}", content=body)
            except WordPressError as error:
                if error.reason != "Unreachable":
                    raise
            await asyncio.sleep(delay)
        return await self._call(f"import/{kind}", content=body)

    async def commit_import(self, job: str, *, chunks: dict[str, int], backup: bool) -> dict[str, Any]:
        """Swaps the import in, once the site has checked that the `chunks` sent of each kind all arrived."""
        return await self._call("import/commit", {"job": job, "chunks": chunks, "backup": backup}, timeout=900.0)

    @asynccontextmanager
    async def export_fingerprints(self, tables: list[str] | None) -> AsyncIterator[AsyncIterator[bytes]]:
        """Each row's key and fingerprint (merge.py), table by table, as the database export walks them."""
        async with self._stream("export/fingerprints", {"tables": tables}) as chunks:
            yield chunks

    async def commit_merge(self, job: str, *, chunks: dict[str, int], plan: list[dict[str, Any]],
                           files: dict[str, Any] | None, backup: bool) -> dict[str, Any]:
        """Applies a merge whose rows and files the import `job` staged, by `plan` (tables) and `files`, at once."""
        return await self._call("import/merge", {"job": job, "chunks": chunks, "plan": plan, "files": files,
                                                 "backup": backup}, timeout=900.0)

    async def abort_import(self, job: str | None = None) -> None:
        await self._call("import/abort", {"job": job})

    async def import_status(self, job: str) -> dict[str, Any]:
        return await self._call("import/status", {"job": job})

    async def rollback(self, backup: str) -> None:
        await self._call("backup/rollback", {"backup": backup}, timeout=900.0)

    async def delete_backup(self, backup: str) -> None:
        await self._call("backup/delete", {"backup": backup}, timeout=900.0)

    # --- HTTP ---------------------------------------------------------------------------------

    def _request(self, route: str, params: dict[str, Any] | None, content: list[bytes] | None,
                 timeout: float) -> httpx.Request:
        headers = {"Accept": "application/json"}
        if (token := self.token or self.session) is not None:
            headers[TOKEN_HEADER] = token
        if content is None:
            return self.http.build_request("POST", f"{self.url}/wp-json/{NAMESPACE}/{route}", headers=headers,
                                           json=params, timeout=httpx.Timeout(timeout, connect=15.0))
        # The frames go out one after the other, never joined into one more copy of the body.
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Length"] = str(sum(len(part) for part in content))
        return self.http.build_request("POST", f"{self.url}/wp-json/{NAMESPACE}/{route}", headers=headers,
                                       content=_parts(content), timeout=httpx.Timeout(timeout, connect=15.0))

    async def _ready(self) -> None:
        if self.token is None and self.session is None:
            await self.open_session()

    async def _send(self, route: str, params: dict[str, Any] | None, content: list[bytes] | None, timeout: float,
                    *, basic: bool = False, stream: bool = False) -> httpx.Response:
        """One request: with the login (`basic`), or in the session, opened first and again once if it expired."""
        if not basic:
            await self._ready()
        response = await self._send_once(route, params, content, timeout, basic=basic, stream=stream)
        if (response.status_code == 401 and self.session is not None
                and _rest_error(await response.aread())[0] == "wpclone_bad_token"):
            await response.aclose()
            await self.open_session()
            response = await self._send_once(route, params, content, timeout, basic=False, stream=stream)
        return response

    async def _send_once(self, route: str, params: dict[str, Any] | None, content: list[bytes] | None,
                         timeout: float, *, basic: bool, stream: bool) -> httpx.Response:
        request = self._request(route, params, content, timeout)
        auth = httpx.BasicAuth(self.login or "", self.password or "") if basic else None
        try:
            return await self.http.send(request, auth=auth, stream=stream)
        except httpx.TransportError as error:
            raise self._unreachable(route, error) from None

    async def _call(self, route: str, params: dict[str, Any] | None = None, *, content: list[bytes] | None = None,
                    timeout: float = 300.0, basic: bool = False) -> dict[str, Any]:
        response = await self._send(route, params, content, timeout, basic=basic)
        if response.status_code != 200:
            raise self._refusal(route, response.status_code, response.content)
        try:
            answer = response.json()
        except ValueError:
            raise WordPressError("MigratorError", f"{self.role} {self.url}: {route} answered something "
                                 f"other than JSON ({_brief(response.headers.get('content-type', ''), 60)})") from None
        if not isinstance(answer, dict):
            raise WordPressError("MigratorError", f"{self.role} {self.url}: {route} answered a JSON "
                                 f"{type(answer).__name__}, not an object")
        return answer

    @asynccontextmanager
    async def _stream(self, route: str, params: dict[str, Any]) -> AsyncIterator[AsyncIterator[bytes]]:
        response = await self._send(route, params, None, 300.0, stream=True)
        try:
            if response.status_code != 200:
                raise self._refusal(route, response.status_code, await response.aread())
            yield self._chunks(route, response)
        finally:
            await response.aclose()

    async def _chunks(self, route: str, response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.TransportError as error:
            raise self._unreachable(route, error) from None

    def _unreachable(self, route: str, error: httpx.TransportError) -> WordPressError:
        if isinstance(error, outbound.DestinationNotAllowed):
            return WordPressError(reasons.DESTINATION_NOT_ALLOWED, f"{self.role} {self.url}: {error}")
        return WordPressError("Unreachable", f"{self.role} {self.url}: {route} failed: "
                              f"{type(error).__name__} {_brief(str(error))}".rstrip())

    def _refusal(self, route: str, status: int, body: bytes) -> WordPressError:
        code, message = _rest_error(body)
        if code == "rest_no_route":
            return WordPressError("MigratorMissing", f"the wpclone migrator is not active on {self.role} {self.url}")
        if status == 429:
            return WordPressError(reasons.LOGIN_THROTTLED,
                                  f"{self.role} {self.url}: {message or 'too many failed logins'}")
        if status == 401:
            return WordPressError("LoginFailed", f"{self.role} login failed for {self.who}: 401 {message}".rstrip())
        if status == 403:
            return WordPressError("Forbidden", f"{self.role} login {self.who} may not migrate: 403 {message}".rstrip())
        detail = " ".join(part for part in (str(status), code, message) if part)
        reason = reasons.MIGRATOR_CODES.get(code, "MigratorError")
        return WordPressError(reason, f"{self.role} {self.url}: {route} failed: {detail}")


async def _parts(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _rest_error(body: bytes) -> tuple[str, str]:
    """The code and message of a WordPress REST error, made brief; nothing of any other body (which
    could be anything the URL reaches, such as an internal service's page)."""
    try:
        error = json.loads(body)
        return _brief(str(error.get("code", "")), 60), _brief(str(error.get("message", "")))
    except (ValueError, AttributeError):
        return "", ""


# --- the plugin itself --------------------------------------------------------------------------

def migrator_zip(source: Path = migrator.PLUGIN_DIR) -> bytes:
    """The plugin as the zip wp-admin's upload accepts: its PHP files (migrator.mu_plugins, from `source`)
    under wpclone-migrator/."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in migrator.mu_plugins(source).items():
            archive.writestr(f"{MIGRATOR_SLUG}/{name}", text)
    return buffer.getvalue()


async def ensure_migrator(http: httpx.AsyncClient, url: str, login: str, password: str, *,
                          policy: outbound.Policy, role: str = "site") -> Migrator:
    """The site's migrator in an open session, installed and activated first if the site does not have
    it (or has a version without sessions), and replaced first if the site kept a copy of another
    release (an earlier job's): both ends of a job speak one release's protocol. A must-use copy of
    another release is its owner's: used as it is, and said in the log. `policy`: where the installer
    may connect (the operator passes its outbound policy, as it does to `http`)."""
    site = Migrator(http, url, login=login, password=password, role=role)
    async with _SITE_LOCKS.setdefault(site.url, asyncio.Lock()):
        try:
            await site.open_session()
        except WordPressError as error:
            if error.reason != "MigratorMissing":
                raise
            await install_migrator(url, login, password, role=role, policy=policy)
            await site.open_session()
        release = migrator.build()
        if site.build != release and not site.must_use:
            await site.close_session(remove=False)
            await install_migrator(url, login, password, role=role, policy=policy)
            await site.open_session()
        if site.build != release:
            log.warning("%s %s: its migrator is of another release (%s)", role, site.url,
                        "a must-use copy: its owner updates it" if site.must_use else "still, once replaced")
    return site


@asynccontextmanager
async def site_session(http: httpx.AsyncClient, url: str, login: str, password: str, *, policy: outbound.Policy,
                       role: str, keep_migrator: bool) -> AsyncIterator[Migrator]:
    """One job on a site: its migrator in a session (installed first where missing) and, whatever the
    job's outcome, the session closed and the plugin removed from the site unless `keep_migrator` (a
    must-use copy stays; with other jobs' sessions live it leaves after the last of them)."""
    migrator = await ensure_migrator(http, url, login, password, policy=policy, role=role)
    try:
        yield migrator
    finally:
        async with _SITE_LOCKS.setdefault(migrator.url, asyncio.Lock()):
            await migrator.close_session(remove=not keep_migrator)


async def install_migrator(url: str, login: str, password: str, *, policy: outbound.Policy, role: str = "site",
                           verify: bool | str = True) -> None:
    """Logs in to wp-admin as `login`, uploads the plugin zip (replacing an older copy), activates it and
    logs out (the login's session token leaves the user's meta again). It connects only where `policy`
    allows, and follows only links to the site itself."""
    admin = url.rstrip("/") + "/wp-admin/"
    who = f"{login}@{url.rstrip('/')}"
    timeout = httpx.Timeout(120.0, connect=15.0)
    async with outbound.client(policy, timeout=timeout, verify=verify) as browser:
        try:
            await _log_in(browser, url.rstrip("/"), login, password, role, who)
            try:
                await _upload_and_activate(browser, admin, url, login, role)
            finally:
                await _log_out(browser, admin)
        except outbound.DestinationNotAllowed as refused:
            raise WordPressError(reasons.DESTINATION_NOT_ALLOWED, f"{role} {url}: {refused}") from None
        except httpx.TransportError as error:
            raise WordPressError("Unreachable", f"{role} {url}: installing the migrator as {who} failed: "
                                 f"{type(error).__name__}") from None


async def _upload_and_activate(browser: httpx.AsyncClient, admin: str, url: str, login: str, role: str) -> None:
    page = await browser.get(admin + "plugin-install.php?tab=upload")
    form = re.search(r'<form[^>]*class="wp-upload-form".*?</form>', page.text, re.S)
    nonce = re.search(r'name="_wpnonce" value="([^"]+)"', form.group()) if form else None
    if page.status_code != 200 or nonce is None:
        raise WordPressError("CannotInstall", f"{role} {url}: {login} cannot upload plugins "
                             f"(not an administrator, or DISALLOW_FILE_MODS): {page.status_code}")
    result = await browser.post(
        admin + "update.php?action=upload-plugin",
        data={"_wpnonce": nonce.group(1), "install-plugin-submit": "Install Now"},
        files={"pluginzip": (f"{MIGRATOR_SLUG}.zip", migrator_zip(), "application/zip")})
    replace = _link(result.text, r"overwrite=(?:update|downgrade)-plugin", admin)
    if replace is not None:  # an older copy is there: take WordPress's "Replace current" link
        result = await browser.get(replace)
    activate = _link(result.text, r"action=activate&(?:amp;)?plugin=" + MIGRATOR_SLUG, admin)
    if activate is not None:
        result = await browser.get(activate)
    elif not re.search(r"Plugin (?:installed|updated) successfully", result.text):
        raise WordPressError("CannotInstall", f"{role} {url}: the plugin upload failed: "
                             f"{_brief(_text_of(result.text)[-200:])}")


async def _log_out(browser: httpx.AsyncClient, admin: str) -> None:
    """Follows wp-admin's own log-out link (it carries the nonce), which ends the login's session."""
    if not any(name.startswith("wordpress_logged_in_") for name in browser.cookies):
        return
    try:
        link = _link((await browser.get(admin)).text, r"wp-login\.php\?action=logout", admin)
        if link is not None:
            await browser.get(link)
    except httpx.TransportError as error:
        log.warning("logging out of %s after installing the migrator failed: %s", admin, type(error).__name__)


async def _log_in(browser: httpx.AsyncClient, url: str, login: str, password: str, role: str, who: str) -> None:
    await browser.get(url + "/wp-login.php")  # sets the test cookie the login form checks
    answer = await browser.post(url + "/wp-login.php", data={
        "log": login, "pwd": password, "wp-submit": "Log In", "redirect_to": url + "/wp-admin/", "testcookie": "1"})
    if not any(name.startswith("wordpress_logged_in_") for name in browser.cookies):
        detail = re.search(r'<div id="login_error"[^>]*>(.*?)</div>', answer.text, re.S)
        reason = _brief(detail.group(1)) if detail else f"HTTP {answer.status_code}"
        raise WordPressError("LoginFailed", f"{role} login failed for {who}: {reason}")


def _link(page: str, pattern: str, base: str) -> str | None:
    """The first link on `page` matching `pattern`, made absolute, that stays on the site of `base`
    (scheme, host and port): a page never sends the installer, and the admin's cookies, elsewhere."""
    for href in re.findall(r'href="([^"]+)"', page):
        if re.search(pattern, href):
            link = urljoin(base, html.unescape(href))
            origin = _origin(link)
            if origin is not None and origin == _origin(base):
                return link
    return None


def _origin(url: str) -> tuple[str, str | None, int | None] | None:
    parts = urlsplit(url)
    try:
        return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a port that is not a number
        return None


def _text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style).*?</\1>", "", page, flags=re.S)))
                    .split())


def _brief(text: str, limit: int = 200) -> str:
    """Text a site sent, as it may appear in a status or an event: no markup, no control or format
    characters (terminal escapes, bidirectional overrides), at most `limit` characters."""
    visible = "".join(char if char.isprintable() else " " for char in _text_of(text))
    plain = " ".join(visible.split())
    return plain if len(plain) <= limit else plain[:limit - 1] + "…"

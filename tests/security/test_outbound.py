"""Attacks through the URLs a user gives: a source or target on loopback, the cluster or cloud metadata,
spelt so that a string check would miss it, a name that rebinds between check and connection, redirects,
a "WordPress" whose pages link elsewhere, and error bodies meant to land in a status.

The tests without a mark need no cluster: their servers listen on 127.0.0.1 only, and their resolvers are
fakes. The `integration` ones show the user's path on the local stack.
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testenv import cluster
from testenv.operator_process import OperatorProcess
from tests.helpers import apply, clone_manifest, condition, credentials_secret, eventually, get_json
from wpclone_engine import outbound
from wpclone_engine.wordpress import Migrator, WordPressError, ensure_migrator, install_migrator

LOOPBACK = outbound.Policy.parse(["127.0.0.1/32"])  # what the tests' own servers need, and nothing else
PASSWORD = "Adm1n-S3cret"


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/plain"})


@dataclass
class Site:
    """A server on 127.0.0.1 that records each request (method, path, Host) and answers with `answer`."""

    answer: Callable[[str, str, dict[str, str]], Answer]
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def serve() -> Iterator[Callable[..., Site]]:
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[str, str, dict[str, str]], Answer], tls: ssl.SSLContext | None = None) -> Site:
        site = Site(answer)

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                site.requests.append((self.command, self.path, self.headers.get("Host", "")))
                reply = site.answer(self.command, self.path, dict(self.headers))
                self.send_response(reply.status)
                for name, value in {**reply.headers, "Content-Length": str(len(reply.body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = handle_one  # noqa: N815 - the names http.server calls

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        site.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return site

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def ok(*_: Any) -> Answer:
    return Answer()


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.1", "[fe80::1%25lo]", "0x7f.1", "0x7f000001", "2130706433", "017700000001", "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]", "localhost", "localhost.", "LOCALHOST", "0", "0.0.0.0", "[::]",
])
async def test_local_addresses_in_any_spelling_are_refused_before_a_connection(serve: Any, host: str) -> None:
    site = serve(ok)
    async with outbound.client(outbound.Policy()) as http:
        with pytest.raises(outbound.DestinationNotAllowed) as refused:
            await http.get(f"http://{host}:{site.port}/")
    assert site.requests == []
    assert any(kind in str(refused.value) for kind in ("a loopback", "an unspecified", "a link-local"))


async def test_the_same_spellings_reach_an_allowed_range(serve: Any) -> None:
    site = serve(ok)
    async with outbound.client(outbound.Policy.parse(["127.0.0.0/8"])) as http:
        for host in ["127.0.0.1", "0x7f.1", "2130706433", "[::ffff:127.0.0.1]"]:
            assert (await http.get(f"http://{host}:{site.port}/")).text == "ok"
    assert [request[2] for request in site.requests] == [
        f"127.0.0.1:{site.port}", f"0x7f.1:{site.port}", f"2130706433:{site.port}", f"[::ffff:127.0.0.1]:{site.port}"]


def rebinding(first: str, then: str) -> tuple[outbound.Resolve, list[str]]:
    """A resolver that answers `first` once and `then` ever after, as an attacker's DNS does."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return [first if len(asked) == 1 else then]

    return resolve, asked


async def test_a_name_that_rebinds_after_the_check_is_connected_to_at_the_checked_address(serve: Any) -> None:
    # Checked: 127.0.0.1 (allowed here). Any later answer is 10.255.255.1, forbidden and unroutable:
    # a transport that looked the name up again to connect would go there and fail.
    site = serve(ok)
    resolve, asked = rebinding("127.0.0.1", "10.255.255.1")
    async with outbound.client(LOOPBACK, resolver=resolve) as http:
        answer = await http.get(f"http://rebind.attacker.test:{site.port}/latest/meta-data/")
    assert answer.text == "ok" and asked == ["rebind.attacker.test"]
    assert site.requests == [("GET", "/latest/meta-data/", f"rebind.attacker.test:{site.port}")]


async def test_a_new_connection_is_checked_again_and_a_rebound_name_refused(serve: Any) -> None:
    site = serve(lambda *_: Answer(headers={"Connection": "close"}))  # every request needs a new connection
    resolve, asked = rebinding("127.0.0.1", "169.254.169.254")
    async with outbound.client(LOOPBACK, resolver=resolve) as http:
        await http.get(f"http://rebind.attacker.test:{site.port}/")
        with pytest.raises(outbound.DestinationNotAllowed, match="rebind.attacker.test resolves to a cloud metadata"):
            await http.get(f"http://rebind.attacker.test:{site.port}/")
    assert len(site.requests) == 1 and len(asked) == 2


def certificate(folder: Path, name: str) -> Path:
    """A self-signed certificate and key (one PEM file) for the host name `name` alone."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    path = folder / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


async def test_tls_names_and_verifies_the_host_though_the_socket_goes_to_the_checked_address(
        serve: Any, tmp_path: Path) -> None:
    pem = certificate(tmp_path, "shop.test")
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(pem)
    names: list[str | None] = []
    server_side.sni_callback = lambda _socket, name, _context: names.append(name)
    site = serve(ok, tls=server_side)
    trusted = ssl.create_default_context(cafile=str(pem))

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async with outbound.client(LOOPBACK, verify=trusted, resolver=resolve) as http:
        assert (await http.get(f"https://shop.test:{site.port}/")).text == "ok"
        with pytest.raises(httpx.ConnectError, match="Hostname mismatch"):
            await http.get(f"https://other.test:{site.port}/")
    assert names[0] == "shop.test" and site.requests == [("GET", "/", f"shop.test:{site.port}")]


async def test_a_name_with_one_forbidden_address_among_public_ones_is_refused(serve: Any) -> None:
    site = serve(ok)

    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "127.0.0.1"]

    async with outbound.client(outbound.Policy(), resolver=resolve) as http:
        with pytest.raises(outbound.DestinationNotAllowed, match="resolves to a loopback address"):
            await http.get(f"http://mixed.attacker.test:{site.port}/")
    assert site.requests == []


async def test_redirects_are_not_followed_and_a_followed_hop_is_checked_again(serve: Any) -> None:
    site = serve(lambda *_: Answer(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"}))
    async with outbound.client(LOOPBACK) as http:
        assert (await http.get(site.url)).status_code == 302
        with pytest.raises(outbound.DestinationNotAllowed, match="169.254.169.254 is a cloud metadata address"):
            await http.get(site.url, follow_redirects=True)
    assert len(site.requests) == 2


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://100.100.100.200/",
                                 "http://[::ffff:a9fe:a9fe]/", "http://0xa9fea9fe/"])
async def test_a_source_at_a_metadata_address_fails_with_a_clear_reason_and_sends_nothing(url: str) -> None:
    looked_up: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return await outbound.resolve(host, port)

    policy = outbound.Policy.parse(["169.254.0.0/16", "100.64.0.0/10"])  # metadata stays closed even so
    async with outbound.client(policy, resolver=resolve) as http:
        with pytest.raises(WordPressError) as refused:
            await ensure_migrator(http, url, "admin", PASSWORD, role="source", policy=policy)
    assert refused.value.reason == "DestinationNotAllowed"
    assert str(refused.value).startswith(f"source {url.rstrip('/')}: ")
    assert "a cloud metadata address" in str(refused.value) and PASSWORD not in str(refused.value)
    assert looked_up == ([] if "0x" not in url else ["0xa9fea9fe"])  # a literal is checked as it is


async def test_a_url_with_credentials_is_refused_before_it_appears_in_any_message() -> None:
    async with outbound.client(outbound.Policy()) as http:
        with pytest.raises(WordPressError) as refused:
            Migrator(http, "https://admin:hunter2@shop.example.com", login="admin", password=PASSWORD, role="target")
    assert refused.value.reason == "DestinationNotAllowed" and "hunter2" not in str(refused.value)


# --- what comes back ---------------------------------------------------------------------------

async def test_an_error_page_never_reaches_the_message(serve: Any) -> None:
    page = b"<html><body><h1>Internal</h1><pre>AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI</pre></body></html>"
    site = serve(lambda *_: Answer(500, page, {"Content-Type": "text/html"}))
    async with outbound.client(LOOPBACK) as http:
        with pytest.raises(WordPressError) as failure:
            await Migrator(http, site.url, login="admin", password=PASSWORD, role="source").info()
    assert str(failure.value) == f"source {site.url}: session failed: 500"
    assert "wJalrXUtnFEMI" not in str(failure.value)


@pytest.mark.parametrize("status", [401, 403, 500])
async def test_a_rest_error_is_kept_short_and_plain(serve: Any, status: int) -> None:
    message = "\x1b[31mred\x1b[0m \u202eevil\u202c <b>bold</b>\r\nForged: header " + "x" * 5000
    body = json.dumps({"code": "<i>wpclone_" + "c" * 500, "message": message}).encode()
    site = serve(lambda *_: Answer(status, body, {"Content-Type": "application/json"}))
    async with outbound.client(LOOPBACK) as http:
        with pytest.raises(WordPressError) as failure:
            await Migrator(http, site.url, login="admin", password=PASSWORD, role="source").info()
    text = str(failure.value)
    assert len(text) < len(site.url) + 350
    assert all(char.isprintable() for char in text), repr(text)
    assert "<b>" not in text and "<i>" not in text and "evil bold Forged: header xxx" in text


async def test_a_non_json_answer_names_only_a_short_content_type(serve: Any) -> None:
    site = serve(lambda *_: Answer(200, b"<html>hello</html>", {"Content-Type": "text/html\x7f" + "; a=b" * 100}))
    async with outbound.client(LOOPBACK) as http:
        with pytest.raises(WordPressError) as failure:
            await Migrator(http, site.url, login="admin", password=PASSWORD, role="source").info()
    assert "hello" not in str(failure.value) and len(str(failure.value)) < len(site.url) + 150


# --- the installer -------------------------------------------------------------------------------

def fake_wordpress(links: Callable[[], str]) -> Callable[[str, str, dict[str, str]], Answer]:
    """Just enough wp-admin for install_migrator: a login, the upload form, an upload result page that
    offers `links()` (WordPress's "Replace current" and "Activate Plugin" links, or an attacker's), and a
    dashboard with the log-out link."""

    def answer(method: str, path: str, headers: dict[str, str]) -> Answer:
        if path.startswith("/wp-login.php"):
            cookie = "wordpress_logged_in_abc=admin; Path=/" if method == "POST" else "wordpress_test_cookie=1; Path=/"
            return Answer(302 if method == "POST" else 200, b"", {"Set-Cookie": cookie, "Location": "/wp-admin/"})
        if path.startswith("/wp-admin/plugin-install.php"):
            return Answer(200, b'<form class="wp-upload-form"><input name="_wpnonce" value="n0nce"></form>',
                          {"Content-Type": "text/html"})
        if path.startswith("/wp-admin/update.php"):
            return Answer(200, links().encode(), {"Content-Type": "text/html"})
        if path == "/wp-admin/":
            return Answer(200, b'<a href="/wp-login.php?action=logout&amp;_wpnonce=l0g0ut">Log Out</a>',
                          {"Content-Type": "text/html"})
        return Answer(200, b"<p>Plugin activated.</p>", {"Content-Type": "text/html"})

    return answer


async def test_the_installer_follows_no_link_to_another_host(serve: Any) -> None:
    elsewhere = serve(ok)  # same address, another port: another site
    site = serve(fake_wordpress(lambda: (
        f'<a href="{elsewhere.url}/wp-admin/update.php?action=upload-plugin&amp;overwrite=update-plugin">Replace</a>'
        f'<a href="{elsewhere.url}/wp-admin/plugins.php?action=activate&amp;plugin=wpclone-migrator%2F">Go</a>'
        '<a href="//evil.example/wp-admin/plugins.php?action=activate&amp;plugin=wpclone-migrator">Go</a>')))
    with pytest.raises(WordPressError) as failure:
        await install_migrator(site.url, "admin", PASSWORD, role="source", policy=LOOPBACK)
    assert failure.value.reason == "CannotInstall"
    assert elsewhere.requests == []
    # (and logs out all the same, through the dashboard's own link)
    assert [path.split("?")[0] for _, path, _ in site.requests] == [
        "/wp-login.php", "/wp-login.php", "/wp-admin/plugin-install.php", "/wp-admin/update.php", "/wp-admin/",
        "/wp-login.php"]
    assert site.requests[-1][:2] == ("GET", "/wp-login.php?action=logout&_wpnonce=l0g0ut")


async def test_the_installer_follows_the_sites_own_links(serve: Any) -> None:
    site = serve(fake_wordpress(lambda: (
        '<a href="plugins.php?action=activate&amp;plugin=wpclone-migrator%2Fwpclone-migrator.php&amp;_wpnonce=a">'
        "Activate Plugin</a>")))
    await install_migrator(site.url, "admin", PASSWORD, role="source", policy=LOOPBACK)
    assert [request[:2] for request in site.requests[-3:]] == [
        ("GET", "/wp-admin/plugins.php?action=activate&plugin=wpclone-migrator%2Fwpclone-migrator.php&_wpnonce=a"),
        ("GET", "/wp-admin/"), ("GET", "/wp-login.php?action=logout&_wpnonce=l0g0ut")]


async def test_the_installer_is_held_to_the_policy() -> None:
    with pytest.raises(WordPressError) as refused:
        await install_migrator("http://127.0.0.1:9", "admin", PASSWORD, role="target", policy=outbound.Policy())
    assert refused.value.reason == "DestinationNotAllowed" and "127.0.0.1 is a loopback address" in str(refused.value)


# --- on the local stack --------------------------------------------------------------------------

def failed(plane: cluster.ControlPlane, namespace: str, kind: str, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = get_json(plane, namespace, kind, name)
        return found if found and (found.get("status") or {}).get("phase") == "Failed" else None

    failure: dict[str, Any] = eventually(done, timeout=180, what=f"{kind} {name} to fail")
    return failure


@pytest.mark.integration
@pytest.mark.parametrize(("source", "kind"), [
    ("http://169.254.169.254/", "a cloud metadata address"),
    ("http://kubernetes.default.svc.cluster.local/", "a cluster address"),  # the apiserver's Service
    ("http://10.244.0.5/", "a cluster address"),  # a pod: the local stack allows only the bridge's gateway
])
def test_a_clone_of_a_forbidden_source_fails_with_destination_not_allowed(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str, source: str, kind: str) -> None:
    apply(control_plane, namespace, credentials_secret("source-login", "admin", PASSWORD),
          clone_manifest("forbidden", source))
    ready = condition(failed(control_plane, namespace, "wpc", "forbidden"), "Ready")
    assert ready is not None and ready["reason"] == "DestinationNotAllowed", ready
    assert kind in ready["message"] and PASSWORD not in ready["message"]


@pytest.mark.integration
def test_a_restore_into_the_metadata_address_fails_with_destination_not_allowed(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str) -> None:
    apply(control_plane, namespace, credentials_secret("production-login", "admin", PASSWORD), {
        "apiVersion": "wpclone.dev/v1alpha1", "kind": "CloneRestore", "metadata": {"name": "steal"},
        "spec": {"target": {"url": "http://169.254.169.254", "credentialsSecretRef": {"name": "production-login"}},
                 "rollbackTo": "latest"}})
    restore = failed(control_plane, namespace, "clonerestore", "steal")
    assert restore["status"]["conditions"][0]["reason"] == "DestinationNotAllowed"
    assert "a cloud metadata address" in restore["status"]["message"]

"""Where the operator may connect: one policy for every request to a source or target site.

A URL must be http(s) without a user name or password. Its host is resolved and every address checked:
loopback, private, link-local, shared (CGNAT), multicast, unspecified, reserved and other non-public
addresses, the cluster's ranges and cloud metadata addresses are refused unless the deployment's
allowlist (WPCLONE_OUTBOUND_ALLOW: CIDRs and host names) opens them. The connection then goes to the
very addresses checked: the name is never looked up a second time, so it cannot answer a safe address
to the check and a forbidden one to the connection (DNS rebinding). TLS still uses the host name (SNI,
certificate), because httpcore starts TLS with the URL's host whatever address the socket reached.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Protocol

import anyio
import httpcore
import httpx
from pydantic import AfterValidator, BeforeValidator
from pydantic_settings import NoDecode

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the host's addresses (a test passes its own).
Resolve = Callable[[str, int], Awaitable[list[str]]]


def _networks(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Instance metadata and platform services (AWS, GCP, Azure, OpenStack: 169.254.169.254; ECS: 169.254.170.2;
# AWS over IPv6; Alibaba; Azure's wire server, a public address). Refused even inside an allowed range:
# only an allowlist entry naming the address itself opens one.
METADATA = frozenset(ipaddress.ip_address(address) for address in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16"))
# Refused ranges, as a refusal names them; whatever else is not globally routable is "special-purpose".
DENIED: tuple[tuple[str, tuple[Network, ...]], ...] = (
    ("an unspecified", _networks("0.0.0.0/8", "::/128")),
    ("a loopback", _networks("127.0.0.0/8", "::1/128")),
    ("a link-local", _networks("169.254.0.0/16", "fe80::/10")),
    ("a private", _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")),
    ("a shared (CGNAT)", _networks("100.64.0.0/10")),
    ("a multicast", _networks("224.0.0.0/4", "ff00::/8")),
    ("a reserved", _networks("240.0.0.0/4")),
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
HOST_NAME = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
ALLOW_SETTING = "WPCLONE_OUTBOUND_ALLOW"


class DestinationNotAllowed(httpx.TransportError):
    """The policy refused a URL or an address. A transport error, so that any httpx caller sees a failed
    request; the message names the host and the kind of range, never a URL's password."""


# --- the settings: a list of entries, given as a JSON list or comma-separated -------------------------

def _split(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        return json.loads(text) if text.startswith("[") else [part.strip() for part in text.split(",") if part.strip()]
    return value


def _network(entry: str) -> Network | None:
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return None


def _host_entries(entries: list[str]) -> list[str]:
    for entry in entries:
        if _network(entry) is None and not HOST_NAME.match(_host_name(entry)):
            raise ValueError(f"{entry!r} is neither a CIDR nor a host name (e.g. 203.0.113.0/24, shop.example.com, "
                             "*.example.com)")
    return entries


def _cidrs(entries: list[str]) -> list[str]:
    for entry in entries:
        if _network(entry) is None:
            raise ValueError(f"{entry!r} is not a CIDR (e.g. 10.96.0.0/12)")
    return entries


# Settings fields: WPCLONE_OUTBOUND_ALLOW and WPCLONE_CLUSTER_CIDRS.
AllowList = Annotated[list[str], NoDecode, BeforeValidator(_split), AfterValidator(_host_entries)]
CIDRList = Annotated[list[str], NoDecode, BeforeValidator(_split), AfterValidator(_cidrs)]


# --- the policy (pure) ---------------------------------------------------------------------------

def _host_name(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for where the connection would reach it: IPv4-mapped
    (::ffff:a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour


def denied_kind(address: Address, cluster: Sequence[Network] = ()) -> str | None:
    """Why no request goes to `address` by default ("a loopback", "a cloud metadata", ...), or None."""
    if address in METADATA:
        return "a cloud metadata"
    if any(address in network for network in cluster):
        return "a cluster"  # WPCLONE_CLUSTER_CIDRS
    for kind, networks in DENIED:
        if any(address in network for network in networks):
            return kind
    if address.is_reserved:
        return "a reserved"
    return None if address.is_global else "a special-purpose"


class OutboundSettings(Protocol):
    """The settings a policy is made of (the operator's and the API's Settings have both)."""

    outbound_allow: list[str]
    cluster_cidrs: list[str]


@dataclass(frozen=True)
class Policy:
    """Denied by default; `allowed_networks` and `allowed_names` (exact, or "*.suffix" for any name under
    suffix) open what a deployment needs. Metadata addresses open only by naming the address itself."""

    allowed_networks: tuple[Network, ...] = ()
    allowed_names: tuple[str, ...] = ()
    cluster_networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, allow: Iterable[str] = (), cluster_cidrs: Iterable[str] = ()) -> Policy:
        networks, names = [], []
        for entry in allow:
            network = _network(entry)
            if network is not None:
                networks.append(network)
            else:
                names.append(_host_name(entry))
        return cls(tuple(networks), tuple(names), tuple(ipaddress.ip_network(c, strict=False) for c in cluster_cidrs))

    @classmethod
    def of(cls, settings: OutboundSettings) -> Policy:
        return cls.parse(settings.outbound_allow, settings.cluster_cidrs)

    def allowing(self, url: str) -> Policy:
        """This policy, and the host of `url` too: for the clone endpoints the operator builds itself,
        which are not a user's destination (children.endpoint: the clone's Service by default)."""
        return replace(self, allowed_names=(*self.allowed_names, _host_name(httpx.URL(url).host)))

    def names(self, host: str) -> bool:
        name = _host_name(host)
        return any(name == allowed or (allowed.startswith("*.") and name.endswith(allowed[1:]))
                   for allowed in self.allowed_names)

    def allows(self, host: str, *addresses: Address) -> bool:
        if any(address in METADATA for address in addresses):  # only naming the address itself opens it
            return any(network.num_addresses == 1 and address in network
                       for address in addresses for network in self.allowed_networks)
        return self.names(host) or any(address in network
                                       for address in addresses for network in self.allowed_networks)

    def refusal(self, host: str, address: str) -> str | None:
        """Why `host` may not be reached at `address`, or None when the policy allows it."""
        ip = ipaddress.ip_address(address)
        effective = _embedded_ipv4(ip) or ip
        if self.allows(host, ip, effective):
            return None
        kind = denied_kind(effective, self.cluster_networks)
        if kind is None:
            return None
        verb = "resolves to" if _address(host) is None else "is"
        return f"{host} {verb} {kind} address, which wpclone does not connect to ({ALLOW_SETTING} opens it)"

    def check(self, host: str, addresses: Sequence[str]) -> None:
        """Every address of `host` must be allowed: one forbidden answer among safe ones is refused too."""
        for address in addresses:
            reason = self.refusal(host, address)
            if reason is not None:
                raise DestinationNotAllowed(reason)


def check_url(url: httpx.URL | str) -> None:
    """What no address makes safe: a scheme other than http(s), credentials in the URL (httpx would
    send them), no host. The message never repeats the URL, which may hold a password."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise DestinationNotAllowed("not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise DestinationNotAllowed(f"only http and https URLs are allowed, not {parsed.scheme[:16] or 'none'}")
    if parsed.userinfo:
        raise DestinationNotAllowed("a URL must not carry a user name or password (the login goes in its Secret)")
    if not parsed.host:
        raise DestinationNotAllowed("the URL has no host")


# --- the pinned transport ----------------------------------------------------------------------

async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses, in the resolver's order, once each."""
    answers = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, but a connection goes only to the addresses the policy has checked."""

    def __init__(self, policy: Policy, resolver: Resolve = resolve) -> None:
        self.policy, self.resolve = policy, resolver
        self.backend = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):  # an address literal is checked as it is (a zone id included)
                addresses = [host] if _address(host) is not None else await self.resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error.strerror or error}") from None
        self.policy.check(host, addresses)
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:  # the checked addresses themselves, never the name again
            try:
                return await self.backend.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise DestinationNotAllowed("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (its pool, TLS, HTTP/1.1) connecting through CheckedBackend; ignores proxies
    from the environment, which would connect on our behalf to whatever they resolve."""

    def __init__(self, policy: Policy, *, verify: ssl.SSLContext | str | bool = True,
                 resolver: Resolve = resolve) -> None:
        context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=context, trust_env=False)
        self.policy = policy
        # httpx offers no hook for the network backend: the same pool as its own (httpx's default limits).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context, max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0,
            network_backend=CheckedBackend(policy, resolver))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_url(request.url)
        return await super().handle_async_request(request)


def client(policy: Policy, *, verify: ssl.SSLContext | str | bool = True, resolver: Resolve = resolve,
           **options: Any) -> httpx.AsyncClient:
    """An httpx client whose every request passes `policy`. Redirects are not followed (a caller that
    asks for them per request still has each hop checked, as each is a request of its own)."""
    return httpx.AsyncClient(transport=PinnedTransport(policy, verify=verify, resolver=resolver),
                             follow_redirects=False, trust_env=False, **options)

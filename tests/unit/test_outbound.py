"""The outbound policy, pure: which addresses and URLs a source or target may have, and what opens them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from wpclone_engine.outbound import DestinationNotAllowed, Policy, check_url
from wpclone_operator.settings import Settings

DEFAULT = Policy.parse(cluster_cidrs=["10.96.0.0/12", "10.244.0.0/16"])


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "a loopback"), ("127.255.0.9", "a loopback"), ("::1", "a loopback"),
    ("10.1.2.3", "a private"), ("172.16.0.1", "a private"), ("192.168.1.1", "a private"), ("fd12::1", "a private"),
    ("fec0::1", "a private"),
    ("169.254.1.1", "a link-local"), ("fe80::1", "a link-local"), ("fe80::1%eth0", "a link-local"),
    ("100.64.0.1", "a shared (CGNAT)"), ("100.127.255.254", "a shared (CGNAT)"),
    ("224.0.0.1", "a multicast"), ("ff02::1", "a multicast"),
    ("0.0.0.0", "an unspecified"), ("0.1.2.3", "an unspecified"), ("::", "an unspecified"),
    ("240.0.0.1", "a reserved"), ("255.255.255.255", "a reserved"), ("::127.0.0.1", "a reserved"),
    ("192.0.2.1", "a special-purpose"), ("198.18.0.1", "a special-purpose"), ("2001:db8::1", "a special-purpose"),
    ("169.254.169.254", "a cloud metadata"), ("169.254.170.2", "a cloud metadata"),
    ("fd00:ec2::254", "a cloud metadata"), ("100.100.100.200", "a cloud metadata"),
    ("168.63.129.16", "a cloud metadata"),
    ("10.96.0.1", "a cluster"), ("10.244.3.7", "a cluster"),
    # IPv6 spellings of IPv4 addresses are judged as the IPv4 address they reach.
    ("::ffff:127.0.0.1", "a loopback"), ("::ffff:7f00:1", "a loopback"), ("::ffff:169.254.169.254", "a cloud metadata"),
    ("::ffff:10.0.0.1", "a private"), ("64:ff9b::a9fe:a9fe", "a cloud metadata"), ("2002:7f00:1::", "a loopback"),
    ("2002:c0a8:101::1", "a private"),
])
def test_non_public_addresses_are_refused_naming_the_host_and_the_kind(address: str, kind: str) -> None:
    assert DEFAULT.refusal(address, address) == (
        f"{address} is {kind} address, which wpclone does not connect to (WPCLONE_OUTBOUND_ALLOW opens it)")
    assert DEFAULT.refusal("shop.example.com", address) == (
        f"shop.example.com resolves to {kind} address, which wpclone does not connect to "
        "(WPCLONE_OUTBOUND_ALLOW opens it)")


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.216.34",
                                     "64:ff9b::808:808", "2002:808:808::1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.refusal("shop.example.com", address) is None


def test_a_host_is_refused_when_any_of_its_addresses_is() -> None:
    with pytest.raises(DestinationNotAllowed, match="shop.example.com resolves to a loopback address"):
        DEFAULT.check("shop.example.com", ["93.184.216.34", "127.0.0.1"])
    DEFAULT.check("shop.example.com", ["93.184.216.34", "2606:4700::1111"])


def test_allowed_ranges_open_their_addresses_only() -> None:
    policy = Policy.parse(["127.0.0.0/8", "10.244.0.1"], ["10.96.0.0/12", "10.244.0.0/16"])
    assert policy.refusal("127.0.0.1", "127.0.0.1") is None
    assert policy.refusal("x", "::ffff:127.0.0.5") is None  # the IPv4 address it reaches is allowed
    assert policy.refusal("10.244.0.1", "10.244.0.1") is None
    assert policy.refusal("10.244.0.2", "10.244.0.2") is not None
    assert policy.refusal("::1", "::1") is not None  # IPv6 loopback is another range


def test_allowed_host_names_open_exact_names_and_wildcards_under_a_suffix() -> None:
    policy = Policy.parse(["intranet.example.com", "*.svc.cluster.local"])
    for host in ["intranet.example.com", "INTRANET.example.com.", "web.team-a.svc.cluster.local"]:
        assert policy.refusal(host, "10.1.2.3") is None, host
    for host in ["other.example.com", "svc.cluster.local", "evilsvc.cluster.local", "intranet.example.com.evil.io"]:
        assert policy.refusal(host, "10.1.2.3") is not None, host


def test_metadata_addresses_open_only_when_named_exactly() -> None:
    wide = Policy.parse(["169.254.0.0/16", "100.64.0.0/10", "*.internal", "metadata.google.internal"])
    assert wide.refusal("169.254.1.1", "169.254.1.1") is None
    for host, address in [("169.254.169.254", "169.254.169.254"), ("100.100.100.200", "100.100.100.200"),
                          ("metadata.google.internal", "169.254.169.254")]:
        assert "cloud metadata" in (wide.refusal(host, address) or ""), host
    assert Policy.parse(["169.254.169.254/32"]).refusal("169.254.169.254", "169.254.169.254") is None


def test_the_operators_own_clone_endpoint_is_allowed_and_nothing_else() -> None:
    policy = DEFAULT.allowing("http://shop.team-a.svc.cluster.local")
    assert policy.refusal("shop.team-a.svc.cluster.local", "10.96.4.2") is None
    assert policy.refusal("kubernetes.default.svc.cluster.local", "10.96.0.1") is not None
    assert DEFAULT.refusal("shop.team-a.svc.cluster.local", "10.96.4.2") is not None
    assert "cloud metadata" in (policy.refusal("shop.team-a.svc.cluster.local", "169.254.169.254") or "")


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://shop.example.com/", "only http and https URLs are allowed, not ftp"),
    ("file:///etc/passwd", "only http and https URLs are allowed, not file"),
    ("gopher://127.0.0.1:6379/_INFO", "only http and https URLs are allowed, not gopher"),
    ("http://admin:hunter2@shop.example.com/", "a URL must not carry a user name or password"),
    ("http://a@b", "a URL must not carry a user name or password"),
    ("http://127.0.0.1:80\\@evil.example/", "a URL must not carry a user name or password"),
    ("http:///path", "the URL has no host"),
    ("http://[::1/", "not a valid URL"),
])
def test_urls_that_no_address_makes_safe_are_refused_without_repeating_them(url: str, message: str) -> None:
    with pytest.raises(DestinationNotAllowed) as refused:
        check_url(url)
    assert str(refused.value).startswith(message)
    assert "hunter2" not in str(refused.value)


def test_plain_http_and_https_urls_pass_the_url_check() -> None:
    check_url("https://shop.example.com/blog")
    check_url("http://127.0.0.1:8080")


@pytest.mark.parametrize(("allow", "cidrs", "expected"), [
    ('["127.0.0.0/8", "shop.example.com"]', '["10.0.0.0/24"]', (["127.0.0.0/8", "shop.example.com"], ["10.0.0.0/24"])),
    ("127.0.0.0/8, 10.244.0.1/32,*.svc.cluster.local", "10.0.0.0/24,10.244.0.0/16",
     (["127.0.0.0/8", "10.244.0.1/32", "*.svc.cluster.local"], ["10.0.0.0/24", "10.244.0.0/16"])),
    ("", "[]", ([], [])),
])
def test_settings_take_json_lists_or_comma_separated_entries(
        monkeypatch: pytest.MonkeyPatch, allow: str, cidrs: str, expected: tuple[list[str], list[str]]) -> None:
    monkeypatch.setenv("WPCLONE_OUTBOUND_ALLOW", allow)
    monkeypatch.setenv("WPCLONE_CLUSTER_CIDRS", cidrs)
    settings = Settings(mysql_admin_dsn="mysql://root:pw@db:3306/")  # type: ignore[arg-type]
    assert (settings.outbound_allow, settings.cluster_cidrs) == expected


def test_settings_default_to_nothing_allowed_and_common_cluster_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WPCLONE_OUTBOUND_ALLOW", raising=False)
    monkeypatch.delenv("WPCLONE_CLUSTER_CIDRS", raising=False)
    settings = Settings(mysql_admin_dsn="mysql://root:pw@db:3306/")  # type: ignore[arg-type]
    assert settings.outbound_allow == [] and settings.cluster_cidrs == ["10.96.0.0/12", "10.244.0.0/16"]
    assert Policy.of(settings) == Policy.parse([], ["10.96.0.0/12", "10.244.0.0/16"])


@pytest.mark.parametrize(("name", "value", "message"), [
    ("WPCLONE_OUTBOUND_ALLOW", "shop example", "is neither a CIDR nor a host name"),
    ("WPCLONE_OUTBOUND_ALLOW", "http://shop.example.com", "is neither a CIDR nor a host name"),
    ("WPCLONE_CLUSTER_CIDRS", "10.0.0.0/33", "is not a CIDR"),
    ("WPCLONE_CLUSTER_CIDRS", "cluster.local", "is not a CIDR"),
])
def test_bad_entries_stop_the_operator_at_startup_with_a_message(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings(mysql_admin_dsn="mysql://root:pw@db:3306/")  # type: ignore[arg-type]

"""A clone is fenced in: its NetworkPolicy, default limits, the logins it may read, what it may ask for,
and what it may not take over (pure parts; tests/security proves them on the real node)."""

import base64

import pytest

from tests.unit.test_children import make_clone
from wpclone_common import constants
from wpclone_engine.transfer import TransferError
from wpclone_operator import admission, children, credentials
from wpclone_operator.settings import Settings


def settings(**overrides: object) -> Settings:
    return Settings(mysql_admin_dsn="mysql://admin:pw@10.244.0.1:3306/", base_domain="clones.example.com",  # type: ignore[arg-type]
                    **overrides)


def test_the_network_policy_admits_only_the_ingress_operator_and_own_copies_and_reaches_only_dns_mysql_and_public(
) -> None:
    policy = children.network_policy(make_clone(), settings())
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": children.selector(make_clone())}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    copies = {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "copy", "wpclone.dev/clone": "shop"}}}
    assert ingress["from"] == [*settings().clone_ingress_from, copies]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 80}]
    dns, database, internet = spec["egress"]
    assert "to" not in dns and {port["port"] for port in dns["ports"]} == {53}
    assert database == {"ports": [{"protocol": "TCP", "port": 3306}], "to": [{"ipBlock": {"cidr": "10.244.0.1/32"}}]}
    assert internet["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8"} <= set(internet["to"][0]["ipBlock"]["except"])


def test_without_internet_a_clone_reaches_only_dns_and_its_database_by_name() -> None:
    policy = children.network_policy(make_clone(), settings(clone_internet=False, mysql_host_for_clones="mysql.db"))
    dns, database = policy["spec"]["egress"]
    assert database == {"ports": [{"protocol": "TCP", "port": 3306}]}  # a name: only its port can be said


def test_a_clone_has_cpu_memory_and_ephemeral_storage_limits_by_default() -> None:
    (container,) = children.deployment(make_clone(), settings())["spec"]["template"]["spec"]["containers"]
    assert set(container["resources"]["limits"]) == {"cpu", "memory", "ephemeral-storage"}


def secret(labels: dict[str, str] | None, **data: str) -> dict[str, object]:
    return {"metadata": {"name": "login", "labels": labels or {}},
            "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}}


def test_only_a_secret_that_opts_in_is_read_as_a_login() -> None:
    labelled = {constants.LABEL_CREDENTIALS: "true"}
    assert credentials.login_of(secret(labelled, username="admin", password="pw", other="x"), "login") == \
        {"username": "admin", "password": "pw"}
    cases = [(None, constants.CREDENTIALS_MISSING), (secret(None, username="a", password="b"),
                                                     constants.CREDENTIALS_NOT_OPTED_IN),
             (secret({constants.LABEL_CREDENTIALS: "yes"}, username="a", password="b"),
              constants.CREDENTIALS_NOT_OPTED_IN),
             (secret(labelled, username="a"), constants.CREDENTIALS_INVALID)]
    for body, reason in cases:
        with pytest.raises(TransferError) as refused:
            credentials.login_of(body, "login")
        assert refused.value.reason == reason
        assert "b" not in str(refused.value).split() and "login" in str(refused.value)


def test_a_clone_may_ask_only_for_allowed_images_and_hosts() -> None:
    default = settings()
    assert admission.refusal(make_clone(), default) is None
    assert admission.refusal(make_clone(image=default.wordpress_image), default) is None
    assert admission.refusal(make_clone(image="evil/miner:1"), default)[0] == constants.IMAGE_NOT_ALLOWED  # type: ignore[index]
    widened = settings(allowed_images=["localhost/wpclone/*"], allowed_hosts=["*.staging.example.org"])
    assert admission.refusal(make_clone(image="localhost/wpclone/wordpress:abc"), widened) is None
    assert admission.refusal(make_clone(host="shop.clones.example.com"), default) is None
    assert admission.refusal(make_clone(host="a.staging.example.org"), widened) is None
    for host in ("www.bank.example", "clones.example.com", "x.clones.example.com.evil.test"):
        assert admission.refusal(make_clone(host=host), default)[0] == constants.HOST_NOT_ALLOWED  # type: ignore[index]


def test_an_object_is_the_clones_only_when_it_names_the_clone_as_owner() -> None:
    clone = make_clone()
    assert children.owned_by({"metadata": {"ownerReferences": [children.owner_reference(clone)]}}, clone)
    assert not children.owned_by({"metadata": {}}, clone)
    assert not children.owned_by({"metadata": {"ownerReferences": [{"uid": "someone-else"}]}}, clone)

"""The chart's outbound values reach the operator as settings it reads, and a bad entry fails the install."""

from __future__ import annotations

import pytest

from tests.unit.test_chart import REQUIRED, env, render, render_error
from wpclone_engine.outbound import Policy
from wpclone_operator.settings import Settings


def test_by_default_the_chart_opens_nothing_and_leaves_the_cluster_ranges_to_the_operator() -> None:
    operator_env = env(render(*REQUIRED), "wpclone-operator")
    assert "WPCLONE_OUTBOUND_ALLOW" not in operator_env and "WPCLONE_CLUSTER_CIDRS" not in operator_env


def test_allowed_destinations_and_cluster_ranges_become_the_operators_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    operator_env = env(render(*REQUIRED, "--set-json", 'operator.outboundAllow=["10.20.0.0/16","*.corp.example.com"]',
                              "--set-json", 'operator.clusterCIDRs=["172.20.0.0/16","172.21.0.0/16"]'),
                       "wpclone-operator")
    for name in ("WPCLONE_OUTBOUND_ALLOW", "WPCLONE_CLUSTER_CIDRS"):
        monkeypatch.setenv(name, operator_env[name])
    policy = Policy.of(Settings(mysql_admin_dsn="mysql://root:pw@db:3306/"))  # type: ignore[arg-type]
    assert policy == Policy.parse(["10.20.0.0/16", "*.corp.example.com"], ["172.20.0.0/16", "172.21.0.0/16"])


@pytest.mark.parametrize(("values", "path"), [
    ('operator.outboundAllow=["http://intranet.example.com"]', "/operator/outboundAllow/0"),
    ('operator.clusterCIDRs=["cluster.local"]', "/operator/clusterCIDRs/0"),
])
def test_bad_outbound_values_are_refused(values: str, path: str) -> None:
    assert path in render_error(*REQUIRED, "--set-json", values)

"""Tenants on the real stack: one API, several tenants' tokens; each test is an attack one tenant tries
on another's jobs and clones, and what must come of it."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from testenv import api_process, cluster
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import eventually, get_json

pytestmark = pytest.mark.integration

# Where jobs that must never run point: a closed loopback port, so that nothing is ever written anywhere.
CLOSED = "http://127.0.0.1:9"
MAX_CLONES = 2


@dataclass
class TenantApi:
    """One API process serving the tenants alpha, beta and gamma, and the admin ops."""

    process: api_process.ApiProcess
    tokens: dict[str, str]
    plane: cluster.ControlPlane

    @property
    def namespace(self) -> str:
        return self.process.namespace

    @property
    def log_path(self) -> Path:  # shown by tests/conftest.py when a test fails
        return self.process.log_path

    def client(self, tenant: str) -> httpx.Client:
        return httpx.Client(base_url=self.process.url, headers={"Authorization": f"Bearer {self.tokens[tenant]}"},
                            timeout=30)

    def names(self, *what: str) -> list[str]:
        """Names of the objects in the API's namespace, e.g. names("wpcr") or names("secret", "-l", ...)."""
        found = get_json(self.plane, self.namespace, *what) or {"items": []}
        return sorted(item["metadata"]["name"] for item in found["items"])


@pytest.fixture(scope="module")
def tenant_api(control_plane: cluster.ControlPlane, kube_client: ApiClient, operator: OperatorProcess,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantApi]:
    namespace = f"tenants-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    tokens = {tenant: secrets.token_urlsafe(24) for tenant in ("alpha", "beta", "gamma", "ops")}
    running = api_process.start_api(
        control_plane, namespace, tmp_path_factory.mktemp("tenant-api") / "api.log",
        tokens="\n".join(f"{tenant}:{tokens[tenant]}" for tenant in ("alpha", "beta", "gamma")),
        WPCLONE_API_ADMIN_TOKENS=f"ops:{tokens['ops']}", WPCLONE_API_MAX_CLONES_PER_TENANT=str(MAX_CLONES),
        WPCLONE_API_MAX_RUNNING_JOBS_PER_TENANT="5", WPCLONE_API_MAX_TTL_MINUTES="120")
    yield TenantApi(running, tokens, control_plane)
    running.stop()
    core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def alpha_clone(tenant_api: TenantApi, wordpress_sites: list[WordPressSite]) -> dict[str, Any]:
    """A Ready clone of alpha's, as its job status shows it to alpha: with its URL and admin login."""
    site, alpha = wordpress_sites[0], tenant_api.client("alpha")
    accepted = alpha.post("/api/v2/clone", json={
        "source_url": site.url, "source_username": site.admin_user, "source_password": site.admin_password,
        "customer_id": f"alpha-{uuid.uuid4().hex[:6]}", "ttl_minutes": 60})
    assert accepted.status_code == 202, accepted.text
    done = eventually(lambda: (s := alpha.get(accepted.json()["status_url"]).json())["status"]
                      in ("completed", "failed") and s, timeout=180, interval=1, what="alpha's clone job")
    assert done["status"] == "completed", done
    return dict(done)


def restore_body(source_url: str, username: str, password: str) -> dict[str, Any]:
    """A dry run to a closed port: should a refusal ever fail to happen, still nothing is written."""
    return {"source": {"url": source_url, "username": username, "password": password},
            "target": {"url": CLOSED, "username": "admin", "password": "not-a-real-one"}, "dry_run": True}


def test_what_the_api_creates_carries_the_tenant(tenant_api: TenantApi, alpha_clone: dict[str, Any]) -> None:
    resource = get_json(tenant_api.plane, tenant_api.namespace, "wpc", alpha_clone["clone_id"]) or {}
    assert resource["metadata"]["labels"]["wpclone.dev/tenant"] == "alpha"
    login = get_json(tenant_api.plane, tenant_api.namespace, "secret",
                     resource["spec"]["source"]["credentialsSecretRef"]["name"]) or {}
    assert login["metadata"]["labels"]["wpclone.dev/tenant"] == "alpha"
    assert login["metadata"]["labels"]["wpclone.dev/credentials"] == "true"


def test_another_tenants_job_status_is_a_404_without_the_password(tenant_api: TenantApi,
                                                                  alpha_clone: dict[str, Any]) -> None:
    beta, job_id = tenant_api.client("beta"), alpha_clone["job_id"]
    theirs = beta.get(f"/api/v2/job-status/{job_id}")
    missing_id = uuid.uuid4().hex
    missing = beta.get(f"/api/v2/job-status/{missing_id}")
    assert (theirs.status_code, missing.status_code) == (404, 404)
    assert theirs.json() == {"message": f"no job {job_id}"} and missing.json() == {"message": f"no job {missing_id}"}
    assert alpha_clone["password"] not in theirs.text and alpha_clone["clone_url"] not in theirs.text
    # Its owner and the admin still see it.
    assert tenant_api.client("alpha").get(f"/api/v2/job-status/{job_id}").json()["password"] == alpha_clone["password"]
    assert tenant_api.client("ops").get(f"/api/v2/job-status/{job_id}").status_code == 200


def test_another_tenants_delete_is_a_404_and_the_clone_stays(tenant_api: TenantApi,
                                                           alpha_clone: dict[str, Any]) -> None:
    beta = tenant_api.client("beta")
    for clone_id in (alpha_clone["clone_id"], alpha_clone["job_id"]):
        answer = beta.delete(f"/api/v2/delete/{clone_id}")
        assert answer.status_code == 404 and answer.json() == {"message": f"no clone {clone_id}"}
    clone = get_json(tenant_api.plane, tenant_api.namespace, "wpc", alpha_clone["clone_id"])
    assert clone is not None and "deletionTimestamp" not in clone["metadata"]
    assert clone["status"]["phase"] == "Ready"


def test_a_clone_named_like_another_tenants_gets_no_job_id(tenant_api: TenantApi, alpha_clone: dict[str, Any],
                                                          wordpress_sites: list[WordPressSite]) -> None:
    site, name = wordpress_sites[0], alpha_clone["clone_id"]
    answer = tenant_api.client("beta").post("/api/v2/clone", json={
        "source_url": site.url, "source_username": site.admin_user, "source_password": site.admin_password,
        "customer_id": name, "ttl_minutes": 20})
    assert answer.status_code == 409
    assert answer.json() == {"message": f"the customer_id {name} is not available; choose another"}
    assert alpha_clone["job_id"] not in answer.text
    assert tenant_api.names("secret", "-l", "wpclone.dev/tenant=beta") == []
    clone = get_json(tenant_api.plane, tenant_api.namespace, "wpc", name) or {}
    assert clone["metadata"]["labels"]["wpclone.dev/tenant"] == "alpha"


def test_a_restore_from_another_tenants_clone_is_refused_and_creates_nothing(
        tenant_api: TenantApi, alpha_clone: dict[str, Any]) -> None:
    restores_before, secrets_before = tenant_api.names("wpcr"), tenant_api.names("secret")
    # Even with the clone's own admin login (leaked, say), beta may not read alpha's clone.
    answer = tenant_api.client("beta").post("/api/v2/restore", json=restore_body(
        alpha_clone["clone_url"], alpha_clone["username"], alpha_clone["password"]))
    assert answer.status_code == 404, answer.text
    assert answer.json() == {"message": f"no clone of yours serves {alpha_clone['clone_url']}"}
    assert tenant_api.names("wpcr") == restores_before
    assert tenant_api.names("secret") == secrets_before


def test_a_restore_from_ones_own_clone_with_a_wrong_password_is_refused(
        tenant_api: TenantApi, alpha_clone: dict[str, Any]) -> None:
    restores_before, secrets_before = tenant_api.names("wpcr"), tenant_api.names("secret")
    answer = tenant_api.client("alpha").post("/api/v2/restore", json=restore_body(
        alpha_clone["clone_url"], alpha_clone["username"], alpha_clone["password"] + "-wrong"))
    assert answer.status_code == 403, answer.text
    assert answer.json()["message"].startswith(
        f"the source login is not the admin login of the clone {alpha_clone['clone_id']}")
    assert alpha_clone["password"] not in answer.text
    assert tenant_api.names("wpcr") == restores_before
    assert tenant_api.names("secret") == secrets_before


def test_a_tenant_over_its_quota_gets_429(tenant_api: TenantApi) -> None:
    gamma = tenant_api.client("gamma")

    def clone(ttl_minutes: int = 20) -> httpx.Response:
        return gamma.post("/api/v2/clone", json={
            "source_url": CLOSED, "source_username": "admin", "source_password": "not-a-real-one",
            "customer_id": f"gamma-{uuid.uuid4().hex[:6]}", "ttl_minutes": ttl_minutes})

    too_long = clone(ttl_minutes=121)
    assert too_long.status_code == 422
    assert too_long.json() == {"message": "invalid request: ttl_minutes: a clone may live at most 120 minutes here"}
    for _ in range(MAX_CLONES):
        assert clone().status_code == 202
    over = clone()
    assert over.status_code == 429
    assert over.json() == {"message": f"quota exceeded: your tenant has {MAX_CLONES} clones, at most {MAX_CLONES}; "
                                      "delete one or wait until one expires"}
    assert len(tenant_api.names("wpc", "-l", "wpclone.dev/tenant=gamma")) == MAX_CLONES


def test_a_token_over_its_rate_gets_429_with_retry_after(control_plane: cluster.ControlPlane,
                                                         tenant_api: TenantApi, tmp_path: Path) -> None:
    token = secrets.token_urlsafe(24)
    limited = api_process.start_api(control_plane, tenant_api.namespace, tmp_path / "api.log",
                                    tokens=f"delta:{token}", WPCLONE_API_RATE_LIMIT_PER_SECOND="0.5",
                                    WPCLONE_API_RATE_LIMIT_BURST="3")
    try:
        http = httpx.Client(base_url=limited.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        answers = [http.get("/api/v2/job-status/no-such-job") for _ in range(6)]
    finally:
        limited.stop()
    assert [answer.status_code for answer in answers[:3]] == [404, 404, 404]
    refused = [answer for answer in answers[3:] if answer.status_code == 429]
    assert refused, [answer.status_code for answer in answers]
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert refused[0].json()["message"].startswith("rate limit exceeded: at most 0.5 requests a second per token")

"""The API's routes over an in-memory Kubernetes: what each tenant may see, change and restore from."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.unit.fake_apiserver import FakeKube
from wpclone_api.app import create_app
from wpclone_api.settings import ApiSettings

TOKENS = {"acme": "token-acme", "globex": "token-globex"}


@pytest.fixture
def cluster() -> FakeKube:
    return FakeKube()


def settings(**overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {"tokens": ",".join(f"{tenant}:{token}" for tenant, token in TOKENS.items()),
                              "admin_tokens": "ops:token-admin", "namespace": "jobs",
                              "rate_limit_per_second": 1000, "rate_limit_burst": 1000, "watch_cache": False,
                              **overrides}
    return ApiSettings(**values)


@pytest.fixture
def api(cluster: FakeKube) -> Iterator[TestClient]:
    with TestClient(create_app(settings(max_clones_per_tenant=2, max_ttl_minutes=120), cluster)) as client:
        yield client


def as_(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.get(tenant, 'token-admin')}"}


def clone_body(customer_id: str, **overrides: Any) -> dict[str, Any]:
    return {"source_url": "https://shop.example.com", "source_username": "shopadmin", "source_password": "pw",
            "customer_id": customer_id, "ttl_minutes": 60, **overrides}


def restore_body(source_url: str, password: str) -> dict[str, Any]:
    return {"source": {"url": source_url, "username": "admin", "password": password},
            "target": {"url": "https://shop.example.com", "username": "shopadmin", "password": "prod-pw"}}


def start_clone(api: TestClient, tenant: str, customer_id: str) -> str:
    accepted = api.post("/api/v2/clone", json=clone_body(customer_id), headers=as_(tenant))
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["job_id"])


def test_what_the_api_creates_is_labelled_with_the_callers_tenant(api: TestClient, cluster: FakeKube) -> None:
    start_clone(api, "acme", "acme-shop")
    (clone,) = cluster.stored("WordPressClone", "wpclone.dev/tenant=acme")
    (login,) = cluster.stored("Secret", "wpclone.dev/tenant=acme,wpclone.dev/credentials=true")
    assert clone["spec"]["source"]["credentialsSecretRef"]["name"] == login["metadata"]["name"]


def test_another_tenants_job_answers_like_a_missing_one_after_the_same_calls(api: TestClient,
                                                                             cluster: FakeKube) -> None:
    job_id = start_clone(api, "acme", "acme-shop")
    cluster.make_ready("acme-shop")
    mine = api.get(f"/api/v2/job-status/{job_id}", headers=as_("acme")).json()
    assert mine["password"] == "generated-for-acme-shop"

    cluster.calls.clear()
    theirs = api.get(f"/api/v2/job-status/{job_id}", headers=as_("globex"))
    calls_for_theirs, missing_id = list(cluster.calls), uuid.uuid4().hex
    cluster.calls.clear()
    missing = api.get(f"/api/v2/job-status/{missing_id}", headers=as_("globex"))
    assert (theirs.status_code, missing.status_code) == (404, 404)
    assert theirs.json() == {"message": f"no job {job_id}"}
    assert missing.json() == {"message": f"no job {missing_id}"}
    assert "generated-for" not in theirs.text
    assert calls_for_theirs == cluster.calls


def test_job_status_reads_the_apiservers_cache_and_a_job_it_lacks_yet_consistently(
        api: TestClient, cluster: FakeKube) -> None:
    job_id = start_clone(api, "acme", "acme-shop")
    cluster.calls.clear()
    assert api.get(f"/api/v2/job-status/{job_id}", headers=as_("acme")).status_code == 200
    assert [call for call in cluster.calls if call[0].endswith("list")] == [("cached list", "WordPressClone")]

    cluster.not_cached_yet.add("acme-shop")  # made a moment ago: the cache lags
    cluster.calls.clear()
    assert api.get(f"/api/v2/job-status/{job_id}", headers=as_("acme")).json()["clone_id"] == "acme-shop"
    assert [call for call in cluster.calls if call[0].endswith("list")] == [
        ("cached list", "WordPressClone"), ("cached list", "CloneRestore"), ("list", "WordPressClone")]


def test_an_admin_sees_every_tenants_job(api: TestClient, cluster: FakeKube) -> None:
    job_id = start_clone(api, "acme", "acme-shop")
    assert api.get(f"/api/v2/job-status/{job_id}", headers=as_("ops")).status_code == 200


def test_another_tenants_clone_cannot_be_deleted_by_name_or_job(api: TestClient, cluster: FakeKube) -> None:
    job_id = start_clone(api, "acme", "acme-shop")
    for clone_id, missing_id in [("acme-shop", "nope-shop"), (job_id, uuid.uuid4().hex)]:
        cluster.calls.clear()
        answer = api.delete(f"/api/v2/delete/{clone_id}", headers=as_("globex"))
        calls_for_theirs = list(cluster.calls)
        assert answer.status_code == 404 and answer.json() == {"message": f"no clone {clone_id}"}
        cluster.calls.clear()
        assert api.delete(f"/api/v2/delete/{missing_id}", headers=as_("globex")).status_code == 404
        assert calls_for_theirs == cluster.calls
    assert cluster.of_kind("WordPressClone") == ["acme-shop"]
    assert api.delete(f"/api/v2/delete/{job_id}", headers=as_("acme")).status_code == 202
    assert cluster.of_kind("WordPressClone") == []


def test_a_name_held_by_another_tenant_is_a_409_without_its_job(api: TestClient, cluster: FakeKube) -> None:
    job_id = start_clone(api, "acme", "shop")
    again = api.post("/api/v2/clone", json=clone_body("shop"), headers=as_("acme"))
    assert again.status_code == 409
    assert again.json() == {"message": "a clone named shop already exists", "job_id": job_id}
    taken = api.post("/api/v2/clone", json=clone_body("shop"), headers=as_("globex"))
    assert taken.status_code == 409
    assert taken.json() == {"message": "the customer_id shop is not available; choose another"}
    assert len(cluster.of_kind("Secret")) == 1  # only acme's source login


def test_a_name_lost_in_a_race_to_another_tenant_leaves_nothing_behind(api: TestClient, cluster: FakeKube,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    start_clone(api, "acme", "shop")
    monkeypatch.setattr("wpclone_api.clones.refuse_taken_name", lambda namespace, customer_id: None)
    taken = api.post("/api/v2/clone", json=clone_body("shop"), headers=as_("globex"))
    assert taken.status_code == 409 and "job_id" not in taken.json()
    assert len(cluster.of_kind("Secret")) == 1


def test_a_restore_from_another_tenants_clone_is_refused_and_creates_nothing(api: TestClient,
                                                                            cluster: FakeKube) -> None:
    start_clone(api, "acme", "acme-shop")
    url = cluster.make_ready("acme-shop")
    before = dict(cluster.objects)
    answer = api.post("/api/v2/restore", json=restore_body(url, "generated-for-acme-shop"), headers=as_("globex"))
    assert answer.status_code == 404
    assert answer.json() == {"message": f"no clone of yours serves {url}"}
    assert cluster.objects == before


def test_a_restore_from_ones_own_clone_needs_its_admin_login(api: TestClient, cluster: FakeKube) -> None:
    start_clone(api, "acme", "acme-shop")
    url = cluster.make_ready("acme-shop")
    before = dict(cluster.objects)
    wrong = api.post("/api/v2/restore", json=restore_body(url + "/", "guess"), headers=as_("acme"))
    assert wrong.status_code == 403
    assert wrong.json()["message"].startswith("the source login is not the admin login of the clone acme-shop")
    assert "generated-for" not in wrong.text and cluster.objects == before

    right = api.post("/api/v2/restore", json=restore_body(url, "generated-for-acme-shop"), headers=as_("acme"))
    assert right.status_code == 202, right.text
    (restore,) = cluster.stored("CloneRestore", "wpclone.dev/tenant=acme")
    assert restore["spec"]["source"] == {"cloneRef": {"name": "acme-shop"}}
    assert restore["spec"]["onConflict"] == "Merge"  # the clone goes back into the site it was taken from
    target = cluster.objects[("Secret", restore["spec"]["target"]["credentialsSecretRef"]["name"])]
    assert target["metadata"]["labels"]["wpclone.dev/credentials"] == "true"
    assert api.get(right.json()["status_url"], headers=as_("globex")).status_code == 404


def test_a_restore_from_a_site_that_is_no_clone_keeps_its_login(api: TestClient, cluster: FakeKube) -> None:
    answer = api.post("/api/v2/restore", json=restore_body("https://staging.example.com", "pw"), headers=as_("globex"))
    assert answer.status_code == 202
    (restore,) = cluster.stored("CloneRestore", "wpclone.dev/tenant=globex")
    source = cluster.objects[("Secret", restore["spec"]["source"]["credentialsSecretRef"]["name"])]
    assert source["stringData"]["password"] == "pw"
    assert restore["spec"]["onConflict"] == "Fail"  # no clone, no baseline: nothing to merge against
    before = dict(cluster.objects)
    merge = api.post("/api/v2/restore", json={**restore_body("https://staging.example.com", "pw"),
                                              "on_conflict": "merge"}, headers=as_("globex"))
    assert merge.status_code == 422 and merge.json()["message"].startswith("on_conflict merge needs the source")
    assert cluster.objects == before


def test_quotas_count_per_tenant(api: TestClient, cluster: FakeKube) -> None:
    start_clone(api, "acme", "one")
    start_clone(api, "acme", "two")
    cluster.not_cached_yet.add("two")  # made a moment ago: the apiserver's cache lags, the quota does not
    third = api.post("/api/v2/clone", json=clone_body("three"), headers=as_("acme"))
    assert third.status_code == 429
    assert third.json() == {"message": "quota exceeded: your tenant has 2 clones, at most 2; "
                                       "delete one or wait until one expires"}
    assert "three" not in cluster.of_kind("WordPressClone")
    start_clone(api, "globex", "three")  # another tenant's quota is its own


def test_running_jobs_count_clones_at_work_and_restores(cluster: FakeKube) -> None:
    with TestClient(create_app(settings(max_running_jobs_per_tenant=1), cluster)) as api:
        start_clone(api, "acme", "one")
        busy = api.post("/api/v2/restore", json=restore_body("https://staging.example.com", "pw"), headers=as_("acme"))
        assert busy.status_code == 429 and "at most 1 may run at once" in busy.json()["message"]
        cluster.make_ready("one")
        assert api.post("/api/v2/restore", json=restore_body("https://staging.example.com", "pw"),
                        headers=as_("acme")).status_code == 202


def test_a_ttl_over_the_maximum_is_a_422(api: TestClient, cluster: FakeKube) -> None:
    answer = api.post("/api/v2/clone", json=clone_body("long", ttl_minutes=121), headers=as_("acme"))
    assert answer.status_code == 422
    assert answer.json() == {"message": "invalid request: ttl_minutes: a clone may live at most 120 minutes here"}
    assert cluster.objects == {}


def test_a_token_over_its_rate_gets_429_with_retry_after(cluster: FakeKube) -> None:
    with TestClient(create_app(settings(rate_limit_per_second=0.5, rate_limit_burst=2), cluster)) as api:
        answers = [api.get("/api/v2/job-status/x", headers=as_("acme")) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [404, 404, 429]
        assert answers[2].headers["Retry-After"] == "2"
        assert answers[2].json()["message"].startswith("rate limit exceeded: at most 0.5 requests a second")
        assert api.get("/api/v2/job-status/x", headers=as_("globex")).status_code == 404  # its own bucket


def test_a_bare_token_of_an_earlier_install_is_the_default_tenant(cluster: FakeKube) -> None:
    cluster.objects[("WordPressClone", "legacy")] = {
        "kind": "WordPressClone", "metadata": {"name": "legacy", "labels": {
            "wpclone.dev/job-id": "a" * 32, "app.kubernetes.io/managed-by": "wpclone-api"}}}
    with TestClient(create_app(ApiSettings(tokens="old-token", namespace="jobs", watch_cache=False), cluster)) as api:
        legacy = {"Authorization": "Bearer old-token"}
        assert api.get(f"/api/v2/job-status/{'a' * 32}", headers=legacy).status_code == 200
        start_clone_as_default = api.post("/api/v2/clone", json=clone_body("new"), headers=legacy)
        assert start_clone_as_default.status_code == 202
    assert cluster.objects[("WordPressClone", "new")]["metadata"]["labels"]["wpclone.dev/tenant"] == "default"


def test_a_malformed_tokens_setting_stops_the_start() -> None:
    with pytest.raises(ValueError, match="token entry 2"):
        create_app(ApiSettings(tokens="acme:t1,Bad Tenant:t2"))


def test_the_contract_documents_the_refusals(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert "429" in paths["/api/v2/clone"]["post"]["responses"]
    assert "429" in paths["/api/v2/job-status/{job_id}"]["get"]["responses"]
    assert "403" in paths["/api/v2/restore"]["post"]["responses"]


def test_a_tenant_lists_its_own_clones_without_their_logins(api: TestClient, cluster: FakeKube) -> None:
    start_clone(api, "acme", "acme-shop")
    start_clone(api, "acme", "acme-blog")
    start_clone(api, "globex", "globex-shop")
    cluster.make_ready("acme-shop")
    listed = api.get("/api/v2/clones", headers=as_("acme")).json()
    assert [item["clone_id"] for item in listed] == ["acme-blog", "acme-shop"]
    assert [item["status"] for item in listed] == ["pending", "completed"]
    assert all(item["password"] is None and item["username"] is None for item in listed)
    assert "generated-for" not in api.get("/api/v2/clones", headers=as_("acme")).text
    assert [item["clone_id"] for item in api.get("/api/v2/clones", headers=as_("globex")).json()] == ["globex-shop"]
    assert len(api.get("/api/v2/clones", headers=as_("admin")).json()) == 3


def test_a_clone_is_extended_up_to_the_maximum_ttl_by_its_own_tenant_only(api: TestClient, cluster: FakeKube) -> None:
    start_clone(api, "acme", "acme-shop")
    extended = api.patch("/api/v2/clones/acme-shop", json={"ttl_minutes": 90}, headers=as_("acme"))
    assert extended.status_code == 200, extended.text
    assert extended.json()["expires_at"] == "2026-12-01T11:30:00Z"  # created 10:00 (the fake's), + 90 min
    assert cluster.objects[("WordPressClone", "acme-shop")]["spec"]["ttlMinutes"] == 90

    too_long = api.patch("/api/v2/clones/acme-shop", json={"ttl_minutes": 121}, headers=as_("acme"))
    assert too_long.status_code == 422 and "at most 120 minutes" in too_long.json()["message"]
    theirs = api.patch("/api/v2/clones/acme-shop", json={"ttl_minutes": 100}, headers=as_("globex"))
    assert theirs.status_code == 404 and theirs.json() == {"message": "no clone acme-shop"}
    assert api.patch("/api/v2/clones/acme-shop", json={"ttl_minutes": "soon"}, headers=as_("acme")).status_code == 422
    assert cluster.objects[("WordPressClone", "acme-shop")]["spec"]["ttlMinutes"] == 90

    cluster.objects[("WordPressClone", "acme-shop")]["status"] = {"phase": "Expired"}
    ended = api.patch("/api/v2/clones/acme-shop", json={"ttl_minutes": 100}, headers=as_("acme"))
    assert ended.status_code == 409 and "has expired" in ended.json()["message"]


def test_a_rollback_is_a_clone_restore_of_the_backup_whose_target_login_is_in_its_own_secret(
        api: TestClient, cluster: FakeKube) -> None:
    target = restore_body("https://unused.example.com", "x")["target"]
    accepted = api.post("/api/v2/rollback", json={"target": target, "backup_id": "20261201-abc"}, headers=as_("acme"))
    assert accepted.status_code == 202, accepted.text
    (restore,) = cluster.stored("CloneRestore", "wpclone.dev/tenant=acme")
    assert restore["spec"]["rollbackTo"] == "20261201-abc" and "source" not in restore["spec"]
    (login,) = cluster.stored("Secret", "wpclone.dev/tenant=acme,wpclone.dev/credentials=true")
    assert restore["spec"]["target"]["credentialsSecretRef"]["name"] == login["metadata"]["name"]
    assert login["metadata"]["ownerReferences"][0]["name"] == restore["metadata"]["name"]
    assert "prod-pw" not in str(restore)
    job_id = accepted.json()["job_id"]
    assert api.get(f"/api/v2/job-status/{job_id}", headers=as_("acme")).json()["kind"] == "restore"
    assert api.get(f"/api/v2/job-status/{job_id}", headers=as_("globex")).status_code == 404

    bad = api.post("/api/v2/rollback", json={"target": target, "backup_id": "../etc"}, headers=as_("acme"))
    assert bad.status_code == 422 and "backup_id" in bad.json()["message"]
    assert len(cluster.stored("CloneRestore", "")) == 1


def restore_record(cluster: FakeKube, tenant: str, name: str, target: str, **status: Any) -> None:
    """A CloneRestore as the operator leaves it (spec.rollbackTo given: a rollback)."""
    spec: dict[str, Any] = {"target": {"url": target, "credentialsSecretRef": {"name": f"{name}-target-login"}}}
    if "rollbackTo" in status:
        spec["rollbackTo"] = status.pop("rollbackTo")
    cluster.objects[("CloneRestore", name)] = {
        "kind": "CloneRestore", "metadata": {"name": name, "labels": {
            "wpclone.dev/tenant": tenant, "wpclone.dev/job-id": f"job-{name}"}}, "spec": spec, "status": status}


def test_backups_are_listed_per_target_newest_first_from_the_tenants_own_restores(
        api: TestClient, cluster: FakeKube) -> None:
    shop = "https://shop.example.com"
    restore_record(cluster, "acme", "r1", shop, phase="Completed", backupId="b1", completedAt="2026-12-01T10:00:00Z")
    restore_record(cluster, "acme", "r2", f"{shop}/", phase="Completed", backupId="b2",
                   completedAt="2026-12-01T11:00:00Z")
    restore_record(cluster, "acme", "r3", "https://blog.example.com", phase="Completed", backupId="b3")
    restore_record(cluster, "acme", "r4", shop, phase="Completed")  # backup: false
    restore_record(cluster, "acme", "r5", shop, phase="RolledBack", rollbackTo="b1")
    restore_record(cluster, "globex", "r6", shop, phase="Completed", backupId="b6", completedAt="2026-12-01T12:00:00Z")

    listed = api.get("/api/v2/backups", params={"target": shop}, headers=as_("acme")).json()
    assert [(item["backup_id"], item["job_id"], item["rolled_back"]) for item in listed] == [
        ("b2", "job-r2", False), ("b1", "job-r1", True)]
    assert [item["backup_id"] for item in api.get("/api/v2/backups", params={"target": shop},
                                                  headers=as_("globex")).json()] == ["b6"]
    assert api.get("/api/v2/backups", params={"target": "not a url"}, headers=as_("acme")).status_code == 422
    assert api.get("/api/v2/backups", headers=as_("acme")).status_code == 422


def test_a_login_link_is_made_for_ones_own_ready_clone_only(api: TestClient, cluster: FakeKube) -> None:
    start_clone(api, "acme", "acme-shop")
    early = api.post("/api/v2/clones/acme-shop/login-link", headers=as_("acme"))
    assert early.status_code == 409 and early.json() == {"message": "the clone acme-shop is not ready (Pending)"}
    url = cluster.make_ready("acme-shop")
    assert api.post("/api/v2/clones/acme-shop/login-link", headers=as_("globex")).status_code == 404
    made = api.post("/api/v2/clones/acme-shop/login-link", headers=as_("acme"))
    assert made.status_code == 200, made.text
    assert made.json()["url"].startswith(f"{url}/wp-login.php?wpclone-login=")
    assert "generated-for" not in made.text


def test_a_clone_keeps_the_database_engine_it_asked_for_or_the_installations_default(cluster: FakeKube) -> None:
    with TestClient(create_app(settings(default_database_engine="sqlite"), cluster)) as api:
        start_clone(api, "acme", "light")
        asked = api.post("/api/v2/clone", json=clone_body("heavy", database="mysql"), headers=as_("acme"))
        wrong = api.post("/api/v2/clone", json=clone_body("odd", database="postgres"), headers=as_("acme"))
    assert asked.status_code == 202 and wrong.status_code == 422
    assert cluster.objects[("WordPressClone", "light")]["spec"]["database"] == {"engine": "sqlite"}
    assert cluster.objects[("WordPressClone", "heavy")]["spec"]["database"] == {"engine": "mysql"}
    assert ("WordPressClone", "odd") not in cluster.objects


def test_a_clone_may_ask_for_a_snapshot_of_its_source_or_leave_it_to_the_installation(cluster: FakeKube) -> None:
    with TestClient(create_app(settings(), cluster)) as api:
        start_clone(api, "acme", "plain")
        asked = api.post("/api/v2/clone", json=clone_body("many", snapshot_max_age_minutes=15), headers=as_("acme"))
        fresh = api.post("/api/v2/clone", json=clone_body("fresh", snapshot_max_age_minutes=0), headers=as_("acme"))
        wrong = api.post("/api/v2/clone", json=clone_body("odd", snapshot_max_age_minutes=-1), headers=as_("acme"))
    assert (asked.status_code, fresh.status_code, wrong.status_code) == (202, 202, 422)
    assert "snapshot" not in cluster.objects[("WordPressClone", "plain")]["spec"]
    assert cluster.objects[("WordPressClone", "many")]["spec"]["snapshot"] == {"maxAgeMinutes": 15}
    assert cluster.objects[("WordPressClone", "fresh")]["spec"]["snapshot"] == {"maxAgeMinutes": 0}


def test_a_clone_may_name_a_warm_pool_to_take_a_ready_slot_of(cluster: FakeKube) -> None:
    with TestClient(create_app(settings(), cluster)) as api:
        start_clone(api, "acme", "plain")
        asked = api.post("/api/v2/clone", json=clone_body("warm", pool="warm-pool"), headers=as_("acme"))
        wrong = api.post("/api/v2/clone", json=clone_body("odd", pool="Not A Pool"), headers=as_("acme"))
    assert (asked.status_code, wrong.status_code) == (202, 422)
    assert "pool" in wrong.json()["message"]
    assert "pool" not in cluster.objects[("WordPressClone", "plain")]["spec"]
    assert cluster.objects[("WordPressClone", "warm")]["spec"]["pool"] == "warm-pool"
    assert ("WordPressClone", "odd") not in cluster.objects


def test_a_restore_from_a_sqlite_clone_fails_on_a_conflict_by_default_and_cannot_merge(cluster: FakeKube) -> None:
    with TestClient(create_app(settings(default_database_engine="sqlite"), cluster)) as api:
        start_clone(api, "acme", "light")
        admin = {"url": cluster.make_ready("light"), "username": "admin", "password": "generated-for-light"}
        asked = {**restore_body("https://x.example", "y"), "source": admin}
        merged = api.post("/api/v2/restore", json={**asked, "on_conflict": "merge"}, headers=as_("acme"))
        plain = api.post("/api/v2/restore", json=asked, headers=as_("acme"))
    assert merged.status_code == 422 and "SQLite" in merged.json()["message"]
    assert plain.status_code == 202, plain.text
    (restore,) = cluster.stored("CloneRestore", "wpclone.dev/tenant=acme")
    assert restore["spec"]["onConflict"] == "Fail" and restore["spec"]["source"] == {"cloneRef": {"name": "light"}}

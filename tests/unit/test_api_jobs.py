import pytest
from pydantic import ValidationError

from wpclone_api import jobs
from wpclone_api.schemas import CloneRequest, RestoreRequest


def request(**overrides: object) -> CloneRequest:
    fields = {"source_url": "https://shop.example.com", "source_username": "admin",
              "source_password": "pw-123", "customer_id": "acme-shop", "ttl_minutes": 45}
    return CloneRequest.model_validate({**fields, **overrides})


def test_the_clone_resource_references_the_login_and_holds_no_password() -> None:
    resource = jobs.clone_resource(request(), "0123456789abcdef", "acme")
    assert resource["metadata"]["name"] == "acme-shop"
    assert resource["metadata"]["labels"]["wpclone.dev/job-id"] == "0123456789abcdef"
    assert resource["spec"] == {"source": {"url": "https://shop.example.com",
                                           "credentialsSecretRef": {"name": "acme-shop-source-login-01234567"}},
                                "ttlMinutes": 45}
    assert "pw-123" not in str(resource)
    secret = jobs.source_secret(request(), "0123456789abcdef", "acme")
    assert secret["metadata"]["name"] == "acme-shop-source-login-01234567"
    assert secret["stringData"] == {"username": "admin", "password": "pw-123"}


def test_everything_the_api_creates_carries_the_tenant_and_logins_opt_in_to_the_operator() -> None:
    restore = RestoreRequest.model_validate({
        "source": {"url": "https://shop.example.com", "username": "a", "password": "b"},
        "target": {"url": "https://prod.example.com", "username": "c", "password": "d"}})
    made = [jobs.clone_resource(request(), "job1", "acme"), jobs.restore_resource(restore, "job1", "acme", None)]
    logins = [jobs.source_secret(request(), "job1", "acme"), jobs.login_secret("x", restore.target, "job1", "acme")]
    for resource in made + logins:
        assert resource["metadata"]["labels"]["wpclone.dev/tenant"] == "acme"
        assert resource["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "wpclone-api"
    assert [login["metadata"]["labels"]["wpclone.dev/credentials"] for login in logins] == ["true", "true"]
    assert all("wpclone.dev/credentials" not in resource["metadata"]["labels"] for resource in made)


def test_the_password_never_prints() -> None:
    assert "pw-123" not in repr(request())


@pytest.mark.parametrize("customer_id", ["Acme", "acme_shop", "-acme", "a" * 41, ""])
def test_customer_id_must_be_a_dns_label(customer_id: str) -> None:
    with pytest.raises(ValidationError):
        request(customer_id=customer_id)


def clone(phase: str | None, **status: object) -> dict:
    return {"metadata": {"name": "acme-shop", "labels": {"wpclone.dev/job-id": "job1"}},
            "status": {"phase": phase, **status} if phase else {}}


@pytest.mark.parametrize(("phase", "state"), [(None, "pending"), ("Provisioning", "running"), ("Cloning", "running"),
                                              ("Ready", "completed"), ("Failed", "failed"), ("Expired", "expired")])
def test_phases_map_to_job_states(phase: str | None, state: str) -> None:
    assert jobs.clone_job_status(clone(phase), None).status == state


def test_a_completed_job_shows_url_and_login() -> None:
    ready = clone("Ready", url="https://acme-shop.clones.test", expiresAt="2026-01-01T00:30:00Z")
    status = jobs.clone_job_status(ready, {"username": "admin", "password": "generated"})
    assert (status.clone_url, status.username, status.password) == \
        ("https://acme-shop.clones.test", "admin", "generated")
    assert status.error is None


def test_a_running_job_hides_the_login_and_explains_a_retry() -> None:
    status = jobs.clone_job_status(clone("Provisioning", message="cannot connect to MySQL"),
                                   {"username": "admin", "password": "generated"})
    assert status.password is None and status.clone_url is None
    assert status.error == "cannot connect to MySQL"


def test_a_running_job_says_what_it_waits_for_and_a_finished_one_does_not() -> None:
    waiting = [{"type": "Ready", "status": "False", "reason": "WaitingForCopySlot",
                "message": "waiting for a copy slot: 2nd in line for one of 20"}]
    status = jobs.clone_job_status(clone("Cloning", conditions=waiting), None)
    assert status.message == "waiting for a copy slot: 2nd in line for one of 20" and status.error is None
    ready = [{"type": "Ready", "status": "True", "reason": "CloneReady", "message": "the clone serves at https://x"}]
    assert jobs.clone_job_status(clone("Ready", conditions=ready), None).message is None


def test_a_failed_job_explains_why() -> None:
    failed = clone("Failed", conditions=[{"type": "Ready", "status": "False", "message": "source login failed"}])
    assert jobs.clone_job_status(failed, None).error == "source login failed"


def test_a_clone_request_can_say_what_of_wp_content_stays_behind() -> None:
    asked = request(content={"drop_ins": True, "exclude": ["uploads/2019", "content/languages"]})
    assert jobs.clone_resource(asked, "job1", "acme")["spec"]["content"] == {
        "dropIns": True, "exclude": ["uploads/2019", "content/languages"]}
    assert "content" not in jobs.clone_resource(request(), "job1", "acme")["spec"]


@pytest.mark.parametrize("pattern", ["uploads/2019/05", "wp-config.php", "../uploads", "themes/"])
def test_an_exclusion_deeper_than_a_folders_top_level_is_refused(pattern: str) -> None:
    with pytest.raises(ValidationError):
        request(content={"exclude": [pattern]})


@pytest.mark.parametrize(("asked", "merges", "policy"), [
    ({}, True, ("Merge", "Fail")), ({}, False, ("Fail", "Fail")),
    ({"on_conflict": "overwrite"}, True, ("Overwrite", "Fail")),
    ({"merge_conflicts": "prefer_production"}, True, ("Merge", "PreferProduction")),
    ({"on_conflict": "merge", "merge_conflicts": "prefer_clone"}, True, ("Merge", "PreferClone"))])
def test_a_restore_of_a_clone_into_its_own_source_merges_unless_told_otherwise(
        asked: dict[str, str], merges: bool, policy: tuple[str, str]) -> None:
    restore = RestoreRequest.model_validate({
        "source": {"url": "https://shop.clones.example.com", "username": "a", "password": "b"},
        "target": {"url": "https://shop.example.com", "username": "c", "password": "d"}, **asked})
    spec = jobs.restore_resource(restore, "job1", "acme", "shop", merges=merges)["spec"]
    assert (spec.get("onConflict", "Fail"), spec.get("mergeConflicts", "Fail")) == policy

"""The pure parts of tenancy: tokens, who sees what, quotas, the rate limit, a clone's login."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wpclone_api import quotas, restores, tenants
from wpclone_api.rate_limit import RateLimiter
from wpclone_api.schemas import SiteLogin
from wpclone_api.settings import ApiSettings
from wpclone_api.tenants import ApiToken, Caller


def test_token_lines_name_their_tenant_and_a_bare_token_is_the_default_tenant() -> None:
    assert tenants.parse_tokens("acme:t1\nglobex:t2,  legacy \n\n") == [
        ApiToken("acme", "t1"), ApiToken("globex", "t2"), ApiToken("default", "legacy")]
    assert tenants.parse_tokens("default:ab:cd") == [ApiToken("default", "ab:cd")]
    assert tenants.parse_tokens("ops:t9", admin=True) == [ApiToken("ops", "t9", admin=True)]


@pytest.mark.parametrize("text", ["Acme:t1", "acme_shop:t1", "-acme:t1", "acme:", ":t1", f"{'a' * 64}:t1"])
def test_a_malformed_token_entry_is_refused_without_showing_the_token(text: str) -> None:
    with pytest.raises(ValueError, match="token entry 1") as refused:
        tenants.parse_tokens(text)
    assert "t1" not in str(refused.value)


def test_a_token_belongs_to_one_tenant() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        tenants.token_table("acme:same\nglobex:same", "")
    with pytest.raises(ValueError, match="listed twice"):
        tenants.token_table("acme:same", "ops:same")


def test_settings_read_tokens_from_the_environment_and_files(tmp_path: Any) -> None:
    (tmp_path / "tokens").write_text("acme:t1\nglobex:t2\n")
    (tmp_path / "admins").write_text("ops:t3\n")
    settings = ApiSettings(tokens="old", tokens_file=tmp_path / "tokens",  # type: ignore[arg-type]
                           admin_tokens_file=tmp_path / "admins")
    assert settings.token_table() == (ApiToken("default", "old"), ApiToken("acme", "t1"), ApiToken("globex", "t2"),
                                      ApiToken("ops", "t3", admin=True))


def test_a_rotated_tokens_file_is_read_again(tmp_path: Any) -> None:
    (tmp_path / "tokens").write_text("acme:first\n")
    settings = ApiSettings(tokens_file=tmp_path / "tokens")  # type: ignore[arg-type]
    assert settings.token_table() == (ApiToken("acme", "first"),)
    (tmp_path / "tokens").write_text("acme:second\n")
    assert settings.token_table() == (ApiToken("acme", "second"),)


def test_a_presented_token_finds_its_entry_exactly() -> None:
    table = tenants.token_table("acme:abc,globex:xyz", "ops:admin-token")
    assert tenants.match_token("abc", table) == ApiToken("acme", "abc")
    assert tenants.match_token("admin-token", table) == ApiToken("ops", "admin-token", admin=True)
    for wrong in ("ab", "abcd", "", "acme:abc"):
        assert tenants.match_token(wrong, table) is None
    assert tenants.match_token("abc", []) is None


def test_the_rate_limit_key_is_not_the_token() -> None:
    key = ApiToken("acme", "abc").key
    assert "abc" not in key and key == ApiToken("globex", "abc").key


def resource(**labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "shop", "labels": labels}}


def test_a_caller_sees_only_its_tenants_objects_and_an_admin_sees_all() -> None:
    acme, globex, admin = Caller("acme"), Caller("globex"), Caller("ops", admin=True)
    of_acme = resource(**{"wpclone.dev/tenant": "acme"})
    assert tenants.can_see(acme, of_acme) and tenants.can_see(admin, of_acme)
    assert not tenants.can_see(globex, of_acme)


def test_objects_the_api_made_before_tenants_are_the_default_tenants_and_kubectls_are_nobodys() -> None:
    before_tenants = resource(**{"app.kubernetes.io/managed-by": "wpclone-api"})
    assert tenants.tenant_of(before_tenants) == "default"
    assert tenants.can_see(Caller("default"), before_tenants) and not tenants.can_see(Caller("acme"), before_tenants)
    by_kubectl = {"metadata": {"name": "shop"}}
    assert tenants.tenant_of(by_kubectl) is None
    assert not tenants.can_see(Caller("default"), by_kubectl) and tenants.can_see(Caller("ops", True), by_kubectl)


def clone(phase: str | None, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "c", "deletionTimestamp": "2026-01-01T00:00:00Z" if deleting else None}
    return {"metadata": metadata, "status": {"phase": phase} if phase else {}}


LIMITS = quotas.Limits(max_clones=3, max_running_jobs=2, max_ttl_minutes=120)


def test_usage_counts_clones_that_exist_and_jobs_at_work() -> None:
    clones = [clone(None), clone("Cloning"), clone("Ready"), clone("Failed"), clone("Expiring"), clone("Expired"),
              clone("Provisioning", deleting=True)]
    restores_ = [clone("Restoring"), clone("Completed"), clone("RolledBack"), clone("Failed"), clone(None)]
    assert quotas.usage(clones, restores_) == quotas.Usage(live_clones=5, running_jobs=4)



PHASES = [None, "Pending", "Cloning", "Ready", "Failed", "Expiring", "Expired", "Restoring", "Completed", "RolledBack"]


@given(st.lists(st.tuples(st.sampled_from(PHASES), st.booleans()), max_size=8),
       st.lists(st.tuples(st.sampled_from(PHASES), st.booleans()), max_size=8))
def test_the_count_of_objects_bounds_the_usage_so_far_from_a_limit_no_phase_is_read(
        clone_phases: list[tuple[str | None, bool]], restore_phases: list[tuple[str | None, bool]]) -> None:
    clones, restores_ = [clone(*made) for made in clone_phases], [clone(*made) for made in restore_phases]
    bound, used = quotas.at_most(len(clones), len(restores_)), quotas.usage(clones, restores_)
    assert used.live_clones <= bound.live_clones and used.running_jobs <= bound.running_jobs
    if not quotas.near(LIMITS, bound):  # then the exact count would not be refused either
        assert quotas.clone_refusal(LIMITS, used) is None and not quotas.near(LIMITS, used)

def test_a_clone_over_the_quota_is_refused_with_the_numbers() -> None:
    assert quotas.clone_refusal(LIMITS, quotas.Usage(live_clones=2, running_jobs=1)) is None
    full = quotas.clone_refusal(LIMITS, quotas.Usage(live_clones=3, running_jobs=0))
    assert full and full.startswith("quota exceeded:") and "3 clones, at most 3" in full
    busy = quotas.clone_refusal(LIMITS, quotas.Usage(live_clones=2, running_jobs=2))
    assert busy and "at most 2 may run at once" in busy
    assert quotas.job_refusal(LIMITS, quotas.Usage(live_clones=3, running_jobs=1)) is None  # a restore makes none


def test_counts_from_a_cache_are_read_again_when_one_more_write_could_reach_a_limit() -> None:
    assert not quotas.near(LIMITS, quotas.Usage(live_clones=1, running_jobs=0))
    assert quotas.near(LIMITS, quotas.Usage(live_clones=2, running_jobs=0))  # the next clone is the last one
    assert quotas.near(LIMITS, quotas.Usage(live_clones=0, running_jobs=1))
    assert quotas.near(LIMITS, quotas.Usage(live_clones=5, running_jobs=0))


def test_a_ttl_over_the_maximum_is_refused_and_an_omitted_one_is_not() -> None:
    assert quotas.ttl_refusal(LIMITS, 120) is None and quotas.ttl_refusal(LIMITS, None) is None
    assert quotas.ttl_refusal(LIMITS, 121) == "invalid request: ttl_minutes: a clone may live at most 120 minutes here"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_limiter_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=2, burst=3, clock=clock)
    assert [limiter.wait_seconds("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait_seconds("a") == pytest.approx(0.5)
    assert limiter.wait_seconds("b") == 0  # each token has its own bucket
    clock.now += 0.5
    assert limiter.wait_seconds("a") == 0
    assert limiter.wait_seconds("a") == pytest.approx(0.5)
    clock.now += 60  # a quiet spell refills the bucket up to the burst, no further
    assert [limiter.wait_seconds("a") for _ in range(4)] == pytest.approx([0, 0, 0, 0.5])


def test_refused_requests_do_not_drain_the_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=1, burst=1, clock=clock)
    assert limiter.wait_seconds("a") == 0
    for _ in range(10):
        assert limiter.wait_seconds("a") > 0
    clock.now += 1
    assert limiter.wait_seconds("a") == 0


def login(username: str = "admin", password: str = "generated") -> SiteLogin:
    return SiteLogin(url="https://acme.clones.example", username=username, password=password)  # type: ignore[arg-type]


def test_a_clones_login_must_be_its_admin_login() -> None:
    admin = {"username": "admin", "password": "generated", "migrator-token": "m"}
    assert restores.is_admin_login(login(), admin)
    assert not restores.is_admin_login(login(password="guess"), admin)
    assert not restores.is_admin_login(login(username="root"), admin)
    assert not restores.is_admin_login(login(), None)
    assert not restores.is_admin_login(login(), {})


def test_the_clone_at_a_url_is_found_whatever_its_trailing_slash_or_case() -> None:
    at = {"metadata": {"name": "acme"}, "status": {"url": "https://acme.clones.example"}}
    elsewhere = {"metadata": {"name": "other"}, "status": {"url": "https://other.clones.example"}}
    unready = {"metadata": {"name": "new"}, "status": {}}
    assert restores.serving([elsewhere, unready, at], "https://ACME.clones.example/") == [at]
    assert restores.serving([elsewhere, unready], "https://acme.clones.example") == []

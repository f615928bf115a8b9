import datetime

from wpclone_operator import status

T0 = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def test_expiry_counts_from_creation_so_a_restart_cannot_reset_it() -> None:
    assert status.expires_at("2026-01-01T12:00:00Z", 30) == "2026-01-01T12:30:00Z"


def test_raising_the_ttl_extends_the_expiry() -> None:
    assert status.expires_at("2026-01-01T12:00:00Z", 90) == "2026-01-01T13:30:00Z"


def test_ttl_defaults_and_is_capped() -> None:
    assert status.effective_ttl_minutes(None, 30, 1440) == 30
    assert status.effective_ttl_minutes(45, 30, 1440) == 45
    assert status.effective_ttl_minutes(5000, 30, 1440) == 1440


def test_is_expired_at_and_after_the_instant() -> None:
    assert not status.is_expired("2026-01-01T12:00:01Z", T0)
    assert status.is_expired("2026-01-01T12:00:00Z", T0)
    assert not status.is_expired(None, T0)


def test_merge_keeps_transition_time_when_status_is_unchanged() -> None:
    first = status.condition("Ready", False, "PodNotReady", "waiting", 1, T0)
    later = status.condition("Ready", False, "PodNotReady", "still waiting", 1, T0 + datetime.timedelta(minutes=1))
    merged = status.merge_conditions([first], [later])
    assert merged == [{**later, "lastTransitionTime": "2026-01-01T12:00:00Z"}]


def test_merge_updates_transition_time_when_status_flips() -> None:
    first = status.condition("Ready", False, "PodNotReady", "waiting", 1, T0)
    flipped = status.condition("Ready", True, "CloneReady", "ok", 1, T0 + datetime.timedelta(minutes=1))
    assert status.merge_conditions([first], [flipped])[0]["lastTransitionTime"] == "2026-01-01T12:01:00Z"


def test_merge_orders_ready_first_and_keeps_other_types() -> None:
    database = status.condition("DatabaseReady", True, "DatabaseCreated", "", 1, T0)
    ready = status.condition("Ready", True, "CloneReady", "", 1, T0)
    custom = status.condition("Zeta", True, "X", "", 1, T0)
    assert [c["type"] for c in status.merge_conditions([custom, database], [ready])] == \
        ["Ready", "DatabaseReady", "Zeta"]


def test_deployment_available_needs_an_available_replica() -> None:
    assert status.deployment_available(None) == (False, "the Deployment does not exist yet")
    progressing = {"status": {"conditions": [{"type": "Available", "status": "False",
                                              "message": "Deployment does not have minimum availability."}]}}
    assert status.deployment_available(progressing) == (False, "Deployment does not have minimum availability.")
    ready = {"status": {"availableReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]}}
    assert status.deployment_available(ready)[0]


def test_retry_delay_grows_and_is_capped() -> None:
    assert [status.retry_delay(n, 5) for n in range(4)] == [5, 10, 20, 40]
    assert status.retry_delay(30, 5) == 300

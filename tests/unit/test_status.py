import datetime

import pytest

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


def pod(*containers: dict, deleting: bool = False) -> dict:
    metadata = {"name": "shop-5d9c-x2"} | ({"deletionTimestamp": "2026-01-01T12:00:00Z"} if deleting else {})
    return {"metadata": metadata, "status": {"phase": "Pending", "containerStatuses": list(containers)}}


def waiting(reason: str, message: str = "", **more: object) -> dict:
    return {"name": "wordpress", "image": "wordpress:nope", "ready": False,
            "state": {"waiting": {"reason": reason, "message": message}}, **more}


@pytest.mark.parametrize("kubelet_reason",
                         ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"])
def test_an_image_the_kubelet_cannot_get_is_image_unavailable_naming_the_image(kubelet_reason: str) -> None:
    problem = status.pod_problem(pod(waiting(kubelet_reason, 'Back-off pulling image "wordpress:nope"')))
    assert problem == status.PodProblem(
        "ImageUnavailable",
        f'the image wordpress:nope cannot be pulled ({kubelet_reason}: Back-off pulling image "wordpress:nope")')


def test_a_broken_configuration_and_a_crash_loop_have_reasons_of_their_own() -> None:
    config = status.pod_problem(pod(waiting("CreateContainerConfigError", 'secret "shop-db" not found')))
    assert config == status.PodProblem(
        "PodConfigError", 'the container cannot be configured (CreateContainerConfigError: secret "shop-db" not found)')
    crash = status.pod_problem(pod(waiting("CrashLoopBackOff", "back-off 40s restarting failed container",
                                           lastState={"terminated": {"exitCode": 1, "reason": "Error"}})))
    assert crash is not None and crash.reason == "PodCrashLooping"
    assert crash.message == ("WordPress keeps exiting, last exit code 1 (Error) "
                             "(CrashLoopBackOff: back-off 40s restarting failed container)")


def test_a_starting_or_departing_pod_has_no_problem() -> None:
    assert status.pod_problem(pod(waiting("ContainerCreating"))) is None
    assert status.pod_problem(pod()) is None
    assert status.pod_problem({"metadata": {}, "status": {"phase": "Pending"}}) is None
    assert status.pod_problem(pod(waiting("ImagePullBackOff"), deleting=True)) is None
    assert status.pod_problem(pod({"name": "wordpress", "state": {"running": {}}, "ready": False})) is None


def test_workload_condition_says_why_the_pod_does_not_serve() -> None:
    unavailable = {"status": {"conditions": [{"type": "Available", "status": "False", "message": "no"}]}}
    stuck = status.workload_condition(unavailable, [pod(waiting("ImagePullBackOff", "x"))], 3, T0)
    assert (stuck["type"], stuck["status"], stuck["reason"], stuck["observedGeneration"]) == \
        ("WorkloadReady", "False", "ImageUnavailable", 3)
    assert status.workload_condition(unavailable, [pod(waiting("ContainerCreating"))], 3, T0)["reason"] == "PodNotReady"
    ready = {"status": {"availableReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]}}
    assert status.workload_condition(ready, [], 3, T0)["reason"] == "PodReady"


def test_a_pod_that_cannot_start_stalls_the_clone_but_does_not_fail_it() -> None:
    stuck = status.condition("WorkloadReady", False, "ImageUnavailable", "the image x cannot be pulled", 1, T0)
    summary = status.summarize_clone(stuck, None, set(), "https://shop.test")
    assert summary == status.CloneSummary("Provisioning", False, "ImageUnavailable", "the image x cannot be pulled",
                                          stalled=True)
    starting = status.condition("WorkloadReady", False, "PodNotReady", "waiting", 1, T0)
    assert not status.summarize_clone(starting, None, set(), "https://shop.test").stalled
    serving = status.condition("WorkloadReady", True, "PodReady", "ok", 1, T0)
    gave_up = status.condition("ContentCloned", False, "GaveUp", "still failing", 1, T0)
    assert status.summarize_clone(serving, gave_up, {"GaveUp"}, "https://shop.test").phase == "Failed"
    assert status.summarize_clone(serving, gave_up, {"GaveUp"}, "https://shop.test").stalled


@pytest.mark.parametrize(("left", "unparseable", "expected"), [
    (0, 0, ("True", "NoneLeft", "no occurrence of https://shop.example remains in the clone's database "
                                "(7 values rewritten)")),
    (0, 2, ("True", "NoneLeft", "no occurrence of https://shop.example remains in the clone's database (7 values "
                                "rewritten, 2 of them serialized data PHP cannot read, rewritten as text)")),
    (3, 0, ("False", "SourceUrlsLeft", "3 occurrences of https://shop.example remain in the clone's database "
                                       "(7 values rewritten)")),
    (None, 0, ("Unknown", "NotCounted", "7 values rewritten; what remains of https://shop.example is not counted: "
                                        "the clone's URL holds it")),
])
def test_what_remains_of_the_source_url_is_a_condition(
        left: int | None, unparseable: int, expected: tuple[str, str, str]) -> None:
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    found = status.source_urls_condition(left, 7, unparseable, "https://shop.example", 3, at)
    assert (found["type"], found["observedGeneration"]) == ("SourceUrlsReplaced", 3)
    assert (found["status"], found["reason"], found["message"]) == expected

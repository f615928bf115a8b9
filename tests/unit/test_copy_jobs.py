"""Copy Jobs as data: what the operator creates for one copy, what a Job's state says, who waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from wpclone_common import constants
from wpclone_common.resources import WordPressClone
from wpclone_engine.transfer import TransferError
from wpclone_operator import copy_jobs, copy_runner, restoring
from wpclone_operator.copy_jobs import Owner, Plan
from wpclone_operator.inputs import Mounted
from wpclone_operator.settings import CopySettings, Settings

CLONE_BODY = {"apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClone",
              "metadata": {"name": "shop", "namespace": "team-a", "uid": "u-1", "generation": 3,
                           "creationTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": "9",
                           "managedFields": [{"manager": "kubectl"}]},
              "spec": {"source": {"url": "https://shop.example.com",
                                  "credentialsSecretRef": {"name": "shop-login"}}},
              "status": {"phase": "Cloning"}}


def settings(**values: Any) -> Settings:
    return Settings(mysql_admin_dsn="mysql://admin:s3cret@10.0.0.5:3306/",  # type: ignore[arg-type]
                    copy_image="registry.example/wpclone:1.2", outbound_allow=["203.0.113.0/24", "intranet.test"],
                    **values)


def owner() -> Owner:
    return Owner.of(CLONE_BODY, "shop")


def plan() -> Plan:
    return Plan(kind=constants.CLONE_KIND, namespace="team-a", name="shop", outcome="shop-copy",
                clone=copy_jobs.plan_body(CLONE_BODY))


def the_job(**values: Any) -> dict[str, Any]:
    return copy_jobs.job(owner(), plan(), settings(**values), ["shop-login", "shop-db", "shop-admin"], ["sums"])


def test_every_object_of_a_copy_is_owned_by_its_clone_and_named_after_it() -> None:
    made = copy_jobs.objects(owner(), plan(), settings(), ["shop-login"], [], ["10.244.0.1/32"])
    assert [m["kind"] for m in made] == ["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "NetworkPolicy", "Job"]
    for manifest in made:
        assert manifest["metadata"]["name"] == "shop-copy" and manifest["metadata"]["namespace"] == "team-a"
        (reference,) = manifest["metadata"]["ownerReferences"]
        assert reference["kind"] == "WordPressClone" and reference["uid"] == "u-1" and reference["controller"]


def test_a_restores_job_is_named_apart_from_a_clones_and_long_names_fit_a_label() -> None:
    restore = Owner(constants.RESTORE_KIND, "team-a", "shop-copy", "u-2", 1, None)
    assert copy_jobs.job_name(restore) == "shop-copy-restore" != copy_jobs.job_name(owner())
    long = Owner(constants.CLONE_KIND, "team-a", "x" * 63, "u-3", 1, None)
    other = Owner(constants.CLONE_KIND, "team-a", "x" * 63, "u-4", 1, None)
    assert len(copy_jobs.job_name(long)) == 63 and copy_jobs.job_name(long).endswith("-copy")
    assert copy_jobs.job_name(long) != copy_jobs.job_name(other)


def test_the_jobs_account_may_patch_its_owners_status_and_its_outcome_and_nothing_else() -> None:
    role = copy_jobs.role(owner())
    assert role["rules"] == [
        {"apiGroups": ["wpclone.dev"], "resources": ["wordpressclones/status"], "resourceNames": ["shop"],
         "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["shop-copy"], "verbs": ["patch"]}]
    binding = copy_jobs.role_binding(owner())
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "shop-copy", "namespace": "team-a"}]
    assert copy_jobs.service_account(owner())["automountServiceAccountToken"] is False


def test_the_job_mounts_its_logins_read_only_and_carries_no_secret_in_its_spec() -> None:
    job = the_job()
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/wpclone:1.2" and container["command"] == copy_jobs.RUNNER
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    for secret in ("shop-login", "shop-db", "shop-admin"):
        assert mounts[f"/var/run/wpclone/secrets/{secret}"]["readOnly"] is True
    assert mounts["/var/run/wpclone/config/sums"]["readOnly"] is True
    assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {"shop-login", "shop-db",
                                                                                    "shop-admin"}
    assert "s3cret" not in str(job)  # the MySQL admin DSN is the operator's alone
    assert not any(env["name"] == "WPCLONE_MYSQL_ADMIN_DSN" for env in container["env"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "shop-copy"
    assert "priorityClassName" not in pod
    assert the_job(copy_job_priority_class="copies")["spec"]["template"]["spec"]["priorityClassName"] == "copies"


def test_retries_deadline_and_a_permanent_failure_map_onto_the_job() -> None:
    spec = the_job(copy_job_backoff_limit=2, copy_deadline_seconds=900)["spec"]
    assert spec["backoffLimit"] == 2 and spec["activeDeadlineSeconds"] == 900
    fail_now, ignore = spec["podFailurePolicy"]["rules"]
    assert fail_now == {"action": "FailJob", "onExitCodes": {"containerName": "copy", "operator": "In",
                                                             "values": [copy_jobs.PERMANENT_EXIT]}}
    assert ignore["action"] == "Ignore"
    assert spec["template"]["metadata"]["labels"][constants.LABEL_CLONE] == "shop"
    assert spec["template"]["metadata"]["labels"][constants.LABEL_COMPONENT] == "copy"
    assert spec["template"]["metadata"]["labels"][constants.LABEL_APP] != "wordpress"  # not in the clone's Service


def standing() -> tuple[Owner, Plan]:
    metadata = {**CLONE_BODY["metadata"], "name": "warm-abcde", "uid": "u-slot", "generation": 1}
    slot = {**CLONE_BODY, "metadata": metadata, "spec": {"pool": "warm"}}
    owner = Owner.of(slot, "warm-abcde")
    return owner, Plan(kind=constants.CLONE_KIND, namespace="team-a", name="warm-abcde", outcome="warm-abcde-copy",
                       clone=copy_jobs.plan_body(slot), standby=True)


def test_a_pool_slots_standing_job_mounts_no_login_reads_only_its_plan_and_waits_without_a_deadline() -> None:
    owner, plan = standing()
    made = {manifest["kind"]: manifest for manifest in copy_jobs.objects(owner, plan, settings(), [], [], [])}
    job = made["Job"]
    assert copy_jobs.standing_by(job) and not copy_jobs.standing_by(the_job())
    assert "activeDeadlineSeconds" not in job["spec"]
    pod = job["spec"]["template"]["spec"]
    assert not [volume for volume in pod["volumes"] if "secret" in volume]
    (env,) = [env for env in pod["containers"][0]["env"] if env["name"] == copy_jobs.PLAN_ENV]
    assert Plan.model_validate_json(env["value"]).standby
    assert made["Role"]["rules"][1] == {"apiGroups": [""], "resources": ["configmaps"],
                                       "resourceNames": ["warm-abcde-copy"], "verbs": ["patch", "get", "watch"]}
    assert not [rule for rule in made["Role"]["rules"] if "secrets" in rule["resources"]]  # none until a plan


def test_a_standing_job_handed_a_plan_reads_exactly_its_logins_and_gets_the_copys_deadline_from_then() -> None:
    owner, plan = standing()
    stage = Owner(constants.CLONE_KIND, "team-a", "stage", "u-stage", 2, "warm-abcde")
    assert copy_jobs.job_name(stage) == copy_jobs.job_name(owner) == "warm-abcde-copy"
    rules = copy_jobs.role(stage, ["stage-login", "warm-abcde-db", "warm-abcde-admin"])["rules"]
    assert rules[0]["resourceNames"] == ["stage"]  # the clone's status now, not the slot's
    assert rules[2] == {"apiGroups": ["wpclone.dev"], "resources": ["wordpressclones"], "resourceNames": ["stage"],
                        "verbs": ["get"]}  # to check that a plan it finds is its clone's
    assert rules[3] == {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                        "resourceNames": ["stage-login", "warm-abcde-db", "warm-abcde-admin"]}
    job = {**copy_jobs.job(owner, plan, settings(), [], []), "status": {"startTime": "2026-01-01T00:00:00Z"}}
    handed = copy_jobs.hand_off(job, stage, settings(copy_deadline_seconds=900),
                                datetime(2026, 1, 1, 0, 10, tzinfo=UTC))
    assert handed == {"metadata": {"labels": {copy_jobs.LABEL_STANDBY: None},
                                   "annotations": {copy_jobs.GENERATION_ANNOTATION: "2"}},
                      "spec": {"activeDeadlineSeconds": 600 + 900}}


def test_a_standing_job_copies_only_a_plan_for_its_clone_as_the_apiserver_has_it() -> None:
    _, standing_plan = standing()
    live = {**CLONE_BODY, "metadata": {**CLONE_BODY["metadata"], "name": "stage", "uid": "u-stage"},
            "status": {"phase": "Provisioning", "slot": {"name": "warm-abcde", "uid": "u-slot"}}}
    handed = Plan(kind=constants.CLONE_KIND, namespace="team-a", name="stage", outcome="warm-abcde-copy",
                  clone=copy_jobs.plan_body(live))
    assert copy_jobs.plan_is_for(handed, standing_plan, live)
    elsewhere = {**live, "spec": {"source": {"url": "https://attacker.example",
                                             "credentialsSecretRef": {"name": "shop-login"}}}}
    forged = handed.model_copy(update={"clone": copy_jobs.plan_body(elsewhere)})
    other_slot = handed.model_copy(update={"clone": copy_jobs.plan_body(
        {**live, "status": {"slot": {"name": "warm-zzzzz", "uid": "u-other"}}})})
    assert not copy_jobs.plan_is_for(forged, standing_plan, live)  # a source of someone else's choosing
    assert not copy_jobs.plan_is_for(other_slot, standing_plan, live)  # another slot's database
    assert not copy_jobs.plan_is_for(handed, standing_plan, None)  # a clone its account may not read
    assert not copy_jobs.plan_is_for(handed.model_copy(update={"kind": constants.RESTORE_KIND}), standing_plan, live)
    assert not copy_jobs.plan_is_for(handed.model_copy(update={"outcome": "other-copy"}), standing_plan, live)
    assert not copy_jobs.plan_is_for(handed, standing_plan, {**live, "metadata": {**live["metadata"], "uid": "new"}})


def test_the_settings_a_job_gets_read_back_the_same_in_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    given = settings(public_port=8443, keep_migrator=True, merge_id_offset=7, tls_enabled=False)
    for env in copy_jobs.settings_env(given):
        monkeypatch.setenv(env["name"], env["value"])
    read = CopySettings()
    assert read.model_dump() == CopySettings.model_validate(given.model_dump(include=set(CopySettings.model_fields)))\
        .model_dump()
    assert read.outbound_allow == ["203.0.113.0/24", "intranet.test"] and read.public_port == 8443


def test_the_jobs_pod_answers_nobody_and_reaches_its_clone_mysql_the_apiserver_and_public_sites() -> None:
    policy = copy_jobs.network_policy(owner(), settings(), ["192.0.2.10/32"])
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {copy_jobs.LABEL_COPY: "shop-copy"}} and spec["ingress"] == []
    peers = [peer for rule in spec["egress"] for peer in rule.get("to", [])]
    assert {"ipBlock": {"cidr": "10.0.0.5/32"}} in peers  # the shared MySQL server
    assert {"ipBlock": {"cidr": "192.0.2.10/32"}} in peers  # the apiserver
    assert {"ipBlock": {"cidr": "203.0.113.0/24"}} in peers  # what the outbound allowlist opens
    public = next(peer["ipBlock"] for peer in peers if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0")
    assert "10.0.0.0/8" in public["except"] and "169.254.0.0/16" in public["except"]
    assert {"podSelector": {"matchLabels": {constants.LABEL_CLONE: "shop", constants.LABEL_APP: "wordpress"}}} in peers
    rollback = Owner(constants.RESTORE_KIND, "team-a", "undo", "u-5", 1, None)
    assert not any("podSelector" in peer for rule in copy_jobs.network_policy(rollback, settings(), [])["spec"]
                   ["egress"] for peer in rule.get("to", []))


def job_with(*conditions: tuple[str, str], failed: int = 0, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "shop-copy"}, "spec": spec,
            "status": {"failed": failed, "conditions": [{"type": kind, "status": "True", "reason": reason}
                                                        for kind, reason in conditions]}}


def test_what_a_job_says() -> None:
    result = {"result": {"rows": 3}}
    assert copy_jobs.job_verdict(job_with(), None) == copy_jobs.Verdict(
        "running", constants.COPYING, "copy Job shop-copy is copying")
    retrying = copy_jobs.job_verdict(job_with(failed=1), {"reason": "Unreachable", "message": "no answer"})
    assert (retrying.state, retrying.reason) == ("running", "Unreachable") and "tries again" in retrying.message
    assert copy_jobs.job_verdict(job_with(("Complete", "")), result).outcome == result
    permanent = copy_jobs.job_verdict(job_with(("Failed", "PodFailurePolicy"), failed=1),
                                      {"reason": "LoginFailed", "message": "wrong password"})
    assert (permanent.state, permanent.reason, permanent.message) == ("failed", "LoginFailed", "wrong password")
    late = copy_jobs.job_verdict(job_with(("Failed", "DeadlineExceeded"), activeDeadlineSeconds=60), None)
    assert (late.state, late.reason) == ("failed", constants.GAVE_UP) and "after 60s" in late.message
    tired = copy_jobs.job_verdict(job_with(("Failed", "BackoffLimitExceeded"), failed=7),
                                  {"reason": "Unreachable", "message": "no answer"})
    assert tired.reason == constants.GAVE_UP and "failed 7 times" in tired.message and "Unreachable" in tired.message
    crashed = copy_jobs.job_verdict(job_with(("Complete", "")), None)  # a runner that wrote nothing
    assert crashed.state == "failed" and crashed.reason == constants.GAVE_UP
    # Its result written, the copy is done before the Job controller says the Job is complete, unless its pod
    # holds a claim (released only once the Job ended).
    early = copy_jobs.job_verdict(job_with(), {**result, "seconds": 1.5})
    assert (early.state, early.outcome) == ("succeeded", {**result, "seconds": 1.5})
    assert copy_jobs.seconds(job_with(), early.outcome) == 1.5
    holding = job_with()
    holding["spec"]["template"] = {"spec": {"volumes": [{"name": "db", "persistentVolumeClaim": {"claimName": "x"}}]}}
    assert copy_jobs.job_verdict(holding, result).state == "running"


def test_an_outcome_that_is_not_a_json_object_is_none() -> None:
    assert copy_jobs.read_outcome({}) is None
    assert copy_jobs.read_outcome({copy_jobs.OUTCOME_KEY: "[1]"}) is None
    assert copy_jobs.read_outcome({copy_jobs.OUTCOME_KEY: "{"}) is None
    assert copy_jobs.read_outcome({copy_jobs.OUTCOME_KEY: copy_jobs.outcome_text({"reason": "X"})}) == {"reason": "X"}


def test_copies_wait_first_come_first_served() -> None:
    waiting = {("a", "late-copy"): "2026-01-01T00:00:09Z", ("b", "early-copy"): "2026-01-01T00:00:01Z",
               ("a", "tie-copy"): "2026-01-01T00:00:05Z", ("b", "tie-copy"): "2026-01-01T00:00:05Z"}
    assert copy_jobs.queue_position(("b", "early-copy"), waiting) == 0
    assert copy_jobs.queue_position(("a", "tie-copy"), waiting) == 1
    assert copy_jobs.queue_position(("b", "tie-copy"), waiting) == 2
    assert copy_jobs.queue_position(("a", "late-copy"), waiting) == 3


def test_a_plan_carries_the_clone_without_its_status_or_server_fields() -> None:
    body = copy_jobs.plan_body(CLONE_BODY)
    assert set(body["metadata"]) == {"name", "namespace", "uid", "generation", "creationTimestamp"}
    assert "status" not in body
    clone = WordPressClone.from_body(body)
    assert (clone.name, clone.uid, clone.generation) == ("shop", "u-1", 3)


def test_a_job_reads_the_logins_mounted_into_it(tmp_path: Path) -> None:
    login = tmp_path / "secrets" / "shop-login"
    login.mkdir(parents=True)
    (login / "username").write_text("admin")
    (login / "password").write_text("pw")
    (login / "..data").mkdir()  # the kubelet's own entries are not keys
    inputs = Mounted(tmp_path)
    assert inputs.login("shop-login") == {"username": "admin", "password": "pw"}
    with pytest.raises(TransferError) as missing:
        inputs.login("nope")
    assert missing.value.reason == constants.CREDENTIALS_MISSING
    (login / "password").write_text("")
    with pytest.raises(TransferError) as invalid:
        inputs.login("shop-login")
    assert invalid.value.reason == constants.CREDENTIALS_INVALID
    assert inputs.config_map("absent") == {} and inputs.secret("absent") is None
    database = tmp_path / "secrets" / "shop-db"
    database.mkdir()
    for key, value in {"host": "10.0.0.5:3307", "username": "u", "password": "p", "database": "d"}.items():
        (database / key).write_text(value)
    target = inputs.database("shop-db")
    assert target is not None and (target.host, target.port, target.database) == ("10.0.0.5", 3307, "d")


def test_which_failures_end_a_job_at_once() -> None:
    assert copy_runner.permanent(constants.CLONE_KIND, "LoginFailed")
    assert not copy_runner.permanent(constants.CLONE_KIND, "Unreachable")
    assert copy_runner.permanent(constants.RESTORE_KIND, "Conflict")
    assert not copy_runner.permanent(constants.CLONE_KIND, "Conflict")


def test_a_retained_clone_loses_every_object_its_copy_made() -> None:
    made = {(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])
            for manifest in copy_jobs.objects(owner(), plan(), settings(), [], [], [])}
    assert set(copy_jobs.object_keys(owner())) == made
    clone = WordPressClone.from_body(CLONE_BODY)
    assert copy_jobs.Owner.of_clone(clone) == owner()


def test_an_outcome_that_is_no_copy_is_not_taken_for_one() -> None:
    assert copy_runner.copied({"result": {"rows": "many"}}) is None
    assert copy_runner.copied({"restore": {}}) is None and copy_runner.copied(None) is None
    assert copy_runner.restored({"restore": {"result": "x"}}) is None
    assert copy_runner.restored({"restore": {"changes": ["table wp_posts"]}}) == restoring.Outcome(
        changes=["table wp_posts"])
    assert copy_jobs.unreadable({"metadata": {"name": "shop-copy"}}).state == "failed"


# A runner whose copy waits forever, with an import to abort; writing an outcome would fail the test.
STOPPABLE_RUNNER = """
import asyncio, sys
from wpclone_operator import copy_runner

async def copy(*_):
    try:
        print("copying", flush=True)
        await asyncio.sleep(3600)
    finally:
        print("import aborted", flush=True)

def no_outcome(_):
    raise AssertionError("a stopped copy wrote an outcome")

copy_runner.run = copy
copy_runner.kube.apply = no_outcome
sys.exit(copy_runner.main())
"""


def test_sigterm_aborts_the_copy_and_ends_the_runner_at_once_without_an_outcome() -> None:
    """An evicted copy pod's runner is its container's PID 1, which ignores SIGTERM unless it handles it:
    it would hold the Job's next pod back for the whole grace period. It cancels the copy instead."""
    env = {**os.environ, copy_jobs.PLAN_ENV: plan().model_dump_json()}
    runner = subprocess.Popen([sys.executable, "-c", STOPPABLE_RUNNER], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert runner.stdout is not None and runner.stdout.readline() == "copying\n"
        runner.send_signal(signal.SIGTERM)
        output, _ = runner.communicate(timeout=60)
    finally:
        runner.kill()
    assert runner.returncode == copy_runner.STOPPED_EXIT, output
    assert "import aborted" in output and "stopped by SIGTERM" in output


def test_a_sqlite_clones_copy_writes_its_database_volume_as_the_clones_apache_user(tmp_path: Path) -> None:
    body = {**CLONE_BODY, "spec": {**CLONE_BODY["spec"], "database": {"engine": "sqlite"}}}  # type: ignore[dict-item]
    sqlite_plan = Plan(kind=constants.CLONE_KIND, namespace="team-a", name="shop", outcome="shop-copy",
                       clone=copy_jobs.plan_body(body))
    job = copy_jobs.job(owner(), sqlite_plan, settings(), ["shop-login", "shop-admin"], [])
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert mounts["/var/run/wpclone/database"] == {"name": "database", "mountPath": "/var/run/wpclone/database"}
    assert {"name": "database", "persistentVolumeClaim": {"claimName": "shop-database"}} in pod["volumes"]
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == 33
    assert "database" not in str(the_job()["spec"]["template"]["spec"]["volumes"])  # a MySQL clone's has none
    (tmp_path / "database").mkdir()
    target = Mounted(tmp_path).sqlite()
    assert target is not None and target.folder == tmp_path / "database" and Mounted(tmp_path / "x").sqlite() is None


def test_a_restore_from_a_sqlite_clone_reads_its_database_volume_and_leaves_it_once_done() -> None:
    body = {**CLONE_BODY, "spec": {**CLONE_BODY["spec"], "database": {"engine": "sqlite"}}}  # type: ignore[dict-item]
    restore = Plan(kind=constants.RESTORE_KIND, namespace="team-a", name="push", outcome="push-restore",
                   clone=copy_jobs.plan_body(body), restore={"target": {"url": "https://shop.example.com"}})
    job = copy_jobs.job(Owner(constants.RESTORE_KIND, "team-a", "push", "u-2", 1, "shop"), restore, settings(),
                        ["prod-login", "shop-admin"], [])
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert {"name": "database", "mountPath": "/var/run/wpclone/database", "readOnly": True} in container["volumeMounts"]
    assert copy_jobs.holds_a_clone_volume(job) and not copy_jobs.holds_a_clone_volume(the_job())

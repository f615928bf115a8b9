"""Copies as Kubernetes Jobs (the default, settings.copy_in "job"): the objects of one copy Job, built
from its owner and the settings (pure), and what a Job's state and its runner's outcome say (pure).

Each clone's and each restore's copy runs in a Job of the project's image (copy_runner), placed by the
scheduler like any pod: no copy byte passes through the operator, and an operator restart interrupts
no copy. The Job's pod reads its logins from Secrets mounted into it alone; it writes progress into
its owner's status and, once done, its outcome into a ConfigMap of its own: its ServiceAccount may
patch exactly those two objects and nothing else (role()). The operator creates, watches and
interprets Jobs (job_verdict) and writes the owner's phase and conditions from them.

A warm pool's slot keeps a copy Job standing (Plan.standby): its pod started with the slot and waits for
a plan. The clone that takes the slot takes its Job too (its name is the slot's: job_name); the operator
hands it the clone's plan in the Job's ConfigMap and lets its account read the clone's logins (Secrets
that did not exist when the pod started, so they cannot be mounted), and the copy begins at once: no pod
to schedule, no sandbox, no interpreter to start.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from wpclone_common import constants
from wpclone_common.resources import SlotReference, WordPressClone
from wpclone_operator import children
from wpclone_operator.settings import CopySettings, Settings

RUNNER = ["python", "-m", "wpclone_operator.copy_runner"]
MOUNTS = "/var/run/wpclone"
PLAN_ENV = "WPCLONE_COPY_PLAN"
OUTCOME_KEY = "outcome.json"
# The runner's exit status for a failure no retry mends (a wrong password, a hostile stream): the Job's
# podFailurePolicy ends the Job at once instead of trying again.
PERMANENT_EXIT = 2
CONTAINER = "copy"
LABEL_COPY = f"{constants.GROUP}/copy"  # on a copy Job's pod: the Job's name (its NetworkPolicy selects it)
GENERATION_ANNOTATION = f"{constants.GROUP}/owner-generation"  # the owner's generation the Job copies for
# The source snapshot the Job reads or records, and which (Plan.snapshot, Plan.snapshot_use).
SNAPSHOT_ANNOTATION = f"{constants.GROUP}/snapshot"
SNAPSHOT_USE_ANNOTATION = f"{constants.GROUP}/snapshot-use"
SNAPSHOT_MOUNT = f"{MOUNTS}/snapshot"
PLAN_KEY = "plan.json"  # in a standing Job's ConfigMap: the plan it is handed
# On a pool slot's standing copy Job until a clone's plan is handed to it: it copies nothing yet, and is not
# counted among the copies running.
LABEL_STANDBY = f"{constants.GROUP}/standby"


@dataclass(frozen=True)
class Owner:
    """The WordPressClone or CloneRestore a copy Job works for."""

    kind: str
    namespace: str
    name: str
    uid: str
    generation: int
    clone: str | None  # the clone the copy fills or reads: its pod admits the Job's pod

    @classmethod
    def of(cls, body: Any, clone: str | None) -> Owner:
        metadata = body["metadata"]
        return cls(body["kind"], metadata["namespace"], metadata["name"], metadata["uid"],
                   metadata.get("generation", 1), clone)

    @classmethod
    def of_clone(cls, clone: WordPressClone) -> Owner:
        return cls(constants.CLONE_KIND, clone.namespace, clone.name, clone.uid, clone.generation,
                   children.workload_name(clone))

    @property
    def plural(self) -> str:
        return constants.CLONE_PLURAL if self.kind == constants.CLONE_KIND else constants.RESTORE_PLURAL


class Plan(BaseModel):
    """What a copy Job does, handed to its runner in its environment (no secret in it: logins are files)."""

    kind: Literal["WordPressClone", "CloneRestore"]
    namespace: str
    name: str
    outcome: str  # the ConfigMap the runner writes its outcome into
    clone: dict[str, Any] | None = None  # the WordPressClone the copy fills, or a restore reads (metadata, spec)
    restore: dict[str, Any] | None = None  # the CloneRestore's spec
    # A clone's source snapshot (snapshots.py): its copy reads the site and keeps one (record), or reads
    # the snapshot instead of the site (replay); the snapshot's volume is mounted at MOUNTS/snapshot.
    snapshot: str | None = None
    snapshot_use: Literal["record", "replay"] | None = None
    # A pool slot's standing runner: it waits for the plan handed to it in its ConfigMap (PLAN_KEY) and reads
    # that plan's logins through the apiserver.
    standby: bool = False


def plan_body(body: Any, slot: SlotReference | None = None) -> dict[str, Any]:
    """A WordPressClone as a plan carries it: what WordPressClone.from_body reads, and of its status only the
    pool slot it took (which names its database and objects; `slot` when the body predates taking it)."""
    metadata = body["metadata"]
    taken = slot.model_dump() if slot is not None else (body.get("status") or {}).get("slot")
    return {"metadata": {key: metadata[key] for key in ("name", "namespace", "uid", "generation", "creationTimestamp")
                         if key in metadata}, "spec": dict(body.get("spec") or {}),
            **({"status": {"slot": dict(taken)}} if taken else {})}


def job_name(owner: Owner) -> str:
    """Named after its owner: `{clone}-copy` (a clone that took a pool slot: the slot's, whose standing Job
    it takes), `{restore}-restore` (a Job's name is a label value: 63 at most)."""
    suffix = "-copy" if owner.kind == constants.CLONE_KIND else "-restore"
    base = (owner.clone or owner.name) if owner.kind == constants.CLONE_KIND else owner.name
    name = base + suffix
    if len(name) <= 63:
        return name
    return f"{base[:63 - len(suffix) - 9]}-{hashlib.sha256(owner.uid.encode()).hexdigest()[:8]}{suffix}"


def _owner_reference(owner: Owner) -> dict[str, Any]:
    return {"apiVersion": constants.API_VERSION, "kind": owner.kind, "name": owner.name, "uid": owner.uid,
            "controller": True, "blockOwnerDeletion": True}


def _labels(owner: Owner) -> dict[str, str]:
    labels = {constants.LABEL_APP: "wpclone", constants.LABEL_COMPONENT: constants.COPY_COMPONENT,
              constants.LABEL_MANAGED_BY: "wpclone", constants.LABEL_INSTANCE: owner.name}
    return {**labels, constants.LABEL_CLONE: owner.clone} if owner.clone else labels


def _metadata(owner: Owner, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": owner.namespace, "labels": _labels(owner),
            "ownerReferences": [_owner_reference(owner)]}


def service_account(owner: Owner) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(owner, job_name(owner)),
            "automountServiceAccountToken": False}


def role(owner: Owner, reads: list[str] | None = None) -> dict[str, Any]:
    """All a copy Job may do through the apiserver: write its owner's status (its progress) and its own
    outcome ConfigMap. Its logins are mounted files, read by the kubelet, not by the Job. A standing Job
    (`reads` not None) also reads its ConfigMap, where its plan is handed, and then the Secrets `reads`
    names: the logins of the clone that took its slot."""
    name = job_name(owner)
    rules: list[dict[str, Any]] = [
        {"apiGroups": [constants.GROUP], "resources": [f"{owner.plural}/status"], "resourceNames": [owner.name],
         "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [name],
         "verbs": ["patch"] if reads is None else ["patch", "get", "watch"]}]
    if reads is not None:  # and its owner, to check that a plan it is handed is its owner's (plan_is_for)
        rules.append({"apiGroups": [constants.GROUP], "resources": [owner.plural], "resourceNames": [owner.name],
                      "verbs": ["get"]})
    if reads:
        rules.append({"apiGroups": [""], "resources": ["secrets"], "resourceNames": list(reads), "verbs": ["get"]})
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _metadata(owner, name),
            "rules": rules}


def role_binding(owner: Owner) -> dict[str, Any]:
    name = job_name(owner)
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _metadata(owner, name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}]}


def outcome_config_map(owner: Owner) -> dict[str, Any]:
    """Made empty by the operator; the runner patches its outcome in (it may not create objects)."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(owner, job_name(owner)), "data": {}}


def _cidr_peers(cidrs: list[str]) -> list[dict[str, Any]]:
    peers = []
    for entry in cidrs:
        try:
            peers.append({"ipBlock": {"cidr": str(ipaddress.ip_network(entry, strict=False))}})
        except ValueError:  # a host name of the outbound allowlist: the runner's policy checks it
            continue
    return peers


def network_policy(owner: Owner, settings: Settings, apiserver_cidrs: list[str]) -> dict[str, Any]:
    """The copy's pod answers nobody, and reaches DNS, the shared MySQL server's port, its clone's pod, the
    apiserver and public addresses (where sources and targets are) or those the outbound allowlist opens:
    never another clone, the cluster's services or the cloud's metadata. Which site it talks to is the
    outbound policy's to decide, inside the runner, as for every copy."""
    name = job_name(owner)
    dns = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    egress = [dns, children.mysql_peer(settings),
              {"to": _cidr_peers(apiserver_cidrs)},
              {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(settings.clone_denied_cidrs)}},
                      *_cidr_peers(list(settings.outbound_allow))]}]
    if owner.clone:
        egress.append({"to": [{"podSelector": {"matchLabels": children.pods_of(owner.clone)}}],
                       "ports": [{"protocol": "TCP", "port": children.WORDPRESS_PORT}]})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _metadata(owner, name),
            "spec": {"podSelector": {"matchLabels": {LABEL_COPY: name}}, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [], "egress": egress}}


def settings_env(settings: CopySettings) -> list[dict[str, str]]:
    """The copy's settings as the WPCLONE_ variables CopySettings reads back in the runner."""
    env = []
    for field in CopySettings.model_fields:
        value = getattr(settings, field)
        if value is None:
            continue
        text = (json.dumps(value) if isinstance(value, list | dict) else str(value).lower()
                if isinstance(value, bool) else str(value))
        env.append({"name": f"WPCLONE_{field.upper()}", "value": text})
    return env


def job(owner: Owner, plan: Plan, settings: Settings, secrets: list[str], config_maps: list[str]) -> dict[str, Any]:
    """The Job: one pod at a time, retried by Kubernetes (copy_job_backoff_limit) for a failure that may
    pass, ended at once for one that will not (PERMANENT_EXIT), given up after copy_deadline_seconds."""
    name = job_name(owner)
    mounts = [(f"secret-{index}", f"{MOUNTS}/secrets/{secret}", {"secret": {"secretName": secret,
                                                                             "defaultMode": 0o440}})
              for index, secret in enumerate(secrets)]
    mounts += [(f"config-{index}", f"{MOUNTS}/config/{config_map}",
                {"configMap": {"name": config_map, "optional": True}}) for index, config_map in enumerate(config_maps)]
    volumes = [{"name": volume, **source} for volume, _, source in mounts] + [{"name": "tmp", "emptyDir": {}}]
    writes: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    # A SQLite clone's database file, on the clone's volume: its copy writes it, a restore reads it; as the
    # clone's Apache user.
    user = 10001
    clone = WordPressClone.from_body(plan.clone) if plan.clone is not None else None
    if clone is not None and children.is_sqlite(clone):
        volumes.append({"name": "database",
                        "persistentVolumeClaim": {"claimName": children.database_claim_name(clone)}})
        writes.append({"name": "database", "mountPath": f"{MOUNTS}/database",
                       **({} if plan.kind == constants.CLONE_KIND else {"readOnly": True})})
        user = children.WWW_DATA
    if plan.snapshot is not None:
        volumes.append({"name": "snapshot", "persistentVolumeClaim": {"claimName": plan.snapshot}})
        writes.append({"name": "snapshot", "mountPath": SNAPSHOT_MOUNT,
                       **({} if plan.snapshot_use == "record" else {"readOnly": True})})
    container: dict[str, Any] = {
        "name": CONTAINER, "image": settings.copy_image, "command": RUNNER,
        "env": [*settings_env(settings), {"name": PLAN_ENV, "value": plan.model_dump_json()}],
        "resources": settings.copy_job_resources,
        "volumeMounts": [{"name": volume, "mountPath": path, "readOnly": True} for volume, path, _ in mounts] + writes,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": True},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never", "serviceAccountName": name, "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": user, "runAsGroup": user, "fsGroup": user,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    if settings.copy_job_priority_class:
        pod_spec["priorityClassName"] = settings.copy_job_priority_class
    metadata = _metadata(owner, name)
    if plan.standby:
        metadata["labels"][LABEL_STANDBY] = "true"
    metadata["annotations"] = {GENERATION_ANNOTATION: str(owner.generation),
                               **({SNAPSHOT_ANNOTATION: plan.snapshot, SNAPSHOT_USE_ANNOTATION: str(plan.snapshot_use)}
                                  if plan.snapshot is not None else {})}
    # A standing Job waits as long as its slot does: its deadline is set when it is handed a plan (hand_off).
    deadline = {} if plan.standby else {"activeDeadlineSeconds": int(settings.copy_deadline_seconds)}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": {
        "backoffLimit": settings.copy_job_backoff_limit, **deadline,
        "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": CONTAINER, "operator": "In",
                                                  "values": [PERMANENT_EXIT]}},
            # A pod evicted or preempted (a node drained) is no failure of the copy: not counted.
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
        "template": {"metadata": {"labels": {**_labels(owner), LABEL_COPY: name}}, "spec": pod_spec}}}


def object_keys(owner: Owner) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of each object objects() makes: what goes when its clone expires but stays."""
    return [(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])
            for manifest in (service_account(owner), role(owner), role_binding(owner), outcome_config_map(owner))] + [
        ("networking.k8s.io/v1", "NetworkPolicy", job_name(owner)), ("batch/v1", "Job", job_name(owner))]


def objects(owner: Owner, plan: Plan, settings: Settings, secrets: list[str], config_maps: list[str],
            apiserver_cidrs: list[str]) -> list[dict[str, Any]]:
    """Everything one copy Job needs, in the order to create them (its policy before its pod)."""
    return [service_account(owner), role(owner, [] if plan.standby else None), role_binding(owner),
            outcome_config_map(owner), network_policy(owner, settings, apiserver_cidrs),
            job(owner, plan, settings, secrets, config_maps)]


def plan_fits(plan: Plan, standing: Plan) -> bool:
    """Whether a plan found in a standing Job's ConfigMap can be its: a clone's copy in its namespace, into
    its outcome."""
    return plan.kind == constants.CLONE_KIND and plan.clone is not None \
        and (plan.namespace, plan.outcome) == (standing.namespace, standing.outcome)


def plan_is_for(plan: Plan, standing: Plan, live: dict[str, Any] | None) -> bool:
    """Whether a plan found in a standing Job's ConfigMap is the one the operator handed it: one that fits,
    for the clone as the apiserver has it (same uid, source and slot; None: the account may not read it, so
    the operator granted it nothing). Whoever else may write that ConfigMap could otherwise name a source,
    or a login, of their choosing."""
    if not plan_fits(plan, standing) or plan.clone is None or live is None:
        return False
    handed, now = plan.clone, dict(live)
    return bool(handed["metadata"].get("uid")) and handed["metadata"].get("uid") == now["metadata"].get("uid") \
        and (handed.get("spec") or {}).get("source") == (now.get("spec") or {}).get("source") \
        and (handed.get("status") or {}).get("slot") == (now.get("status") or {}).get("slot")


def standing_by(job: dict[str, Any]) -> bool:
    """A pool slot's standing Job not yet handed a plan."""
    return ((job.get("metadata") or {}).get("labels") or {}).get(LABEL_STANDBY) == "true"


def hand_off(job: dict[str, Any], owner: Owner, settings: Settings, now: datetime) -> dict[str, Any]:
    """The patch that makes a standing Job the owner's copy, written once its plan is handed: counted among
    the running copies from now on, and given the copy's deadline from now (activeDeadlineSeconds counts
    from the Job's start, when its slot was made)."""
    started = (job.get("status") or {}).get("startTime")
    waited = (now - datetime.fromisoformat(str(started).replace("Z", "+00:00"))).total_seconds() if started else 0.0
    return {"metadata": {"labels": {LABEL_STANDBY: None},
                         "annotations": {GENERATION_ANNOTATION: str(owner.generation)}},
            "spec": {"activeDeadlineSeconds": int(max(0.0, waited) + settings.copy_deadline_seconds)}}


@dataclass(frozen=True)
class Verdict:
    """A copy Job's state as its owner shows it: running (reason COPYING, or the last attempt's failure
    while Kubernetes tries again), succeeded (with the runner's outcome) or failed."""

    state: Literal["running", "succeeded", "failed"]
    reason: str
    message: str
    outcome: dict[str, Any] | None = None


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def outcome_text(outcome: dict[str, Any]) -> str:
    return json.dumps(outcome, separators=(",", ":"))


def read_outcome(data: dict[str, str]) -> dict[str, Any] | None:
    """The runner's outcome from its ConfigMap's data; None until it wrote one (or if it is not JSON)."""
    try:
        outcome = json.loads(data.get(OUTCOME_KEY) or "null")
    except ValueError:
        return None
    return outcome if isinstance(outcome, dict) else None


def job_verdict(job: dict[str, Any], outcome: dict[str, Any] | None) -> Verdict:
    name = job["metadata"]["name"]
    failure = outcome if outcome is not None and "reason" in outcome else None
    last = f"{failure['reason']}: {failure.get('message', '')}" if failure else "no outcome was written"
    if _condition(job, "Complete") is not None:
        if outcome is None or failure is not None:
            return Verdict("failed", constants.GAVE_UP, f"copy Job {name} completed without an outcome ({last})")
        return Verdict("succeeded", "Copied", f"copy Job {name} completed", outcome)
    failed = _condition(job, "Failed")
    if failed is None and outcome is not None and failure is None and not holds_a_clone_volume(job):
        # The runner wrote its result as its last step: the copy is done, whatever the kubelet and the Job
        # controller take to say so (2-3 s). A pod that holds a claim is released only once its Job ended.
        return Verdict("succeeded", "Copied", f"copy Job {name} wrote its result", outcome)
    if failed is not None:
        if failed.get("reason") == "PodFailurePolicy" and failure is not None:
            return Verdict("failed", str(failure["reason"]), str(failure.get("message", "")), failure)
        spec = job.get("spec") or {}
        why = {"DeadlineExceeded": f"still not done after {spec.get('activeDeadlineSeconds')}s",
               "BackoffLimitExceeded": f"failed {(job.get('status') or {}).get('failed', 0)} times"}.get(
            str(failed.get("reason")), str(failed.get("message") or failed.get("reason")))
        return Verdict("failed", constants.GAVE_UP, f"copy Job {name} {why}; the last attempt: {last}", failure)
    attempts = (job.get("status") or {}).get("failed", 0)
    if failure is not None and attempts:
        return Verdict("running", str(failure["reason"]),
                       f"{failure.get('message', '')} (attempt {attempts} failed; copy Job {name} tries again)")
    return Verdict("running", constants.COPYING, f"copy Job {name} is copying")


def unreadable(job: dict[str, Any]) -> Verdict:
    """A Job that completed with an outcome that is no copy's result."""
    return Verdict("failed", constants.GAVE_UP,
                   f"copy Job {job['metadata']['name']} completed, but its outcome cannot be read")


def seconds(job: dict[str, Any], outcome: dict[str, Any] | None = None) -> float:
    """How long a Job's copy took: as its runner measured it (from its plan, which a standing Job waits for),
    or from the Job's start to its completion (0 when either is not known)."""
    if isinstance((outcome or {}).get("seconds"), int | float):
        return float((outcome or {})["seconds"])
    state = job.get("status") or {}
    started, ended = state.get("startTime"), state.get("completionTime")
    if not started or not ended:
        return 0.0
    return (datetime.fromisoformat(str(ended).replace("Z", "+00:00"))
            - datetime.fromisoformat(str(started).replace("Z", "+00:00"))).total_seconds()


def snapshot_of(job: dict[str, Any]) -> tuple[str | None, str | None]:
    """The snapshot a Job reads or records, and which it does (None, None: neither)."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    return annotations.get(SNAPSHOT_ANNOTATION), annotations.get(SNAPSHOT_USE_ANNOTATION)


def holds_a_clone_volume(job: dict[str, Any]) -> bool:
    """Whether the Job's pods mount a volume claim (a SQLite clone's database, a source snapshot): a
    finished pod keeps a claim from going away, so such a Job's pods go once its outcome is read."""
    volumes = ((((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes")) or []
    return any("persistentVolumeClaim" in volume for volume in volumes)


def is_active(job: dict[str, Any]) -> bool:
    return _condition(job, "Complete") is None and _condition(job, "Failed") is None


def queue_position(me: tuple[str, str], waiting: dict[tuple[str, str], str]) -> int:
    """How many copies wait ahead of `me` (key: (namespace, Job name), value: its owner's creation
    time), first come, first served."""
    mine = waiting.get(me, "~")
    return sum(1 for key, created in waiting.items() if key != me and (created, key) < (mine, me))

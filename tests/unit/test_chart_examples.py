"""The examples a platform team copies: GitOps manifests for one clone, and the laptop values for the chart."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_chart import find, render
from wpclone_common import constants
from wpclone_common.resources import WordPressCloneSpec
from wpclone_operator.status import condition

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(relative: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((EXAMPLES / relative).read_text()) if doc]


def test_the_gitops_clone_retains_its_record_and_is_a_valid_spec() -> None:
    (clone,) = load("clone/wordpressclone.yaml")
    assert clone["kind"] == "WordPressClone"
    assert "namespace" not in clone["metadata"], "the GitOps tool chooses the namespace"
    spec = WordPressCloneSpec.model_validate(clone["spec"])
    assert spec.expiryPolicy == "Retain"
    (kustomization,) = load("clone/kustomization.yaml")
    assert kustomization["resources"] == ["wordpressclone.yaml"]


def test_argo_cd_and_flux_both_manage_the_example_clone() -> None:
    (application,) = load("argocd/application.yaml")
    assert application["spec"]["source"]["path"] == "examples/clone"
    assert application["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    (source,) = load("flux/gitrepository.yaml")
    (kustomization,) = load("flux/clone-kustomization.yaml")
    assert kustomization["spec"]["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"]}
    assert kustomization["spec"]["path"] == "./examples/clone"
    assert kustomization["spec"]["wait"] is True and kustomization["spec"]["prune"] is True


def test_the_laptop_values_pass_the_chart_schema() -> None:
    docs = render("--values", str(EXAMPLES / "kind" / "values.yaml"))
    (ingress,) = find(docs, "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "wpclone.localhost"
    (operator,) = find(docs, "Deployment", "wpclone-operator")
    assert operator["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def lua(value: Any) -> str:
    """A JSON value as a Lua table constructor (Argo CD hands health scripts the object as Lua tables)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(key)}] = {lua(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(lua(item) for item in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "nil" if value is None else json.dumps(value)


def argo_health(clone: dict[str, Any]) -> tuple[str, str]:
    """Runs the example's health check as Argo CD does (Lua 5.1, the dialect of its gopher-lua; Debian's
    lua5.1, installed by `make deps`)."""
    (health,) = load("argocd/health-check.yaml")
    script = health["data"]["resource.customizations.health.wpclone.dev_WordPressClone"]
    program = (f"local obj = {lua(clone)}\nlocal function check()\n{script}\nend\n"
               "local health = check()\nio.write(health.status, '\\t', health.message or '')\n")
    result = subprocess.run(["lua5.1", "-"], input=program, capture_output=True, text=True, check=True)
    status, message = result.stdout.split("\t", 1)
    return status, message


AT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def clone_in(phase: str | None, *, generation: int = 2, observed: int = 2, ready: bool | None = None,
             reason: str = "", message: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase is not None:
        status = {"phase": phase, "observedGeneration": observed, "url": "https://shop.clones.example",
                  "conditions": [condition("Ready", ready, reason, message, observed, AT)]}
        if message and phase != constants.PHASE_READY:
            status["message"] = message
    return {"metadata": {"name": "shop", "generation": generation}, "status": status}


HEALTH_CASES = {
    "new": (clone_in(None), ("Progressing", "waiting for the wpclone operator")),
    "spec not handled yet": (clone_in(constants.PHASE_READY, generation=3, ready=True),
                             ("Progressing", "the operator has not handled the latest spec yet")),
    "copying": (clone_in("Cloning", ready=False, reason="Copying", message="copying the site"),
                ("Progressing", "copying the site")),
    "ready": (clone_in(constants.PHASE_READY, ready=True, reason="Ready", message="clone is ready"),
              ("Healthy", "https://shop.clones.example")),
    "ready phase, condition not yet": (clone_in(constants.PHASE_READY, ready=False, reason="PodNotReady",
                                                message="the pod is starting"), ("Progressing", "the pod is starting")),
    "failed": (clone_in("Failed", ready=False, reason="LoginFailed", message="source login failed for admin@x"),
               ("Degraded", "source login failed for admin@x")),
    "expired": (clone_in("Expired", ready=False, reason="Expired", message="the clone expired"),
                ("Suspended", "the clone expired")),
}


@pytest.mark.parametrize(("clone", "expected"), HEALTH_CASES.values(), ids=HEALTH_CASES.keys())
def test_the_argo_cd_health_check_classifies_each_state_of_a_clone(clone: dict[str, Any],
                                                                  expected: tuple[str, str]) -> None:
    assert argo_health(clone) == expected

"""The examples a platform team copies: GitOps manifests for one clone, and the laptop values for the chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.unit.test_chart import find, render
from wpclone_operator.resources import WordPressCloneSpec

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
    (health,) = load("argocd/health-check.yaml")
    script = health["data"]["resource.customizations.health.wpclone.dev_WordPressClone"]
    for state in ("Healthy", "Progressing", "Degraded", "Suspended", "observedGeneration", '"Ready"'):
        assert state in script
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

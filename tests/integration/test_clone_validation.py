"""The apiserver itself refuses invalid WordPressClones, with a message a user can act on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from testenv import cluster
from testenv.operator_process import install_crds
from tests.helpers import apply, clone_manifest

pytestmark = pytest.mark.integration

SOURCE = {"url": "https://shop.example.com", "credentialsSecretRef": {"name": "login"}}


@pytest.fixture(scope="module")
def crds(control_plane: cluster.ControlPlane) -> None:
    install_crds(control_plane)


def rejected(plane: cluster.ControlPlane, namespace: str, manifest: dict[str, Any]) -> str:
    output = plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=False)
    assert "created" not in output and "configured" not in output, output
    return output


def with_spec(name: str = "bad", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClone", "metadata": {"name": name},
            "spec": spec}


INVALID = {
    "no source": (with_spec(ttlMinutes=30), "spec.source is required"),
    "ftp url": (with_spec(source={**SOURCE, "url": "ftp://shop.example.com"}), "spec.source.url"),
    "credentials in url": (with_spec(source={**SOURCE, "url": "https://admin:pw@shop.example.com"}),
                           "url must not contain credentials"),
    "secret ref without name": (with_spec(source={**SOURCE, "credentialsSecretRef": {}}),
                                "spec.source.credentialsSecretRef.name: Required value"),
    "zero ttl": (with_spec(source=SOURCE, ttlMinutes=0), "should be greater than or equal to 1"),
    "ttl over a week": (with_spec(source=SOURCE, ttlMinutes=20000), "should be less than or equal to 10080"),
    "unknown expiry policy": (with_spec(source=SOURCE, expiryPolicy="Forever"),
                              'spec.expiryPolicy: Unsupported value: "Forever"'),
    "bad host": (with_spec(source=SOURCE, host="Shop_Preview"), "spec.host"),
    "empty image": (with_spec(source=SOURCE, image=""), "spec.image"),
    "unknown field": (with_spec(source=SOURCE, sourceUrl="https://x.example.com"), 'unknown field "spec.sourceUrl"'),
    "name too long": (with_spec("a" * 41, source=SOURCE), "metadata.name must be at most 40 characters"),
    "ttl as text": (with_spec(source=SOURCE, ttlMinutes="thirty"), "spec.ttlMinutes"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_clone_is_rejected_with_a_readable_message(control_plane: cluster.ControlPlane, crds: None,
                                                           namespace: str, case: str) -> None:
    manifest, message = INVALID[case]
    assert message in rejected(control_plane, namespace, manifest)


def test_source_cannot_change_after_creation(control_plane: cluster.ControlPlane, crds: None,
                                             namespace: str) -> None:
    apply(control_plane, namespace, clone_manifest("fixed"))
    moved = clone_manifest("fixed", source_url="https://other.example.com")
    assert "spec.source is immutable" in rejected(control_plane, namespace, moved)


def test_a_valid_clone_is_accepted_with_defaults(control_plane: cluster.ControlPlane, crds: None,
                                                 namespace: str) -> None:
    apply(control_plane, namespace, clone_manifest("fine", ttlMinutes=45, host="preview.example.org"))
    stored = json.loads(control_plane.kubectl("get", "-n", namespace, "wpc", "fine", "-o", "json"))
    assert stored["spec"]["expiryPolicy"] == "Delete"
    assert stored["spec"]["ttlMinutes"] == 45


def restore(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "wpclone.dev/v1alpha1", "kind": "CloneRestore", "metadata": {"name": "bad-restore"},
            "spec": {"target": {"url": "https://shop.example.com", "credentialsSecretRef": {"name": "prod"}},
                     **spec}}


INVALID_RESTORES = {
    "neither source nor rollback": (restore(), "set either source or rollbackTo"),
    "both clone and url": (restore(source={"cloneRef": {"name": "shop"}, **SOURCE}),
                           "set either cloneRef, or both url and credentialsSecretRef"),
    "url without secret": (restore(source={"url": "https://staging.example.com"}),
                           "url and credentialsSecretRef go together"),
    "nothing included": (restore(source={"cloneRef": {"name": "shop"}},
                                 include={"database": False, "uploads": False, "themes": False, "plugins": False,
                                          "content": False}),
                         "include at least one part"),
    "bad table name": (restore(source={"cloneRef": {"name": "shop"}}, include={"tables": ["posts; DROP"]}),
                       "spec.include.tables[0]"),
    "tables without the database": (restore(source={"cloneRef": {"name": "shop"}},
                                            include={"database": False, "tables": ["options"]}),
                                    "tables needs database: true"),
    "unknown conflict policy": (restore(source={"cloneRef": {"name": "shop"}}, onConflict="Replace"),
                                'spec.onConflict: Unsupported value: "Replace"'),
}


@pytest.mark.parametrize("case", sorted(INVALID_RESTORES))
def test_invalid_restore_is_rejected_with_a_readable_message(control_plane: cluster.ControlPlane, crds: None,
                                                             namespace: str, case: str) -> None:
    manifest, message = INVALID_RESTORES[case]
    assert message in rejected(control_plane, namespace, manifest)


def test_a_restore_cannot_be_edited(control_plane: cluster.ControlPlane, crds: None, namespace: str) -> None:
    apply(control_plane, namespace, restore(source={"cloneRef": {"name": "shop"}}, dryRun=True))
    edited = restore(source={"cloneRef": {"name": "shop"}}, dryRun=False)
    assert "a CloneRestore is a one-off job" in rejected(control_plane, namespace, edited)

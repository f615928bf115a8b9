"""The local control plane is real: scheduling, kwok-reported readiness, garbage collection, RBAC."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from testenv import cluster, pki
from tests.helpers import eventually

pytestmark = pytest.mark.integration


def test_a_deployment_becomes_a_running_ready_pod_on_the_fake_node(kube_client: ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})

    def ready_pod() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        return next((pod for pod in pods if pod.status.phase == "Running" and any(
            c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])), None)

    pod = eventually(ready_pod, what="a Running and Ready pod")
    assert pod.spec.node_name == cluster.FAKE_NODE
    assert pod.status.pod_ip
    deployment = eventually(lambda: (d := apps.read_namespaced_deployment("web", namespace)).status.available_replicas
                            and d, what="the Deployment to be available")
    assert deployment.status.ready_replicas == 1


def test_deleting_an_owner_garbage_collects_its_child(kube_client: ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "child", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}})
    core.delete_namespaced_config_map("owner", namespace)

    def child_gone() -> bool:
        try:
            core.read_namespaced_secret("child", namespace)
            return False
        except ApiException as error:
            return error.status == 404

    eventually(child_gone, what="the garbage collector to delete the child")


def test_an_unprivileged_service_account_is_refused(kube_client: ApiClient, namespace: str,
                                                    control_plane: cluster.ControlPlane, tmp_path) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token("nobody", namespace, {"spec": {
        "expirationSeconds": 600}}).status.token
    kubeconfig = pki.write_kubeconfig(tmp_path / "nobody.kubeconfig", control_plane.server_url,
                                      control_plane.pki.ca_cert, token=token, namespace=namespace)
    as_nobody = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    with pytest.raises(ApiException) as refused:
        as_nobody.list_namespaced_secret(namespace)
    assert refused.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in refused.value.body
    # The same token is authenticated: a self-review answers with the ServiceAccount's identity.
    review = client.AuthenticationV1Api(config.new_client_from_config(config_file=str(kubeconfig)))\
        .create_self_subject_review({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:nobody"

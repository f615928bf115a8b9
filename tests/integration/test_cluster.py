"""The local cluster is real: a kubelet node running containerd pods, cluster DNS, Services through
kube-proxy, dynamically provisioned volumes, enforced NetworkPolicy, garbage collection and RBAC."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from testenv import cluster, images, node, pki
from tests.helpers import eventually

pytestmark = pytest.mark.integration

SERVE = ("mkdir -p /tmp/www && echo \"hello from $HOSTNAME\" > /tmp/www/index.html && echo serving"
         " && exec httpd -f -p 8080 -h /tmp/www")


def busybox(name: str, command: str, **container: Any) -> dict[str, Any]:
    return {"name": name, "image": images.ref("busybox"), "imagePullPolicy": "Never",
            "command": ["sh", "-c", command], **container}


def web_deployment(name: str = "web") -> dict[str, Any]:
    labels = {"app": name}
    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    return {"metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [busybox("web", SERVE, readinessProbe=probe)],
                                           "terminationGracePeriodSeconds": 1}}}}


def page(url: str) -> str:
    """The body at `url`, or "" while nothing answers there yet."""
    try:
        return httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return ""


def ready_pod(core: client.CoreV1Api, namespace: str, selector: str) -> Any:
    def find() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        return next((pod for pod in pods if pod.metadata.deletion_timestamp is None and pod.status.phase == "Running"
                     and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])), None)
    return eventually(find, timeout=90, what=f"a Running and Ready pod ({selector})")


def sleeper(core: client.CoreV1Api, namespace: str, name: str = "client", **spec: Any) -> Any:
    core.create_namespaced_pod(namespace, {"metadata": {"name": name, "labels": {"app": name}}, "spec": {
        "containers": [busybox(name, "exec sleep 3600")], "terminationGracePeriodSeconds": 1, **spec}})
    return ready_pod(core, namespace, f"app={name}")


def test_the_node_is_ready_and_runs_pods_in_containerd(kube_client: ApiClient, namespace: str,
                                                      control_plane: cluster.ControlPlane) -> None:
    core = client.CoreV1Api(kube_client)
    (ready_node,) = core.list_node().items
    assert ready_node.metadata.name == node.NAME
    assert ready_node.status.node_info.container_runtime_version.startswith("containerd://")
    client.AppsV1Api(kube_client).create_namespaced_deployment(namespace, web_deployment())

    pod = ready_pod(core, namespace, "app=web")
    (status,) = pod.status.container_statuses
    assert status.container_id.startswith("containerd://") and status.ready
    # The pod answers on its own address on the run's bridge, and the kubelet streams its logs and exec.
    assert httpx.get(f"http://{pod.status.pod_ip}:8080/", timeout=10).text == f"hello from {pod.metadata.name}\n"
    exec_output = control_plane.kubectl("exec", "-n", namespace, pod.metadata.name, "--", "cat", "/tmp/www/index.html")
    assert exec_output == f"hello from {pod.metadata.name}\n"
    assert control_plane.kubectl("logs", "-n", namespace, pod.metadata.name) == "serving\n"


def test_a_service_resolves_by_cluster_dns_and_answers_on_its_cluster_ip(
        kube_client: ApiClient, namespace: str, control_plane: cluster.ControlPlane) -> None:
    core = client.CoreV1Api(kube_client)
    client.AppsV1Api(kube_client).create_namespaced_deployment(namespace, web_deployment())
    service = core.create_namespaced_service(namespace, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    pod = ready_pod(core, namespace, "app=web")
    expected = f"hello from {pod.metadata.name}\n"

    # From the host, through kube-proxy's rules, as the ingress router reaches clones.
    eventually(lambda: page(f"http://{service.spec.cluster_ip}/") == expected, what="the Service's ClusterIP to answer")
    # From a pod, by name, through CoreDNS and kube-proxy.
    caller = sleeper(core, namespace)
    lookup = control_plane.kubectl("exec", "-n", namespace, caller.metadata.name, "--",
                                   "nslookup", f"web.{namespace}.svc.cluster.local")
    assert service.spec.cluster_ip in lookup
    answer = control_plane.kubectl("exec", "-n", namespace, caller.metadata.name, "--", "sh", "-c",
                                   f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc web.{namespace}.svc.cluster.local 80")
    assert answer.endswith(expected)


def test_a_claim_gets_a_volume_that_outlives_its_pod(kube_client: ApiClient, namespace: str,
                                                     control_plane: cluster.ControlPlane) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_persistent_volume_claim(namespace, {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Mi"}}}})
    volume = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}
    mount = {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}

    def pod(name: str, command: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "labels": {"app": name}},
                "spec": {"containers": [busybox(name, command, **mount)], "terminationGracePeriodSeconds": 1,
                         **volume}}

    core.create_namespaced_pod(namespace, pod("writer", "echo kept > /data/note && exec sleep 3600"))
    ready_pod(core, namespace, "app=writer")
    claim = core.read_namespaced_persistent_volume_claim("data", namespace)
    assert claim.status.phase == "Bound"
    assert claim.spec.storage_class_name == node.STORAGE_CLASS  # the default StorageClass
    core.delete_namespaced_pod("writer", namespace, grace_period_seconds=0)
    eventually(lambda: not core.list_namespaced_pod(namespace, label_selector="app=writer").items,
               what="the writer pod to be gone")

    core.create_namespaced_pod(namespace, pod("reader", "exec sleep 3600"))
    reader = ready_pod(core, namespace, "app=reader")
    assert control_plane.kubectl("exec", "-n", namespace, reader.metadata.name, "--", "cat", "/data/note") == "kept\n"
    # A folder of the node's, made by its provisioner and removed with the claim (reclaim policy Delete).
    folder = node.VOLUMES / f"{claim.spec.volume_name}_{namespace}_data"
    assert (folder / "note").read_text() == "kept\n"
    core.delete_namespaced_pod("reader", namespace, grace_period_seconds=0)
    core.delete_namespaced_persistent_volume_claim("data", namespace)
    eventually(lambda: not folder.exists() and not client.CoreV1Api(kube_client).list_persistent_volume(
        field_selector=f"metadata.name={claim.spec.volume_name}").items, what="the claim's volume and folder to go")


def test_a_network_policy_that_denies_ingress_really_blocks_traffic(
        kube_client: ApiClient, namespace: str, control_plane: cluster.ControlPlane) -> None:
    core = client.CoreV1Api(kube_client)
    client.AppsV1Api(kube_client).create_namespaced_deployment(namespace, web_deployment())
    target = ready_pod(core, namespace, "app=web")
    caller = sleeper(core, namespace)

    def reaches() -> bool:
        answer = control_plane.kubectl("exec", "-n", namespace, caller.metadata.name, "--", "sh", "-c",
                                       f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {target.status.pod_ip} 8080",
                                       check=False)
        return answer.endswith(f"hello from {target.metadata.name}\n")

    assert reaches()
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-web"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}}
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(deny))
    eventually(lambda: not reaches(), timeout=60, interval=1, what="the policy to block the connection")
    control_plane.kubectl("delete", "-n", namespace, "networkpolicy", "deny-web")
    eventually(reaches, timeout=60, interval=1, what="the connection to be allowed again")


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

"""The Helm chart, rendered by the real `helm`: lint, least-privilege RBAC, settings, schema and CRDs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from testenv import binaries
from wpclone_api.app import create_app
from wpclone_api.settings import ApiSettings
from wpclone_operator import crd
from wpclone_operator.settings import Settings

CHART = Path(__file__).resolve().parents[2] / "charts" / "wpclone"
REQUIRED = ["--set", "mysql.existingSecret=mysql-admin", "--set", "api.tokens.existingSecret=api-tokens"]
NAMESPACED = [*REQUIRED, "--set-json", 'operator.watchNamespaces=["team-a","team-b"]', "--set", "api.namespace=team-a"]
EDGE_VALUES = {
    "defaults": REQUIRED,
    "namespaced": NAMESPACED,
    "no api, no crds, no tls": ["--set", "mysql.existingSecret=m", "--set", "api.enabled=false",
                                "--set", "crds.install=false", "--set", "clones.tls.enabled=false"],
    "cert-manager and api ingress": [*REQUIRED, "--set", "clones.tls.clusterIssuer=letsencrypt",
                                     "--set", "clones.ingress.className=nginx", "--set", "api.ingress.enabled=true",
                                     "--set", "api.ingress.tlsSecretName=api-tls"],
    "wildcard certificate": [*REQUIRED, "--set", "clones.tls.secretName=wildcard-clones-tls"],
}

# What the operator may do in a namespace it watches, and nothing more (see templates/_helpers.tpl).
OPERATOR_RULES = {
    ("wpclone.dev", "wordpressclones"): {"get", "list", "watch", "create", "patch", "delete"},
    ("wpclone.dev", "clonerestores"): {"list", "watch", "patch"},
    ("wpclone.dev", "wordpressclonepools"): {"get", "list", "watch", "patch"},
    ("wpclone.dev", "wordpressclonepools/status"): {"patch"},
    ("wpclone.dev", "wordpressclones/status"): {"patch"},
    ("wpclone.dev", "clonerestores/status"): {"patch"},
    ("wpclone.dev", "wordpressclones/finalizers"): {"update"},
    ("wpclone.dev", "sourcesnapshots"): {"list", "watch", "create", "patch", "delete"},
    ("wpclone.dev", "sourcesnapshots/status"): {"patch"},
    ("wpclone.dev", "sourcesnapshots/finalizers"): {"update"},
    ("", "secrets"): {"get", "create", "patch", "delete"},
    ("", "configmaps"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "services"): {"get", "create", "patch", "delete"},
    ("networking.k8s.io", "ingresses"): {"get", "create", "patch", "delete"},
    ("networking.k8s.io", "networkpolicies"): {"get", "create", "patch", "delete"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"list", "watch", "delete"},
    ("", "persistentvolumeclaims"): {"get", "create", "patch", "delete"},
    ("", "events"): {"create"},
    ("batch", "jobs"): {"get", "list", "create", "patch", "delete"},
    ("", "serviceaccounts"): {"get", "create", "patch", "delete"},
    ("rbac.authorization.k8s.io", "roles"): {"get", "create", "patch", "delete"},
    ("rbac.authorization.k8s.io", "rolebindings"): {"get", "create", "patch", "delete"},
}
CLUSTER_WIDE_EXTRA = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
API_RULES = {
    ("wpclone.dev", "wordpressclones"): {"get", "list", "watch", "create", "patch", "delete"},
    ("wpclone.dev", "clonerestores"): {"list", "watch", "create"},
    ("", "secrets"): {"get", "create", "patch", "delete"},
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    executable = binaries.binary("helm")
    assert executable.exists(), "helm is not built: run `python -m testenv build`"
    return subprocess.run([str(executable), *args], capture_output=True, text=True, check=False)


def render(*args: str) -> list[dict[str, Any]]:
    result = helm("template", "wpclone", str(CHART), "--namespace", "wpclone", *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_error(*args: str) -> str:
    result = helm("template", "wpclone", str(CHART), "--namespace", "wpclone", *args)
    assert result.returncode != 0, "helm accepted values it should refuse"
    return result.stderr


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]


def rule_table(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource), set()).update(rule["verbs"])
    return table


def container(docs: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    (found,) = find(docs, "Deployment", deployment)
    (only,) = found["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(docs: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container(docs, deployment)["env"]}


@pytest.mark.parametrize("values", EDGE_VALUES.values(), ids=EDGE_VALUES.keys())
def test_chart_lints_and_renders_with_default_and_edge_values(values: list[str]) -> None:
    lint = helm("lint", "--strict", str(CHART), *values)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert find(render(*values), "Deployment", "wpclone-operator")


def test_default_install_watches_all_namespaces_with_exactly_the_rules_the_code_uses() -> None:
    docs = render(*REQUIRED)
    (role,) = find(docs, "ClusterRole")
    assert rule_table(role["rules"]) == OPERATOR_RULES | CLUSTER_WIDE_EXTRA
    (binding,) = find(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "wpclone-operator", "namespace": "wpclone"}]
    assert env(docs, "wpclone-operator")["WPCLONE_NAMESPACES"] == "[]"


def test_copies_run_in_jobs_of_the_charts_own_image_and_may_read_where_the_apiserver_is() -> None:
    docs = render(*REQUIRED, "--set", "image.tag=1.2.3")
    settings = env(docs, "wpclone-operator")
    assert settings["WPCLONE_COPY_IN"] == "job"
    assert settings["WPCLONE_COPY_IMAGE"] == container(docs, "wpclone-operator")["image"]
    assert json.loads(settings["WPCLONE_COPY_JOB_RESOURCES"])["limits"]["cpu"] == "1"
    (role,) = find(docs, "Role", "wpclone-operator-apiserver")
    assert role["metadata"]["namespace"] == "default"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["endpoints"], "resourceNames": ["kubernetes"],
                              "verbs": ["get"]}]
    (binding,) = find(docs, "RoleBinding", "wpclone-operator-apiserver")
    assert binding["subjects"][0]["name"] == "wpclone-operator"
    for values in (["--set", "operator.copies.in=operator"],
                   ["--set-json", 'operator.copies.apiserverCIDRs=["10.0.0.1/32"]']):
        assert not find(render(*REQUIRED, *values), "Role", "wpclone-operator-apiserver")
    assert "/operator/copies/in" in render_error(*REQUIRED, "--set", "operator.copies.in=elsewhere")


def test_watched_namespaces_get_a_role_each_and_nothing_cluster_wide() -> None:
    docs = render(*NAMESPACED)
    assert not find(docs, "ClusterRole") and not find(docs, "ClusterRoleBinding")
    roles = {role["metadata"]["namespace"]: role for role in find(docs, "Role", "wpclone-operator")}
    assert set(roles) == {"team-a", "team-b"}
    for role in roles.values():
        assert rule_table(role["rules"]) == OPERATOR_RULES
    bindings = find(docs, "RoleBinding", "wpclone-operator")
    assert {binding["metadata"]["namespace"] for binding in bindings} == {"team-a", "team-b"}
    assert json.loads(env(docs, "wpclone-operator")["WPCLONE_NAMESPACES"]) == ["team-a", "team-b"]


def test_api_may_only_manage_clones_and_logins_in_its_own_namespace() -> None:
    docs = render(*NAMESPACED)
    (role,) = find(docs, "Role", "wpclone-api")
    assert role["metadata"]["namespace"] == "team-a"
    assert rule_table(role["rules"]) == API_RULES
    assert env(docs, "wpclone-api")["WPCLONE_API_NAMESPACE"] == "team-a"
    (binding,) = find(docs, "RoleBinding", "wpclone-api")
    assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": "wpclone-api", "namespace": "wpclone"}


@pytest.mark.parametrize("values", EDGE_VALUES.values(), ids=EDGE_VALUES.keys())
def test_no_rule_grants_wildcards_or_privilege_escalation(values: list[str]) -> None:
    for role in find(render(*values), "ClusterRole") + find(render(*values), "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
            assert not {"bind", "escalate", "impersonate", "deletecollection"} & set(rule["verbs"]), rule
            assert "pods/exec" not in rule["resources"], rule


def test_the_operator_runs_alone_as_non_root_on_a_read_only_filesystem() -> None:
    docs = render(*REQUIRED)
    for name in ("wpclone-operator", "wpclone-api"):
        (deployment,) = find(docs, "Deployment", name)
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["serviceAccountName"] == name
        only = container(docs, name)
        assert only["securityContext"]["readOnlyRootFilesystem"] is True
        assert only["securityContext"]["allowPrivilegeEscalation"] is False
        assert only["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"name": "tmp", "mountPath": "/tmp"} in only["volumeMounts"]
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
        assert only["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert only["resources"]["limits"]["memory"]
    (operator,) = find(docs, "Deployment", "wpclone-operator")
    # Standalone kopf: never two operators, not even for a moment during a rollout.
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    assert container(docs, "wpclone-operator")["command"] == ["python", "-m", "wpclone_operator"]
    assert container(docs, "wpclone-api")["command"] == ["python", "-m", "wpclone_api"]


def test_probes_use_the_ports_the_processes_listen_on() -> None:
    docs = render(*REQUIRED)
    operator, api = container(docs, "wpclone-operator"), container(docs, "wpclone-api")
    operator_env, api_env = env(docs, "wpclone-operator"), env(docs, "wpclone-api")
    assert operator_env["WPCLONE_LIVENESS_ENDPOINT"] == "http://0.0.0.0:8080/healthz"
    assert {"name": "health", "containerPort": 8080} in operator["ports"]
    assert operator["livenessProbe"]["httpGet"]["port"] == "health"
    assert api["ports"] == [{"name": "http", "containerPort": int(api_env["WPCLONE_API_PORT"])}]
    (service,) = find(docs, "Service", "wpclone-api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_every_setting_the_chart_passes_is_read_by_the_operator_and_api(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(*EDGE_VALUES["cert-manager and api ingress"], "--set", "mysql.hostForClones=db.internal:3306")
    operator_env, api_env = env(docs, "wpclone-operator"), env(docs, "wpclone-api")
    assert set(operator_env) <= {f"WPCLONE_{name.upper()}" for name in Settings.model_fields}
    assert set(api_env) <= {f"WPCLONE_API_{name.upper()}" for name in ApiSettings.model_fields} | {
        "WPCLONE_API_HOST", "WPCLONE_API_PORT"}  # read by wpclone_api.__main__
    # The values parse with the real settings class, as the operator will read them.
    for name, value in operator_env.items():
        monkeypatch.setenv(name, value if isinstance(value, str) else "mysql://root:pw@db:3306/")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.ingress_annotations == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert (settings.ingress_class, settings.tls_enabled, settings.tls_secret_name) == ("nginx", True, None)
    assert (settings.default_ttl_minutes, settings.max_ttl_minutes, settings.concurrency) == (30, 1440, 4)
    assert settings.clone_db_host == "db.internal:3306"
    assert settings.namespaces == []
    assert (settings.keep_migrator, settings.backup_retention, settings.merge_baseline) == (False, 3, True)
    assert settings.clone_resources["requests"] == {"cpu": "50m", "memory": "128Mi", "ephemeral-storage": "64Mi"}
    assert (settings.snapshot_max_age_minutes, settings.snapshot_retention_minutes,
            settings.snapshot_storage_size) == (0, 60, "5Gi")


def test_existing_secrets_are_used_by_name_and_key_and_never_rendered() -> None:
    docs = render("--set", "mysql.existingSecret=shared-mysql", "--set", "mysql.dsnKey=admin-dsn",
                  "--set", "api.tokens.existingSecret=tokens-v2", "--set", "api.tokens.key=list")
    assert not find(docs, "Secret")
    assert env(docs, "wpclone-operator")["WPCLONE_MYSQL_ADMIN_DSN"] == {
        "secretKeyRef": {"name": "shared-mysql", "key": "admin-dsn"}}
    (api,) = find(docs, "Deployment", "wpclone-api")
    tokens = next(v for v in api["spec"]["template"]["spec"]["volumes"] if v["name"] == "tokens")
    assert tokens["secret"] == {"secretName": "tokens-v2", "items": [{"key": "list", "path": "tokens"}]}
    assert env(docs, "wpclone-api")["WPCLONE_API_TOKENS_FILE"] == "/var/run/secrets/wpclone-api/tokens"


def test_clone_tls_can_be_off_or_one_wildcard_certificate() -> None:
    off = env(render(*EDGE_VALUES["no api, no crds, no tls"]), "wpclone-operator")
    assert off["WPCLONE_TLS_ENABLED"] == "false" and "WPCLONE_TLS_SECRET_NAME" not in off
    wildcard = env(render(*EDGE_VALUES["wildcard certificate"]), "wpclone-operator")
    assert wildcard["WPCLONE_TLS_SECRET_NAME"] == "wildcard-clones-tls"
    assert json.loads(wildcard["WPCLONE_INGRESS_ANNOTATIONS"]) == {}


def test_api_is_optional_and_its_ingress_is_off_by_default() -> None:
    assert not find(render(*REQUIRED), "Ingress")
    disabled = render(*EDGE_VALUES["no api, no crds, no tls"])
    assert not [doc for doc in disabled if doc["metadata"]["name"].startswith("wpclone-api")]
    (ingress,) = find(render(*EDGE_VALUES["cert-manager and api ingress"]), "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": ["wpclone.example.com"], "secretName": "api-tls"}]
    assert {path["backend"]["service"]["name"] for path in ingress["spec"]["rules"][0]["http"]["paths"]} == {
        "wpclone-api"}


def routed(paths: list[dict[str, Any]], request_path: str) -> bool:
    """Whether an Ingress with these paths sends request_path to the backend (Kubernetes' matching rules)."""
    for path in paths:
        if path["pathType"] == "Exact" and request_path == path["path"]:
            return True
        prefix = path["path"].rstrip("/").split("/")
        if path["pathType"] == "Prefix" and request_path.rstrip("/").split("/")[:len(prefix)] == prefix:
            return True
    return False


def route_paths(routes: list[Any]) -> list[str]:
    """Every route's path, those of included routers (the dashboard's) too."""
    paths = []
    for route in routes:
        included = getattr(route, "original_router", None)
        paths += route_paths(included.routes) if included is not None else [route.path]
    return paths


def test_api_ingress_routes_every_api_route_but_keeps_metrics_and_health_inside() -> None:
    (ingress,) = find(render(*EDGE_VALUES["cert-manager and api ingress"]), "Ingress")
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    app = create_app(ApiSettings(tokens="unused"))  # type: ignore[call-arg]
    public = {path for path in route_paths(app.routes) if path not in ("/healthz", "/metrics")}
    for path in public:
        assert routed(paths, path.replace("{", "").replace("}", "")), f"the API Ingress does not route {path}"
    for private in ("/metrics", "/healthz", "/metrics/"):
        assert not routed(paths, private)


def test_metrics_are_served_to_the_cluster_and_scraped_when_asked() -> None:
    docs = render(*REQUIRED)
    assert env(docs, "wpclone-operator")["WPCLONE_METRICS_PORT"] == "9090"
    assert {"name": "metrics", "containerPort": 9090} in container(docs, "wpclone-operator")["ports"]
    (service,) = find(docs, "Service", "wpclone-operator-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]
    assert not find(docs, "ServiceMonitor")
    monitored = render(*REQUIRED, "--set", "serviceMonitor.enabled=true", "--set-json",
                       'serviceMonitor.labels={"release":"prometheus"}')
    monitors = {doc["metadata"]["name"]: doc for doc in find(monitored, "ServiceMonitor")}
    assert {name: doc["spec"]["endpoints"][0]["port"] for name, doc in monitors.items()} == {
        "wpclone-operator": "metrics", "wpclone-api": "http"}
    assert all(doc["metadata"]["labels"]["release"] == "prometheus" for doc in monitors.values())
    off = render(*REQUIRED, "--set", "operator.metricsPort=0")
    assert env(off, "wpclone-operator")["WPCLONE_METRICS_PORT"] == "0"
    assert not find(off, "Service", "wpclone-operator-metrics")


def test_chart_crds_are_the_generated_ones_and_survive_uninstall() -> None:
    crds = find(render(*REQUIRED), "CustomResourceDefinition")
    generated = crd.all_crds()
    assert {item["metadata"]["name"] for item in crds} == {item["metadata"]["name"] for item in generated.values()}
    for item in crds:
        (expected,) = [g for g in generated.values() if g["metadata"]["name"] == item["metadata"]["name"]]
        assert item["spec"] == expected["spec"]
        assert item["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert not find(render(*REQUIRED, "--set", "crds.install=false"), "CustomResourceDefinition")
    unkept = find(render(*REQUIRED, "--set", "crds.keep=false"), "CustomResourceDefinition")
    assert all("annotations" not in item["metadata"] for item in unkept)


def test_chart_reads_the_crds_through_a_link_to_the_generated_folder() -> None:
    link = CHART / "files" / "crds"
    assert link.is_symlink() and link.resolve() == (CHART.parents[1] / "crds").resolve()


BAD_VALUES = {
    "no MySQL secret": ([], "/mysql/existingSecret"),
    "API without tokens": (["--set", "mysql.existingSecret=m"], "/api/tokens/existingSecret"),
    "misspelt key": ([*REQUIRED, "--set", "operator.concurency=3"], "additional properties 'concurency'"),
    "zero TTL": ([*REQUIRED, "--set", "clones.defaultTtlMinutes=0"], "/clones/defaultTtlMinutes"),
    "TTL as text": ([*REQUIRED, "--set-string", "clones.maxTtlMinutes=60"], "/clones/maxTtlMinutes"),
    "URL as domain": ([*REQUIRED, "--set", "clones.baseDomain=https://clones.example.com"], "/clones/baseDomain"),
    "bad namespace": ([*REQUIRED, "--set-json", 'operator.watchNamespaces=["Team_A"]'], "/operator/watchNamespaces/0"),
    "zero concurrency": ([*REQUIRED, "--set", "operator.concurrency=0"], "/operator/concurrency"),
    "pull policy": ([*REQUIRED, "--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
    "keep migrator as text": ([*REQUIRED, "--set-string", "operator.keepMigrator=yes"], "/operator/keepMigrator"),
    "negative retention": ([*REQUIRED, "--set", "operator.backupRetention=-1"], "/operator/backupRetention"),
    "scrape interval": ([*REQUIRED, "--set", "serviceMonitor.interval=often"], "/serviceMonitor/interval"),
    "foreign env": ([*REQUIRED, "--set-json", 'operator.extraEnv=[{"name":"KUBECONFIG","value":"/x"}]'],
                    "/operator/extraEnv/0/name"),
    "default above max": ([*REQUIRED, "--set", "clones.defaultTtlMinutes=90", "--set", "clones.maxTtlMinutes=60"],
                          "clones.defaultTtlMinutes (90) must not exceed clones.maxTtlMinutes (60)"),
    "API outside watched namespaces": ([*REQUIRED, "--set-json", 'operator.watchNamespaces=["team-a"]'],
                                       "the API creates clones in namespace wpclone, which operator.watchNamespaces"),
}


@pytest.mark.parametrize(("values", "message"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_are_refused_with_a_message(values: list[str], message: str) -> None:
    assert message in render_error(*values)


def render_notes(tmp_path: Path, *args: str) -> str:
    """NOTES.txt as `helm install` prints it: `helm template` skips it, so a copy of the chart renders it
    through `tpl` (the same engine, values and helpers) into a ConfigMap."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    chart = tmp_path / "chart"
    subprocess.run(["cp", "-rL", str(CHART), str(chart)], check=True)
    (chart / "files" / "NOTES.txt").write_text((CHART / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "rendered-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rendered-notes}\n'
        'data:\n  notes: {{ tpl (.Files.Get "files/NOTES.txt") . | toJson }}\n')
    result = helm("template", "wpclone", str(chart), "--namespace", "wpclone", *args,
                  "--show-only", "templates/rendered-notes.yaml")
    assert result.returncode == 0, result.stderr
    notes: str = yaml.safe_load(result.stdout)["data"]["notes"]
    return notes


def test_notes_tell_how_to_make_a_first_clone(tmp_path: Path) -> None:
    notes = render_notes(tmp_path, *NAMESPACED)
    for step in ("kubectl -n wpclone rollout status deployment/wpclone-operator",
                 "kubectl -n team-a label secret shop-login wpclone.dev/credentials=true",
                 "kind: WordPressClone", "ttlMinutes: 30", "kubectl -n team-a wait wpc/shop --for=condition=Ready",
                 "port-forward service/wpclone-api 8000:80", '"$API/api/v2/clone"', "/api/v2/job-status/",
                 "The API creates its clones in namespace team-a."):
        assert step in notes, step
    assert "{{" not in notes and "<no value>" not in notes
    without_api = render_notes(tmp_path / "no-api", "--set", "mysql.existingSecret=m", "--set", "api.enabled=false")
    assert "/api/v2/" not in without_api and "all namespaces" in without_api


def test_the_notes_token_command_yields_a_bearer_token_from_tenant_entries(tmp_path: Path) -> None:
    notes = render_notes(tmp_path, *REQUIRED)
    (command,) = [line for line in notes.splitlines() if line.strip().startswith("TOKEN=$(")]
    pipeline = command.split("base64 -d", 1)[1].split(")", 1)[0].lstrip(" |")
    for secret, bearer in (("team-a:s3cr3t-one\nteam-b:other\n", "s3cr3t-one"), ("bare-token\n", "bare-token"),
                           ("default:ab:cd\n", "ab:cd")):
        result = subprocess.run(["bash", "-c", pipeline], input=secret, capture_output=True, text=True, check=True)
        assert result.stdout.strip() == bearer

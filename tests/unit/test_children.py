import pytest

from wpclone_common import constants
from wpclone_common.resources import WordPressClone
from wpclone_operator import children
from wpclone_operator.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(mysql_admin_dsn="mysql://admin:s3cret@db.internal:3307/", base_domain="clones.test",
                    ingress_class="nginx", tls_secret_name=None,
                    ingress_annotations={"cert-manager.io/cluster-issuer": "letsencrypt"})


def make_clone(**spec: object) -> WordPressClone:
    body = {"metadata": {"name": "shop", "namespace": "team-a", "uid": "1234-abcd", "generation": 2,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"source": {"url": "https://shop.example.com",
                                "credentialsSecretRef": {"name": "shop-admin-login"}}, **spec}}
    return WordPressClone.from_body(body)


def test_every_child_is_owned_by_the_clone(settings: Settings) -> None:
    clone = make_clone()
    objects = [children.db_secret(clone, settings, "pw"), children.admin_secret(clone, "admin", "pw", "tok"),
               children.wp_content_claim(clone, settings),
               *children.workload_objects(clone, settings, {"wpclone-migrator.php": "<?php"})]
    for manifest in objects:
        (owner,) = manifest["metadata"]["ownerReferences"]
        assert owner == {"apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClone", "name": "shop",
                         "uid": "1234-abcd", "controller": True, "blockOwnerDeletion": True}
        assert manifest["metadata"]["namespace"] == "team-a"
        assert manifest["metadata"]["labels"][constants.LABEL_CLONE] == "shop"


def test_database_names_fit_mysql_limits_and_differ_per_uid() -> None:
    long_name = make_clone().model_copy(update={"name": "x" * 40, "namespace": "n" * 63})
    assert len(children.database_name(long_name)) <= 64
    assert len(children.database_user(long_name)) <= 32
    other = long_name.model_copy(update={"uid": "9999"})
    assert children.database_name(other) != children.database_name(long_name)
    assert children.database_name(make_clone()).startswith("wpc_team_a_shop_")


def test_deployment_reads_passwords_from_secrets_only(settings: Settings) -> None:
    deployment = children.deployment(make_clone(), settings)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["WORDPRESS_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "shop-db", "key": "password"}
    assert "value" not in env["WORDPRESS_DB_PASSWORD"]
    assert "s3cret" not in str(deployment)
    assert container["image"] == settings.wordpress_image


def test_deployment_keeps_the_clone_safe(settings: Settings) -> None:
    deployment = children.deployment(make_clone(), settings)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    extra = {item["name"]: item.get("value") for item in container["env"]}["WORDPRESS_CONFIG_EXTRA"]
    assert "define('DISABLE_WP_CRON', true);" in extra
    assert "shop" not in extra  # the same for every clone: a pool's pod serves whichever clone claims it
    assert "WP_HTTP_BLOCK_EXTERNAL" not in extra
    config_map = children.mu_plugins_config_map(make_clone(), {})
    safety = config_map["data"]["wpclone-safety.php"]
    assert "pre_wp_mail" in safety and "blog_public" in safety and "noindex" in safety
    assert "pre_update_option_home" in safety and "pre_update_option_siteurl" in safety


def test_overrides_from_the_spec(settings: Settings) -> None:
    clone = make_clone(image="wordpress:6.5", host="preview.example.org",
                       resources={"limits": {"memory": "1Gi"}})
    (container,) = children.deployment(clone, settings)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "wordpress:6.5"
    assert container["resources"] == {"requests": {}, "limits": {"memory": "1Gi"}}
    assert children.url(clone, settings) == "https://preview.example.org"


def test_a_clone_without_resources_of_its_own_gets_the_settings_ones(settings: Settings) -> None:
    (container,) = children.deployment(make_clone(), settings)["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == settings.clone_resources
    assert container["resources"]["limits"]["memory"] == "512Mi"  # a clone runs uploaded code: limited by default
    small = settings.model_copy(update={"clone_resources": {"requests": {"cpu": "10m"}}})
    (container,) = children.deployment(make_clone(), small)["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {"requests": {"cpu": "10m"}}


def test_ingress_follows_settings(settings: Settings) -> None:
    ingress = children.ingress(make_clone(), settings)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["host"] == "shop.clones.test"
    assert ingress["spec"]["tls"] == [{"hosts": ["shop.clones.test"], "secretName": "shop-tls"}]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    plain = children.ingress(make_clone(), settings.model_copy(update={"tls_enabled": False,
                                                                        "ingress_class": None}))
    assert "tls" not in plain["spec"] and "ingressClassName" not in plain["spec"]
    assert children.url(make_clone(), settings.model_copy(update={"tls_enabled": False})).startswith("http://")


def test_settings_never_print_the_mysql_password(settings: Settings) -> None:
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in repr(settings.mysql_admin)
    assert settings.clone_db_host == "db.internal:3307"


def test_public_port_and_endpoint_template(settings: Settings) -> None:
    clone = make_clone()
    assert children.endpoint(clone, settings) == "http://shop.team-a.svc.cluster.local"
    local = settings.model_copy(update={"tls_enabled": False, "public_port": 8088, "base_domain": "localhost",
                                        "endpoint_template": "{url}"})
    assert children.url(clone, local) == "http://shop.localhost:8088"
    assert children.endpoint(clone, local) == "http://shop.localhost:8088"
    assert children.ingress(clone, local)["spec"]["rules"][0]["host"] == "shop.localhost"


def pod(ip: str | None, *, ready: bool = True, created: str = "2026-01-01T00:00:00Z",
        deleting: bool = False) -> dict[str, object]:
    metadata: dict[str, object] = {"creationTimestamp": created}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:05:00Z"
    status: dict[str, object] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip is not None:
        status["podIP"] = ip
    return {"metadata": metadata, "status": status}


def test_the_copy_reaches_the_newest_serving_pod_at_its_ip() -> None:
    assert children.pod_endpoint([pod("10.244.0.7")]) == f"http://10.244.0.7:{children.WORDPRESS_PORT}"
    assert children.pod_endpoint([pod("fd00::7")]) == f"http://[fd00::7]:{children.WORDPRESS_PORT}"
    rollout = [pod("10.244.0.7"), pod("10.244.0.9", created="2026-01-01T00:04:00Z"),
               pod("10.244.0.8", created="2026-01-01T00:02:00Z")]
    assert children.pod_endpoint(rollout) == f"http://10.244.0.9:{children.WORDPRESS_PORT}"


@pytest.mark.parametrize("pods", [[], [pod("10.244.0.7", ready=False)], [pod(None)],
                                  [pod("10.244.0.7", deleting=True)], [pod("not an address")]],
                         ids=["none", "not ready", "no ip yet", "being deleted", "no address"])
def test_no_pod_endpoint_while_no_pod_serves_so_the_copy_goes_through_the_service(
        pods: list[dict[str, object]]) -> None:
    assert children.pod_endpoint(pods) is None


def test_wp_content_lives_on_a_claim_of_its_own_and_our_mu_plugins_outside_it(settings: Settings) -> None:
    clone = make_clone()
    claim = children.wp_content_claim(clone, settings)
    assert claim["metadata"]["name"] == "shop-wp-content"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    pod = children.deployment(clone, settings)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert mounts["wp-content"] == {"name": "wp-content", "mountPath": "/var/www/html/wp-content"}
    assert mounts["mu-plugins"] == {"name": "mu-plugins", "mountPath": "/opt/wpclone/mu-plugins", "readOnly": True}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["wp-content"]["persistentVolumeClaim"] == {"claimName": "shop-wp-content"}
    assert volumes["mu-plugins"]["configMap"] == {"name": "shop-mu-plugins"}
    assert children.wp_content_claim(clone, settings) not in children.workload_objects(clone, settings, {})


def test_storage_comes_from_the_spec_then_the_settings(settings: Settings) -> None:
    classed = settings.model_copy(update={"storage_size": "2Gi", "storage_class": "fast"})
    assert children.wp_content_claim(make_clone(), classed)["spec"] == {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}, "storageClassName": "fast"}
    own = make_clone(storage={"size": "500Mi", "storageClassName": "local-path"})
    assert children.wp_content_claim(own, classed)["spec"]["resources"]["requests"]["storage"] == "500Mi"
    assert children.wp_content_claim(own, classed)["spec"]["storageClassName"] == "local-path"
    with pytest.raises(ValueError, match="storage.size"):
        make_clone(storage={"size": "0Gi"})


def test_clone_pod_runs_as_www_data_with_no_capabilities(settings: Settings) -> None:
    pod = children.deployment(make_clone(), settings)["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 33, "runAsGroup": 33, "fsGroup": 33,
        "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"},
        "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}
    (container,) = pod["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                            "readOnlyRootFilesystem": False}
    assert "imagePullPolicy" not in container
    pulled = children.deployment(make_clone(), settings.model_copy(update={"image_pull_policy": "Never"}))
    assert pulled["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_probes_make_a_clone_ready_soon_cost_little_and_never_kill_a_busy_one(settings: Settings) -> None:
    (container,) = children.deployment(make_clone(), settings)["spec"]["template"]["spec"]["containers"]
    startup, readiness, liveness = container["startupProbe"], container["readinessProbe"], container["livenessProbe"]
    # Started once WordPress itself answers (booted, its database reached), looked at every second.
    assert startup["httpGet"]["path"] == "/wp-login.php" and startup["periodSeconds"] <= 1
    # The pod names no clone (a pool's pod serves any), nor is probed at its own address (see PROBE_HOST).
    assert startup["httpGet"]["httpHeaders"] == [{"name": "Host", "value": children.PROBE_HOST}]
    # Then Ready at the readiness probe's next tick: often, on a static file (no PHP on every look).
    assert readiness["httpGet"]["path"].endswith(".gif") and readiness.get("initialDelaySeconds", 0) == 0
    assert readiness["periodSeconds"] <= 2 and readiness["periodSeconds"] * readiness["failureThreshold"] >= 30
    assert "tcpSocket" in liveness and liveness["periodSeconds"] * liveness["failureThreshold"] >= 120


def test_blocking_external_http_is_a_setting(settings: Settings) -> None:
    blocked = settings.model_copy(update={"block_external_http": True})
    assert "define('WP_HTTP_BLOCK_EXTERNAL', true);" in children.wordpress_config_extra(blocked)


def test_the_pods_label_selector_matches_the_deployments(settings: Settings) -> None:
    deployment = children.deployment(make_clone(), settings)
    wanted = dict(pair.split("=") for pair in children.label_selector(make_clone()).split(","))
    assert wanted == deployment["spec"]["selector"]["matchLabels"]
    assert wanted.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


DROPIN = {"constants.php": b"<?php", "wp-includes/sqlite/db.php": b"<?php // db"}


def test_a_sqlite_clone_has_no_database_login_and_loads_the_dropin_from_outside_its_document_root(
        settings: Settings) -> None:
    clone = make_clone(database={"engine": "sqlite"})
    policy, mu_plugins, sqlite, deployment, *_ = children.workload_objects(clone, settings, {}, DROPIN)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert not any(item["name"].startswith("WORDPRESS_DB_") for item in container["env"])
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    loader = f"{children.WP_CONTENT_PATH}/db.php"
    assert mounts[loader] == {"name": "sqlite", "mountPath": loader, "subPath": children.SQLITE_LOADER_KEY,
                              "readOnly": True}
    assert mounts[children.DATABASE_PATH]["name"] == "database" and not children.DATABASE_PATH.startswith("/var/www")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["database"]["persistentVolumeClaim"] == {"claimName": "shop-database"}
    assert volumes["sqlite"]["configMap"]["items"] == [
        {"key": "constants.php", "path": "constants.php"},
        {"key": "wp-includes__sqlite__db.php", "path": "wp-includes/sqlite/db.php"},
        {"key": children.SQLITE_LOADER_KEY, "path": children.SQLITE_LOADER_KEY}]
    assert sqlite["metadata"]["name"] == "shop-sqlite" and set(sqlite["data"]) == {
        "constants.php", "wp-includes__sqlite__db.php", children.SQLITE_LOADER_KEY}
    loader = sqlite["data"][children.SQLITE_LOADER_KEY]
    assert f"define('DB_DIR', '{children.DATABASE_PATH}/');" in loader
    assert f"require_once '{children.SQLITE_PATH}/wp-includes/sqlite/db.php';" in loader
    # No way to the shared MySQL server: a SQLite clone has no business there.
    assert policy["spec"]["egress"][0]["ports"][0]["port"] == 53
    assert not any(rule.get("ports") == [{"protocol": "TCP", "port": 3307}] for rule in policy["spec"]["egress"])
    assert [claim["metadata"]["name"] for claim in children.claims(clone, settings)] == ["shop-wp-content",
                                                                                         "shop-database"]
    assert [claim["metadata"]["name"] for claim in children.claims(make_clone(), settings)] == ["shop-wp-content"]
    with pytest.raises(ValueError):
        children.workload_objects(clone, settings, {})


def test_a_mysql_clone_is_as_it_was(settings: Settings) -> None:
    clone = make_clone(database={"engine": "mysql"})
    assert children.deployment(clone, settings) == children.deployment(make_clone(), settings)
    assert any(rule.get("ports") == [{"protocol": "TCP", "port": 3307}]
               for rule in children.network_policy(clone, settings)["spec"]["egress"])

"""Pure builders of a clone's child objects: WordPressClone (+ settings) in, manifest dicts out."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from wpclone_common import constants
from wpclone_common.resources import WordPressClone
from wpclone_engine import sqlite_dropin
from wpclone_operator.settings import CopySettings, Settings, split_address

WORDPRESS_PORT = 80
WP_CONTENT_PATH = "/var/www/html/wp-content"
# Outside wp-content, so that the source's own mu-plugins (copied into the clone's wp-content) stay visible.
MU_PLUGINS_PATH = "/opt/wpclone/mu-plugins"
TABLE_PREFIX = "wp_"
# A SQLite clone's: the drop-in's files (from a ConfigMap) and its database's volume, both outside the docroot.
SQLITE_PATH = "/opt/wpclone/sqlite-database-integration"
DATABASE_PATH = "/var/lib/wpclone/database"
SQLITE_LOADER_KEY = "wpclone-db.php"  # mounted as wp-content/db.php
# A static file of WordPress core (in the official image too): Apache answers it without running PHP.
READINESS_PATH = "/wp-includes/images/blank.gif"
# The probes' Host, the same for every clone (a pool's pod serves whichever clone takes it): not the pod's
# address, so that a WordPress without tables answers its first probe with a redirect to its installer on
# another host, which the kubelet counts as success without rendering the installer.
PROBE_HOST = "probe.wpclone.invalid"
WWW_DATA = 33  # Debian's www-data, whom both the official image and Debian's WordPress run Apache as

# Loaded by every clone beside the migrator (see mu_plugins_loader): a clone never gets indexed, never
# emails real customers, and never runs WP-Cron jobs (which could charge cards or post to social accounts).
SAFETY_MU_PLUGIN = """<?php
/**
 * Plugin Name: wpclone safety
 * Description: Keeps this temporary clone private and quiet: no indexing, no outgoing mail.
 */
add_filter('pre_option_blog_public', static fn() => '0');
add_filter('wp_robots', 'wp_robots_no_robots');
add_filter('pre_wp_mail', '__return_false');
add_action('send_headers', static function () { header('X-Robots-Tag: noindex, nofollow', true); });
// The copy set home and siteurl to the clone's own URL: nobody points the clone elsewhere from wp-admin.
add_filter('pre_update_option_home', static fn($value, $old) => $old, 10, 2);
add_filter('pre_update_option_siteurl', static fn($value, $old) => $old, 10, 2);
"""


def workload_name(clone: WordPressClone) -> str:
    """What the clone's children are named after: the clone, or the pool slot it took (pools.py), whose
    database, Secrets, volume, pod and Service became the clone's own (a name cannot change)."""
    return clone.status.slot.name if clone.status.slot else clone.name


def db_secret_name(clone: WordPressClone) -> str:
    return f"{workload_name(clone)}-db"


def admin_secret_name(clone: WordPressClone) -> str:
    return f"{workload_name(clone)}-admin"


def mu_plugins_name(clone: WordPressClone) -> str:
    return f"{workload_name(clone)}-mu-plugins"


def wp_content_name(clone: WordPressClone) -> str:
    return f"{workload_name(clone)}-wp-content"


def database_claim_name(clone: WordPressClone) -> str:
    """A SQLite clone's volume for its database file."""
    return f"{workload_name(clone)}-database"


def sqlite_name(clone: WordPressClone) -> str:
    """A SQLite clone's ConfigMap of the drop-in's files."""
    return f"{workload_name(clone)}-sqlite"


def is_slot(clone: WordPressClone) -> bool:
    """A pool's blank slot (pools.py): provisioned like a clone, copied into by none until a clone takes it."""
    return clone.spec.source is None


def is_sqlite(clone: WordPressClone) -> bool:
    return clone.spec.engine == "sqlite"


def _uid_hash(clone: WordPressClone, length: int) -> str:
    return hashlib.sha256((clone.status.slot.uid if clone.status.slot else clone.uid).encode()).hexdigest()[:length]


def database_name(clone: WordPressClone) -> str:
    """Readable and unique per object (MySQL allows 64 characters)."""
    readable = re.sub(r"[^a-z0-9]", "_", f"{clone.namespace[:20]}_{workload_name(clone)[:24]}")
    return f"wpc_{readable}_{_uid_hash(clone, 8)}"


def database_user(clone: WordPressClone) -> str:
    return f"wpc_{_uid_hash(clone, 16)}"  # MySQL user names are at most 32 characters


def host(clone: WordPressClone, settings: CopySettings) -> str:
    return clone.spec.host or f"{clone.name}.{settings.base_domain}"


def url(clone: WordPressClone, settings: CopySettings) -> str:
    port = f":{settings.public_port}" if settings.public_port else ""
    return f"{settings.url_scheme}://{host(clone, settings)}{port}"


def endpoint(clone: WordPressClone, settings: CopySettings) -> str:
    """Where the operator itself reaches the clone's WordPress."""
    return settings.endpoint_template.format(name=workload_name(clone), namespace=clone.namespace,
                                             host=host(clone, settings), url=url(clone, settings))


def pod_endpoint(pods: list[dict[str, Any]]) -> str | None:
    """Where the operator reaches the clone's serving pod itself, at its IP; None when no pod serves (Ready,
    not being deleted, its IP known). An in-process copy goes there: its Service routes to a pod that
    just turned Ready only 0-0.8 s later (its proxy's rules being written)."""
    serving = sorted((pod for pod in pods if _serves(pod)),
                     key=lambda pod: pod["metadata"].get("creationTimestamp", ""), reverse=True)
    for pod in serving:  # the newest first, in a rollout
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(pod["status"]["podIP"])
            return f"http://{address}:{WORDPRESS_PORT}" if address.version == 4 else \
                f"http://[{address}]:{WORDPRESS_PORT}"
    return None


def _serves(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return (not (pod.get("metadata") or {}).get("deletionTimestamp") and bool(status.get("podIP"))
            and any(condition.get("type") == "Ready" and condition.get("status") == "True"
                    for condition in status.get("conditions") or []))


def labels(clone: WordPressClone) -> dict[str, str]:
    return {constants.LABEL_APP: "wordpress", constants.LABEL_INSTANCE: workload_name(clone),
            constants.LABEL_MANAGED_BY: "wpclone", constants.LABEL_CLONE: workload_name(clone)}


def selector(clone: WordPressClone) -> dict[str, str]:
    return pods_of(workload_name(clone))


def pods_of(clone: str) -> dict[str, str]:
    """The WordPress pods of the clone named `clone`, as labels to select them by."""
    return {constants.LABEL_CLONE: clone, constants.LABEL_APP: "wordpress"}


def label_selector(clone: WordPressClone) -> str:
    """The clone's pods, as a list request's labelSelector."""
    return ",".join(f"{key}={value}" for key, value in selector(clone).items())


def owner_reference(clone: WordPressClone) -> dict[str, Any]:
    return {"apiVersion": constants.API_VERSION, "kind": constants.CLONE_KIND, "name": clone.name,
            "uid": clone.uid, "controller": True, "blockOwnerDeletion": True}


def owned_by(existing: dict[str, Any], clone: WordPressClone) -> bool:
    """Whether an object found in the cluster is this clone's (else the operator must leave it alone)."""
    references = (existing.get("metadata") or {}).get("ownerReferences") or []
    return any(reference.get("uid") == clone.uid for reference in references)


def _metadata(clone: WordPressClone, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": clone.namespace,
            "labels": {**labels(clone), constants.LABEL_COMPONENT: component},
            "ownerReferences": [owner_reference(clone)]}


def db_secret(clone: WordPressClone, settings: Settings, password: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(clone, db_secret_name(clone), "database"),
            "stringData": {"host": settings.clone_db_host, "database": database_name(clone),
                           "username": database_user(clone), "password": password}}


def admin_email(clone: WordPressClone, username: str) -> str:
    return f"{username}@{clone.name}.invalid"


def admin_secret(clone: WordPressClone, username: str, password: str, migrator_token: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(clone, admin_secret_name(clone), "admin"),
            "stringData": {"username": username, "password": password,
                           "email": admin_email(clone, username), "migrator-token": migrator_token}}


def mu_plugins_config_map(clone: WordPressClone, mu_plugins: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(clone, mu_plugins_name(clone), "mu-plugins"),
            "data": {"wpclone-safety.php": SAFETY_MU_PLUGIN, **mu_plugins}}


def sqlite_key(path: str) -> str:
    """A drop-in file's ConfigMap key (keys hold no '/'); the volume's items put it back at its path."""
    return path.replace("/", "__")


def sqlite_config_map(clone: WordPressClone, files: dict[str, bytes]) -> dict[str, Any]:
    """The SQLite drop-in's files (sqlite_dropin.files) and the clone's wp-content/db.php that loads them."""
    data = {sqlite_key(path): content.decode() for path, content in files.items()}
    data[SQLITE_LOADER_KEY] = sqlite_dropin.loader(SQLITE_PATH, DATABASE_PATH)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(clone, sqlite_name(clone), "sqlite"),
            "data": data}


def wp_content_claim(clone: WordPressClone, settings: Settings) -> dict[str, Any]:
    """The clone's own wp-content: what the copy writes there outlives a restarted pod. Created once
    (a claim's spec is immutable but for a larger size), so spec.storage is immutable too."""
    return _claim(clone, settings, wp_content_name(clone), "wp-content")


def database_claim(clone: WordPressClone, settings: Settings) -> dict[str, Any]:
    """A SQLite clone's database file, on a volume of its own (of the same size and class as its
    wp-content's): outside the document root, shared with its copy Job."""
    return _claim(clone, settings, database_claim_name(clone), "database")


def claims(clone: WordPressClone, settings: Settings) -> list[dict[str, Any]]:
    return [wp_content_claim(clone, settings), *([database_claim(clone, settings)] if is_sqlite(clone) else [])]


def _claim(clone: WordPressClone, settings: Settings, name: str, component: str) -> dict[str, Any]:
    storage = clone.spec.storage
    size = (storage and storage.size) or settings.storage_size
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    storage_class = (storage and storage.storageClassName) or settings.storage_class
    if storage_class:  # omitted, not "", for the cluster's default class ("" would mean no class at all)
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _metadata(clone, name, component), "spec": spec}


def source_checksums_name(clone: WordPressClone) -> str:
    return f"{workload_name(clone)}-source-checksums"


def source_checksums_config_map(clone: WordPressClone, checksums: dict[str, str | None]) -> dict[str, Any]:
    """The source's table checksums when the copy began: a restore compares them to detect conflicts."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(clone, source_checksums_name(clone), "source-checksums"),
            "data": {table: checksum or "" for table, checksum in checksums.items()}}


def mu_plugins_loader(folder: str) -> str:
    """PHP for wp-config.php that loads the folder's PHP files (sorted, as WordPress loads mu-plugins)
    first thing at muplugins_loaded, just after the site's own mu-plugins. wp-settings.php turns hooks
    set in $wp_filter before it runs into WP_Hook objects (supported since WordPress 4.7); $GLOBALS,
    because wp-cli evaluates wp-config.php inside a function."""
    return ("$GLOBALS['wp_filter']['muplugins_loaded'][PHP_INT_MIN][] = ['accepted_args' => 0, "
            f"'function' => static function () {{ foreach (glob('{folder}/*.php') ?: [] as $file) "
            "{ include_once $file; } }];")


def wordpress_config_extra(settings: Settings) -> str:
    """The same for every clone: its URL is in its tables (the copy sets home and siteurl), not in its pod,
    so that a pool's pod, started before anyone asked for a clone, serves the clone that claims it."""
    return "\n".join([
        "define('DISABLE_WP_CRON', true);",
        "define('AUTOMATIC_UPDATER_DISABLED', true);",
        "define('WP_ENVIRONMENT_TYPE', 'staging');",
        *(["define('WP_HTTP_BLOCK_EXTERNAL', true);"] if settings.block_external_http else []),
        "define('WPCLONE_MIGRATOR_TOKEN', getenv('WPCLONE_MIGRATOR_TOKEN') ?: '');",
        # TLS ends at the ingress; tell WordPress the request was https so it builds https URLs.
        "if (($_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '') === 'https') { $_SERVER['HTTPS'] = 'on'; }",
        mu_plugins_loader(MU_PLUGINS_PATH),
    ])


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def deployment(clone: WordPressClone, settings: Settings, sqlite_paths: Sequence[str] = ()) -> dict[str, Any]:
    """The clone's WordPress; a SQLite clone's also mounts the drop-in's files (`sqlite_paths`, in the
    drop-in's folder) and its database's volume."""
    resources = clone.spec.resources.model_dump() if clone.spec.resources else settings.clone_resources
    probe_headers = [{"name": "Host", "value": PROBE_HOST}]
    container: dict[str, Any] = {
        "name": "wordpress",
        "image": clone.spec.image or settings.wordpress_image,
        "ports": [{"name": "http", "containerPort": WORDPRESS_PORT}],
        "env": [
            *([] if is_sqlite(clone) else [
                _secret_env("WORDPRESS_DB_HOST", db_secret_name(clone), "host"),
                _secret_env("WORDPRESS_DB_NAME", db_secret_name(clone), "database"),
                _secret_env("WORDPRESS_DB_USER", db_secret_name(clone), "username"),
                _secret_env("WORDPRESS_DB_PASSWORD", db_secret_name(clone), "password")]),
            _secret_env("WPCLONE_MIGRATOR_TOKEN", admin_secret_name(clone), "migrator-token"),
            {"name": "WORDPRESS_TABLE_PREFIX", "value": TABLE_PREFIX},
            {"name": "WORDPRESS_CONFIG_EXTRA", "value": wordpress_config_extra(settings)},
        ],
        "volumeMounts": [{"name": "wp-content", "mountPath": WP_CONTENT_PATH},
                         {"name": "mu-plugins", "mountPath": MU_PLUGINS_PATH, "readOnly": True}],
        # Until WordPress first serves its login page (booted, its database reached); each look boots
        # WordPress, so only while starting. 5 s: 50 clones booting at once share two cores.
        "startupProbe": {"httpGet": {"path": "/wp-login.php", "port": "http", "httpHeaders": probe_headers},
                         "periodSeconds": 1, "timeoutSeconds": 5, "failureThreshold": 300},
        # Then Apache answering a static file: cheap enough to ask every 2 s (kubelet asks it at once when the
        # startup probe succeeds, so a new pod is not held back by the period), and Apache answers it even
        # while PHP is busy with a large import. Out of the Service after 30 s of failures in a row.
        "readinessProbe": {"httpGet": {"path": READINESS_PATH, "port": "http", "httpHeaders": probe_headers},
                           "periodSeconds": 2, "timeoutSeconds": 5, "failureThreshold": 15},
        # Only a dead Apache is restarted (two minutes without accepting a connection), never a busy one.
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 20, "timeoutSeconds": 5,
                          "failureThreshold": 6},
        "resources": resources,
        # Writable: the official image's entrypoint writes WordPress and wp-config.php into /var/www/html.
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": False},
    }
    if settings.image_pull_policy:
        container["imagePullPolicy"] = settings.image_pull_policy
    volumes: list[dict[str, Any]] = [
        {"name": "wp-content", "persistentVolumeClaim": {"claimName": wp_content_name(clone)}},
        {"name": "mu-plugins", "configMap": {"name": mu_plugins_name(clone)}},
    ]
    if is_sqlite(clone):
        container["volumeMounts"] += [
            {"name": "sqlite", "mountPath": SQLITE_PATH, "readOnly": True},
            {"name": "sqlite", "mountPath": f"{WP_CONTENT_PATH}/db.php", "subPath": SQLITE_LOADER_KEY,
             "readOnly": True},
            {"name": "database", "mountPath": DATABASE_PATH}]
        items = [{"key": sqlite_key(path), "path": path} for path in (*sqlite_paths, SQLITE_LOADER_KEY)]
        volumes += [{"name": "sqlite", "configMap": {"name": sqlite_name(clone), "items": items}},
                    {"name": "database", "persistentVolumeClaim": {"claimName": database_claim_name(clone)}}]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _metadata(clone, workload_name(clone), "wordpress"),
        "spec": {
            "replicas": 1,
            # One pod with its own files: never two writers during a rollout.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(clone)},
            "template": {
                "metadata": {"labels": {**labels(clone), constants.LABEL_COMPONENT: "wordpress"}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": WWW_DATA, "runAsGroup": WWW_DATA,
                        "fsGroup": WWW_DATA, "seccompProfile": {"type": "RuntimeDefault"},
                        # A volume full of uploads is not walked through again on every start.
                        "fsGroupChangePolicy": "OnRootMismatch",
                        # A safe (namespaced) sysctl: www-data binds port 80 without any capability.
                        "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def service(clone: WordPressClone) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _metadata(clone, workload_name(clone), "wordpress"),
            "spec": {"type": "ClusterIP", "selector": selector(clone),
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def ingress(clone: WordPressClone, settings: Settings) -> dict[str, Any]:
    metadata = _metadata(clone, workload_name(clone), "wordpress")
    if settings.ingress_annotations:
        metadata["annotations"] = dict(settings.ingress_annotations)
    spec: dict[str, Any] = {"rules": [{"host": host(clone, settings), "http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": workload_name(clone), "port": {"name": "http"}}}}]}}]}
    if settings.ingress_class:
        spec["ingressClassName"] = settings.ingress_class
    if settings.tls_enabled:
        spec["tls"] = [{"hosts": [host(clone, settings)],
                        "secretName": settings.tls_secret_name or f"{clone.name}-tls"}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}


def mysql_peer(settings: Settings) -> dict[str, Any]:
    """Where the clone's database is: one address when it is an IP, else any address on its port."""
    host, port = split_address(settings.clone_db_host)
    rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": port}]}
    # A DNS name cannot be named in a NetworkPolicy: then the port alone narrows the rule.
    with contextlib.suppress(ValueError):
        rule["to"] = [{"ipBlock": {"cidr": str(ipaddress.ip_network(host))}}]
    return rule


def copy_pods(clone: WordPressClone) -> dict[str, Any]:
    """The pods of copy Jobs that fill or read `clone` (copy_jobs), as a NetworkPolicy peer."""
    return {"podSelector": {"matchLabels": {constants.LABEL_COMPONENT: constants.COPY_COMPONENT,
                                            constants.LABEL_CLONE: workload_name(clone)}}}


def network_policy(clone: WordPressClone, settings: Settings) -> dict[str, Any]:
    """A clone runs code its admins upload: it answers only the ingress controller, the operator, its
    copy Jobs and the node, and reaches only DNS, its own database and (if allowed) public addresses: never another
    clone, the shared database's other port, the cluster's services or the cloud's metadata."""
    dns = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    egress = [dns] if is_sqlite(clone) else [dns, mysql_peer(settings)]  # a SQLite clone has no database server
    if settings.clone_internet:
        egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(settings.clone_denied_cidrs)}}]})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _metadata(clone, workload_name(clone), "wordpress"),
            "spec": {"podSelector": {"matchLabels": selector(clone)}, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"from": [*settings.clone_ingress_from, copy_pods(clone)],
                                  "ports": [{"protocol": "TCP", "port": WORDPRESS_PORT}]}],
                     "egress": egress}}


def object_keys(clone: WordPressClone) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of every object the clone may own but its copy Job's."""
    name = workload_name(clone)
    return [("networking.k8s.io/v1", "NetworkPolicy", name), ("networking.k8s.io/v1", "Ingress", name),
            ("v1", "Service", name), ("apps/v1", "Deployment", name),
            ("v1", "PersistentVolumeClaim", wp_content_name(clone)),
            ("v1", "PersistentVolumeClaim", database_claim_name(clone)),
            ("v1", "ConfigMap", mu_plugins_name(clone)), ("v1", "ConfigMap", sqlite_name(clone)),
            ("v1", "ConfigMap", source_checksums_name(clone)),
            ("v1", "Secret", db_secret_name(clone)), ("v1", "Secret", admin_secret_name(clone))]


def workload_objects(clone: WordPressClone, settings: Settings, mu_plugins: dict[str, str],
                     sqlite_files: dict[str, bytes] | None = None) -> list[dict[str, Any]]:
    """Objects applied as a whole on every reconcile (the Secrets and the claims are created once, never
    rewritten). The NetworkPolicy comes before the pod it guards; a SQLite clone's pod needs `sqlite_files`."""
    config_maps = [mu_plugins_config_map(clone, mu_plugins)]
    if is_sqlite(clone):
        if sqlite_files is None:
            raise ValueError("a SQLite clone's pod needs the SQLite drop-in's files")
        config_maps.append(sqlite_config_map(clone, sqlite_files))
    # A pool's blank slot has no Ingress: nobody reaches its empty WordPress (and its installer) from outside.
    return [network_policy(clone, settings), *config_maps, deployment(clone, settings, sorted(sqlite_files or ())),
            service(clone), *([] if is_slot(clone) else [ingress(clone, settings)])]

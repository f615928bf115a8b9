"""Pure builders of a clone's child objects: WordPressClone (+ settings) in, manifest dicts out."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from wpclone_operator import constants
from wpclone_operator.resources import WordPressClone
from wpclone_operator.settings import Settings

WORDPRESS_PORT = 80
MU_PLUGINS_PATH = "/var/www/html/wp-content/mu-plugins"
TABLE_PREFIX = "wp_"
DEFAULT_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}

# Loaded by every clone as a must-use plugin: a clone never gets indexed, never emails real
# customers, and never runs WP-Cron jobs (which could charge cards or post to social accounts).
SAFETY_MU_PLUGIN = """<?php
/**
 * Plugin Name: wpclone safety
 * Description: Keeps this temporary clone private and quiet: no indexing, no outgoing mail.
 */
add_filter('pre_option_blog_public', static fn() => '0');
add_filter('wp_robots', 'wp_robots_no_robots');
add_filter('pre_wp_mail', '__return_false');
add_action('send_headers', static function () { header('X-Robots-Tag: noindex, nofollow', true); });
"""


def db_secret_name(clone: WordPressClone) -> str:
    return f"{clone.name}-db"


def admin_secret_name(clone: WordPressClone) -> str:
    return f"{clone.name}-admin"


def mu_plugins_name(clone: WordPressClone) -> str:
    return f"{clone.name}-mu-plugins"


def _uid_hash(clone: WordPressClone, length: int) -> str:
    return hashlib.sha256(clone.uid.encode()).hexdigest()[:length]


def database_name(clone: WordPressClone) -> str:
    """Readable and unique per object (MySQL allows 64 characters)."""
    readable = re.sub(r"[^a-z0-9]", "_", f"{clone.namespace[:20]}_{clone.name[:24]}")
    return f"wpc_{readable}_{_uid_hash(clone, 8)}"


def database_user(clone: WordPressClone) -> str:
    return f"wpc_{_uid_hash(clone, 16)}"  # MySQL user names are at most 32 characters


def host(clone: WordPressClone, settings: Settings) -> str:
    return clone.spec.host or f"{clone.name}.{settings.base_domain}"


def url(clone: WordPressClone, settings: Settings) -> str:
    port = f":{settings.public_port}" if settings.public_port else ""
    return f"{settings.url_scheme}://{host(clone, settings)}{port}"


def endpoint(clone: WordPressClone, settings: Settings) -> str:
    """Where the operator itself reaches the clone's WordPress."""
    return settings.endpoint_template.format(name=clone.name, namespace=clone.namespace,
                                             host=host(clone, settings), url=url(clone, settings))


def labels(clone: WordPressClone) -> dict[str, str]:
    return {constants.LABEL_APP: "wordpress", constants.LABEL_INSTANCE: clone.name,
            constants.LABEL_MANAGED_BY: "wpclone", constants.LABEL_CLONE: clone.name}


def selector(clone: WordPressClone) -> dict[str, str]:
    return {constants.LABEL_CLONE: clone.name, constants.LABEL_APP: "wordpress"}


def owner_reference(clone: WordPressClone) -> dict[str, Any]:
    return {"apiVersion": constants.API_VERSION, "kind": constants.CLONE_KIND, "name": clone.name,
            "uid": clone.uid, "controller": True, "blockOwnerDeletion": True}


def _metadata(clone: WordPressClone, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": clone.namespace,
            "labels": {**labels(clone), constants.LABEL_COMPONENT: component},
            "ownerReferences": [owner_reference(clone)]}


def db_secret(clone: WordPressClone, settings: Settings, password: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(clone, db_secret_name(clone), "database"),
            "stringData": {"host": settings.clone_db_host, "database": database_name(clone),
                           "username": database_user(clone), "password": password}}


def admin_secret(clone: WordPressClone, username: str, password: str, migrator_token: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(clone, admin_secret_name(clone), "admin"),
            "stringData": {"username": username, "password": password,
                           "email": f"{username}@{clone.name}.invalid", "migrator-token": migrator_token}}


def mu_plugins_config_map(clone: WordPressClone, mu_plugins: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(clone, mu_plugins_name(clone), "mu-plugins"),
            "data": {"wpclone-safety.php": SAFETY_MU_PLUGIN, **mu_plugins}}


def source_checksums_name(clone: WordPressClone) -> str:
    return f"{clone.name}-source-checksums"


def source_checksums_config_map(clone: WordPressClone, checksums: dict[str, str | None]) -> dict[str, Any]:
    """The source's table checksums when the copy began: a restore compares them to detect conflicts."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(clone, source_checksums_name(clone), "source-checksums"),
            "data": {table: checksum or "" for table, checksum in checksums.items()}}


def wordpress_config_extra(clone: WordPressClone, settings: Settings) -> str:
    site = url(clone, settings)
    return "\n".join([
        f"define('WP_HOME', '{site}');",
        f"define('WP_SITEURL', '{site}');",
        "define('DISABLE_WP_CRON', true);",
        "define('AUTOMATIC_UPDATER_DISABLED', true);",
        "define('WP_ENVIRONMENT_TYPE', 'staging');",
        "define('WPCLONE_MIGRATOR_TOKEN', getenv('WPCLONE_MIGRATOR_TOKEN') ?: '');",
        # TLS ends at the ingress; tell WordPress the request was https so it builds https URLs.
        "if (($_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '') === 'https') { $_SERVER['HTTPS'] = 'on'; }",
    ])


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def deployment(clone: WordPressClone, settings: Settings) -> dict[str, Any]:
    resources = clone.spec.resources.model_dump() if clone.spec.resources else DEFAULT_RESOURCES
    probe_headers = [{"name": "Host", "value": host(clone, settings)}]
    container = {
        "name": "wordpress",
        "image": clone.spec.image or settings.wordpress_image,
        "ports": [{"name": "http", "containerPort": WORDPRESS_PORT}],
        "env": [
            _secret_env("WORDPRESS_DB_HOST", db_secret_name(clone), "host"),
            _secret_env("WORDPRESS_DB_NAME", db_secret_name(clone), "database"),
            _secret_env("WORDPRESS_DB_USER", db_secret_name(clone), "username"),
            _secret_env("WORDPRESS_DB_PASSWORD", db_secret_name(clone), "password"),
            _secret_env("WPCLONE_MIGRATOR_TOKEN", admin_secret_name(clone), "migrator-token"),
            {"name": "WORDPRESS_TABLE_PREFIX", "value": TABLE_PREFIX},
            {"name": "WORDPRESS_CONFIG_EXTRA", "value": wordpress_config_extra(clone, settings)},
        ],
        "volumeMounts": [{"name": "mu-plugins", "mountPath": MU_PLUGINS_PATH, "readOnly": True}],
        "readinessProbe": {"httpGet": {"path": "/wp-login.php", "port": "http", "httpHeaders": probe_headers},
                           "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "initialDelaySeconds": 30, "periodSeconds": 20},
        "resources": resources,
        "securityContext": {"allowPrivilegeEscalation": False, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _metadata(clone, clone.name, "wordpress"),
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
                    "containers": [container],
                    "volumes": [{"name": "mu-plugins", "configMap": {"name": mu_plugins_name(clone)}}],
                },
            },
        },
    }


def service(clone: WordPressClone) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _metadata(clone, clone.name, "wordpress"),
            "spec": {"type": "ClusterIP", "selector": selector(clone),
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def ingress(clone: WordPressClone, settings: Settings) -> dict[str, Any]:
    metadata = _metadata(clone, clone.name, "wordpress")
    if settings.ingress_annotations:
        metadata["annotations"] = dict(settings.ingress_annotations)
    spec: dict[str, Any] = {"rules": [{"host": host(clone, settings), "http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": clone.name, "port": {"name": "http"}}}}]}}]}
    if settings.ingress_class:
        spec["ingressClassName"] = settings.ingress_class
    if settings.tls_enabled:
        spec["tls"] = [{"hosts": [host(clone, settings)],
                        "secretName": settings.tls_secret_name or f"{clone.name}-tls"}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}


def workload_objects(clone: WordPressClone, settings: Settings, mu_plugins: dict[str, str]) -> list[dict[str, Any]]:
    """Objects applied as a whole on every reconcile (the Secrets are created once, never rewritten)."""
    return [mu_plugins_config_map(clone, mu_plugins), deployment(clone, settings), service(clone),
            ingress(clone, settings)]

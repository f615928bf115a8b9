"""Operator settings, read once from the environment (prefix WPCLONE_)."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wpclone_common.resources import STORAGE_SIZE
from wpclone_engine import outbound


def split_address(address: str) -> tuple[str, int]:
    """A MySQL server's host:port (a bare host means MySQL's port 3306; an IPv6 host loses its brackets)."""
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else (address.strip("[]"), 3306)


class MySQLAdmin:
    """The shared MySQL server's admin account, parsed from a DSN mysql://user:password@host:port/."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        if parts.scheme not in ("mysql", "mariadb") or not parts.hostname:
            raise ValueError("WPCLONE_MYSQL_ADMIN_DSN must look like mysql://user:password@host:port/")
        self.host = parts.hostname
        self.port = parts.port or 3306
        self.user = unquote(parts.username or "root")
        self.password = unquote(parts.password or "")

    def __repr__(self) -> str:  # never print the password
        return f"MySQLAdmin({self.user}@{self.host}:{self.port})"


class CopySettings(BaseSettings):
    """What a copy needs to know besides its inputs: where clones answer, what the outbound policy opens,
    how the migrator and the merge behave. The operator hands these (and nothing else of its settings)
    to each copy Job, as the same WPCLONE_ variables (copy_jobs.settings_env)."""

    model_config = SettingsConfigDict(env_prefix="WPCLONE_")

    base_domain: str = "clones.example.com"
    tls_enabled: bool = True
    # Set when the ingress controller listens on a non-standard port (e.g. a laptop cluster).
    public_port: int | None = Field(None, ge=1, le=65535)
    # How the operator reaches a clone's WordPress: in-cluster Service DNS by default; an operator run
    # outside the cluster uses e.g. "{url}" (through the ingress). Fields: name, namespace, host, url.
    endpoint_template: str = "http://{name}.{namespace}.svc.cluster.local"
    # Source and target URLs may reach only public addresses (outbound.py), and what this opens: CIDRs and
    # host names ("shop.example.com", "*.example.com"), a JSON list or comma-separated. The clone endpoints
    # above are the operator's own and always allowed; metadata addresses open only when named exactly.
    outbound_allow: outbound.AllowList = Field(default_factory=list)
    # The cluster's Service and pod ranges, refused like private ones (named so in a refusal) unless allowed.
    cluster_cidrs: outbound.CIDRList = Field(default_factory=lambda: ["10.96.0.0/12", "10.244.0.0/16"])
    # How far above the source's auto-increment counters a clone numbers its own rows, so that a merge
    # restore never finds a row made on the clone and one made in production with the same id. Far more
    # rows than a busy site adds in a clone's longest life; 0 leaves the counters where the source's are.
    merge_id_offset: int = Field(100_000_000, ge=0, description="ids of a clone's own rows start this far above")
    # A clone keeps a merge restore's baseline (merge.py): each row's key and fingerprints and each file's md5,
    # taken as the copy streams them. Off: a clone copies faster (bench.bench_clone_pod) and its merge
    # restore is refused (NoBaseline); restores with onConflict Fail or Overwrite need none.
    merge_baseline: bool = Field(True, description="clones keep the baseline a merge restore needs")
    # After a restore that kept a backup, the target keeps only its newest N backups (0: keeps them all).
    backup_retention: int = Field(3, ge=0, description="backups a restore target keeps; 0 keeps all")
    # The migrator plugin leaves a source or target at the end of each job (a must-use copy stays).
    keep_migrator: bool = Field(False, description="leave the migrator plugin installed on sites after a job")

    @property
    def url_scheme(self) -> str:
        return "https" if self.tls_enabled else "http"


class Settings(CopySettings):
    mysql_admin_dsn: SecretStr = Field(description="mysql://user:password@host:port/ of the shared server")
    # Where clone pods reach the shared MySQL server, when that differs from the operator's view.
    mysql_host_for_clones: str | None = None
    ingress_class: str | None = None
    tls_secret_name: str | None = None
    ingress_annotations: dict[str, str] = Field(default_factory=dict)
    wordpress_image: str = "wordpress:6.6-php8.2-apache"
    # Unset: Kubernetes' default (IfNotPresent for a tagged image, Always for :latest or no tag).
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    # Each clone's wp-content volume, unless its spec.storage says otherwise; no class: the cluster's default.
    storage_size: str = Field("1Gi", pattern=STORAGE_SIZE)
    storage_class: str = ""
    # WP_HTTP_BLOCK_EXTERNAL in every clone: WordPress makes no HTTP requests but to itself (no update checks).
    block_external_http: bool = False
    # What a WordPressClone may ask for (fnmatch patterns): spec.image, and spec.host besides
    # {name}.{base_domain}. Empty image list: only wordpress_image.
    allowed_images: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    # The clone's NetworkPolicy. Ingress from these peers (NetworkPolicyPeer objects: the ingress
    # controller's and the operator's pods) and, always, from the node (probes); egress to DNS, the
    # clone's MySQL host:port and, when clone_internet is on, public addresses only.
    clone_ingress_from: list[dict[str, Any]] = Field(default_factory=lambda: [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "wpclone",
                                                                   "app.kubernetes.io/component": "operator"}}},
    ])
    clone_internet: bool = True
    # Never reachable from a clone, even with clone_internet: private, shared, link-local (cloud
    # metadata), loopback ranges, and the cluster's own ranges.
    clone_denied_cidrs: list[str] = Field(default_factory=lambda: [
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8",
        "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"])
    default_ttl_minutes: int = Field(30, ge=1)
    max_ttl_minutes: int = Field(1440, ge=1)
    concurrency: int = Field(4, ge=1, description="clones provisioned or copied at the same time")
    # A clone's pod without spec.resources (JSON in WPCLONE_CLONE_RESOURCES). Limits by default: a clone
    # runs code its admins upload, and one busy clone must not starve its node. The CPU request decides
    # how many clones a node holds: 50m, 40 per 2 cores; an idle clone uses far less.
    clone_resources: dict[str, dict[str, str]] = Field(default_factory=lambda: {
        "requests": {"cpu": "50m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
        "limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "1Gi"}})
    worker_limit: int = Field(100, ge=1, description="objects whose events are handled at the same time")
    # Python's default is the CPUs + 4 (6 on 2 cores): 50 clones asked for at once queued behind 6 calls to the
    # apiserver, each mostly waiting on the network.
    threads: int = Field(32, ge=1, description="blocking calls (the apiserver's client, files) in flight at once")
    namespaces: list[str] = Field(default_factory=list, description="empty: all namespaces")
    observe_seconds: float = Field(5.0, gt=0, description=(
        "how often each clone is looked at (its TTL, its pod); a look waits within it for its pod to serve "
        "and its copy to end, seen as the watches show them"))
    retry_delay_seconds: float = Field(5.0, gt=0)
    copy_retry_seconds: float = Field(600.0, gt=0, description="how long an unreachable source is retried")
    # Where copies run. "job" (the default): each clone's and each restore's copy is a Kubernetes Job of
    # copy_image, placed by the scheduler like any pod, so no copy byte passes through the operator and an
    # operator restart interrupts none. "operator": inside this process (a small installation).
    copy_in: Literal["job", "operator"] = "job"
    copy_image: str = Field("", description="the project's own image, run by copy Jobs (the operator's image)")
    # In-process copies: a clone's copy reaches its serving pod at the pod's IP, not through its Service
    # (endpoint_template), which routes to the pod 0-0.8 s after it turns Ready. Off for an operator outside
    # the pod network.
    copy_by_pod_ip: bool = True
    copy_job_resources: dict[str, dict[str, str]] = Field(default_factory=lambda: {
        "requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
        "limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "256Mi"}})
    # A failed attempt (an unreachable source, a dropped connection) is tried again by the Job's own
    # pod retries, this many times; a permanent failure (a wrong password, a hostile stream) ends the
    # Job at once.
    # Kubernetes waits 10 s, 20 s, 40 s... between tries: 6 span about copy_retry_seconds' ten minutes.
    copy_job_backoff_limit: int = Field(6, ge=0)
    # A copy Job still running after this long, its retries included, is given up (activeDeadlineSeconds).
    copy_deadline_seconds: float = Field(3600.0, gt=0)
    max_copy_jobs: int = Field(20, ge=1, description="copy Jobs running at once, cluster-wide; others wait in order")
    copy_job_priority_class: str = ""
    # Source snapshots (snapshots.py): a clone without spec.snapshot is built from a snapshot of its source at
    # most this old (0: it reads the site itself, and records none); a snapshot is deleted this long after
    # it was read; its volume (a claim of storage_class) asks for this much.
    snapshot_max_age_minutes: int = Field(0, ge=0)
    # The WordPressClonePool (in the clone's namespace) a clone without spec.pool takes a ready slot of; "": none.
    default_pool: str = ""
    snapshot_retention_minutes: int = Field(60, ge=1)
    snapshot_storage_size: str = Field("5Gi", pattern=STORAGE_SIZE)
    # Where copy Jobs reach the apiserver (to report progress), as CIDRs for their NetworkPolicy; empty:
    # the addresses of the `kubernetes` Service's endpoints, read when the first Job is made.
    apiserver_cidrs: list[str] = Field(default_factory=list)
    # A webhook's first retry waits this long, each next one twice as long; six attempts in all.
    webhook_retry_seconds: float = Field(2.0, gt=0, description="the first wait before a webhook is POSTed again")
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    metrics_port: int = Field(9090, ge=0, le=65535, description="Prometheus /metrics; 0 turns it off")

    @model_validator(mode="after")
    def _copy_image_for_jobs(self) -> Settings:
        if self.copy_in == "job" and not self.copy_image:
            raise ValueError("WPCLONE_COPY_IMAGE must name the wpclone image when copies run as Jobs "
                             "(WPCLONE_COPY_IN=job, the default); WPCLONE_COPY_IN=operator copies in-process")
        return self

    @property
    def mysql_admin(self) -> MySQLAdmin:
        return MySQLAdmin(self.mysql_admin_dsn.get_secret_value())

    @property
    def mysql_address(self) -> str:
        """Where the operator itself reaches the shared server."""
        admin = self.mysql_admin
        return f"{admin.host}:{admin.port}"

    @property
    def clone_db_host(self) -> str:
        return self.mysql_host_for_clones or self.mysql_address

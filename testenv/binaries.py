"""Build the control-plane binaries from the Go module proxy, once per pinned version.

Binaries go to a cache outside the repository (``$WPCLONE_CACHE`` or ``~/.cache/wpclone``),
in a folder named for the versions, and are built only when missing.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from testenv import versions

GO_MODULES = Path(__file__).parent / "go"

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet",
                       "kube-proxy")
# Add-ons of the real node, each a main package built inside its wrapper module (testenv/go/<folder>).
ADDONS = {
    "coredns": ("coredns", "github.com/coredns/coredns"),
    "local-path-provisioner": ("local-path-provisioner", "github.com/rancher/local-path-provisioner"),
    "kube-router": ("kube-router", "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"),
}


def cache_root() -> Path:
    return Path(os.environ.get("WPCLONE_CACHE", Path.home() / ".cache" / "wpclone"))


def bin_dir() -> Path:
    key = (f"k8s-{versions.KUBERNETES}_etcd-{versions.ETCD}_helm-{versions.HELM}"
           f"_coredns-{versions.COREDNS}_lpp-{versions.LOCAL_PATH_PROVISIONER}_kube-router-{versions.KUBE_ROUTER}")
    return cache_root() / "bin" / key


def binary(name: str) -> Path:
    return bin_dir() / name


def _go(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(["go", *args], cwd=cwd, env=env, check=True)


def _build_plan(out: Path) -> list[tuple[str, list[str], Path]]:
    plan = [
        ("etcd", ["build", "-o", str(out / "etcd"), "."], GO_MODULES / "etcd"),
    ]
    for command in KUBERNETES_COMMANDS:
        plan.append(
            (command, ["build", "-o", str(out / command), f"k8s.io/kubernetes/cmd/{command}"],
             GO_MODULES / "kubernetes")
        )
    for name, (folder, package) in ADDONS.items():
        plan.append((name, ["build", "-o", str(out / name), package], GO_MODULES / folder))
    plan.append(("helm", ["install", f"helm.sh/helm/v3/cmd/helm@{versions.HELM}"], GO_MODULES))
    return plan


def ensure_binaries() -> Path:
    """Build whatever is missing and return the folder holding all binaries."""
    out = bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(out), "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    missing = [step for step in _build_plan(out) if not (out / step[0]).exists()]
    for index, (name, args, cwd) in enumerate(missing, start=1):
        started = time.monotonic()
        print(f"[testenv] building {name} ({index}/{len(missing)}) into {out} ...", flush=True)
        _go(args, cwd, env)
        print(f"[testenv] built {name} in {time.monotonic() - started:.0f}s", flush=True)
    return out


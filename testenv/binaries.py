"""Build the control-plane binaries from the Go module proxy, once per pinned version.

Binaries go to a cache outside the repository (``$WPCLONE_CACHE`` or ``~/.cache/wpclone``),
in a folder named for the versions, and are built only when missing.
"""

from __future__ import annotations

import hashlib
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
    "kube-router": ("kube-router", "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"),
}
# Commands of this project's own that the stack runs (testenv/go/<name>/main.go), each cached by the hash of
# its source (build_own_command; the GitOps test builds testenv/go/kstatus the same way).
OWN_COMMANDS = ("node-volumes",)


def cache_root() -> Path:
    return Path(os.environ.get("WPCLONE_CACHE", Path.home() / ".cache" / "wpclone"))


def bin_dir() -> Path:
    key = (f"k8s-{versions.KUBERNETES}_etcd-{versions.ETCD}_helm-{versions.HELM}"
           f"_coredns-{versions.COREDNS}_kube-router-{versions.KUBE_ROUTER}")
    return cache_root() / "bin" / key


def binary(name: str) -> Path:
    return own_command(name) if name in OWN_COMMANDS else bin_dir() / name


def own_command(name: str) -> Path:
    """Where the command testenv/go/<name> is (built by ensure_binaries), per version of its source."""
    module = GO_MODULES / name
    source = hashlib.sha256(b"".join((module / part).read_bytes() for part in ("go.mod", "go.sum", "main.go")))
    return cache_root() / "bin" / f"{name}-{source.hexdigest()[:12]}" / name


def build_own_command(name: str) -> Path:
    command = own_command(name)
    if not command.exists():
        _go(["build", "-o", str(command), "."], GO_MODULES / name)
    return command


def _go(args: list[str], cwd: Path, **env: str) -> None:
    subprocess.run(["go", *args], cwd=cwd, check=True,
                   env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", **env})


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
    missing = [step for step in _build_plan(out) if not (out / step[0]).exists()]
    for index, (name, args, cwd) in enumerate(missing, start=1):
        started = time.monotonic()
        print(f"[testenv] building {name} ({index}/{len(missing)}) into {out} ...", flush=True)
        _go(args, cwd, GOBIN=str(out))  # where `go install` (helm) puts its command
        print(f"[testenv] built {name} in {time.monotonic() - started:.0f}s", flush=True)
    for name in OWN_COMMANDS:
        build_own_command(name)
    return out


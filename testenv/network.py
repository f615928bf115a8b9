"""The run's own pod network: one Linux bridge whose gateway address is where pods reach the host.

Everything the pods use on the host (the apiserver, MariaDB, CoreDNS, test sites that pods must reach)
listens on the gateway address, and only there or on loopback. Pods may talk to each other and to the
host, never beyond: a rule of ours drops whatever a pod sends out of the bridge, whatever a
NetworkPolicy says (a test may delete policies; this rule stays).
"""

from __future__ import annotations

import subprocess

BRIDGE = "wpc0"
GATEWAY = "10.244.0.1"
POD_CIDR = "10.244.0.0/24"          # the one node's range; the controller-manager allocates the same
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.0.0.0/24"
EGRESS_CHAIN = "WPCLONE-POD-EGRESS"


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def up() -> None:
    """Create the bridge with its gateway address and the egress rule (idempotent)."""
    if run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    addresses = run("ip", "-o", "-4", "addr", "show", "dev", BRIDGE).stdout
    if f" {GATEWAY}/" not in addresses:
        run("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    if run("iptables", "-w", "-n", "-L", EGRESS_CHAIN, check=False).returncode != 0:
        run("iptables", "-w", "-N", EGRESS_CHAIN)
        run("iptables", "-w", "-A", EGRESS_CHAIN, "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP")
    if run("iptables", "-w", "-C", "FORWARD", "-j", EGRESS_CHAIN, check=False).returncode != 0:
        run("iptables", "-w", "-I", "FORWARD", "1", "-j", EGRESS_CHAIN)


def down() -> None:
    """Remove the rule and the bridge; silent about what is already gone."""
    while run("iptables", "-w", "-D", "FORWARD", "-j", EGRESS_CHAIN, check=False).returncode == 0:
        pass
    run("iptables", "-w", "-F", EGRESS_CHAIN, check=False)
    run("iptables", "-w", "-X", EGRESS_CHAIN, check=False)
    run("ip", "link", "del", BRIDGE, check=False)

"""A clone from a warm pool's ready slot against a cold clone of the same site, in one run.

    .venv/bin/python -m bench.bench_pool [--rounds 5] [--replicas 3]

Starts the whole local stack (the real node), the seeded sample site on the node bridge's gateway, and
the operator copying in Jobs (the chart's default). Makes a WordPressClonePool of --replicas slots and
waits for them to be ready; then, --rounds times, alternately: a cold clone (no pool: database, Secrets,
volume, pod, then the copy) and a warm one (spec.pool: it takes a ready slot, only the copy is left),
each timed from apply to Ready and deleted, its pods gone; before each warm clone the pool is back to all slots ready
(the refill time is printed). Then what an idle slot holds: its pod's requests and memory in use (the
kubelet's summary), its volume's bytes on disk, its database. No thresholds: numbers to read.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from typing import Any

from bench.bench_clone_pod import copies_in_jobs, stack_with_a_source
from testenv import network, node, stack, wordpress
from wpclone_common import times

NAMESPACE = "bench-pool"
POOL = "warm"


def kubectl_json(running: stack.Stack, *args: str) -> Any:
    return json.loads(running.control_plane.kubectl(*args, "-o", "json"))


def until(what: str, check: Any, timeout: float = 600) -> float:
    begin = time.perf_counter()
    while not check():
        if time.perf_counter() - begin > timeout:
            raise SystemExit(f"no {what} after {timeout:.0f} s")
        time.sleep(0.2)
    return time.perf_counter() - begin


def pool_ready(running: stack.Stack, replicas: int) -> bool:
    found = kubectl_json(running, "get", "wpcpool", POOL, "-n", NAMESPACE)
    return (found.get("status") or {}).get("ready") == replicas


def one_clone(running: stack.Stack, source: wordpress.WordPressSite, name: str, pool: str | None) -> tuple[float, bool]:
    """(apply to Ready in seconds, whether it took a slot); the clone deleted afterwards."""
    plane = running.control_plane
    spec: dict[str, Any] = {"source": {"url": source.url, "credentialsSecretRef": {"name": "source-login"}}}
    if pool:
        spec["pool"] = pool
    body = {"apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClone", "metadata": {"name": name}, "spec": spec}
    begin = time.perf_counter()
    plane.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(body))
    phase = ""
    while phase not in ("Ready", "Failed"):
        time.sleep(0.1)
        clone = kubectl_json(running, "get", "wpc", name, "-n", NAMESPACE)
        phase = (clone.get("status") or {}).get("phase") or ""
        if time.perf_counter() - begin > 600:
            raise SystemExit(f"clone {name} not Ready after 10 minutes")
    seconds = time.perf_counter() - begin
    if phase == "Failed":
        raise SystemExit(f"clone {name} failed: {clone['status'].get('message')}")
    slot = (clone.get("status") or {}).get("slot")
    # A warm clone's copy is its slot's standing Job, made with the slot.
    job_name = f"{slot['name'] if slot else name}-copy"
    job = json.loads(plane.kubectl("get", "job", job_name, "-n", NAMESPACE, "-o", "json", "--ignore-not-found")
                     or "{}")
    if job:  # where the time went, to the second (the apiserver's timestamps)
        made = times.parse_time(clone["metadata"]["creationTimestamp"])
        outcome = json.loads(plane.kubectl("get", "configmap", job_name, "-n", NAMESPACE, "-o", "json",
                                           "--ignore-not-found") or "{}")
        # The operator hands the plan by a patch (Update), the runner writes its outcome by apply (Apply).
        writes = {entry["operation"]: entry["time"] for entry in outcome.get("metadata", {}).get("managedFields", [])}
        marks = {"Job made": job["metadata"]["creationTimestamp"], "its pod started": job["status"].get("startTime"),
                 "plan handed": writes.get("Update") if slot else None, "outcome written": writes.get("Apply"),
                 "Job complete": job["status"].get("completionTime")}
        copied = re.search(r"copied; [0-9.]+ CPU-seconds, ([0-9.]+) s", plane.kubectl(
            "logs", "-n", NAMESPACE, f"job/{job_name}", check=False) or "")
        print(f"  {name}: " + ", ".join(f"{label} {(times.parse_time(at) - made).total_seconds():+.0f} s"
                                       for label, at in marks.items() if at)
              + (f" (the copy itself {copied.group(1)} s)" if copied else "") + f", Ready +{seconds:.1f} s")
    plane.kubectl("delete", "-n", NAMESPACE, "wpc", name, "--wait=true", "--timeout=300s")
    # Its pods stopped too, so that the next clone is timed on a node at rest, not beside a teardown.
    until(f"{name}'s pods to be gone", lambda: not kubectl_json(
        running, "get", "pods", "-n", NAMESPACE, "-l", f"wpclone.dev/clone={slot['name'] if slot else name}")["items"])
    return seconds, bool(slot)


def idle_slot(running: stack.Stack) -> str:
    """What one idle slot holds, as a line to print."""
    slot = kubectl_json(running, "get", "wpc", "-n", NAMESPACE, "-l", f"wpclone.dev/pool={POOL}")["items"][0]
    name = slot["metadata"]["name"]
    pods = kubectl_json(running, "get", "pods", "-n", NAMESPACE, "-l", f"wpclone.dev/clone={name}")["items"]
    requests = pods[0]["spec"]["containers"][0]["resources"].get("requests", {})
    try:
        summary = json.loads(running.control_plane.kubectl(
            "get", "--raw", f"/api/v1/nodes/{node.NAME}/proxy/stats/summary"))
        memory = next(pod["memory"]["workingSetBytes"] for pod in summary["pods"]
                      if pod["podRef"]["name"] == pods[0]["metadata"]["name"])
        in_use = f"{memory / 2**20:.0f} MiB of memory in use"
    except (RuntimeError, StopIteration, KeyError, ValueError) as error:
        in_use = f"memory in use not known ({type(error).__name__})"
    claim = kubectl_json(running, "get", "pvc", f"{name}-wp-content", "-n", NAMESPACE)
    volume = node.VOLUMES / f"{claim['spec']['volumeName']}_{NAMESPACE}_{name}-wp-content"
    on_disk = sum(path.stat().st_size for path in volume.rglob("*") if path.is_file()) if volume.exists() else 0
    return (f"an idle slot: a pod requesting {requests.get('cpu')} CPU and {requests.get('memory')} memory "
            f"({in_use}), a {claim['spec']['resources']['requests']['storage']} volume claim "
            f"({on_disk} bytes on disk), "
            "an empty database and its user, 2 Secrets, a ConfigMap, a Service and a NetworkPolicy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--copy-in", choices=("job", "operator"), default="job",
                        help="where copies run: Jobs (the chart's default) or the operator itself")
    chosen = parser.parse_args()
    with stack_with_a_source("wpclone-bench-pool-", host=network.GATEWAY) as (running, source, _):
        copies_in_jobs(running, source, NAMESPACE)
        if chosen.copy_in == "operator":
            assert running.operator is not None
            running.operator.env["WPCLONE_COPY_IN"] = "operator"
            running.operator.restart()
        plane = running.control_plane
        plane.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps({
            "apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClonePool", "metadata": {"name": POOL},
            "spec": {"replicas": chosen.replicas}}))
        filled = until("ready pool", lambda: pool_ready(running, chosen.replicas))
        print(f"pool of {chosen.replicas} slots ready {filled:.1f} s after it was made; the sample site, "
              f"copies in {'Jobs' if chosen.copy_in == 'job' else 'the operator'}")
        cold, warm, refills = [], [], []
        for number in range(chosen.rounds):
            seconds, took = one_clone(running, source, f"cold-{number}", None)
            assert not took
            cold.append(seconds)
            seconds, took = one_clone(running, source, f"warm-{number}", POOL)
            if not took:
                raise SystemExit(f"warm-{number} found no ready slot")
            warm.append(seconds)
            refills.append(until("refilled pool", lambda: pool_ready(running, chosen.replicas)))
            print(f"round {number + 1}: cold {cold[-1]:.1f} s, warm {warm[-1]:.1f} s ({warm[-1] / cold[-1]:.2f}); "
                  f"the pool all ready again {refills[-1]:.1f} s after the warm clone was deleted")
        print(f"apply to Ready, median of {chosen.rounds}: warm {statistics.median(warm):.1f} s "
              f"(best {min(warm):.1f}), cold {statistics.median(cold):.1f} s (best {min(cold):.1f}); warm / cold "
              f"{statistics.median(warm) / statistics.median(cold):.2f}")
        print(idle_slot(running))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast a clone is copied into a real pod, against the floor of this machine in the same run.

    .venv/bin/python -m bench.bench_clone_pod [--rows-mib 50] [--uploads-mib 200] [--rounds 2] [--observe-seconds 5]

Starts the whole local stack (control plane, the real node, MariaDB, the ingress router, the operator),
builds the reference site of bench_transfer, then, alternately: a WordPressClone of it (the operator
copies into the clone's WordPress pod, its wp-content on a volume; the engine's time is the operator's
own `wpclone_copy_seconds` for that copy, read from its metrics) and the floor (`mariadb-dump | mariadb`
+ `tar | tar`). Also prints how long each clone took from apply to Ready, and how much of that was outside
the copy (provisioning, the pod's start, the operator seeing each step), with the operator's interval
between looks at a clone set by --observe-seconds (the harness's 1 s unless given; the operator's own
default is 5). Also prints the whole machine's CPU-seconds during each copy (from the operator's log line
that starts it, for the copy's seconds) and during each floor: on a small machine the copy's CPU against
what the cores give in the floor's time says how near the floor it can come. No thresholds: numbers to
read.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.bench_transfer import (
    FOLDERS,
    MIB,
    build_reference_site,
    floor_round,
    folder_bytes,
    option_parser,
    table_bytes,
)
from bench.machine import cpu_seconds
from testenv import images, node, stack, wordpress
from tests.helpers import credentials_secret
from tests.integration.transfer_fixtures import install_migrator_as_mu_plugin

NAMESPACE = "bench"


def copy_seconds_sum(metrics_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    found = re.search(r'^wpclone_copy_seconds_sum\{kind="clone"\} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def clone_round(running: stack.Stack, source: wordpress.WordPressSite, number: int) -> tuple[float, float]:
    """(seconds the operator spent copying, seconds from apply to Ready) for one new clone."""
    assert running.operator is not None
    name = f"bench-{number}"
    before = copy_seconds_sum(running.operator.metrics_port)
    clone = {"apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClone", "metadata": {"name": name},
             "spec": {"source": {"url": source.url, "credentialsSecretRef": {"name": "source-login"}}}}
    begin = time.perf_counter()
    running.control_plane.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(clone))
    running.control_plane.kubectl("wait", "-n", NAMESPACE, f"wpc/{name}", "--for=condition=Ready", "--timeout=600s")
    ready = time.perf_counter() - begin
    copying = copy_seconds_sum(running.operator.metrics_port) - before
    running.control_plane.kubectl("delete", "-n", NAMESPACE, "wpc", name, "--wait=true", "--timeout=120s")
    return copying, ready


class MachineCpu:
    """The machine's busy CPU-seconds (every core, every process), sampled every 50 ms in a thread."""

    def __init__(self) -> None:
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self._samples.append((time.time(), cpu_seconds()))

    def between(self, start: float, end: float) -> float:
        """Busy CPU-seconds from `start` to `end` (wall-clock times)."""
        inside = [busy for when, busy in self._samples if start <= when <= end]
        return inside[-1] - inside[0] if len(inside) > 1 else float("nan")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def copy_started(operator_log: Path, namespace: str, name: str) -> float:
    """When the operator began copying the clone: its log line's time (wall clock)."""
    for line in reversed(operator_log.read_text(errors="replace").splitlines()):
        if f"clone {namespace}/{name}: copying into" in line:
            return datetime.datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
    raise RuntimeError(f"no copy of {namespace}/{name} in the operator's log")


@contextlib.contextmanager
def stack_with_a_source(prefix: str, host: str = "127.0.0.1",
                        ) -> Iterator[tuple[stack.Stack, wordpress.WordPressSite, Path]]:
    """The whole local stack (`make dev`'s) and one seeded WordPress site with the migrator (on `host`: the
    node bridge's gateway when pods must reach it), in a scratch folder; everything stopped and removed
    afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    running = stack.start_stack(base, site_count=0, with_wpclone=True)
    try:
        (source,) = wordpress.create_sites(1, running.database, base / "sites", host=host)
        install_migrator_as_mu_plugin(source.docroot)
        running.sites.append(source)
        yield running, source, base
    finally:
        running.stop()
        shutil.rmtree(base, ignore_errors=True)


def copies_in_jobs(running: stack.Stack, source: wordpress.WordPressSite, namespace: str) -> None:
    """The stack's operator restarted to copy in Jobs of the image built here, and `namespace` made with
    the source's login in it (Secret source-login)."""
    images.import_into(node.ctr(), ["wpclone"])
    assert running.operator is not None
    running.operator.env.update({"WPCLONE_COPY_IN": "job", "WPCLONE_COPY_IMAGE": images.ref("wpclone")})
    running.operator.restart()
    plane = running.control_plane
    plane.kubectl("create", "namespace", namespace)
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(
        credentials_secret("source-login", source.admin_user, source.admin_password)))


def main() -> int:
    parser = option_parser(__doc__.splitlines()[0])
    parser.add_argument("--observe-seconds", type=float, help="the operator's WPCLONE_OBSERVE_SECONDS")
    chosen = parser.parse_args()
    with stack_with_a_source("wpclone-bench-pod-") as (running, source, base):
        build_reference_site(running.database, source, chosen.rows_mib, chosen.uploads_mib)
        if chosen.observe_seconds is not None:
            assert running.operator is not None
            running.operator.env["WPCLONE_OBSERVE_SECONDS"] = str(chosen.observe_seconds)
            running.operator.restart()
        print(f"reference site: {table_bytes(running.database, source.db_name) / MIB:.0f} MiB of table data, "
              f"{folder_bytes(source.docroot) / MIB:.0f} MiB in {', '.join(FOLDERS)}")
        plane = running.control_plane
        plane.kubectl("create", "namespace", NAMESPACE)
        # On stdin, never on a command line (where any process listing shows it).
        plane.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(
            credentials_secret("source-login", source.admin_user, source.admin_password)))
        engine, floor, ready = [], [], []
        cpu = MachineCpu()
        for number in range(1, chosen.rounds + 1):
            copying, until_ready = clone_round(running, source, number)
            began = copy_started(running.operator.log_path, NAMESPACE, f"bench-{number}")
            copy_cpu = cpu.between(began, began + copying)
            engine.append(copying)
            ready.append(until_ready)
            floor_began = time.time()
            floor.append(floor_round(running.database, source, base / "floor"))
            floor_cpu = cpu.between(floor_began, time.time())
            print(f"round {number}: copy into the clone pod {engine[-1]:.2f} s (apply to Ready {until_ready:.1f} s, "
                  f"{until_ready - copying:.1f} s of it outside the copy), floor {floor[-1]:.2f} s, "
                  f"ratio {engine[-1] / floor[-1]:.2f}; the machine's CPU {copy_cpu:.1f} s in the copy, "
                  f"{floor_cpu:.1f} s in the floor")
        cpu.stop()
        ratios = sorted(run / base_run for run, base_run in zip(engine, floor, strict=True))
        print(f"best: copy {min(engine):.2f} s (the operator into a real WordPress pod, URL rewritten), floor "
              f"{min(floor):.2f} s (mariadb-dump | mariadb + tar | tar); "
              f"ratio of bests {min(engine) / min(floor):.2f}, "
              f"median ratio per round {statistics.median(ratios):.2f}; apply to Ready median "
              f"{statistics.median(ready):.1f} s, outside the copy median "
              f"{statistics.median(r - e for r, e in zip(ready, engine, strict=True)):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

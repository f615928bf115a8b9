"""python -m testenv build|up|down|status: the local stack from the command line."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time

from testenv import binaries, stack


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m testenv")
    parser.add_argument("command", choices=["build", "up", "down", "status"])
    parser.add_argument("--sites", type=int, default=1, help="sample WordPress sites to start (up)")
    args = parser.parse_args()
    base = stack.default_base()

    if args.command == "build":
        print(f"[testenv] binaries in {binaries.ensure_binaries()}")
        return 0
    if args.command == "down":
        stopped = stack.stop_detached(base)
        print(f"[testenv] stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.command == "status":
        state = stack.load_state(base)
        if state is None:
            print("[testenv] not running (start it with `make dev`)")
            return 1
        groups = state["process_groups"]
        for name, pgid in groups.items():  # type: ignore[union-attr]
            print(f"  {name:28} {'running' if stack.group_alive(pgid) else 'STOPPED'}")
        return 0

    if stack.load_state(base) is not None:
        print("[testenv] already up; `make down` first. Current state:")
        return main_status()
    shutil.rmtree(base, ignore_errors=True)
    started = time.monotonic()
    running = stack.start_stack(base, site_count=args.sites)
    path = stack.save_state(running)
    print(f"[testenv] stack up in {time.monotonic() - started:.1f}s; state in {path}")
    print(json.dumps(running.describe(), indent=2))
    print(f"\n  export KUBECONFIG={running.control_plane.kubeconfig}\n  kubectl get nodes,pods -A\n"
          f"  stop everything with: make down")
    return 0


def main_status() -> int:
    sys.argv = [sys.argv[0], "status"]
    return main()


if __name__ == "__main__":
    sys.exit(main())

"""How fast a restore pushes a site into production, backup included, against this machine's floor.

    .venv/bin/python -m bench.bench_restore [--rows-mib 50] [--uploads-mib 200] [--rounds 2]

The restore path is what the operator runs for a CloneRestore: the target's checksums and content
are read (the conflict check and the plan), then copy_site writes everything with backup=True (what
it replaces is kept on the target). Each round deletes that backup afterwards. The floor is the same
run's `mariadb-dump | mariadb` plus `tar | tar`. Prints figures and ratios; no thresholds.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import httpx

from bench.bench_transfer import floor_round, options, reference_sites
from testenv import wordpress
from wpclone_engine.transfer import copy_site
from wpclone_engine.wordpress import Migrator


async def restore_round(clone: wordpress.WordPressSite, production: wordpress.WordPressSite) -> float:
    async with httpx.AsyncClient(timeout=600) as http:
        source = Migrator(http, clone.url, login=clone.admin_user, password=clone.admin_password)
        target = Migrator(http, production.url, login=production.admin_user, password=production.admin_password)
        begin = time.perf_counter()
        await target.info(checksums=True, content=True)
        result = await copy_site(source, target, backup=True)
        elapsed = time.perf_counter() - begin
        assert result.backup is not None
        await target.delete_backup(result.backup)
        return elapsed


async def main() -> None:
    chosen = options(__doc__.splitlines()[0])
    with reference_sites(chosen.rows_mib, chosen.uploads_mib) as (mariadb, base, clone, production):
        restores, floors = [], []
        for round_number in range(1, chosen.rounds + 1):
            restores.append(await restore_round(clone, production))
            floors.append(floor_round(mariadb, clone, base / "floor"))
            print(f"round {round_number}: restore {restores[-1]:.2f} s, floor {floors[-1]:.2f} s, "
                  f"ratio {restores[-1] / floors[-1]:.2f}")
        ratios = [run / floor for run, floor in zip(restores, floors, strict=True)]
        print(f"best: restore {min(restores):.2f} s (checks + copy + backup), floor {min(floors):.2f} s; "
              f"median ratio per round {statistics.median(ratios):.2f} (goal: 2 or less)")

if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

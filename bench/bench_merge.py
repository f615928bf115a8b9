"""A merge restore against a whole-table restore of the same clone into the same production, same run.

    .venv/bin/python -m bench.bench_merge [--rows-mib 50] [--rounds 2] [--changed-percent 1]

Builds the reference site (bench_transfer's, database only) as production and clones it the way the
operator does (straight into the clone's own database, the baseline recorded, ids offset), timing that
copy without and with the baseline. Then a user's day: `--changed-percent` of the posts edited and as
many new posts on the clone, as many new posts in production. Each round times a merge restore
(fingerprints of production, the clone streamed and judged, the rows staged and applied in one
transaction, with a backup) and a whole-table restore (copy_site with a backup), each rolled back
afterwards so that the rounds are alike; prints their times and the size of their backups, and the
baseline's size per 100,000 rows. No thresholds: numbers to read.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path

import httpx

from bench.bench_transfer import reference_sites
from testenv import processes, wordpress
from testenv.mariadb import MariaDB
from tests.integration.transfer_fixtures import install_migrator_as_mu_plugin
from wpclone_engine.database_import import CloneBaseline, DatabaseTarget
from wpclone_engine.merge_restore import merge_clone
from wpclone_engine.transfer import DatabaseDestination, Include, copy_site
from wpclone_engine.wordpress import Migrator

MIB = 2**20
DATABASE_ONLY = Include(uploads=False, themes=False, plugins=False)


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-mib", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--changed-percent", type=float, default=1.0)
    return parser.parse_args()


def clone_site(mariadb: MariaDB, base: Path) -> tuple[DatabaseTarget, str, str, processes.Server]:
    """A WordPress with an empty database of its own, configured as the operator configures a clone."""
    port = processes.free_port()
    name = f"clone_{port}"
    password, token = secrets.token_urlsafe(18), secrets.token_urlsafe(32)
    mariadb.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4; CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY "
                f"'{password}'; GRANT ALL PRIVILEGES ON `{name}`.* TO '{name}'@'127.0.0.1';")
    docroot, url = base / "clone", f"http://127.0.0.1:{port}"
    wordpress.prepare_docroot(docroot)
    wordpress.write_config(docroot, db_host=f"{mariadb.host}:{mariadb.port}", db_name=name, db_user=name,
                           db_password=password, url=url, extra_php=f"define('WPCLONE_MIGRATOR_TOKEN', '{token}');")
    install_migrator_as_mu_plugin(docroot)
    server = wordpress.serve(docroot, port, base / "clone.log")
    return DatabaseTarget(mariadb.host, mariadb.port, name, password, name, "wp_"), url, token, server


def table_size(mariadb: MariaDB, database: str, tables: list[str]) -> int:
    if not tables:
        return 0
    names = ", ".join(f"'{table}'" for table in tables)
    mariadb.sql("; ".join(f"ANALYZE TABLE `{database}`.`{table}`" for table in tables))
    return int(mariadb.sql(f"SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
                           f"WHERE TABLE_SCHEMA = '{database}' AND TABLE_NAME IN ({names})"))


def backup_tables(mariadb: MariaDB, database: str, backup: str) -> list[str]:
    return mariadb.sql(f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{database}' "
                       f"AND TABLE_NAME LIKE 'wpcb\\_{backup}\\_%'").split()


async def main() -> None:
    chosen = options()
    with reference_sites(chosen.rows_mib, 0) as (mariadb, base, production, _):
        database, url, token, server = clone_site(mariadb, base)
        try:
            async with httpx.AsyncClient(timeout=600) as http:
                target = Migrator(http, production.url, login=production.admin_user,
                                  password=production.admin_password)
                clone = Migrator(http, url, token=token, role="clone")
                # What recording the baseline costs a clone's copy: the same copy without it, then with it.
                begin = time.perf_counter()
                await copy_site(target, DatabaseDestination(database, url), include=DATABASE_ONLY)
                without = time.perf_counter() - begin
                begin = time.perf_counter()
                copied = await copy_site(target, DatabaseDestination(database, url, baseline=True,
                                                                     id_offset=100_000_000), include=DATABASE_ONLY)
                print(f"clone copy (database): {time.perf_counter() - begin:.2f} s with the baseline, "
                      f"{without:.2f} s without")
                baseline_rows = int(mariadb.sql(f"SELECT COUNT(*) FROM `{database.database}`.wpclone_baseline"))
                baseline_bytes = table_size(mariadb, database.database, ["wpclone_baseline"])
                print(f"cloned {copied.rows} rows; baseline {baseline_rows} entries, {baseline_bytes / MIB:.1f} MiB: "
                      f"{baseline_bytes / baseline_rows * 100_000 / MIB:.2f} MiB per 100,000 rows")
                posts = int(mariadb.sql(f"SELECT COUNT(*) FROM `{production.db_name}`.wp_posts"))
                changed = max(1, int(posts * chosen.changed_percent / 100))
                new_posts = (f"INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_content, post_title,"
                             " post_excerpt, post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt,"
                             " post_content_filtered, guid) SELECT 1, NOW(), NOW(), REPEAT('new ', 500), CONCAT('{}',"
                             f" seq), '', 'publish', '', '', '', NOW(), NOW(), '', '' FROM mysql.seq_1_to_{changed}")
                mariadb.sql(f"USE `{database.database}`; UPDATE wp_posts SET post_content = CONCAT(post_content,"
                            f" ' edited on the clone') ORDER BY ID LIMIT {changed}; "
                            + new_posts.format("Clone post "))
                mariadb.sql(f"USE `{production.db_name}`; " + new_posts.format("Production post "))
                print(f"{changed} posts edited and {changed} added on the clone, {changed} added in production")
                merges, wholes = [], []
                for round_number in range(1, chosen.rounds + 1):
                    baseline = await CloneBaseline.open(database)
                    try:
                        begin = time.perf_counter()
                        merged = await merge_clone(clone, baseline, target, include=DATABASE_ONLY, policy="Fail",
                                                   dry_run=False, backup=True,
                                                   recorded_checksums={k: v or "" for k, v in
                                                                       copied.source_checksums.items()},
                                                   admin_password=None)
                        merges.append(time.perf_counter() - begin)
                    finally:
                        baseline.close()
                    assert merged.result is not None and merged.result.backup and not merged.conflicts, merged
                    merge_backup = table_size(mariadb, production.db_name,
                                              backup_tables(mariadb, production.db_name, merged.result.backup))
                    await target.rollback(merged.result.backup)
                    begin = time.perf_counter()
                    whole = await copy_site(clone, target, include=DATABASE_ONLY, backup=True)
                    wholes.append(time.perf_counter() - begin)
                    assert whole.backup is not None
                    whole_backup = table_size(mariadb, production.db_name,
                                              backup_tables(mariadb, production.db_name, whole.backup))
                    await target.rollback(whole.backup)
                    print(f"round {round_number}: merge {merges[-1]:.2f} s ({merged.result.rows} rows written, "
                          f"backup {merge_backup / MIB:.2f} MiB), whole-table restore {wholes[-1]:.2f} s "
                          f"({whole.rows} rows, backup {whole_backup / MIB:.1f} MiB), ratio "
                          f"{merges[-1] / wholes[-1]:.2f}")
                print(f"best: merge {min(merges):.2f} s, whole-table restore {min(wholes):.2f} s; median ratio "
                      f"{statistics.median(m / w for m, w in zip(merges, wholes, strict=True)):.2f}")
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""A private MariaDB server from Debian's packages: own data dir, socket and port, on loopback (and on
the node bridge's gateway, where clone pods reach it, when asked)."""

from __future__ import annotations

import secrets
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from testenv import network, processes

ADMIN_USER = "wpclone_admin"

# Small and quick: the harness holds a few WordPress databases, and losing a commit on a crash is fine.
_INNODB_OPTIONS = ["--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
                   "--innodb-flush-log-at-trx-commit=0",
                   # The shared server of every clone: each clone's Apache holds connections of its own
                   # (151 by default ran out at 200 clones in bench.bench_scale).
                   "--max-connections=2000"]


@dataclass
class MariaDB:
    host: str
    port: int
    socket: Path
    admin_user: str
    admin_password: str
    server: processes.Server

    @property
    def dsn(self) -> str:
        return f"mysql://{self.admin_user}:{self.admin_password}@{self.host}:{self.port}/"

    @property
    def address_for_pods(self) -> str:
        return f"{network.GATEWAY}:{self.port}"

    def sql(self, statement: str) -> str:
        """Run statements as root over the socket; return the rows tab-separated, values unescaped."""
        result = subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "--user=root",
             "--batch", "--raw", "--skip-column-names", "--execute", statement],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"mariadb failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout.removesuffix("\n")

    def stop(self) -> None:
        self.server.stop(timeout=30)


def start_mariadb(base_dir: Path, for_pods: bool = False) -> MariaDB:
    """`for_pods`: listen on the node bridge's gateway too (the bridge must exist: network.up)."""
    root = base_dir / "mariadb"
    data_dir, run_dir = root / "data", root / "run"
    data_dir.mkdir(parents=True)
    run_dir.mkdir()
    _hand_over_to_mysql(root)
    _install_system_tables(data_dir, root / "install-db.log")

    port = processes.free_port()
    socket = run_dir / "mysqld.sock"
    server = processes.start("mariadbd", [
        "mariadbd", "--no-defaults", "--user=mysql", f"--datadir={data_dir}", f"--socket={socket}",
        f"--pid-file={run_dir / 'mysqld.pid'}", f"--port={port}",
        "--bind-address=" + ",".join(["127.0.0.1", *([network.GATEWAY] if for_pods else [])]),
        "--skip-name-resolve", "--skip-log-bin", f"--log-error={root / 'error.log'}", *_INNODB_OPTIONS,
    ], root / "stdout.log")
    mariadb = MariaDB("127.0.0.1", port, socket, ADMIN_USER, secrets.token_urlsafe(18), server)
    try:
        processes.wait_until(lambda: socket.exists() and processes.port_open(port),
                             f"mariadbd on port {port}", timeout=30, server=server)
        mariadb.sql(
            # From anywhere the server listens: the host, and an operator running as a pod.
            f"CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{mariadb.admin_password}';"
            f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;"
        )
    except BaseException:
        mariadb.stop()
        raise
    return mariadb


def _hand_over_to_mysql(root: Path) -> None:
    """We run as root and mariadbd runs as `mysql`: give it its tree and a way in through the parents."""
    for path in [root, *root.rglob("*")]:
        shutil.chown(path, "mysql", "mysql")
    # pytest makes its temporary folders 0700; mysql needs only to pass through, not to list them.
    for parent in root.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _install_system_tables(data_dir: Path, log_path: Path) -> None:
    with open(log_path, "wb") as log:
        result = subprocess.run(
            ["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={data_dir}",
             "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve",
             *_INNODB_OPTIONS],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"mariadb-install-db failed ({result.returncode}):\n{tail}")

"""Real WordPress sites from Debian's package, each in its own docroot and database, served by `php -S`.

The steps are separate so that a WordPress can also be run from any database settings, as the stand-in
for a clone's WordPress container does: prepare_docroot, write_config, serve.
"""

from __future__ import annotations

import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from testenv import processes
from testenv.mariadb import MariaDB

WORDPRESS_SOURCE = Path("/usr/share/wordpress")
PHP_DIR = Path(__file__).parent / "php"
ADMIN_PASSWORD = "Adm1n-Pass!"
PHP_SETTINGS = ["-d", "upload_max_filesize=64M", "-d", "post_max_size=64M", "-d", "memory_limit=256M"]

_SALT_NAMES = ("AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
               "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT")


@dataclass
class WordPressSite:
    name: str
    url: str
    port: int
    docroot: Path
    db_name: str
    db_user: str
    db_password: str
    admin_user: str
    admin_password: str
    server: processes.Server

    def stop(self) -> None:
        self.server.stop()


def prepare_docroot(dest: Path) -> None:
    """Copy WordPress to `dest`, without Debian's loader of /etc/wordpress/config-<host>.php."""
    # -L: Debian ships relative symlinks (underscore.js, getID3, the CA bundle) that break when copied.
    # A plain copy takes ~0.2 s; hardlinks would be faster but let a plugin update write into the package.
    subprocess.run(["cp", "-rL", str(WORDPRESS_SOURCE), str(dest)], check=True)
    (dest / "wp-config.php").unlink()
    (dest / ".htaccess").unlink(missing_ok=True)


def write_config(docroot: Path, *, db_host: str, db_name: str, db_user: str, db_password: str, url: str,
                 table_prefix: str = "wp_", extra_php: str = "") -> None:
    """A plain wp-config.php; `extra_php` runs before the harness defaults, like WORDPRESS_CONFIG_EXTRA."""
    database = {"DB_NAME": db_name, "DB_USER": db_user, "DB_PASSWORD": db_password, "DB_HOST": db_host,
                "DB_CHARSET": "utf8mb4", "DB_COLLATE": ""}
    salts = {name: secrets.token_hex(32) for name in _SALT_NAMES}
    harness = {
        "WP_HOME": url, "WP_SITEURL": url, "FS_METHOD": "direct", "DISABLE_WP_CRON": True,
        "AUTOMATIC_UPDATER_DISABLED": True, "WP_HTTP_BLOCK_EXTERNAL": True,
    }
    lines = [
        "<?php",
        *(f"define({_php(name)}, {_php(value)});" for name, value in {**database, **salts}.items()),
        f"$table_prefix = {_php(table_prefix)};",
        extra_php,
        *(f"defined({_php(name)}) || define({_php(name)}, {_php(value)});" for name, value in harness.items()),
        "defined('ABSPATH') || define('ABSPATH', __DIR__ . '/');",
        "require_once ABSPATH . 'wp-settings.php';",
    ]
    (docroot / "wp-config.php").write_text("\n".join(lines) + "\n")


def serve(docroot: Path, port: int, log_path: Path, env: dict[str, str] | None = None,
          host: str = "127.0.0.1") -> processes.Server:
    """Serve `docroot` on `host`:`port` and return once the port accepts connections."""
    # PHP spools large request bodies into temporary files, which a server stopped mid-request leaves
    # behind: beside the site, not in /tmp.
    temporary = docroot.parent / f"{docroot.name}-tmp"
    temporary.mkdir(exist_ok=True)
    server = processes.start(
        f"php -S :{port}",
        ["php", *PHP_SETTINGS, "-d", f"sys_temp_dir={temporary}", "-d", f"upload_tmp_dir={temporary}",
         "-S", f"{host}:{port}", "-t", str(docroot), str(PHP_DIR / "router.php")],
        log_path, env={**(env or {}), "PHP_CLI_SERVER_WORKERS": "4"},
    )
    try:
        processes.wait_until(lambda: processes.port_open(port, host), f"php -S on {host}:{port}", 30, server)
    except BaseException:
        server.stop()
        raise
    return server


def install_site(docroot: Path, *, title: str, admin_user: str, admin_password: str, admin_email: str) -> None:
    _php_script("install.php", docroot, title, admin_user, admin_password, admin_email)


def seed_site(docroot: Path, *, admin_user: str) -> None:
    _php_script("seed.php", docroot, admin_user)


def create_sites(n: int, mariadb: MariaDB, base_dir: Path, admin_user: str = "admin",
                 admin_password: str = ADMIN_PASSWORD, host: str = "127.0.0.1") -> list[WordPressSite]:
    """Start `n` independent, installed and seeded sites, each with its own database, user and port, at
    http://`host`:port (loopback, or the node bridge's gateway for sites that pods must reach)."""
    base_dir.mkdir(parents=True, exist_ok=True)
    ports = [processes.free_port() for _ in range(n)]
    with ThreadPoolExecutor(max_workers=n or 1) as pool:
        futures = [pool.submit(_create_site, port, mariadb, base_dir, admin_user, admin_password, host)
                   for port in ports]
    sites: list[WordPressSite] = []
    failures: list[Exception] = []
    for future in futures:
        try:
            sites.append(future.result())
        except Exception as error:  # stop the sites that did start before raising
            failures.append(error)
    if failures:
        for site in sites:
            site.stop()
        raise failures[0]
    return sites


def _create_site(port: int, mariadb: MariaDB, base_dir: Path, admin_user: str,
                 admin_password: str, host: str) -> WordPressSite:
    # Named after the port, which no other live site has, so several calls can share one MariaDB.
    name = f"site{port}"
    # A port comes back free once its site stopped; the site's database stays (tests read it after), so
    # the database is named apart.
    db_name = db_user = f"wp_{port}_{secrets.token_hex(3)}"
    db_password = secrets.token_urlsafe(18)
    mariadb.sql(
        f"CREATE DATABASE `{db_name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
        f"CREATE USER '{db_user}'@'127.0.0.1' IDENTIFIED BY '{db_password}';"
        f"GRANT ALL PRIVILEGES ON `{db_name}`.* TO '{db_user}'@'127.0.0.1';"
    )
    url = f"http://{host}:{port}"
    docroot = base_dir / name
    prepare_docroot(docroot)
    write_config(docroot, db_host=f"{mariadb.host}:{mariadb.port}", db_name=db_name, db_user=db_user,
                 db_password=db_password, url=url)
    install_site(docroot, title=f"Site {port}", admin_user=admin_user, admin_password=admin_password,
                 admin_email=f"{admin_user}@example.com")
    seed_site(docroot, admin_user=admin_user)
    server = serve(docroot, port, base_dir / f"{name}.log", host=host)
    return WordPressSite(name, url, port, docroot, db_name, db_user, db_password, admin_user,
                         admin_password, server)


def _php_script(script: str, docroot: Path, *args: str) -> None:
    result = subprocess.run(["php", *PHP_SETTINGS, str(PHP_DIR / script), str(docroot), *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed for {docroot} ({result.returncode}):\n"
                           f"{result.stdout[-2000:]}{result.stderr[-2000:]}")


def _php(value: str | bool) -> str:
    """`value` as a PHP literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

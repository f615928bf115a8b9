"""The migrator plugin's PHP files, shipped inside this package, and those files as a clone's must-use plugins."""

from __future__ import annotations

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent / "migrator_plugin"


def mu_plugins() -> dict[str, str]:
    """The plugin's top-level PHP files, keyed by file name (ConfigMap keys cannot hold '/')."""
    files = {path.name: path.read_text() for path in sorted(PLUGIN_DIR.glob("*.php"))}
    if "wpclone-migrator.php" not in files:  # a package installed without its data: say so, never run without
        raise FileNotFoundError(f"the migrator plugin is not in {PLUGIN_DIR}")
    return files

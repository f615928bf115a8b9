"""Where the migrator plugin's PHP source lives, and its files as a clone's must-use plugins."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_PLUGIN_DIR = Path(__file__).resolve().parents[2] / "wordpress" / "migrator"


def plugin_dir() -> Path:
    # The container image copies the plugin elsewhere and points WPCLONE_MIGRATOR_DIR at it.
    return Path(os.environ.get("WPCLONE_MIGRATOR_DIR", DEFAULT_PLUGIN_DIR))


def mu_plugins() -> dict[str, str]:
    """The plugin's top-level PHP files, keyed by file name (ConfigMap keys cannot hold '/')."""
    directory = plugin_dir()
    if not directory.is_dir():
        return {}
    return {path.name: path.read_text() for path in sorted(directory.glob("*.php"))}

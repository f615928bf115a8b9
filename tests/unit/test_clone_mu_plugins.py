"""A clone's own mu-plugins, run by real PHP: loaded by its wp-config.php through WordPress's real hooks
(Debian's WordPress), and never copied from a source's mu-plugins."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_children import make_clone
from wpclone_engine import migrator
from wpclone_engine.transfer import DROPINS
from wpclone_operator import children
from wpclone_operator.settings import Settings

WORDPRESS = Path("/usr/share/wordpress")
SITE_PHP = migrator.PLUGIN_DIR / "wpclone-migrator-site.php"


def php(script: str, **env: str) -> dict[str, object]:
    """Runs a PHP script; every notice or warning fails the test."""
    result = subprocess.run(["php", "-d", "error_reporting=-1", "-d", "display_errors=stderr", "-r", script],
                            capture_output=True, text=True, env={**os.environ, **env}, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stdout + result.stderr
    return dict(json.loads(result.stdout))


def mount_like_a_config_map(folder: Path, files: dict[str, str]) -> None:
    """The kubelet's layout: the files in a timestamped folder, reached through ..data links."""
    (folder / "..2026_01_01_00_00_00.1").mkdir(parents=True)
    for name, text in files.items():
        (folder / "..2026_01_01_00_00_00.1" / name).write_text(text)
        (folder / name).symlink_to(f"..data/{name}")
    (folder / "..data").symlink_to("..2026_01_01_00_00_00.1")


def test_wp_config_loads_our_mu_plugins_at_muplugins_loaded_in_real_wordpress(tmp_path: Path) -> None:
    assert (WORDPRESS / "wp-includes" / "plugin.php").is_file(), \
        "Debian's WordPress is missing: run testenv/install-system-packages.sh"
    clone = make_clone()
    mount_like_a_config_map(tmp_path / "mu", children.mu_plugins_config_map(clone, migrator.mu_plugins())["data"])
    settings = Settings(mysql_admin_dsn="mysql://admin:pw@db:3306/")  # type: ignore[arg-type]
    extra = children.wordpress_config_extra(settings).replace(children.MU_PLUGINS_PATH, str(tmp_path / "mu"))
    # As wp-config.php then wp-settings.php run it; wp-cli evaluates wp-config.php inside a function.
    script = f"""
        define('ABSPATH', '{WORDPRESS}/');
        define('WP_PLUGIN_DIR', '{tmp_path}/plugins');
        (function () {{ eval(getenv('WORDPRESS_CONFIG_EXTRA')); }})();
        $before = defined('WPCLONE_MIGRATOR_VERSION');
        require ABSPATH . 'wp-includes/plugin.php';
        do_action('muplugins_loaded');
        echo json_encode([
            'loaded_by_the_config' => $before,
            'migrator' => defined('WPCLONE_MIGRATOR_VERSION'),
            'routes' => has_action('rest_api_init', 'wpclone_migrator_routes') !== false,
            'no_mail' => has_filter('pre_wp_mail') !== false,
            'home_kept' => apply_filters('pre_update_option_home', 'https://elsewhere.test', 'https://shop.test'),
            'must_use' => WPClone_Site::is_must_use(),
            'token' => WPCLONE_MIGRATOR_TOKEN,
        ]);
    """
    loaded = php(script, WORDPRESS_CONFIG_EXTRA=extra, WPCLONE_MIGRATOR_TOKEN="t" * 32)
    assert loaded == {"loaded_by_the_config": False, "migrator": True, "routes": True, "no_mail": True,
                      "home_kept": "https://shop.test", "must_use": True, "token": "t" * 32}


def site_php(tmp_path: Path, body: str) -> dict[str, object]:
    """Runs `body` with the migrator's site rules loaded for a site at tmp_path/wp-content."""
    (tmp_path / "wp-content" / "plugins").mkdir(parents=True, exist_ok=True)
    return php(f"""
        define('ABSPATH', '/');
        define('WP_CONTENT_DIR', '{tmp_path}/wp-content');
        define('WP_PLUGIN_DIR', '{tmp_path}/wp-content/plugins');
        define('WPMU_PLUGIN_DIR', '{tmp_path}/wp-content/mu-plugins');
        function wp_upload_dir($time, $create) {{ return ['basedir' => '{tmp_path}/wp-content/uploads']; }}
        function get_theme_root() {{ return '{tmp_path}/wp-content/themes'; }}
        function untrailingslashit($path) {{ return rtrim($path, '/'); }}
        function wp_json_encode($data) {{ return json_encode($data); }}
        require '{migrator.PLUGIN_DIR}/wpclone-migrator-stream.php';
        require '{SITE_PHP}';
        {body}
    """)


def test_the_sources_mu_plugins_are_copied_but_never_wpclones_own(tmp_path: Path) -> None:
    found = site_php(tmp_path, """
        $paths = ['mu-plugins/loader.php', 'mu-plugins/vendor/a.php', 'mu-plugins/wpclone-safety.php',
                  'mu-plugins/wpclone-migrator-site.php', 'plugins/wpclone-migrator/x.php', 'themes/wpclone-x/a.php'];
        $visited = 0;
        echo json_encode([
            'excluded' => array_combine($paths, array_map(['WPClone_Site', 'excluded'], $paths)),
            'roots' => WPClone_Site::roots(WPClone_Site::ROOTS),
            'missing_folder' => WPClone_Site::walk(WPMU_PLUGIN_DIR, 'mu-plugins', function () use (&$visited) {
                $visited++;
            }) + $visited,
        ]);""")
    assert found["excluded"] == {"mu-plugins/loader.php": False, "mu-plugins/vendor/a.php": False,
                                 "mu-plugins/wpclone-safety.php": True, "mu-plugins/wpclone-migrator-site.php": True,
                                 "plugins/wpclone-migrator/x.php": True, "themes/wpclone-x/a.php": False}
    assert found["roots"] == {**{name: f"{tmp_path}/wp-content/{name}" for name in
                                 ("uploads", "themes", "plugins", "mu-plugins")}, "content": f"{tmp_path}/wp-content"}
    assert found["missing_folder"] == 0  # a site without mu-plugins exports nothing, and does not fail


CONTENT_PATHS = {  # path -> excluded by default, excluded with drop-ins and exclude=[uploads/2019, plugins/big-*]
    "content/languages/fr_FR.mo": (False, False),
    "content/fonts/inter.woff2": (False, False),
    "content/index.php": (False, False),
    "content/my-agency/config.json": (False, False),
    "content/object-cache.php": (True, False),
    "content/sunrise.php": (True, False),
    "content/languages/object-cache.php": (False, False),  # a drop-in is at the top of wp-content only
    "content/uploads/2024/a.jpg": (True, True),  # the other roots are copied as themselves
    "content/plugins/akismet/a.php": (True, True),
    "content/themes/x/style.css": (True, True),
    "content/mu-plugins/loader.php": (True, True),
    "content/cache/page.html": (True, True),
    "content/wp-rocket-config/shop.php": (True, True),
    "content/upgrade/x.zip": (True, True),
    "content/updraft/backup.zip": (True, True),
    "content/ai1wm-backups/site.wpress": (True, True),
    "content/wpclone-migrator/jobs/x": (True, True),
    "content/.htaccess": (True, True),
    "content/languages/.user.ini": (True, True),
    "content/debug.log": (True, True),
    "uploads/2019/05/a.jpg": (False, True),
    "uploads/2020/01/a.jpg": (False, False),
    "plugins/big-shop/shop.php": (False, True),
    "plugins/small/small.php": (False, False),
}


def test_the_rest_of_wp_content_is_copied_but_caches_backups_config_and_drop_ins_are_not(tmp_path: Path) -> None:
    found = site_php(tmp_path, f"""
        $paths = {json.dumps(list(CONTENT_PATHS))};
        $rules = WPClone_Site::rules(true, ['uploads/2019', 'plugins/big-*']);
        echo json_encode(array_combine($paths, array_map(function ($path) use ($rules) {{
            return [WPClone_Site::excluded($path), WPClone_Site::excluded($path, $rules)];
        }}, $paths)));""")
    assert found == {path: list(expected) for path, expected in CONTENT_PATHS.items()}


@pytest.mark.parametrize("pattern", ["uploads/2019/05", "uploads", "../etc/passwd", "wp-config.php/x",
                                     "uploads/", r"content/a\u0000b"])
def test_exclusions_name_a_top_level_entry_of_a_content_folder_or_are_refused(tmp_path: Path, pattern: str) -> None:
    found = site_php(tmp_path, f"""
        try {{ WPClone_Site::rules(false, [json_decode('"{pattern}"')]); echo json_encode(['refused' => null]); }}
        catch (WPClone_Error $error) {{ echo json_encode(['refused' => $error->getMessage()]); }}""")
    assert "must name a top-level entry of a content folder" in str(found["refused"])


def test_the_operator_knows_the_drop_ins_the_migrator_knows() -> None:
    source = SITE_PHP.read_text()
    listed = re.search(r"const DROPINS = \[(.*?)\];", source, re.DOTALL)
    assert listed is not None
    assert set(re.findall(r"'([^']+)'", listed.group(1))) == DROPINS


@pytest.mark.parametrize("file_name", sorted(migrator.mu_plugins()))
def test_our_mu_plugins_are_named_so_that_no_copy_carries_them(file_name: str) -> None:
    assert file_name.startswith("wpclone-")

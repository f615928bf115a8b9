"""Production is left no weaker by a restore (issue "Trust boundaries", part 4), through the migrator's
own PHP run outside WordPress (the few WordPress names it uses stood in for, as migrator_import.php does):
uploads refuse files a web server may run or read as configuration, and leave production exactly as it
was; imported files are 0644 and folders 0755 whatever the stream says; a kept backup's folder denies
the web. Needs only the php CLI; no database (the imports here carry files only)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from wpclone_common import constants
from wpclone_engine import frames
from wpclone_engine.migrator import PLUGIN_DIR
from wpclone_engine.wordpress import Migrator

MIGRATOR = PLUGIN_DIR

DRIVER = r"""<?php
define('ABSPATH', __DIR__ . '/');
define('KB_IN_BYTES', 1024);
define('MB_IN_BYTES', 1024 * 1024);
define('WP_CONTENT_DIR', (string) getenv('WPCLONE_CONTENT_DIR'));
define('WP_PLUGIN_DIR', WP_CONTENT_DIR . '/plugins');
define('WPMU_PLUGIN_DIR', WP_CONTENT_DIR . '/mu-plugins');
if (getenv('WPCLONE_TEST_BACKUPS_BESIDE')) {
    define('WPCLONE_BACKUP_DIR', false);  // as where nothing outside the document root is writable
}
if (getenv('WPCLONE_TEST_CLONE_TOKEN')) {
    define('WPCLONE_MIGRATOR_TOKEN', getenv('WPCLONE_TEST_CLONE_TOKEN'));  // the site is a clone
}
function wp_json_encode($data, $flags = 0) { return json_encode($data, $flags); }
function wp_mkdir_p(string $folder): bool { return is_dir($folder) || mkdir($folder, 0755, true); }
function wp_upload_dir($time = null, $create = true) { return ['basedir' => WP_CONTENT_DIR . '/uploads']; }
function get_theme_root() { return WP_CONTENT_DIR . '/themes'; }
function untrailingslashit(string $path): string { return rtrim($path, '/\\'); }

$migrator = (string) getenv('WPCLONE_MIGRATOR');
require $migrator . '/wpclone-migrator-stream.php';
require $migrator . '/wpclone-migrator-site.php';
require $migrator . '/wpclone-migrator-import.php';
require $migrator . '/wpclone-migrator-backup.php';

// Imports of files only never reach the database: a WPClone_Db that is never connected.
$db = (new ReflectionClass('WPClone_Db'))->newInstanceWithoutConstructor();
$input = json_decode((string) stream_get_contents(STDIN), true);
try {
    if ($argv[1] === 'import') {
        $roots = WPClone_Site::roots($input['roots']);
        $job = WPClone_Job::start(['database' => false, 'tables' => null, 'roots' => array_keys($roots),
            'seq' => 0, 'last' => null, 'staged' => [], 'open_table' => null, 'rows' => 0]);
        foreach ($roots as $folder) {
            wp_mkdir_p($folder . '/.wpclone-' . $job->id());
        }
        try {  // as WPClone_Import::files, then ::commit
            $chunk = fopen('php://temp', 'w+b');
            fwrite($chunk, base64_decode($input['chunk']));
            rewind($chunk);
            $body = new WPClone_Frame_Reader($chunk);
            $body->read($body->next()[1]);  // its H frame
            $job->save_manifest(1, WPClone_Import_Files::apply($job, $body));
            $files = WPClone_Import_Files::finish($job, 1);
            $backup = WPClone_Backups::swap_in($db, $job);
        } catch (Throwable $error) {
            foreach ($roots as $folder) {  // WPClone_Import::discard, without tables
                WPClone_Backups::remove_folder($folder . '/.wpclone-' . $job->id());
            }
            $job->forget();
            throw $error;
        }
        $job->forget();
        WPClone_Backups::save($backup);
        $answer = ['files' => $files, 'backup' => $backup];
    } elseif ($argv[1] === 'delete') {
        $path = WPClone_Job::folder('backups/' . $input['id'] . '.json');
        $backup = json_decode((string) file_get_contents($path), true);
        WPClone_Backups::remove($db, $backup);
        $answer = ['deleted' => $input['id'], 'backups' => WPClone_Backups::all()];
    } elseif ($argv[1] === 'forbidden') {
        $answer = array_map(['WPClone_Import_Files', 'forbidden'], $input);
    }
} catch (WPClone_Error $error) {
    $answer = ['error' => $error->reason, 'message' => $error->getMessage(), 'status' => $error->status];
}
echo json_encode($answer);
"""


@pytest.fixture
def content(tmp_path: Path) -> Path:
    """A production wp-content: uploads with a picture and a text file, a theme with PHP."""
    assert shutil.which("php") is not None, "php is not installed: run testenv/install-system-packages.sh"
    root = tmp_path / "wp-content"
    (root / "uploads" / "2024" / "05").mkdir(parents=True)
    (root / "uploads" / "2024" / "05" / "old.jpg").write_bytes(b"\xff\xd8old picture")
    (root / "uploads" / "notes.txt").write_text("production notes")
    (root / "themes" / "live").mkdir(parents=True)
    (root / "themes" / "live" / "functions.php").write_text("<?php // production theme\n")
    (root / "plugins").mkdir()
    return root


def run(content: Path, mode: str, data: Any, env: dict[str, str] | None = None) -> Any:
    driver = content.parent / "driver.php"
    driver.write_text(DRIVER)
    done = subprocess.run(["php", "-d", "error_reporting=-1", "-d", "display_errors=stderr", str(driver), mode],
                          input=json.dumps(data).encode(), capture_output=True, timeout=60,
                          env={**os.environ, "WPCLONE_CONTENT_DIR": str(content), "WPCLONE_MIGRATOR": str(MIGRATOR),
                               **(env or {})})
    assert done.returncode == 0 and not done.stderr, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


def chunk(files: dict[str, bytes], mode: int = 0o777) -> str:
    body = frames.encode_json(frames.HEADER, {"job": "0123456789ab", "seq": 1})
    for path, data in files.items():
        record = [path.encode(), b"0", str(len(data)).encode(), b"1700000000", str(mode).encode(), data]
        body += frames.encode_frame(frames.PIECE, frames.encode_record(record))
    return base64.b64encode(body).decode()


def import_files(content: Path, files: dict[str, bytes], roots: list[str], mode: int = 0o777,
                 env: dict[str, str] | None = None) -> Any:
    return run(content, "import", {"roots": roots, "chunk": chunk(files, mode)}, env)


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under `folder` (the migrator's own folder aside): its mode and content."""
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if relative.startswith("wpclone-migrator") or relative == "driver.php":
            continue
        found[relative] = (stat.S_IMODE(path.lstat().st_mode), path.read_bytes() if path.is_file() else None)
    return found


REFUSED = ["uploads/evil.php", "uploads/2024/05/x.php.jpg", "uploads/a.PHTML", "uploads/shell.php7",
           "uploads/s.phar", "uploads/s.pht", "uploads/s.phps", "uploads/run.cgi", "uploads/run.pl",
           "uploads/run.py", "uploads/run.sh", "uploads/page.shtml", "uploads/p.asp", "uploads/p.aspx",
           "uploads/p.jsp", "uploads/.htaccess", "uploads/deep/.htpasswd", "uploads/.user.ini",
           "uploads/php.ini", "uploads/WEB.CONFIG", "uploads/x.Php5", "uploads/x.php3.png"]
ALLOWED = ["uploads/photo.jpg", "uploads/doc.pdf", "uploads/notes.txt", "uploads/phpinfo.txt",
           "uploads/graphic.phpx", "uploads/my.photos.jpg", "uploads/script.js", "uploads/style.css",
           "themes/t/functions.php", "themes/t/.htaccess", "plugins/p/p.php", "plugins/p/run.sh",
           "uploads/folder.php/a.jpg"]


def test_the_forbidden_names_are_exactly_executable_and_server_configuration_files(content: Path) -> None:
    answers = run(content, "forbidden", REFUSED + ALLOWED)
    assert dict(zip(REFUSED + ALLOWED, answers, strict=True)) == {
        **{path: True for path in REFUSED}, **{path: False for path in ALLOWED}}


@pytest.mark.parametrize("path", ["uploads/evil.php", "uploads/2024/05/x.php.jpg", "uploads/.htaccess",
                                  "uploads/sub/.user.ini", "uploads/Web.Config", "uploads/shell.PHAR"])
def test_an_upload_that_could_run_is_refused_and_production_is_left_exactly_as_it_was(
        content: Path, path: str) -> None:
    before = snapshot(content)
    answer = import_files(content, {"uploads/2024/05/new.jpg": b"new picture", path: b"<?php system($_GET[1]);"},
                          ["uploads", "themes"])
    assert answer["error"] == "forbidden_file"
    assert json.dumps(path) in answer["message"] and answer["status"] == 422
    assert snapshot(content) == before  # nothing swapped in, no staging folder, no backup left
    assert not list((content / "wpclone-migrator" / "jobs").iterdir())


def test_a_clone_receives_productions_uploads_as_they_are(content: Path) -> None:
    # Cloning copies production's own uploads (a security plugin's .htaccess among them) into a clone,
    # whose configuration defines WPCLONE_MIGRATOR_TOKEN: refused only on the way back to production.
    answer = import_files(content, {"uploads/.htaccess": b"Require all denied\n"}, ["uploads"],
                          env={"WPCLONE_TEST_CLONE_TOKEN": "clone-token"})
    assert "error" not in answer, answer
    assert (content / "uploads" / ".htaccess").read_bytes() == b"Require all denied\n"


def test_php_in_themes_and_plugins_is_restored_and_every_mode_is_normalized(content: Path) -> None:
    answer = import_files(content, {"uploads/2024/06/new.jpg": b"new picture", "uploads/notes.txt": b"new notes",
                                    "themes/t/functions.php": b"<?php // clone theme\n",
                                    "plugins/p/lib/p.php": b"<?php // plugin\n"},
                          ["uploads", "themes", "plugins"], mode=0o4777)
    assert "error" not in answer, answer
    assert answer["files"] == 4
    for relative in ["uploads/2024/06/new.jpg", "uploads/notes.txt", "themes/t/functions.php",
                     "plugins/p/lib/p.php"]:
        assert stat.S_IMODE((content / relative).stat().st_mode) == 0o644, relative
    for relative in ["uploads/2024", "uploads/2024/06", "themes/t", "plugins/p", "plugins/p/lib"]:
        assert stat.S_IMODE((content / relative).stat().st_mode) == 0o755, relative
    assert (content / "uploads" / "notes.txt").read_bytes() == b"new notes"
    assert not (content / "uploads" / "2024" / "05").exists()  # the import replaced uploads as a whole


BESIDE = {"WPCLONE_TEST_BACKUPS_BESIDE": "1"}


def test_a_backup_is_kept_outside_the_document_root_for_the_sites_user_only(content: Path) -> None:
    answer = import_files(content, {"uploads/new.jpg": b"new", "themes/t/style.css": b"/* new */"},
                          ["uploads", "themes"])
    backup = answer["backup"]
    document_root = content.parent  # ABSPATH of the driver
    for root, kept in [("uploads", ["2024", "notes.txt"]), ("themes", ["live"])]:
        folder = Path(backup["folders"][root]["backup"])
        assert document_root not in folder.parents and folder.parent.name == backup["id"], folder
        assert folder.parent.parent.name.startswith(".wpclone-backups-")
        assert stat.S_IMODE(folder.parent.parent.stat().st_mode) == 0o700
        assert sorted(entry.name for entry in (folder / "site").iterdir()) == kept
        assert not list((content / root).glob(".wpclone-backup-*"))
    store = Path(backup["folders"]["uploads"]["backup"]).parent.parent
    run(content, "delete", {"id": backup["id"]})
    assert not (store / backup["id"]).exists()


def test_where_nothing_outside_is_writable_a_backups_folder_denies_the_web(content: Path) -> None:
    answer = import_files(content, {"uploads/new.jpg": b"new", "themes/t/style.css": b"/* new */"},
                          ["uploads", "themes"], env=BESIDE)
    backup = answer["backup"]
    for root, kept in [("uploads", ["2024", "notes.txt"]), ("themes", ["live"])]:
        folder = content / root / f".wpclone-backup-{backup['id']}"
        assert backup["folders"][root]["backup"] == str(folder)
        assert backup["folders"][root]["kept"] == f"{folder}/site"
        htaccess = (folder / ".htaccess").read_text()
        assert "Require all denied" in htaccess and "Deny from all" in htaccess
        assert "php_flag engine off" in htaccess
        assert 'accessType="Deny" users="*"' in (folder / "web.config").read_text()
        assert "http_response_code(404)" in (folder / "index.php").read_text()
        assert sorted(entry.name for entry in (folder / "site").iterdir()) == kept
    assert (content / "uploads" / f".wpclone-backup-{backup['id']}" / "site" / "2024" / "05" / "old.jpg").read_bytes() \
        == b"\xff\xd8old picture"
    # The live folders hold the import only: none of the deny files leaked into them.
    assert sorted(entry.name for entry in (content / "uploads").iterdir()
                  if not entry.name.startswith(".wpclone-")) == ["new.jpg"]


def test_deleting_a_backup_removes_its_folder_with_its_deny_files(content: Path) -> None:
    first = import_files(content, {"uploads/a.jpg": b"a"}, ["uploads"], env=BESIDE)["backup"]
    second = import_files(content, {"uploads/b.jpg": b"b"}, ["uploads"], env=BESIDE)["backup"]
    answer = run(content, "delete", {"id": first["id"]}, env=BESIDE)
    assert [backup["id"] for backup in answer["backups"]] == [second["id"]]
    assert not (content / "uploads" / f".wpclone-backup-{first['id']}").exists()
    assert (content / "uploads" / f".wpclone-backup-{second['id']}" / ".htaccess").is_file()


def test_the_migrators_refusal_becomes_a_permanent_forbidden_file_reason() -> None:
    from wpclone_operator.restoring import RESTORE_PERMANENT_REASONS

    migrator = Migrator(httpx.AsyncClient(), "https://shop.example", login="admin", password="pw", role="target")
    body = json.dumps({"code": "wpclone_forbidden_file", "message": 'refusing "uploads/evil.php"'}).encode()
    refusal = migrator._refusal("import/files", 422, body)
    assert refusal.reason == constants.FORBIDDEN_FILE and "uploads/evil.php" in str(refusal)
    assert constants.FORBIDDEN_FILE in RESTORE_PERMANENT_REASONS
    other = migrator._refusal("import/files", 400, json.dumps({"code": "wpclone_bad_path", "message": "no"}).encode())
    assert other.reason == "MigratorError"

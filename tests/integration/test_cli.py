"""The `wpclone` command against the real API and operator: what a person at a terminal or a script sees."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from testenv import cluster
from testenv.api_process import ApiProcess
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import get_json
from wpclone_api import login_links

pytestmark = pytest.mark.integration


def wpclone(api: ApiProcess, *args: str, password: str = "", token: str | None = None,
            api_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command as installed (`python -m wpclone_cli` is the same entry point), its address and token
    from the environment and no config file."""
    env = {**os.environ, "WPCLONE_API_URL": api_url or api.url, "WPCLONE_API_TOKEN": token or api.token,
           "WPCLONE_CONFIG": "/nonexistent/config.toml"}
    return subprocess.run([sys.executable, "-m", "wpclone_cli", *args], input=password + "\n", env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_clone_waited_for_then_listed_extended_logged_into_and_deleted(
        api: ApiProcess, operator: OperatorProcess, control_plane: cluster.ControlPlane,
        wordpress_sites: list[WordPressSite]) -> None:
    site, name = wordpress_sites[0], f"cli-{uuid.uuid4().hex[:6]}"
    made = wpclone(api, "clone", site.url, "--user", site.admin_user, "--password-stdin", "--name", name,
                   "--snapshot-max-age", "10", "--pool", "warm", "--wait", password=site.admin_password)
    assert made.returncode == 0, made.stderr
    # (this operator copies in-process, where no snapshot's volume is: the clone read its site; and the
    # namespace has no pool "warm": the clone was made the usual way)
    spec = json.loads(control_plane.kubectl("get", "-n", api.namespace, "wpc", name, "-o", "json"))["spec"]
    assert spec["snapshot"] == {"maxAgeMinutes": 10} and spec["pool"] == "warm"
    assert f"http://{name}." in made.stdout and "is ready" in made.stdout
    assert site.admin_password not in made.stdout + made.stderr
    # Not a terminal: progress as plain lines on standard error, one per change.
    assert "completed" in made.stderr.splitlines()[-1]

    listed = wpclone(api, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (mine,) = [clone for clone in json.loads(listed.stdout) if clone["clone_id"] == name]
    assert mine["status"] == "completed" and mine["password"] is None

    extended = wpclone(api, "--json", "extend", name, "90")
    assert extended.returncode == 0 and json.loads(extended.stdout)["clone_id"] == name

    # One click into wp-admin: the link logs in once, then says it was used; a forged or expired one never.
    link = json.loads(wpclone(api, "--json", "login", name).stdout)["url"]
    assert site.admin_password not in link and "password" not in link
    opened = httpx.get(link, follow_redirects=False, timeout=30)
    assert opened.status_code == 302 and opened.headers["location"].endswith("/wp-admin/"), opened.text[:300]
    dashboard = httpx.get(opened.headers["location"], cookies=opened.cookies, timeout=30)
    assert dashboard.status_code == 200 and "Dashboard" in dashboard.text
    again = httpx.get(link, follow_redirects=False, timeout=30)
    assert again.status_code == 410 and "used already" in again.text
    forged_link = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
    forged = httpx.get(forged_link, follow_redirects=False, timeout=30)
    assert forged.status_code == 403 and "not valid" in forged.text
    admin = get_json(control_plane, api.namespace, "secret", f"{name}-admin")
    token, user = (base64.b64decode(admin["data"][key]).decode() for key in ("migrator-token", "username"))
    expired = login_links.link(link.split("/wp-login.php")[0], token, user, int(time.time()) - 1)
    late = httpx.get(expired, follow_redirects=False, timeout=30)
    assert late.status_code == 410 and "expired" in late.text

    # Production (the shared seeded site) only previewed: a dry run writes nothing and keeps no backup.
    preview = wpclone(api, "restore", mine["job_id"], "--target", site.url, "--target-user", site.admin_user,
                      "--target-password-stdin", "--dry-run", "--wait", password=site.admin_password)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert "completed" in preview.stdout and site.admin_password not in preview.stdout + preview.stderr
    assert wpclone(api, "backups", site.url).stdout.strip() == "no backups"
    missing = wpclone(api, "rollback", site.url, "no-such-backup", "--target-user", site.admin_user,
                      "--target-password-stdin", "--wait", password=site.admin_password)
    assert missing.returncode == 1 and "no-such-backup" in missing.stdout

    gone = wpclone(api, "delete", name)
    assert gone.returncode == 0 and f"{name} is being deleted" in gone.stdout


def test_failures_exit_with_their_code_and_a_reason(
        api: ApiProcess, operator: OperatorProcess, wordpress_sites: list[WordPressSite]) -> None:
    site, name = wordpress_sites[0], f"cli-{uuid.uuid4().hex[:6]}"
    denied = wpclone(api, "clone", site.url, "--user", site.admin_user, "--password-stdin", "--name", name,
                     "--wait", password="not-the-password")
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert "failed" in denied.stdout and f"login failed for {site.admin_user}" in denied.stdout
    assert "not-the-password" not in denied.stdout + denied.stderr

    wrong_token = wpclone(api, "list", token="not-a-token")
    assert wrong_token.returncode == 3 and "refused (401)" in wrong_token.stderr
    too_long = wpclone(api, "extend", name, "100000")
    assert too_long.returncode == 3 and "refused (422)" in too_long.stderr
    nowhere = wpclone(api, "list", api_url="http://127.0.0.1:9")
    assert nowhere.returncode == 4 and "cannot reach the API" in nowhere.stderr
    no_password = wpclone(api, "clone", site.url, "--user", "a", "--password-stdin", "--name", name, password="")
    assert no_password.returncode == 2 and "no password on standard input" in no_password.stderr
    wpclone(api, "delete", name)

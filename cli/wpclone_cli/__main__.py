"""`wpclone`: the REST API from a terminal or a script.

    wpclone clone https://shop.example.com --user admin --password-stdin --name acme-shop --wait
    wpclone status JOB · list · extend CLONE MINUTES · login CLONE [--open] · delete CLONE
    wpclone restore JOB --target URL --target-user admin --target-password-stdin [--dry-run] [--wait]
                        [--on-conflict merge|fail|overwrite] [--merge-conflicts fail|prefer_clone|prefer_production]
    wpclone backups URL · rollback URL BACKUP --target-user admin --target-password-stdin [--wait]

The API's address and token come from --api-url/--token, else WPCLONE_API_URL/WPCLONE_API_TOKEN, else the
config file (~/.config/wpclone/config.toml, or WPCLONE_CONFIG: `api_url = "..."`, `token = "..."`).
Passwords are read from standard input, never from the command line (where `ps` shows them).
--json prints the API's answers as JSON, one per line, for scripts.

Exit codes: 0 done (a waited-for job completed); 1 the job failed or expired; 2 a usage error; 3 the API
refused the request (its message is printed); 4 the API could not be reached or failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

DONE, FAILED, USAGE, REFUSED, UNREACHABLE = 0, 1, 2, 3, 4
ENDED = ("completed", "failed", "expired")
POLL_SECONDS = 1.0


class Stop(Exception):
    """Ends the command with an exit code and a message for standard error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Target:
    api_url: str
    token: str


def target(flags: argparse.Namespace, environ: dict[str, str]) -> Target:
    """Where the API is and how to call it: flags, then the environment, then the config file."""
    path = Path(environ.get("WPCLONE_CONFIG") or Path.home() / ".config" / "wpclone" / "config.toml")
    try:
        config = tomllib.loads(path.read_text()) if path.is_file() else {}
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise Stop(USAGE, f"cannot read the config file {path}: {error}") from None
    api_url = flags.api_url or environ.get("WPCLONE_API_URL") or config.get("api_url")
    token = flags.token or environ.get("WPCLONE_API_TOKEN") or config.get("token")
    if not api_url or not token:
        raise Stop(USAGE, "no API address or token: pass --api-url and --token, set WPCLONE_API_URL and "
                          f"WPCLONE_API_TOKEN, or write api_url and token in {path}")
    return Target(str(api_url).rstrip("/"), str(token))


class Api:
    def __init__(self, where: Target) -> None:
        self._http = httpx.Client(base_url=where.api_url, headers={"Authorization": f"Bearer {where.token}"},
                                  timeout=30)

    def call(self, method: str, path: str, **options: Any) -> Any:
        try:
            answer = self._http.request(method, path, **options)
        except httpx.HTTPError as error:
            raise Stop(UNREACHABLE, f"cannot reach the API at {self._http.base_url}: {type(error).__name__}") from None
        try:
            body = answer.json()
        except ValueError:
            body = {"message": answer.text[:200]}
        if answer.status_code >= 500:
            raise Stop(UNREACHABLE, f"the API failed ({answer.status_code}): {_message(body)}")
        if answer.status_code >= 400:
            raise Stop(REFUSED, f"refused ({answer.status_code}): {_message(body)}")
        return body


def _message(body: Any) -> str:
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)


def read_password(stdin: Any, what: str) -> str:
    line = stdin.readline().rstrip("\r\n")
    if not line:
        raise Stop(USAGE, f"no {what} on standard input")
    return str(line)


def wait(api: Api, job_id: str, show: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Asks for the job's status until it ends; `show` sees each answer."""
    while True:
        job: dict[str, Any] = api.call("GET", f"/api/v2/job-status/{job_id}")
        show(job)
        if job["status"] in ENDED:
            return job
        time.sleep(POLL_SECONDS)


def progress_line(job: dict[str, Any]) -> str:
    """The job's state in words: what it is doing and how much it has moved."""
    progress = job.get("progress") or {}
    parts = [job["status"]] + ([progress["phase"]] if progress.get("phase") else [])
    moved = [f"{progress[key]} {key}" for key in ("rows", "files") if progress.get(key)]
    waiting = [job["message"]] if job.get("message") and not progress.get("phase") else []  # say, for a copy slot
    return " · ".join(parts + moved + waiting)


class Shown:
    """A live bar on a terminal (bytes moved, rows and files, time), plain lines otherwise."""

    def __init__(self, console: Console) -> None:
        self._console, self._last = console, ""
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                             console=console, transient=True) if console.is_terminal else None
        self._task = self._bar.add_task("pending", total=None) if self._bar else None

    def __enter__(self) -> Shown:
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._bar:
            self._bar.stop()

    def __call__(self, job: dict[str, Any]) -> None:
        line = progress_line(job)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=line, completed=(job.get("progress") or {}).get("bytes") or 0)
        elif line != self._last:
            self._console.print(line, highlight=False, markup=False)
        self._last = line


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="wpclone", description="Temporary clones of WordPress sites, by the REST API.",
                                  epilog="Exit codes: 0 done, 1 job failed or expired, 2 usage, 3 refused by the "
                                         "API, 4 API unreachable or failing.")
    top.add_argument("--api-url", help="the API's address (else WPCLONE_API_URL, else the config file)")
    top.add_argument("--token", help="a bearer token (else WPCLONE_API_TOKEN, else the config file)")
    top.add_argument("--json", action="store_true", help="print the API's answers as JSON lines")
    # --json after the command too (`wpclone status JOB --json`); unset there, the top level's stands.
    anywhere = argparse.ArgumentParser(add_help=False)
    anywhere.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON lines")
    commands = top.add_subparsers(dest="command", required=True)

    def command(name: str, **options: Any) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[anywhere], **options)


    clone = command("clone", help="clone a site")
    clone.add_argument("url")
    clone.add_argument("--user", required=True, help="an administrator of the site")
    clone.add_argument("--password-stdin", action="store_true", required=True, help="read the password from stdin")
    clone.add_argument("--name", required=True, help="the clone's name (a DNS label): its host name")
    clone.add_argument("--ttl", type=int, help="minutes the clone lives")
    clone.add_argument("--database", choices=["mysql", "sqlite"],
                       help="where the clone keeps its tables (default: the installation's)")
    clone.add_argument("--snapshot-max-age", type=int, metavar="MINUTES",
                       help="build the clone from a snapshot of the site at most this old, recording one when "
                            "there is none (0: read the site itself; default: the installation's)")
    clone.add_argument("--pool", help="take a ready blank clone of this warm pool: only the copy is left "
                                      "(default: the installation's default pool, if any)")
    clone.add_argument("--wait", action="store_true", help="wait until the clone is ready, showing progress")

    login = command("login", help="a one-click, single-use link into a clone's wp-admin")
    login.add_argument("clone", help="the clone's name")
    login.add_argument("--open", action="store_true", help="open it in the browser")

    status = command("status", help="a job's state")
    status.add_argument("job")
    status.add_argument("--wait", action="store_true", help="wait until the job ends")

    command("list", help="your clones")
    extend = command("extend", help="set a clone's life to MINUTES from its creation")
    extend.add_argument("clone")
    extend.add_argument("minutes", type=int)
    delete = command("delete", help="delete a clone now")
    delete.add_argument("clone")

    restore = command("restore", help="push a clone (by its clone job) to production")
    restore.add_argument("job", help="the clone's job id")
    restore.add_argument("--target", required=True, help="the production site's URL")
    rollback = command("rollback", help="put a backup back on production")
    rollback.add_argument("target", help="the production site's URL")
    rollback.add_argument("backup", help="a backup id (see `wpclone backups URL`)")
    for job in (clone, restore, rollback):
        job.add_argument("--callback-url", help="POST the job's end there (signed with your tenant's webhook secret)")
    for writes_production in (restore, rollback):
        writes_production.add_argument("--target-user", required=True)
        writes_production.add_argument("--target-password-stdin", action="store_true", required=True)
        writes_production.add_argument("--wait", action="store_true", help="wait until the job ends")
    restore.add_argument("--dry-run", action="store_true", help="only report what would change")
    restore.add_argument("--no-backup", action="store_true", help="do not keep a backup of production first")
    restore.add_argument("--on-conflict", choices=("merge", "fail", "overwrite"),
                         help="merge (row by row, production's changes kept: the default into the clone's own "
                              "source), fail, or overwrite")
    restore.add_argument("--merge-conflicts", choices=("fail", "prefer_clone", "prefer_production"), default="fail",
                         help="in a merge, rows changed on both sides (default: fail, write nothing)")
    backups = command("backups", help="the backups your restores kept on a production site")
    backups.add_argument("target")
    return top


def run(flags: argparse.Namespace, api: Api, stdin: Any, out: Console, err: Console) -> int:
    def say(answer: Any, text: str) -> None:
        out.print(json.dumps(answer) if flags.json else text, highlight=False, markup=False, soft_wrap=True)

    def started(job_id: str) -> int:
        if not getattr(flags, "wait", False):
            say(api.call("GET", f"/api/v2/job-status/{job_id}"), job_id)
            return DONE
        with Shown(err) as show:
            job = wait(api, job_id, show)
        say(job, summary(job))
        return DONE if job["status"] == "completed" else FAILED

    if flags.command == "clone":
        body = {"source_url": flags.url, "source_username": flags.user, "customer_id": flags.name,
                "source_password": read_password(stdin, "password"), "ttl_minutes": flags.ttl,
                **({"database": flags.database} if flags.database else {}),
                **({"snapshot_max_age_minutes": flags.snapshot_max_age} if flags.snapshot_max_age is not None else {}),
                **({"pool": flags.pool} if flags.pool else {}), "callback_url": flags.callback_url}
        return started(api.call("POST", "/api/v2/clone", json=body)["job_id"])
    if flags.command == "status":
        return started(flags.job)
    if flags.command == "list":
        clones = api.call("GET", "/api/v2/clones")
        say(clones, "\n".join(f"{clone['clone_id']}\t{clone['status']}\t{clone.get('clone_url') or '-'}\t"
                              f"expires {clone.get('expires_at') or '-'}" for clone in clones) or "no clones")
        return DONE
    if flags.command == "extend":
        clone = api.call("PATCH", f"/api/v2/clones/{flags.clone}", json={"ttl_minutes": flags.minutes})
        say(clone, f"{clone['clone_id']} expires at {clone['expires_at']}")
        return DONE
    if flags.command == "login":
        link = api.call("POST", f"/api/v2/clones/{flags.clone}/login-link")
        say(link, f"{link['url']}\n(valid once, until {link['expires_at']})")
        if flags.open:
            webbrowser.open(link["url"])
        return DONE
    if flags.command == "delete":
        say(api.call("DELETE", f"/api/v2/delete/{flags.clone}"), f"{flags.clone} is being deleted")
        return DONE
    if flags.command == "backups":
        kept = api.call("GET", "/api/v2/backups", params={"target": flags.target})
        say(kept, "\n".join(f"{backup['backup_id']}\t{backup.get('created_at') or '-'}\t"
                            f"{'rolled back' if backup['rolled_back'] else 'kept'}" for backup in kept) or "no backups")
        return DONE
    target_login = {"url": flags.target, "username": flags.target_user,
                    "password": read_password(stdin, "target password")}
    if flags.command == "rollback":
        return started(api.call("POST", "/api/v2/rollback",
                                json={"target": target_login, "backup_id": flags.backup,
                                      "callback_url": flags.callback_url})["job_id"])
    clone = api.call("GET", f"/api/v2/job-status/{flags.job}")
    if clone.get("kind") != "clone" or clone["status"] != "completed":
        raise Stop(REFUSED, f"job {flags.job} is no clone ready to restore from (it is {clone['status']})")
    source = {"url": clone["clone_url"], "username": clone["username"], "password": clone["password"]}
    body = {"source": source, "target": target_login, "dry_run": flags.dry_run, "backup": not flags.no_backup,
            "on_conflict": flags.on_conflict, "merge_conflicts": flags.merge_conflicts,
            "callback_url": flags.callback_url}
    return started(api.call("POST", "/api/v2/restore", json=body)["job_id"])


def summary(job: dict[str, Any]) -> str:
    """What a person needs of an ended job: its outcome, and where to go next; never a password."""
    if job["status"] != "completed":
        return f"{job['job_id']} {job['status']}: {job.get('error') or 'no reason given'}"
    if job["kind"] == "clone":
        return (f"{job['clone_url']} is ready (login {job['username']}; the password is in "
                f"`wpclone status {job['job_id']} --json`), expires at {job['expires_at']}")
    lines = [f"{job['job_id']} completed" + (f"; backup {job['backup_id']}" if job.get("backup_id") else "")]
    lines += [f"  changes: {change}" for change in job.get("changes") or []]
    lines += [f"  conflict: {conflict}" for conflict in job.get("conflicts") or []]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    flags = parser().parse_args(argv)
    out, err = Console(), Console(stderr=True)
    try:
        return run(flags, Api(target(flags, dict(os.environ))), sys.stdin, out, err)
    except Stop as stop:
        err.print(f"wpclone: {stop.message}", highlight=False, markup=False, soft_wrap=True)
        return stop.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

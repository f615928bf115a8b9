"""The command line's own logic: where it finds the API, what it prints of a job."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from rich.console import Console

from wpclone_cli.__main__ import USAGE, Shown, Stop, parser, progress_line, summary, target


def flags(*args: str) -> argparse.Namespace:
    return parser().parse_args([*args, "list"])


def test_flags_come_before_the_environment_and_the_environment_before_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('api_url = "https://file.example/"\ntoken = "from-file"\n')
    environ = {"WPCLONE_CONFIG": str(config)}
    assert target(flags(), environ).api_url == "https://file.example"
    assert target(flags(), {**environ, "WPCLONE_API_TOKEN": "from-env"}).token == "from-env"
    assert target(flags("--token", "from-flag"), {**environ, "WPCLONE_API_TOKEN": "from-env"}).token == "from-flag"


def test_without_an_address_or_token_the_usage_error_says_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(Stop) as stop:
        target(flags(), {"WPCLONE_CONFIG": str(tmp_path / "absent.toml")})
    assert stop.value.code == USAGE and "--api-url" in stop.value.message and "WPCLONE_API_TOKEN" in stop.value.message
    (tmp_path / "bad.toml").write_text("api_url = ")
    with pytest.raises(Stop, match="cannot read the config file"):
        target(flags(), {"WPCLONE_CONFIG": str(tmp_path / "bad.toml")})


def test_json_goes_before_or_after_the_command() -> None:
    assert parser().parse_args(["status", "j1", "--json"]).json is True
    assert parser().parse_args(["--json", "status", "j1"]).json is True
    assert parser().parse_args(["status", "j1"]).json is False


def test_a_job_that_waits_says_for_what_until_its_copy_moves() -> None:
    waiting = {"status": "running", "message": "waiting for a copy slot: 2nd in line"}
    assert progress_line(waiting) == "running · waiting for a copy slot: 2nd in line"
    moving = {**waiting, "progress": {"phase": "database", "rows": 10}}
    assert progress_line(moving) == "running · database · 10 rows"


def test_what_is_printed_of_a_job_never_holds_its_password() -> None:
    job = {"job_id": "j1", "kind": "clone", "status": "completed", "clone_url": "https://shop.clones.test",
           "username": "admin", "password": "s3cret-generated", "expires_at": "2026-12-01T11:00:00Z",
           "progress": {"phase": "done", "rows": 1200, "files": 80, "bytes": 5000}}
    assert progress_line(job) == "completed · done · 1200 rows · 80 files"
    said = summary(job)
    assert "https://shop.clones.test is ready (login admin" in said and "s3cret-generated" not in said
    failed = summary({"job_id": "j2", "kind": "clone", "status": "failed", "error": "login failed for admin"})
    assert failed == "j2 failed: login failed for admin"


def test_on_a_terminal_progress_is_a_live_bar_and_elsewhere_one_line_per_change() -> None:
    jobs = [{"job_id": "j1", "status": "running", "progress": {"phase": "database", "bytes": 1000, "rows": 10}},
            {"job_id": "j1", "status": "running", "progress": {"phase": "database", "bytes": 1000, "rows": 10}},
            {"job_id": "j1", "status": "running", "progress": {"phase": "files", "bytes": 9000, "files": 3}}]
    terminal = io.StringIO()
    with Shown(Console(file=terminal, force_terminal=True, width=100)) as show:
        for job in jobs:
            show(job)
    assert "running · files · 3 files" in terminal.getvalue()
    plain = io.StringIO()
    with Shown(Console(file=plain, force_terminal=False)) as show:
        for job in jobs:
            show(job)
    assert plain.getvalue().splitlines() == ["running · database · 10 rows", "running · files · 3 files"]

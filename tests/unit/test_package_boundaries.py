"""Which package may import which: the copy engine stands alone (no Kubernetes, no operator, so a CLI can
use it), the API imports the common package and the engine, never the operator, and the command line
only speaks HTTP to the API."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import wpclone_engine

ENGINE = Path(wpclone_engine.__file__).parent
FORBIDDEN = {"kubernetes", "kopf", "wpclone_common", "wpclone_operator", "wpclone_api"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_engine_module_imports_kubernetes_or_the_operator() -> None:
    modules = sorted(ENGINE.glob("*.py"))
    assert len(modules) > 10
    offenders = {path.name: imported_roots(path) & FORBIDDEN for path in modules if imported_roots(path) & FORBIDDEN}
    assert offenders == {}


def test_the_whole_engine_imports_without_kubernetes_loaded() -> None:
    names = ", ".join(f"wpclone_engine.{path.stem}" for path in sorted(ENGINE.glob("*.py")) if path.stem != "__init__")
    check = (f"import sys, {names}; "
             f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r}); print(loaded)")
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_api_imports_nothing_of_the_operators_own() -> None:
    import wpclone_api
    modules = sorted(Path(wpclone_api.__file__).parent.glob("*.py"))
    assert len(modules) > 5
    assert {path.name: "wpclone_operator" in imported_roots(path) for path in modules} == \
        {path.name: False for path in modules}


def test_the_command_line_is_a_plain_client_of_the_rest_api() -> None:
    """No server package, no Kubernetes: it speaks HTTP to the API only, so it runs anywhere."""
    import wpclone_cli
    modules = sorted(Path(wpclone_cli.__file__).parent.glob("*.py"))
    server = FORBIDDEN | {"wpclone_engine", "fastapi", "aiomysql"}
    assert {path.name: imported_roots(path) & server for path in modules} == {path.name: set() for path in modules}

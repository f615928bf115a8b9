"""The API's description as files for people and tools: the OpenAPI document and a Postman collection made
from it (v2.1 format: one request per operation, an example body from each request schema, the bearer
token and the base URL as collection variables).

    python -m wpclone_api.api_docs docs/api     (make api-docs; a test checks the files are up to date)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from wpclone_api.app import create_app
from wpclone_api.settings import ApiSettings

POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
OPENAPI_FILE, POSTMAN_FILE = "openapi.json", "wpclone.postman_collection.json"


def openapi() -> dict[str, Any]:
    # Tokens and namespace only let the app be built: the document holds neither.
    return create_app(ApiSettings(tokens="documentation", namespace="wpclone")).openapi()


def example(schema: dict[str, Any], document: dict[str, Any], depth: int = 0) -> Any:
    """A value of `schema` to start from: its example or default, else a placeholder by type; objects
    with their required properties (all of them, for the top level of a request)."""
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "examples" in schema:  # an optional field's example stands beside its anyOf
        return schema["examples"][0]
    for choice in ("anyOf", "oneOf"):
        if choice in schema:
            options = [option for option in schema[choice] if option.get("type") != "null"]
            return example(options[0], document, depth) if options else None
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object" and depth < 4:
        wanted = schema.get("required", []) if depth else list(schema.get("properties", {}))
        return {name: example(schema["properties"][name], document, depth + 1) for name in wanted}
    if kind == "array":
        return []
    if "enum" in schema:
        return schema["enum"][0]
    return {"integer": 30, "number": 1.0, "boolean": False}.get(str(kind), "")


def postman(document: dict[str, Any]) -> dict[str, Any]:
    """One request per operation of the document, grouped by its tag (v2 first)."""
    folders: dict[str, list[dict[str, Any]]] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            segments = [f":{part[1:-1]}" if part.startswith("{") else part for part in path.strip("/").split("/")]
            request: dict[str, Any] = {
                "method": method.upper(), "description": operation.get("description", operation.get("summary", "")),
                "header": [{"key": "Content-Type", "value": "application/json"}],
                "url": {"raw": "{{baseUrl}}/" + "/".join(segments), "host": ["{{baseUrl}}"], "path": segments}}
            in_path = [parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "path"]
            if in_path:
                request["url"]["variable"] = [{"key": name, "value": ""} for name in in_path]
            query = [parameter for parameter in operation.get("parameters", []) if parameter["in"] == "query"]
            if query:
                request["url"]["query"] = [{"key": parameter["name"], "value": ""} for parameter in query]
                request["url"]["raw"] += "?" + "&".join(f"{parameter['name']}=" for parameter in query)
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                request["body"] = {"mode": "raw", "raw": json.dumps(example(body["schema"], document), indent=2),
                                   "options": {"raw": {"language": "json"}}}
            tag = (operation.get("tags") or ["other"])[0]
            folders.setdefault(tag, []).append({"name": operation.get("summary", f"{method.upper()} {path}"),
                                                "request": request})
    return {
        "info": {"name": document["info"]["title"], "description": document["info"].get("description", ""),
                 "schema": POSTMAN_SCHEMA},
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{token}}", "type": "string"}]},
        "variable": [{"key": "baseUrl", "value": "http://localhost:8000"}, {"key": "token", "value": ""}],
        "item": [{"name": tag, "item": folders[tag]} for tag in sorted(folders, key=lambda tag: (tag != "v2", tag))],
    }


def files() -> dict[str, str]:
    """Each file's name and its whole text."""
    document = openapi()
    return {OPENAPI_FILE: json.dumps(document, indent=2, sort_keys=True) + "\n",
            POSTMAN_FILE: json.dumps(postman(document), indent=2) + "\n"}


def main(folder: str) -> int:
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (target / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/api"))

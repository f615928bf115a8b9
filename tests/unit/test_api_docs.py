"""The API's description as files: up to date with the app, and a Postman request for every operation whose
example body the API accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from wpclone_api import api_docs
from wpclone_api.schemas import CloneRequest, CloneUpdate, RestoreRequest, RollbackRequest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api"
BODIES: dict[str, type[BaseModel]] = {"CloneRequest": CloneRequest, "CloneUpdate": CloneUpdate,
                                      "RestoreRequest": RestoreRequest, "RollbackRequest": RollbackRequest}


def test_the_committed_files_are_what_the_app_describes_now() -> None:
    for name, text in api_docs.files().items():
        assert (DOCS / name).read_text() == text, f"docs/api/{name} is out of date: run `make api-docs`"


def requests(collection: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(item["request"]["method"], "/" + "/".join(item["request"]["url"]["path"])): item["request"]
            for folder in collection["item"] for item in folder["item"]}


def test_every_operation_is_a_postman_request_whose_example_body_the_api_accepts() -> None:
    document = api_docs.openapi()
    made = requests(api_docs.postman(document))
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            postman_path = "/".join(f":{part[1:-1]}" if part.startswith("{") else part for part in path.split("/"))
            request = made.pop((method.upper(), postman_path))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                model = BODIES[body["schema"]["$ref"].rsplit("/", 1)[1]]
                model.model_validate(json.loads(request["body"]["raw"]))  # raises on a body the API refuses
            else:
                assert "body" not in request
    assert made == {}


def test_the_collection_authenticates_with_a_bearer_token_variable() -> None:
    collection = json.loads((DOCS / api_docs.POSTMAN_FILE).read_text())
    assert collection["info"]["schema"] == api_docs.POSTMAN_SCHEMA
    bearer = [{"key": "token", "value": "{{token}}", "type": "string"}]
    assert collection["auth"] == {"type": "bearer", "bearer": bearer}
    assert {variable["key"] for variable in collection["variable"]} == {"baseUrl", "token"}

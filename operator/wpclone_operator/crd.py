"""Generate the CustomResourceDefinitions from the pydantic models in resources.py.

`python -m wpclone_operator.crd` rewrites crds/; a unit test fails when the files drift.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from wpclone_common import constants, resources

# JSON-schema keywords that a Kubernetes structural schema accepts as they are.
KEPT_KEYWORDS = {"type", "description", "enum", "pattern", "minimum", "maximum", "minLength", "maxLength",
                 "minItems", "maxItems", "format", "default", "x-kubernetes-validations"}
# Names become host-name labels ({name}.{base domain}) and prefixes of the children's names.
# A pool's slots are clones named {pool}-{5 characters}.
POOL_NAME_RULE = {"rule": "self.metadata.name.size() <= 34",
                  "message": "metadata.name must be at most 34 characters: its slots are clones named after it"}
NAME_RULE = {"rule": "self.metadata.name.size() <= 40",
             "message": "metadata.name must be at most 40 characters: it becomes the clone's host name label"}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return _convert(schema, schema.get("$defs", {}))


def _convert(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    result = _convert_node(node, definitions)
    # pydantic writes `default: null` (or {} / []) for optional fields; Kubernetes wants no default.
    if "default" in result and result["default"] in (None, {}, []):
        del result["default"]
    return result


def _convert_node(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _convert(definitions[node["$ref"].split("/")[-1]], definitions) | _keep(node)
    if "anyOf" in node:  # Optional[X]: the field is simply not required
        (inner,) = [option for option in node["anyOf"] if option.get("type") != "null"]
        return _convert(inner, definitions) | _keep(node)
    result = _keep(node)
    if "const" in node:
        result["enum"] = [node["const"]]
    if node.get("type") == "object" and "properties" in node:
        result["properties"] = {key: _convert(value, definitions) for key, value in node["properties"].items()}
        if node.get("required"):
            result["required"] = list(node["required"])
    elif node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        result["additionalProperties"] = _convert(node["additionalProperties"], definitions)
    if node.get("type") == "array":
        result["items"] = _convert(node["items"], definitions)
    return result


def _keep(node: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in node.items() if key in KEPT_KEYWORDS}


def _crd(kind: str, plural: str, short_name: str, spec: type[BaseModel], status: type[BaseModel],
         columns: list[dict[str, str]], root_rules: list[dict[str, str]],
         scale: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{constants.GROUP}"},
        "spec": {
            "group": constants.GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                      "singular": kind.lower(), "shortNames": [short_name], "categories": ["wpclone"]},
            "versions": [{
                "name": constants.VERSION, "served": True, "storage": True,
                "subresources": {"status": {}, **({"scale": scale} if scale else {})},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    **({"x-kubernetes-validations": root_rules} if root_rules else {}),
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": structural_schema(spec),
                        "status": structural_schema(status),
                    },
                }},
            }],
        },
    }


def clone_crd() -> dict[str, Any]:
    return _crd(constants.CLONE_KIND, constants.CLONE_PLURAL, "wpc",
                resources.WordPressCloneSpec, resources.WordPressCloneStatus, [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "URL", "type": "string", "jsonPath": ".status.url"},
                    {"name": "Expires", "type": "date", "jsonPath": ".status.expiresAt"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ], [NAME_RULE])


def restore_crd() -> dict[str, Any]:
    return _crd(constants.RESTORE_KIND, constants.RESTORE_PLURAL, "wpcr",
                resources.CloneRestoreSpec, resources.CloneRestoreStatus, [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Target", "type": "string", "jsonPath": ".spec.target.url"},
                    {"name": "Backup", "type": "string", "jsonPath": ".status.backupId"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ], [])


def snapshot_crd() -> dict[str, Any]:
    return _crd(constants.SNAPSHOT_KIND, constants.SNAPSHOT_PLURAL, "wpsnap",
                resources.SourceSnapshotSpec, resources.SourceSnapshotStatus, [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Source", "type": "string", "jsonPath": ".spec.source.url"},
                    {"name": "Recorded", "type": "date", "jsonPath": ".status.recordedAt"},
                    {"name": "Expires", "type": "date", "jsonPath": ".status.expiresAt"},
                ], [])


def pool_crd() -> dict[str, Any]:
    return _crd(constants.POOL_KIND, constants.POOL_PLURAL, "wpcpool",
                resources.WordPressClonePoolSpec, resources.WordPressClonePoolStatus, [
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Ready", "type": "integer", "jsonPath": ".status.ready"},
                    {"name": "Claimed", "type": "integer", "jsonPath": ".status.claimed"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ], [POOL_NAME_RULE],
                # `kubectl scale`, and autoscalers (KEDA, an HPA on external metrics) set spec.replicas.
                {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"})


def all_crds() -> dict[str, dict[str, Any]]:
    """File name in crds/ -> CRD."""
    return {"wordpressclones.yaml": clone_crd(), "clonerestores.yaml": restore_crd(),
            "sourcesnapshots.yaml": snapshot_crd(), "wordpressclonepools.yaml": pool_crd()}


def render(crd: dict[str, Any]) -> str:
    return "# Generated from operator/resources.py by `python -m wpclone_operator.crd`; do not edit.\n" + \
        yaml.safe_dump(crd, sort_keys=False, allow_unicode=True)


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, crd in all_crds().items():
        (directory / file_name).write_text(render(crd))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "crds")

from pathlib import Path

import pytest
import yaml

from wpclone_operator import crd

CRDS = Path(__file__).parents[2] / "crds"


@pytest.mark.parametrize("file_name", sorted(crd.all_crds()))
def test_crd_files_match_the_models(file_name: str) -> None:
    on_disk = (CRDS / file_name).read_text()
    assert on_disk == crd.render(crd.all_crds()[file_name]), \
        "crds/ drifted from operator/resources.py: run `python -m wpclone_operator.crd`"


@pytest.mark.parametrize("file_name", sorted(crd.all_crds()))
def test_crds_are_structural(file_name: str) -> None:
    schema = crd.all_crds()[file_name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def walk(node: dict, path: str) -> None:
        assert "type" in node, f"{path} has no type"
        for keyword in ("$ref", "anyOf", "allOf", "title", "additionalProperties"):
            if keyword == "additionalProperties" and isinstance(node.get(keyword), dict):
                walk(node[keyword], f"{path}[*]")
                continue
            assert keyword not in node, f"{path} uses {keyword}"
        assert node.get("default", "") is not None, f"{path} has a null default"
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(schema["properties"]["spec"], "spec")
    walk(schema["properties"]["status"], "status")


def test_clone_crd_names_and_columns() -> None:
    spec = crd.clone_crd()["spec"]
    assert spec["names"]["shortNames"] == ["wpc"]
    assert spec["names"]["categories"] == ["wpclone"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [column["name"] for column in version["additionalPrinterColumns"]] == ["Phase", "URL", "Expires", "Age"]
    assert yaml.safe_load(crd.render(crd.clone_crd())) == crd.clone_crd()


@pytest.mark.parametrize("file_name", sorted(crd.all_crds()))
def test_every_field_is_described_for_kubectl_explain(file_name: str) -> None:
    schema = crd.all_crds()[file_name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    undescribed: list[str] = []

    def walk(node: dict, path: str) -> None:
        for key, child in node.get("properties", {}).items():
            if not child.get("description"):
                undescribed.append(f"{path}.{key}")
            walk(child, f"{path}.{key}")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(schema["properties"]["spec"], "spec")
    walk(schema["properties"]["status"], "status")
    assert undescribed == []

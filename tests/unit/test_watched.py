"""A watch-fed view of one kind (the API's clones and restores, the operator's clone pods): events in,
lookups out."""

from __future__ import annotations

import gc
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wpclone_common.watched import Watched


def item(name: str, version: str = "1", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version, "labels": labels}}


def test_nothing_is_answered_before_the_first_list_nor_after_the_watch_broke_off() -> None:
    objects = Watched("v1", "Pod", "jobs")
    assert objects.labelled("tenant", "acme") is None
    objects.replace([item("a", tenant="acme")])
    assert [found["metadata"]["name"] for found in objects.labelled("tenant", "acme") or []] == ["a"]
    objects.lost()
    assert objects.labelled("tenant", "acme") is None and objects.count("tenant", "acme") is None


def test_events_add_change_and_remove_objects() -> None:
    objects = Watched("v1", "Pod", "jobs")
    objects.replace([item("a", tenant="acme"), item("b", tenant="globex")])
    objects.apply("ADDED", item("c", tenant="acme"))
    objects.apply("MODIFIED", item("b", "2", tenant="acme"))
    objects.apply("DELETED", item("a", tenant="acme"))
    objects.apply("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    assert sorted(found["metadata"]["name"] for found in objects.labelled("tenant", "acme") or []) == ["b", "c"]
    assert objects.labelled("tenant", "globex") == []
    assert objects.labelled("job", "x") == []


def test_a_full_list_replaces_what_the_watch_had_shown() -> None:
    objects = Watched("v1", "Pod", "jobs")
    objects.replace([item("a", tenant="acme")])
    objects.apply("ADDED", item("b", tenant="acme"))
    objects.replace([item("c", tenant="acme")])
    assert [found["metadata"]["name"] for found in objects.labelled("tenant", "acme") or []] == ["c"]


def test_a_watch_of_every_namespace_tells_objects_of_the_same_name_apart() -> None:
    objects = Watched("v1", "Pod")
    objects.replace([{"metadata": {"name": "wordpress", "namespace": "acme", "labels": {"clone": "shop"}}}])
    objects.apply("ADDED", {"metadata": {"name": "wordpress", "namespace": "globex", "labels": {"clone": "shop"}}})
    assert objects.named("wordpress", "acme") is not None and objects.named("wordpress", "initech") is None
    assert [found["metadata"]["namespace"] for found in objects.labelled("clone", "shop", "globex") or []] == ["globex"]
    assert len(objects.labelled("clone", "shop") or []) == 2


def test_objects_are_kept_without_their_managed_fields() -> None:
    objects = Watched("v1", "Pod", "jobs")
    written = {"manager": "kubectl", "fieldsV1": {"f:metadata": {"f:labels": {}}}}
    objects.replace([{"metadata": {"name": "a", "managedFields": [written]}}])
    objects.apply("ADDED", {"metadata": {"name": "b", "managedFields": [written], "labels": {"tenant": "acme"}}})
    assert [objects.named(name) for name in "ab"] == [{"metadata": {"name": "a"}},
                                                      {"metadata": {"name": "b", "labels": {"tenant": "acme"}}}]


def test_what_a_reader_changes_in_an_answer_is_not_kept() -> None:
    objects = Watched("v1", "Pod", "jobs")
    objects.replace([item("a", tenant="acme")])
    for found in [objects.named("a"), *(objects.labelled("tenant", "acme") or [])]:
        assert found is not None
        found["metadata"]["labels"]["tenant"] = "globex"
    assert objects.named("a") == item("a", tenant="acme") and objects.count("tenant", "acme") == 1


def test_kept_objects_give_the_garbage_collector_nothing_to_walk() -> None:
    # A full collection walks every tracked container: thousands of watched objects as dicts and lists
    # made each one pause the API's requests for milliseconds.
    objects = Watched("v1", "Pod", "jobs")
    objects.replace([])
    gc.collect()
    before = len(gc.get_objects())
    many = [{**item(f"pod-{number}", tenant="acme"), "status": {"conditions": [{"type": "Ready"}]}}
            for number in range(1000)]
    objects.replace(many)
    objects.apply("ADDED", item("one-more", tenant="acme"))
    objects.labelled("tenant", "acme")
    del many
    gc.collect()
    assert len(gc.get_objects()) - before < 50
    assert objects.count("tenant", "acme") == 1001


def scan(objects: list[dict[str, Any]], label: str, value: str) -> list[str]:
    return sorted(found["metadata"]["name"] for found in objects if found["metadata"]["labels"].get(label) == value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED", "LIST"]), st.sampled_from("abcd"),
                          st.sampled_from(["acme", "globex", None])), max_size=30))
def test_lookups_kept_up_to_date_event_by_event_answer_what_a_scan_of_every_object_would(
        events: list[tuple[str, str, str | None]]) -> None:
    objects, present = Watched("v1", "Pod", "jobs"), {}  # present: what the events leave, by name
    objects.replace([])
    for event, name, tenant in events:
        made = item(name, **({"tenant": tenant} if tenant else {}))
        if event == "LIST":
            present = {name: made}
            objects.replace([made])
        else:
            objects.apply(event, made)
            if event == "DELETED":
                present.pop(name, None)
            else:
                present[name] = made
        for value in ("acme", "globex"):  # asked after every event: the index is built early, then kept
            found, expected = objects.labelled("tenant", value) or [], scan(list(present.values()), "tenant", value)
            assert sorted(found_item["metadata"]["name"] for found_item in found) == expected
            assert objects.count("tenant", value) == len(expected)

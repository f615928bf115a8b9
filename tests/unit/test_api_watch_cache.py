"""The API's watch-fed view of its clones and restores: events in, lookups out."""

from __future__ import annotations

from typing import Any

from wpclone_api.watch_cache import Objects


def item(name: str, version: str = "1", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version, "labels": labels}}


def test_nothing_is_answered_before_the_first_list_nor_after_the_watch_broke_off() -> None:
    objects = Objects()
    assert objects.labelled("tenant", "acme") is None
    objects.replace([item("a", tenant="acme")])
    assert [found["metadata"]["name"] for found in objects.labelled("tenant", "acme") or []] == ["a"]
    objects.lost()
    assert objects.labelled("tenant", "acme") is None


def test_events_add_change_and_remove_objects() -> None:
    objects = Objects()
    objects.replace([item("a", tenant="acme"), item("b", tenant="globex")])
    objects.apply("ADDED", item("c", tenant="acme"))
    objects.apply("MODIFIED", item("b", "2", tenant="acme"))
    objects.apply("DELETED", item("a", tenant="acme"))
    objects.apply("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    assert sorted(found["metadata"]["name"] for found in objects.labelled("tenant", "acme") or []) == ["b", "c"]
    assert objects.labelled("tenant", "globex") == []
    assert objects.labelled("job", "x") == []


def test_a_full_list_replaces_what_the_watch_had_shown() -> None:
    objects = Objects()
    objects.replace([item("a", tenant="acme")])
    objects.apply("ADDED", item("b", tenant="acme"))
    objects.replace([item("c", tenant="acme")])
    assert [found["metadata"]["name"] for found in objects.labelled("tenant", "acme") or []] == ["c"]

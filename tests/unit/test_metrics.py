"""The operator's phase gauges, computed from kopf's index of clones at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from wpclone_operator.metrics import PhaseCollector


def scrape(phases: dict[object, list[str | None]]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(PhaseCollector(lambda: phases))
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for sample in family.samples}


def test_each_clone_counts_once_in_its_phase_and_in_the_queue() -> None:
    samples = scrape({("ns", "a"): [None], ("ns", "b"): ["Pending"], ("ns", "c"): ["Cloning"],
                      ("ns", "d"): ["Provisioning"], ("ns", "e"): ["Ready"], ("ns", "f"): ["Failed"],
                      ("ns", "g"): ["Expired"]})
    clones = {dict(labels)["phase"]: value for (name, labels), value in samples.items() if name == "wpclone_clones"}
    assert clones == {"Pending": 2, "Provisioning": 1, "Cloning": 1, "Ready": 1, "Failed": 1, "Expiring": 0,
                      "Expired": 1}
    assert samples[("wpclone_queue_depth", ())] == 4  # two Pending (one without a phase yet), Provisioning, Cloning


def test_one_pending_and_one_cloning_clone_make_a_queue_of_two() -> None:
    assert scrape({("ns", "a"): ["Pending"], ("ns", "b"): ["Cloning"]})[("wpclone_queue_depth", ())] == 2
    assert scrape({})[("wpclone_queue_depth", ())] == 0

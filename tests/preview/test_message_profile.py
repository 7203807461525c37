"""The preview's bounded summaries: distinct ids exact, then estimated within the stated
error; field coverage the same whether counted by shape or by name."""

from __future__ import annotations

import pytest

from segment_importer_local import message_profile
from segment_importer_local.message_profile import DistinctCount, FieldCoverage


def test_distinct_ids_are_exact_up_to_the_bound() -> None:
    counter = DistinctCount(exact_up_to=50_000)
    for repeat in range(3):
        for number in range(50_000):
            counter.add(f"user-{number}")
        assert counter.result() == {"count": 50_000, "exact": True}, repeat


@pytest.mark.parametrize("distinct", [150_000, 400_000])
def test_past_the_bound_the_estimate_is_within_its_stated_error(distinct: int) -> None:
    counter = DistinctCount(exact_up_to=100_000)
    for _ in range(2):  # each id twice: repeats must not count
        for number in range(distinct):
            counter.add(f"user-{number}")
    found = counter.result()
    assert found["exact"] is False
    error = found["relative_standard_error"]
    assert error == pytest.approx(1 / (4096 - 2) ** 0.5, abs=1e-4)
    assert abs(found["count"] - distinct) < 3 * error * distinct, found
    assert "KMV" in found["method"]


def test_the_sketch_holds_k_values_whatever_the_input() -> None:
    counter = DistinctCount(exact_up_to=10, sketch_size=64)
    for number in range(20_000):
        counter.add(str(number))
    assert len(counter._heap) == len(counter._members) == 64


def test_coverage_by_shape_equals_coverage_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [
        {"plan": "pro", "seats": n, f"extra_{n % 7}": None} if n % 3 else {"plan": None} for n in range(500)
    ]
    by_shape = FieldCoverage()
    for row in rows:
        by_shape.add(row)
    monkeypatch.setattr(message_profile, "MAX_SHAPES", 2)
    by_name = FieldCoverage()
    for row in [*rows, "not an object"]:
        by_name.add(row)
    expected = by_shape.result()
    found = by_name.result()
    assert found["messages"] == expected["messages"] + 1
    assert found["fields"].keys() == expected["fields"].keys()
    for name, entry in expected["fields"].items():
        assert found["fields"][name]["messages"] == entry["messages"]
        assert found["fields"][name]["types"] == entry["types"]
    assert expected["fields"]["plan"] == {"messages": 500, "share": 1.0, "types": ["null", "string"]}

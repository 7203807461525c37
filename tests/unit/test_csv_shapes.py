"""CSV row shapes: a shape's first row is built by its plan, later rows by the function
generated for the shape; both must give what the cell-by-cell walk gives."""

from __future__ import annotations

from typing import Any

import pytest

from segment_importer.mapping.csv_shapes import CellNesting
from segment_importer.mapping.mapper import _CSV_KEYS_KEPT_AS_TEXT, _OBJECT_KEY_SET

ROWS_PER_SHAPE = 4  # the plan's row, the row that generates the code, then generated code


def nesting(*, typed: bool = True, decimal_comma: bool = False) -> CellNesting:
    return CellNesting(
        typed=typed,
        text_keys=_CSV_KEYS_KEPT_AS_TEXT,
        object_keys=_OBJECT_KEY_SET,
        decimal_comma=decimal_comma,
    )


def every_way(
    row: dict[str, Any], *, typed: bool = True, decimal_comma: bool = False
) -> list[dict[str, Any]]:
    """The row nested by a fresh file's plan, then by its generated code, then cell by cell."""
    shapes = nesting(typed=typed, decimal_comma=decimal_comma)
    results = [shapes.nested(dict(row)) for _ in range(ROWS_PER_SHAPE)]
    results.append(shapes._by_cell(dict(row)))
    return results


def test_a_repeated_shape_gets_generated_code() -> None:
    shapes = nesting()
    row = {"userId": "u", "properties.n": "1"}
    for _ in range(ROWS_PER_SHAPE):
        shapes.nested(dict(row))
    assert shapes._shapes[tuple(row)].compiled is not None


def test_generated_code_builds_what_the_plan_and_the_cell_walk_build() -> None:
    row = {
        "type": "track",
        "userId": "007",
        "properties.revenue": "12.5",
        "context.ip": "1.2.3.4",
        "properties.count": "42",
        "plan": "true",
        "context.page.path": "/p",
        "traits.zip": "02134",
        "properties.items": '[{"sku": 1}]',
        "properties.digit": "\u0663",
        "properties.note": "text",
    }
    expected = {
        "type": "track",
        "userId": "007",
        "properties": {
            "revenue": 12.5,
            "count": 42,
            "items": [{"sku": 1}],
            "digit": "\u0663",
            "note": "text",
        },
        "context": {"ip": "1.2.3.4", "page": {"path": "/p"}},
        "plan": True,
        "traits": {"zip": "02134"},
    }
    for result in every_way(row):
        assert result == expected
        assert list(result) == list(expected)  # keys in first-appearance order, at every level
        assert list(result["properties"]) == list(expected["properties"])


def test_untyped_rows_are_nested_but_never_coerced() -> None:
    row = {"userId": 5, "properties.n": "42", "properties.flag": True, "x": None}
    for result in every_way(row, typed=False):
        assert result == {"userId": 5, "properties": {"n": "42", "flag": True}, "x": None}


@pytest.mark.parametrize(
    "name",
    [
        "a'b",
        'a"b',
        "a\\b",
        "x\ny",
        "'}; __import__('os')_exit(1); {'",
        '"}; raise SystemExit; {"',
        "\udc80",
        "Zoë 😀",
        "",
        "v0",
        "c",
    ],
)
def test_column_names_enter_the_generated_code_only_as_literals(name: str) -> None:
    row = {"userId": "u", f"properties.{name}": "1", f"context.{name}": "1"}
    for result in every_way(row):
        assert result == {"userId": "u", "properties": {name: 1}, "context": {name: "1"}}


def test_a_name_too_deep_to_compile_is_still_built_by_its_plan() -> None:
    deep = "properties." + ".".join(["n"] * 400)
    row = {"userId": "u", deep: "7"}
    node: Any = 7
    for _ in range(400):
        node = {"n": node}
    for result in every_way(row):
        assert result == {"userId": "u", "properties": node}


def test_overlapping_and_json_object_columns_take_the_cell_walk() -> None:
    row = {"userId": "u", "properties": '{"plan": "pro", "n": 1}', "properties.n": "2", "a.b": "1", "a": "x"}
    for result in every_way(row):
        # "a" after "a.b": the later cell replaces the object, as the cell walk has always done
        assert result == {"userId": "u", "properties": {"plan": "pro", "n": 2}, "a": "x"}


def test_version_cells_stay_text_wherever_they_are() -> None:
    """QA, a warehouse mobile tracks row: os 14.10, app 2.10 and library 4.10 were sent as the
    numbers 14.1, 2.1 and 4.1. Other decimals are still numbers."""
    row = {
        "context_os_version": "14.10",
        "app_version": "3.20",
        "properties.appVersion": "2.10",
        "traits.Version": "1",
        "properties.price": "19.90",
    }
    for result in every_way(row):
        assert result == {
            "context_os_version": "14.10",
            "app_version": "3.20",
            "properties": {"appVersion": "2.10", "price": 19.9},
            "traits": {"Version": "1"},
        }


def test_build_number_cells_stay_text_and_look_alikes_do_not() -> None:
    """mixpanel-utils' CSV export: `$app_build_number` 5201 was sent as the number 5201 (the
    raw export, and Segment's `context.app.build`, hold text). `buildings` is still data."""
    row = {
        "$app_build_number": "5201",
        "$app_release": "0042",
        "context_app_build": "310",
        "properties.build": "7",
        "properties.buildings": "3",
        "properties.rebuild_count": "2",
    }
    for result in every_way(row):
        assert result == {
            "$app_build_number": "5201",
            "$app_release": "0042",
            "context_app_build": "310",
            "properties": {"build": "7", "buildings": 3, "rebuild_count": 2},
        }


def test_comma_decimals_are_numbers_only_where_the_file_writes_decimals_so() -> None:
    row = {"userId": "u", "properties.price": "12,50", "properties.neg": "-0,5", "properties.n": "3",
           "properties.dot": "2.5", "properties.grouped": "1.234,5", "properties.pair": "1,2,3",
           "properties.lead": "01,5", "properties.text": "a,b", "properties.version": "1,2"}  # fmt: skip
    expected = {"price": 12.5, "neg": -0.5, "n": 3, "dot": 2.5, "grouped": "1.234,5", "pair": "1,2,3",
                "lead": "01,5", "text": "a,b", "version": "1,2"}  # fmt: skip
    for result in every_way(row, decimal_comma=True):
        assert result == {"userId": "u", "properties": expected}
    for result in every_way(row):
        assert result["properties"]["price"] == "12,50"

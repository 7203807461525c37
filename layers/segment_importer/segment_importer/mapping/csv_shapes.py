"""Flat records (CSV rows, renamed columns) -> typed, nested records, planned once per shape.

A CSV row is a flat dict of dotted column names. Inside `properties`/`traits` (and in bare
columns, which become properties or traits) cells are typed by `coercion`; columns holding a
whole object as JSON text (`properties`) are parsed; `{"properties.plan": "pro"}` becomes
`{"properties": {"plan": "pro"}}`. Rows of a file mostly share their set of non-empty
columns, so the work that depends only on the names is planned once per tuple of names (a
row shape) and, from a shape's second row on, runs as one generated function per shape: a
nested dict display over the row's values (`_compiled_builder`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from segment_importer.mapping.coercion import (
    coerce_cell,
    coerce_cell_decimal_comma,
    coerce_text,
    coerce_text_decimal_comma,
    parse_embedded_json,
)
from segment_importer.mapping.profiles import canonical_field

# What a cell of a column turns into, decided once per column name.
_TEXT, _DATA, _OBJECT = 0, 1, 2
# How a data cell is typed: (for a cell known to be text, for any cell).
Coercion = tuple[Callable[[str], Any], Callable[[Any], Any]]
_COERCION: Coercion = (coerce_cell, coerce_text)
_DECIMAL_COMMA_COERCION: Coercion = (coerce_cell_decimal_comma, coerce_text_decimal_comma)
# `build`, `app_build`, `$app_build_number`, `context_app_build`, and Mixpanel's `$app_release`
# (its build number), not `buildings`.
_BUILD_NAME = re.compile(r"(?:^|[^a-z])build(?:_?number)?$|^\$?app_release$")
_MAX_COLUMN_PLANS = 4096  # keys of JSON records renamed by `columns` are unbounded: stop caching
_MAX_ROW_SHAPES = 1024  # distinct sets of non-empty columns planned per file
_COMPILE_AFTER = 1  # rows a shape is built by its plan before its code is generated

Column = tuple[int, tuple[str, ...], str]  # (kind, parent path, leaf)
Builder = Callable[..., dict[str, Any]]


class CellNesting:
    """Types and nests the flat records of one file (`typed`: CSV cells, else JSON values
    that a job's `columns` renamed, nested but never coerced)."""

    __slots__ = ("_coercion", "_object_keys", "_plans", "_shapes", "_text_keys", "_typed")

    def __init__(
        self,
        *,
        typed: bool,
        text_keys: frozenset[str],
        object_keys: frozenset[str],
        decimal_comma: bool = False,
    ) -> None:
        self._typed = typed
        # `12,50` is a number only in files that write decimals so (see coercion)
        self._coercion = _DECIMAL_COMMA_COERCION if decimal_comma else _COERCION
        self._text_keys = text_keys  # top-level names kept as written (ids, times, the spec's own)
        self._object_keys = object_keys  # top-level names whose cells hold an object as JSON text
        self._plans: dict[str, Column] = {}  # per column name
        self._shapes: dict[tuple[str, ...], _RowShape] = {}  # per tuple of names

    def nested(self, record: dict[str, Any]) -> dict[str, Any]:
        """`record` typed and nested, leaving it untouched."""
        names = tuple(record)
        shape = self._shapes.get(names)
        if shape is None:
            columns = [self._column(name) for name in names]
            shape = _RowShape.plan(names, columns, typed=self._typed, coercion=self._coercion)
            if len(self._shapes) < _MAX_ROW_SHAPES:
                self._shapes[names] = shape
        if shape.compiled is not None:
            return shape.compiled(*record.values())
        if shape.builds is not None:
            return shape.build(list(record.values()))
        return self._by_cell(record)

    def _column(self, key: str) -> Column:
        plan = self._plans.get(key)
        if plan is None:
            plan = _column_plan(key, self._text_keys, self._object_keys)
            if len(self._plans) < _MAX_COLUMN_PLANS:
                self._plans[key] = plan
        return plan

    def _by_cell(self, record: dict[str, Any]) -> dict[str, Any]:
        """The general case, one cell at a time: columns whose paths overlap (`properties`
        holding JSON text and `properties.plan`), JSON-text object columns."""
        typed, coerce = self._typed, self._coercion[0]
        nested: dict[str, Any] = {}
        owned: set[int] = set()  # dicts created here, safe to write into; the caller's are copied first
        for key, cell in record.items():
            kind, parents, leaf = self._column(key)
            value = cell
            if typed and kind != _TEXT and isinstance(cell, str):
                if kind == _DATA:
                    value = coerce(cell)
                elif cell.strip():
                    value = parse_embedded_json(cell, fallback=cell)
                else:
                    continue  # a blank object cell is absent
            node = nested
            for part in parents:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                elif id(child) not in owned:
                    child = dict(child)
                owned.add(id(child))
                node[part] = child
                node = child
            existing = node.get(leaf)
            if isinstance(existing, dict) and isinstance(value, dict):
                value = {**value, **existing}  # a JSON-text column and dotted columns: dotted ones win
            node[leaf] = value
        return nested


class _RowShape:
    """How to type and nest every row with one particular tuple of column names.

    Planned only when no column's path lies inside another's (`a.b` with `a` or `a.b.c`)
    and no column holds a whole object as JSON text: then every cell lands in a fresh dict
    of its own and nothing merges, so building the nested dicts node by node gives exactly
    what the cell-by-cell walk gives, keys in the same order. Otherwise `builds` is None.
    """

    __slots__ = ("builds", "coerced", "coercion", "compiled", "nodes", "uses")

    def __init__(
        self,
        coerced: tuple[int, ...],
        builds: list[tuple[tuple[str, ...], Any]] | None,
        nodes: dict[tuple[str, ...], dict[str, int | tuple[str, ...]]] | None = None,
        coercion: Coercion | None = None,
    ) -> None:
        self.coercion = coercion or _COERCION
        self.coerced = coerced  # indexes of the cells to coerce
        self.builds = builds  # per node, innermost first: (its keys, getter of its values)
        self.nodes = nodes  # per node path, its entries in order: a cell index or a child's path
        self.compiled: Builder | None = None  # generated once the shape repeats
        self.uses = 0

    @classmethod
    def plan(
        cls, names: tuple[str, ...], columns: list[Column], *, typed: bool, coercion: Coercion | None = None
    ) -> _RowShape:
        paths = [(*parents, leaf) for _, parents, leaf in columns]
        leaves = set(paths)
        if (typed and any(kind == _OBJECT for kind, _, _ in columns)) or any(
            path[:depth] in leaves for path in paths for depth in range(1, len(path))
        ):
            return cls((), None)
        coerced = tuple(i for i, (kind, _, _) in enumerate(columns) if typed and kind == _DATA)
        # Each node's entries in first-appearance order: a cell index, or a child node's path.
        nodes: dict[tuple[str, ...], dict[str, int | tuple[str, ...]]] = {(): {}}
        for index, path in enumerate(paths):
            for depth in range(len(path) - 1):
                parent, child = path[:depth], path[: depth + 1]
                if child not in nodes:
                    nodes[child] = {}
                    nodes[parent][path[depth]] = child
            nodes[path[:-1]][path[-1]] = index
        # Children are built before their parents; each built node is appended to the values.
        slots, builds = {}, []
        for node_path in sorted(nodes, key=len, reverse=True):
            entries = nodes[node_path]
            indexes = [entry if isinstance(entry, int) else slots[entry] for entry in entries.values()]
            getter = itemgetter(*indexes) if len(indexes) > 1 else _getter_of_few(indexes)
            slots[node_path] = len(names) + len(builds)
            builds.append((tuple(entries), getter))
        return cls(coerced, builds, nodes, coercion)

    def build(self, values: list[Any]) -> dict[str, Any]:
        self.uses += 1
        if self.uses > _COMPILE_AFTER and self.nodes is not None:
            self.compiled = _compiled_builder(
                self.nodes, len(values), frozenset(self.coerced), self.coercion[1]
            )
            self.nodes = None  # compiled, or not compilable: planned only once either way
        coerce = self.coercion[0]
        for index in self.coerced:
            cell = values[index]
            if isinstance(cell, str):
                values[index] = coerce(cell)
        node: dict[str, Any] = {}
        for keys, getter in self.builds:  # type: ignore[union-attr]
            node = dict(zip(keys, getter(values), strict=True))
            values.append(node)
        return node


def _compiled_builder(
    nodes: dict[tuple[str, ...], dict[str, int | tuple[str, ...]]],
    width: int,
    coerced: frozenset[int],
    coerce_any: Callable[[Any], Any] = coerce_text,
) -> Builder | None:
    """One function for a row shape: its cells as positional arguments, the nested record as
    one dict display (`{"type": v0, "properties": {"plan": c(v3)}}`), keys in the order the
    plan gives. Column names enter the code only as `repr` literals. None when Python cannot
    compile it (a name nested hundreds of levels deep): the shape's plan keeps building it."""

    def display(path: tuple[str, ...]) -> str:
        items = []
        for key, entry in nodes[path].items():
            if isinstance(entry, int):
                value = f"c(v{entry})" if entry in coerced else f"v{entry}"
            else:
                value = display(entry)
            items.append(f"{key!r}: {value}")
        return "{" + ", ".join(items) + "}"

    arguments = "".join(f"v{i}, " for i in range(width))
    try:
        source = f"def build({arguments}*, c=c):\n    return {display(())}\n"
        namespace: dict[str, Any] = {"c": coerce_any}
        # Reviewed: the code is ours; the file's column names enter it only as repr() string
        # literals (tests/unit/test_csv_shapes.py tries quotes, code and newlines in names).
        exec(compile(source, "<csv row shape>", "exec"), namespace)  # noqa: S102  # nosec B102
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None
    return namespace["build"]  # type: ignore[no-any-return]


def _getter_of_few(indexes: list[int]) -> Any:
    """A getter of no value or one value as a tuple (itemgetter wants 1+ indexes, and with
    one index returns the bare value)."""
    if not indexes:
        return lambda values: ()
    index = indexes[0]
    return lambda values: (values[index],)


def _column_plan(key: str, text_keys: frozenset[str], object_keys: frozenset[str]) -> Column:
    """How a CSV cell of this column is typed (objects kept as JSON text are parsed, data
    cells coerced, the rest left as text), and where its dotted name puts it."""
    if key in object_keys:
        kind = _OBJECT
    elif _holds_data(key, text_keys):
        kind = _DATA
    else:
        kind = _TEXT
    *parents, leaf = key.split(".")
    return kind, tuple(parents), leaf


def _holds_data(key: str, text_keys: frozenset[str]) -> bool:
    """Cells under properties/traits, and bare columns (which become properties or traits).
    Versions and build numbers stay text wherever they are (`os_version` 14.10 is not the
    number 14.1; Segment's `context.app.build` is text, Mixpanel's `$app_build_number` too)."""
    leaf = key.rpartition(".")[2].lower()
    if "version" in leaf or _BUILD_NAME.search(leaf):
        return False
    head, dot, _ = key.partition(".")
    if dot:
        return head in ("properties", "traits")
    # A column spelling a Segment field ("User ID") is an id or a time, kept as written.
    return key not in text_keys and canonical_field(key) is None

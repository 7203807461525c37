"""moto tuned for a long local run: its memory and work per call bounded, its answers unchanged.

Transactions backed up by item (`transactions_backed_up_by_item`): moto's TransactWriteItems
deep-copies every table the transaction names before it writes, so that a cancelled
transaction can be rolled back. The ledger's batches table gains an item per delivered
batch, and the sender writes a transaction per batch: each one copied all the batches
delivered before it (a cost that grows as the square of the file; about a third of the moto
time of a 200k-event local run). DynamoDB's rollback is about the items the transaction
names, so backing those up is the same rollback: this keeps a copy of each named item (or
its absence) and puts them back when moto cancels the transaction.

Model instances not kept (`model_instances_not_kept`): moto's `BaseModel.__new__` appends
every model object it makes to its class's `instances_tracked`, for the moto server's
dashboard, and lets go of them only when the mock ends. An SQS message is one, and so is the
copy of it that every ReceiveMessage hands out; each batch's body therefore stayed in memory
for the whole run (about 0.65 KB per event: the growth of a 1M-event run's RSS from 0.3 to
0.94 GB). The DynamoDB items the ledger reads and the transactions' backups are others. The
dashboard is never served here, and nothing else reads those lists for these classes (S3's
reset reads FakeKey's, which is left alone), so for them the list keeps nothing.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The models a run makes per batch or per call; the rest (queues, tables, buckets, S3 keys)
# are few, and S3's reset disposes of its keys through FakeKey's list.
_UNKEPT_MODELS = (("moto.sqs.models", "Message"), ("moto.dynamodb.models.dynamo_type", "Item"))

_ROLLED_BACK = ("TransactionCanceledException", "MultipleTransactionsException", "MockValidationException")


@contextmanager
def tuned_moto() -> Iterator[None]:
    """Every tuning here, for a local run (enter it inside `mock_aws()`)."""
    with transactions_backed_up_by_item(), model_instances_not_kept():
        yield


@contextmanager
def transactions_backed_up_by_item() -> Iterator[None]:
    """While the block runs, moto's TransactWriteItems backs up the items it names, not tables."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items

    def no_table_copy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = [_saved_item(backend, entry) for entry in transact_items]
        try:
            original(backend, transact_items)
        except Exception as error:
            if type(error).__name__ in _ROLLED_BACK:
                for table, hash_value, range_value, item in reversed([s for s in saved if s]):
                    _restore(table, hash_value, range_value, item)
            raise

    models.copy = types.SimpleNamespace(deepcopy=no_table_copy)  # the module's `copy` (type: ignore)
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        models.DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]
        models.copy = copy


def _saved_item(backend: Any, entry: dict[str, Any]) -> tuple[Any, Any, Any, Any] | None:
    """(table, hash key, range key, a copy of the item or None) for one transaction entry."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    _, operation = next(iter(entry.items()))
    table = backend.tables.get(operation.get("TableName")) if isinstance(operation, dict) else None
    key = (operation.get("Item") or operation.get("Key") or {}) if table is not None else {}
    if table is None or table.hash_key_attr not in key:
        return None
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
    if table.has_range_key and range_value is None:
        return None
    return table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))


def _restore(table: Any, hash_value: Any, range_value: Any, item: Any) -> None:
    """The item as it was before the transaction (gone again if it did not exist)."""
    if range_value is None:
        if item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item
    elif item is None:
        table.items.get(hash_value, {}).pop(range_value, None)
    else:
        table.items[hash_value][range_value] = item


class _NotKept(list):  # type: ignore[type-arg]
    """An `instances_tracked` that keeps nothing: moto only appends to it."""

    def append(self, _instance: Any) -> None:
        pass


@contextmanager
def model_instances_not_kept() -> Iterator[None]:
    """While the block runs, moto keeps no list of the SQS messages and DynamoDB items it makes
    (enter it inside `mock_aws()`: the mock's end resets those lists)."""
    import importlib

    classes = [getattr(importlib.import_module(module), name) for module, name in _UNKEPT_MODELS]
    kept = [cls.instances_tracked for cls in classes]
    for cls in classes:
        cls.instances_tracked = _NotKept()
    try:
        yield
    finally:
        for cls, instances in zip(classes, kept, strict=True):
            cls.instances_tracked = instances

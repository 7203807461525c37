"""The ledger's items in DynamoDB: the tables, conditional writes, transactions, and the
conversion of values to and from DynamoDB's typed form. `ledger.Ledger` builds on it."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from segment_importer.import_ref import ImportRef
from segment_importer.track.report import utc_now

_CONFLICT_RETRIES = 5
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class LedgerItems:
    """The two tables of the ledger and the ways their items are written."""

    def __init__(
        self,
        dynamodb: Any,
        imports_table: str,
        batches_table: str,
        *,
        retention_days: int = 0,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._db = dynamodb
        self._imports = imports_table
        self._batches = batches_table
        self._retention_seconds = retention_days * 86_400  # 0: items never expire
        self._clock = clock

    def _expiry(self) -> dict[str, int]:
        """The TTL attribute DynamoDB deletes items by (the ledger holds keys and error texts)."""
        if not self._retention_seconds:
            return {}
        return {"expires_at": int(time.time()) + self._retention_seconds}

    def _item(self, ref: ImportRef) -> dict[str, Any] | None:
        response = self._db.get_item(
            TableName=self._imports, Key=to_dynamo({"import_id": ref.import_id}), ConsistentRead=True
        )
        return from_dynamo(response["Item"]) if "Item" in response else None

    def _update_if(self, ref: ImportRef, update: str, condition: str, values: dict[str, Any]) -> bool:
        """A conditional update of the import's item; False when the condition does not hold."""
        try:
            self._db.update_item(
                TableName=self._imports,
                Key=to_dynamo({"import_id": ref.import_id}),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_dynamo(values),
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def _update_returning(
        self, ref: ImportRef, update: str, condition: str, values: dict[str, Any], name: str
    ) -> int:
        """A conditional update that returns the new value of the number `name`; 0 when the
        condition does not hold."""
        try:
            response = self._db.update_item(
                TableName=self._imports,
                Key=to_dynamo({"import_id": ref.import_id}),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_dynamo(values),
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return 0
            raise
        return int(from_dynamo(response.get("Attributes", {})).get(name, 0))

    def _set(self, ref: ImportRef, values: dict[str, Any], *, first_error: str | None = None) -> None:
        names = {f"#f{i}": name for i, name in enumerate(values)}
        assignments = [f"#f{i} = :v{i}" for i in range(len(values))]
        attribute_values = {f":v{i}": value for i, value in enumerate(values.values())}
        if first_error is not None:
            assignments.append("first_error = if_not_exists(first_error, :first_error)")
            attribute_values[":first_error"] = first_error
        self._db.update_item(
            TableName=self._imports,
            Key=to_dynamo({"import_id": ref.import_id}),
            UpdateExpression="SET " + ", ".join(assignments),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_dynamo(attribute_values),
        )

    def _set_if(
        self,
        ref: ImportRef,
        values: dict[str, Any],
        condition: str,
        condition_values: dict[str, Any],
        *,
        first_error: str | None = None,
    ) -> bool:
        """`_set`, if `condition` holds (it may name the status `#status`); False if it does not."""
        names = {("#status" if name == "status" else f"#f{i}"): name for i, name in enumerate(values)}
        assignments = [f"{placeholder} = :v{i}" for i, placeholder in enumerate(names)]
        attribute_values = {f":v{i}": value for i, value in enumerate(values.values())}
        if first_error is not None:
            assignments.append("first_error = if_not_exists(first_error, :first_error)")
            attribute_values[":first_error"] = first_error
        if "#status" in condition:
            names["#status"] = "status"
        try:
            self._db.update_item(
                TableName=self._imports,
                Key=to_dynamo({"import_id": ref.import_id}),
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_dynamo({**attribute_values, **condition_values}),
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def _transact(self, items: list[dict[str, Any]]) -> bool:
        """Run a transaction; False if a condition failed, retried on write conflicts."""
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._db.transact_write_items(TransactItems=items)
            except ClientError as error:
                if is_condition_failure(error):
                    return False
                if not _is_conflict(error) or attempt == _CONFLICT_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
            else:
                return True
        return False  # unreachable: the last attempt returns or raises


def is_condition_failure(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    return code == "TransactionCanceledException" and "ConditionalCheckFailed" in _cancellation_codes(error)


def _is_conflict(error: ClientError) -> bool:
    """Another transaction touched the same import item at the same moment: try again."""
    code = error.response.get("Error", {}).get("Code")
    if code == "TransactionConflictException":
        return True
    return code == "TransactionCanceledException" and "TransactionConflict" in _cancellation_codes(error)


def _cancellation_codes(error: ClientError) -> set[str]:
    reasons = error.response.get("CancellationReasons") or []
    codes = {reason.get("Code", "") for reason in reasons}
    if not codes:  # botocore may only have the codes in the message: "[ConditionalCheckFailed, None]"
        message = error.response.get("Error", {}).get("Message", "")
        codes = {code.strip() for code in message[message.find("[") + 1 : message.rfind("]")].split(",")}
    return codes


def to_dynamo(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(_dynamo_value(value)) for name, value in values.items()}


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: _dynamo_value(item) for key, item in value.items()}
    return value


def from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value

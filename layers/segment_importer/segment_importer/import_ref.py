"""Which file an import is: bucket, key and ETag (the same key re-uploaded is another import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImportRef:
    bucket: str
    key: str
    etag: str

    @property
    def import_id(self) -> str:
        """The ledger's key for the import."""
        return f"s3://{self.bucket}/{self.key}#{self.etag}"

"""`rejects KEY --bucket NAME` against a bucket (moto): an archive's rejects are its members'."""

from __future__ import annotations

import argparse

import boto3
from moto import mock_aws

from segment_importer_local import rejects_lookup

BUCKET = "import-bucket"


def test_the_rejects_of_a_deployed_zip_are_its_members_rejects_and_refusals() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for key in ("x.zip", "x.zip!m1.csv", "x.zip!m2.csv"):
            s3.put_object(Bucket=BUCKET, Key=f"reports/{key}.report.json", Body=b"{}")
            s3.put_object(Bucket=BUCKET, Key=f"reports/{key}.report.html", Body=b"")
        s3.put_object(Bucket=BUCKET, Key="rejects/x.zip!m1.csv.rejects.ndjson", Body=b'{"number":2}\n')
        s3.put_object(
            Bucket=BUCKET, Key="rejects/x.zip!m2.csv.refused/batch-000001.ndjson", Body=b'{"number":null}\n'
        )

        whole = rejects_lookup.deployed(argparse.Namespace(bucket=BUCKET, stack=None, key="x.zip"))
        member = rejects_lookup.deployed(argparse.Namespace(bucket=BUCKET, stack=None, key="x.zip!m1.csv"))

    assert whole.body == b'{"number":2}\n{"number":null}\n'
    assert whole.members == [("imports/x.zip!m1.csv", 1), ("imports/x.zip!m2.csv", 1)]
    assert (member.body, member.members) == (b'{"number":2}\n', [])

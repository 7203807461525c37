"""Delivery: the SQS-side sender, the Segment client, the write key and its pre-flight."""

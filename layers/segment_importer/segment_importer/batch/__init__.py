"""Encoding messages, packing them into Segment batches, and putting batches on the work queue."""

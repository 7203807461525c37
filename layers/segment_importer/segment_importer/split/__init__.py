"""The splitter: one export object -> batches on the work queue, in parts or byte ranges."""

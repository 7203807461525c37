"""Mapping a source record to a Segment message: columns, profiles, times, ids, validation."""

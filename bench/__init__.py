"""Benchmarks for segment-importer, each against a baseline measured in the same run.

Run them all with `make bench` (or `.venv/bin/python -m bench`); `--quick` runs a small
subset. See bench/README.md for what each one measures and the latest results.
"""

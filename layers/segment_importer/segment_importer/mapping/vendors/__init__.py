"""One module per vendor export: how its records become Segment spec records.

Each module exports `matches(record) -> bool` (a cheap shape test) and
`to_spec(record, keep_internals) -> (spec_record, source_id)`. `profiles` lists them in the
order they are tried. Per vendor, which field goes where is written out in docs/mapping.md.
"""

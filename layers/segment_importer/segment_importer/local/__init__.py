"""Local stand-ins for the pipeline's remote services (no AWS account, no Segment workspace needed).

`segment_endpoint` is a strict loopback HTTP server that speaks Segment's Tracking API; the CLI's
local run sends to it by default and the integration tests inject faults into it.
"""

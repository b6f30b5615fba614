"""Benchmarks (``exchange bench``): ingest vs the machine's floor, pipeline, replay."""

